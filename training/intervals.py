"""Judging quantile forecasts out of sample, beside reference-class forecasting.

The protocol is the classifiers' (`training.pipeline.choose_protocol`): forward in time when
the later side is large enough, else project-grouped folds (`training.splits`). Every
method and the reference class are fitted on the training side only and scored on the
held-out projects, by stage. Reported per scope: the coverage of each nominal level (the
weighted share of rows whose outcome is at or below the level's quantile), the width of
the P10–P90 interval, the mean pinball loss over the levels and the interval score of the
P10–P90 interval (Gneiting & Raftery: width plus 2/α times the miss, α = 0.2). Interval
scores are compared with the reference class through the paired project bootstrap and the
three-valued verdict of `training.evaluate`. docs/intervals.md explains the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.evaluate import STAGE_LABELS, VERDICT_WORDS, ProjectBootstrap, stage_labels, verdict
from training.pipeline import TrainingOptions, choose_protocol
from training.quantiles import (
    CLASSIFIER_TARGETS,
    LEVELS,
    METHODS,
    OUTCOMES,
    Calibration,
    Method,
    QuantileModel,
    exceedance,
    fit_quantiles,
    level_names,
)
from training.reference_class import fit_reference_class
from training.splits import forward_cutoff, forward_split, grouped_folds

Progress = Callable[[str], None]
REFERENCE = "reference_class"
ALPHA = 0.2  # the P10–P90 interval is the central 80 %
CHOICE_STAGES = STAGE_LABELS[1:]  # coverage from 20 % elapsed on decides the method
COVERAGE_TIE = 0.01  # closer than this in coverage error and the interval score decides
_CHUNK = 50


def pinball_loss(y: np.ndarray, q: np.ndarray, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Each row's pinball (quantile) loss averaged over the levels."""
    y = np.asarray(y, dtype=float)[:, None]
    lv = np.asarray(levels, dtype=float)[None, :]
    diff = y - np.asarray(q, dtype=float)
    return np.mean(np.maximum(lv * diff, (lv - 1) * diff), axis=1)


def interval_score(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float = ALPHA
) -> np.ndarray:
    """Each row's interval score: width, plus 2/α times how far the outcome fell outside."""
    y, lo, hi = (np.asarray(a, dtype=float) for a in (y, lower, upper))
    return (hi - lo) + (2 / alpha) * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))


def _interval(samples: np.ndarray) -> list[float] | None:
    finite = samples[np.isfinite(samples)]
    if len(finite) < max(10, len(samples) // 2):
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def _resampled_means(boot: ProjectBootstrap, values: np.ndarray, w: np.ndarray, mask: np.ndarray):
    """The weighted mean of `values` over `mask` in each project resample."""
    codes, v, ww = boot.codes[mask], values[mask], w[mask]
    out = []
    for start in range(0, boot.n_resamples, _CHUNK):
        W = boot.counts[start : start + _CHUNK][:, codes] * ww[None, :]
        total = W.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(total > 0, (W @ v) / total, np.nan))
    return np.concatenate(out) if out else np.zeros(0)


def _block(
    y: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    pids: np.ndarray,
    mask: np.ndarray,
    levels: Sequence[float],
) -> dict[str, Any]:
    m = mask & np.isfinite(q).all(axis=1) & np.isfinite(y)
    if not m.any() or w[m].sum() <= 0:
        return {"n_rows": 0, "n_projects": 0, "coverage": None, "width_80": None,
                "pinball": None, "interval_score": None}  # fmt: skip
    ww = w[m]
    covered = y[m, None] <= q[m]
    return {
        "n_rows": int(m.sum()),
        "n_projects": int(pd.unique(pids[m]).size),
        "coverage": {
            name: float(np.average(covered[:, i], weights=ww))
            for i, name in enumerate(level_names(tuple(levels)))
        },
        "width_80": float(np.average(q[m, -1] - q[m, 0], weights=ww)),
        "pinball": float(np.average(pinball_loss(y[m], q[m], levels), weights=ww)),
        "interval_score": float(np.average(interval_score(y[m], q[m, 0], q[m, -1]), weights=ww)),
    }


def coverage_error(report: Mapping[str, Any], name: str, stages: Sequence[str] = CHOICE_STAGES):
    """Mean |coverage − nominal| over `stages` and levels (None where no stage has rows)."""
    entry = report["methods"][name] if name != REFERENCE else report[REFERENCE]
    gaps = []
    for stage in stages:
        cov = entry["by_stage"][stage]["coverage"]
        if cov is None:
            continue
        gaps += [
            abs(cov[n] - q)
            for n, q in zip(level_names(tuple(report["levels"])), report["levels"], strict=True)
        ]
    return float(np.mean(gaps)) if gaps else None


def evaluate_intervals(
    rows: pd.DataFrame,
    y: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    reference: np.ndarray,
    levels: Sequence[float] = LEVELS,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Every method and the reference class on the same rows, overall and by stage, each
    method's interval score against the reference class with a paired project-bootstrap
    interval of (reference − method): "better" when the whole interval is above zero."""
    y = np.asarray(y, dtype=float)
    w = rows["weight"].to_numpy(dtype=float)
    pids = rows["project_id"].to_numpy()
    stages = stage_labels(rows["elapsed_fraction"].to_numpy(dtype=float, na_value=np.nan))
    scopes = {"all": np.ones(len(rows), dtype=bool), **{s: stages == s for s in STAGE_LABELS}}
    boot = ProjectBootstrap(pids, n_bootstrap, seed)

    def entry(q: np.ndarray) -> dict[str, Any]:
        return {
            **_block(y, q, w, pids, scopes["all"], levels),
            "by_stage": {s: _block(y, q, w, pids, scopes[s], levels) for s in STAGE_LABELS},
        }

    ref_score = interval_score(y, reference[:, 0], reference[:, -1])
    report: dict[str, Any] = {
        "levels": list(levels),
        "n_rows": len(rows),
        "n_projects": int(pd.unique(pids).size),
        "methods": {},
        REFERENCE: entry(reference),
        "comparison": {},
    }
    for name, q in predictions.items():
        report["methods"][name] = entry(q)
        diff = ref_score - interval_score(y, q[:, 0], q[:, -1])
        ok = np.isfinite(diff)
        comparison: dict[str, Any] = {"by_stage": {}}
        for scope, mask in scopes.items():
            m = mask & ok
            block: dict[str, Any] = {"interval_score_diff": None, "ci": None, "verdict": None}
            if m.any():
                ci = _interval(_resampled_means(boot, diff, w, m))
                block = {
                    "interval_score_diff": float(np.average(diff[m], weights=w[m])),
                    "ci": ci,
                    "verdict": verdict(ci),
                }
            if scope == "all":
                comparison.update(block)
            else:
                comparison["by_stage"][scope] = block
        report["comparison"][name] = comparison
    for name in [*predictions, REFERENCE]:
        target = report["methods"][name] if name != REFERENCE else report[REFERENCE]
        target["coverage_error"] = coverage_error(report, name)
    return report


def choose_method(report: Mapping[str, Any]) -> tuple[str, str]:
    """The method whose coverage from 20 % elapsed on is closest to nominal (the interval
    score breaks near-ties), and why, in words with the figures."""
    if not report["methods"]:
        return "", "no method evaluated"
    errors = {n: report["methods"][n]["coverage_error"] for n in report["methods"]}
    usable = {n: e for n, e in errors.items() if e is not None}
    if not usable:
        first = next(iter(report["methods"]))
        return first, "no stage from 20 % on has held-out rows: the first method by default"
    best_error = min(usable.values())
    near = [n for n, e in usable.items() if e <= best_error + COVERAGE_TIE]
    chosen = min(near, key=lambda n: report["methods"][n]["interval_score"])
    figures = "; ".join(
        f"{n}: coverage error {e:.3f}, interval score {report['methods'][n]['interval_score']:.3f}"
        for n, e in usable.items()
    )
    why = "closest coverage" if len(near) == 1 else "coverage within 0.01, lower interval score"
    return chosen, f"{chosen} ({why}) — {figures}"


def _exceedance_check(
    y: np.ndarray, q: np.ndarray, w: np.ndarray, tolerance: float
) -> dict[str, float | None]:
    """P(outcome > tolerance) read off the held-out quantiles — the classifier's question
    answered by the distribution — against what happened: the mean predicted, the observed
    share and the Brier score (the classifiers' reports carry theirs, to compare)."""
    p = exceedance(q, tolerance)
    ok = np.isfinite(p) & np.isfinite(y)
    if not ok.any():
        return {"tolerance": tolerance, "mean_p": None, "observed": None, "brier": None}
    late = (y[ok] > tolerance).astype(float)
    return {
        "tolerance": tolerance,
        "mean_p": float(np.average(p[ok], weights=w[ok])),
        "observed": float(np.average(late, weights=w[ok])),
        "brier": float(np.average((p[ok] - late) ** 2, weights=w[ok])),
    }


@dataclass
class IntervalEvaluation:
    """Held-out quantiles of every method and the reference class, and their report."""

    rows: pd.DataFrame
    y: np.ndarray
    predictions: dict[str, np.ndarray]
    reference: np.ndarray
    report: dict[str, Any]
    design: str


def _quiet(_: str) -> None:
    return None


def evaluate_quantiles(
    labelled: pd.DataFrame,
    target: str,
    options: TrainingOptions,
    methods: Sequence[Method] = METHODS,
    progress: Progress = _quiet,
) -> IntervalEvaluation:
    """Every method and the reference class out of sample by the classifiers' protocol."""
    outcome = OUTCOMES[target]
    labelled = labelled.loc[labelled[outcome].notna()].reset_index(drop=True)
    why_not_forward = choose_protocol(labelled, CLASSIFIER_TARGETS[target], options)
    if why_not_forward is None:
        cutoff = forward_cutoff(labelled, options.test_share)
        forward_split(labelled, cutoff)  # asserts that no project is on both sides
        closed = pd.to_datetime(labelled["actual_finish"])
        train_idx = np.flatnonzero((closed < cutoff).to_numpy())
        test_idx = np.flatnonzero((closed >= cutoff).to_numpy())
        folds = [(train_idx, test_idx)]
        design = f"forward: trained on projects closed before {cutoff.date()}, tested on later"
        # Conformal residuals the same way: from the latest closures of the training side.
        calibration: Calibration = "forward"
    else:
        k = min(options.cv_folds, labelled["project_id"].nunique())
        folds = grouped_folds(labelled, k, options.seed)
        design = f"{k}-fold project-grouped cross-validation ({why_not_forward})"
        calibration = "folds"
    n = len(labelled)
    predictions: dict[str, np.ndarray] = {m: np.full((n, len(LEVELS)), np.nan) for m in methods}
    reference = np.full((n, len(LEVELS)), np.nan)
    fold_of = np.full(n, -1)
    for i, (train_idx, test_idx) in enumerate(folds):
        train, test = labelled.iloc[train_idx], labelled.iloc[test_idx]
        fold_of[test_idx] = i
        reference[test_idx] = fit_reference_class(train, target).predict(test)
        for method in methods:
            progress(f"{target}: {method}, fold {i + 1}/{len(folds)}")
            model = fit_quantiles(
                train, target, method, seed=options.seed, num_threads=options.num_threads,
                max_trees=options.max_trees, calibration=calibration,
            )  # fmt: skip
            predictions[method][test_idx] = model.predict(test)
    tested = fold_of >= 0
    rows = labelled.loc[tested, ["project_id", "as_of", "weight", "elapsed_fraction"]].copy()
    rows["cv_fold"] = fold_of[tested]
    rows = rows.reset_index(drop=True)
    y = labelled[outcome].to_numpy(dtype=float)[tested]
    preds = {m: p[tested] for m, p in predictions.items()}
    report = evaluate_intervals(
        rows, y, preds, reference[tested], LEVELS, options.n_bootstrap, options.seed
    )
    chosen, why = choose_method(report)
    if chosen:
        report["exceedance"] = _exceedance_check(
            y, preds[chosen], rows["weight"].to_numpy(dtype=float), options.tolerance(
                CLASSIFIER_TARGETS[target]
            )
        )  # fmt: skip
    report.update(
        target=target, protocol=design, method=chosen, method_choice=why, calibration=calibration
    )
    return IntervalEvaluation(rows, y, preds, reference[tested], report, design)


def train_quantile_target(
    labelled: pd.DataFrame,
    target: str,
    options: TrainingOptions,
    progress: Progress = _quiet,
) -> tuple[QuantileModel, IntervalEvaluation]:
    """Evaluate both methods, then fit the chosen one on every project with an outcome."""
    evaluation = evaluate_quantiles(labelled, target, options, progress=progress)
    method: Method = evaluation.report["method"]
    progress(f"{target}: fitting {method} quantiles on all projects")
    model = fit_quantiles(
        labelled, target, method, seed=options.seed, num_threads=options.num_threads,
        max_trees=options.max_trees, calibration=evaluation.report["calibration"],
    )  # fmt: skip
    model.metadata["evaluation"] = {
        "protocol": evaluation.design,
        "method_choice": evaluation.report["method_choice"],
        "interval_score": evaluation.report["methods"][method]["interval_score"],
        "reference_interval_score": evaluation.report[REFERENCE]["interval_score"],
        "verdict": evaluation.report["comparison"][method]["verdict"],
    }
    return model, evaluation


def render_markdown(report: Mapping[str, Any]) -> str:
    """One target's interval evaluation as a readable table by stage."""
    names = level_names(tuple(report["levels"]))
    method = report["method"]
    lines = [
        f"## {report['target']} ({OUTCOMES[report['target']]} quantiles)",
        "",
        f"{report['n_projects']} projects, {report['n_rows']} rows; {report['protocol']}.",
        f"Method: {report['method_choice']}.",
        "",
        "| stage | method | " + " | ".join(f"cover {n}" for n in names)
        + " | P10–P90 width | pinball | interval score | vs reference class |",
        "|" + "---|" * (len(names) + 6),
    ]  # fmt: skip
    for stage in ("all", *STAGE_LABELS):
        for name in (method, REFERENCE):
            entry = report["methods"][name] if name != REFERENCE else report[REFERENCE]
            block = entry if stage == "all" else entry["by_stage"][stage]
            if block["coverage"] is None:
                continue
            cmp = report["comparison"][method]
            c = cmp if stage == "all" else cmp["by_stage"][stage]
            versus = "—"
            if name == method and c["interval_score_diff"] is not None:
                ci = c["ci"]
                span = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
                versus = f"{c['interval_score_diff']:+.3f}{span} {VERDICT_WORDS[c['verdict']]}"
            cells = [stage, name, *(f"{block['coverage'][n]:.0%}" for n in names)]
            cells += [f"{block['width_80']:.3f}", f"{block['pinball']:.4f}"]
            cells += [f"{block['interval_score']:.3f}", versus]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Coverage: share of rows whose outcome is at or below the quantile (nominal: the "
        "level). Interval score of P10–P90 (lower is better); “vs reference class” is the "
        "reference's score minus the model's with a 95 % project-bootstrap interval.",
        "",
    ]
    return "\n".join(lines)


def compare_quantiles(
    rows: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Two quantile models on the same rows (the retraining gate's): each one's figures as
    in `evaluate_intervals` (overall and by stage, with its coverage error) and, with a
    champion, the paired project-bootstrap comparison of their interval scores
    (``interval_score_diff`` = champion − challenger; "better": the challenger is)."""
    if champion is None:
        alone = evaluate_intervals(rows, y, {}, challenger, LEVELS, 0, seed)
        return {"challenger": alone[REFERENCE], "champion": None, "comparison": None}
    both = evaluate_intervals(
        rows, y, {"challenger": challenger}, champion, LEVELS, n_bootstrap, seed
    )
    return {
        "challenger": both["methods"]["challenger"],
        "champion": both[REFERENCE],
        "comparison": both["comparison"]["challenger"],
    }
