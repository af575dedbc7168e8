"""`forewarn train`'s quantile step: P10–P90 of slip and overrun, registered beside the
classifiers as ``forewarn-finish`` and ``forewarn-cost``.

Wiring only (the steps live in `quantiles`, `reference_class`, `intervals` and
`tracking`). Called once from `training.pipeline.train` after the classifiers, on the same
training table: each quantile target rides on its classifier's result (finish on delay,
cost on overrun), adding ``report["quantiles"]`` and notes. The gate is the classifiers'
on the interval score: the first version becomes champion unless its interval score is
worse than the reference class's (paired project-bootstrap verdict); then the reference
class itself is registered and made champion, as the calibrated rule is for a classifier.

`retrain_quantiles` is `forewarn retrain`'s step: a challenger per quantile target, gated
against its champion on the interval score over the classifiers' gate rows (the recent
holdout, or project-grouped folds where the champion's method is refitted beside it),
promoted or refused with reasons, as `training.pipeline.retrain_target` does for a
classifier.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import Portfolio
from training import tracking
from training.fingerprint import training_fingerprint
from training.gate import GateDecision, IntervalFigures, decide_intervals
from training.intervals import (
    REFERENCE,
    compare_quantiles,
    evaluate_quantiles,
    render_markdown,
    train_quantile_target,
)
from training.models import MIN_PROJECTS
from training.pipeline import RetrainResult, choose_protocol, settle_aliases
from training.quantiles import (
    CLASSIFIER_TARGETS,
    LEVELS,
    OUTCOMES,
    Calibration,
    Method,
    QuantileModel,
    fit_quantiles,
    with_outcomes,
)
from training.splits import forward_split, grouped_folds, holdout_cutoff

if TYPE_CHECKING:
    from training.pipeline import Store, TargetResult, TrainingOptions

# How a retrain fits a quantile model: (rows, target, method, calibration, options).
QuantileFit = Callable[[pd.DataFrame, str, Method, Calibration, "TrainingOptions"], QuantileModel]

QUANTILE_OF = {"delay": "finish", "overrun": "cost"}


def _quiet(_: str) -> None:
    return None


def _fmt(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.3f}"


def _metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    method = report["method"]
    cmp = report["comparison"].get(method, {})
    return {
        "model": report["methods"].get(method, {}),
        REFERENCE: report[REFERENCE],
        "interval_score_diff": cmp.get("interval_score_diff"),
        "interval_score_diff_ci": cmp.get("ci"),
    }


def _log(
    target: str,
    model: QuantileModel,
    report: dict[str, Any],
    options: TrainingOptions,
    tags: dict[str, Any],
    run_name: str | None = None,
) -> tracking.VersionInfo:
    return tracking.log_quantiles(
        target,
        model,
        _metrics(report),
        report,
        render_markdown(report),
        {"method": model.method, "seed": options.seed, "levels": list(model.levels)},
        {**tags, "method": model.method},
        run_name=run_name,
    )


def attach_quantiles(
    results: Mapping[str, TargetResult],
    table: pd.DataFrame,
    portfolio: Portfolio,
    options: TrainingOptions,
    store: Store,
    as_of: pd.Timestamp | None,
    progress: Callable[[str], None] = _quiet,
) -> None:
    """Evaluate, fit, log and register each trained classifier's quantile model.

    Does nothing unless ``options.quantiles``; a classifier that was skipped gets none.
    """
    if not getattr(options, "quantiles", False):
        return
    frame = with_outcomes(table, portfolio.projects, as_of)
    for classifier, target in QUANTILE_OF.items():
        result = results.get(classifier)
        if result is None or result.report is None:
            continue
        labelled = frame.loc[frame[OUTCOMES[target]].notna()]
        n = labelled["project_id"].nunique()
        if n < MIN_PROJECTS:
            result.notes.append(
                f"{target} quantiles skipped: {n} project(s), {MIN_PROJECTS} needed"
            )
            continue
        model, evaluation = train_quantile_target(labelled, target, options, progress)
        report = evaluation.report
        tracking.configure(store.tracking_uri, store.artifact_root, store.experiment)
        verdict = report["comparison"][report["method"]]["verdict"]
        tags = {
            "trained_by": "train",
            "method": model.method,
            "verdict": verdict,
            "protocol": report["protocol"],
            "interval_score": report["methods"][model.method]["interval_score"],
        }

        info = _log(target, model, report, options, tags)
        has_champion = tracking.alias_version(target, tracking.CHAMPION) is not None
        notes = [f"{target} quantiles: {report['method_choice']}"]
        if has_champion:
            notes.append(f"{info.name} v{info.version} registered; the champion is unchanged")
        elif verdict == "worse":
            reference = fit_quantiles(labelled, target, "reference_class")
            ref_info = _log(
                target, reference, report, options, {**tags, "chosen_because": "reference"}
            )
            tracking.promote(target, ref_info.version)
            notes.append(
                f"{info.name} v{info.version} registered but NOT champion: its interval score "
                f"is worse than reference-class forecasting; the reference class "
                f"(v{ref_info.version}) is champion instead"
            )
        else:
            tracking.promote(target, info.version)
            notes.append(f"{info.name} v{info.version} is the first model: now champion")
        check = report.get("exceedance") or {}
        if check.get("brier") is not None:
            notes.append(
                f"{target}: P(beyond the tolerance) read off the ranges has Brier "
                f"{check['brier']:.3f} on held-out rows (the classifier's: "
                f"{_fmt(result.report.get('brier'))}); mean {check['mean_p']:.0%} against "
                f"{check['observed']:.0%} observed"
            )
        result.notes.extend(notes)
        result.report["quantiles"] = {
            **report,
            "model_version": info.version,
            "verdict_served": verdict,
        }


# ---------------------------------------------------------------------------- retrain


def default_quantile_fit(
    train: pd.DataFrame,
    target: str,
    method: Method,
    calibration: Calibration,
    options: TrainingOptions,
) -> QuantileModel:
    """`fit_quantiles` with the options' seed, threads and trees."""
    return fit_quantiles(
        train, target, method, seed=options.seed, num_threads=options.num_threads,
        max_trees=options.max_trees, calibration=calibration,
    )  # fmt: skip


def _calibration(labelled: pd.DataFrame, target: str, options: TrainingOptions) -> Calibration:
    """Forward where the portfolio is judged forward in time, folds otherwise (as train)."""
    forward = choose_protocol(labelled, CLASSIFIER_TARGETS[target], options) is None
    return "forward" if forward else "folds"


@dataclass
class QuantileGateRows:
    """The gate's rows, each side's out-of-sample quantiles on them, and how they were made."""

    rows: pd.DataFrame
    y: np.ndarray
    challenger: np.ndarray
    champion: np.ndarray | None
    description: str
    notes: list[str]


def _gate_quantiles(
    labelled: pd.DataFrame,
    target: str,
    as_of: pd.Timestamp,
    options: TrainingOptions,
    method: Method,
    calibration: Calibration,
    fit: QuantileFit,
    champion: tracking.LoadedQuantiles | None,
    progress: Callable[[str], None],
) -> QuantileGateRows:
    """The classifiers' gate protocol (`training.pipeline._gate_predictions`) for quantiles.

    The holdout (projects closed in the `holdout_days` before as_of) when it holds
    `min_holdout_projects` and twice `MIN_PROJECTS` closed before it: the challenger's
    method fitted on those, the champion scored as it is. Otherwise grouped folds over
    every project with an outcome, the champion's method refitted on the same folds as the
    challenger's: one protocol for both, never a champion scored on its own training rows.
    """
    outcome = OUTCOMES[target]
    cutoff = holdout_cutoff(as_of, options.holdout_days)
    before, holdout = forward_split(labelled, cutoff)
    n_hold, n_before = holdout["project_id"].nunique(), before["project_id"].nunique()
    notes: list[str] = []
    if n_hold >= options.min_holdout_projects and n_before >= 2 * MIN_PROJECTS:
        progress(f"{target}: fitting the challenger on {n_before} projects before the holdout")
        model = fit(before, target, method, calibration, options)
        rows = holdout.reset_index(drop=True)
        champion_q = None
        if champion is not None:
            try:
                champion_q = champion.model.predict(rows)
            except KeyError as exc:
                notes.append(f"the champion cannot score these rows ({exc}); it is replaced")
            through = champion.model.metadata.get("closed_through")
            if through and champion_q is not None:
                closes = rows.groupby("project_id")["actual_finish"].first()
                seen = int((pd.to_datetime(closes) <= pd.Timestamp(through)).sum())
                if seen:
                    notes.append(
                        f"note: the champion was trained on {seen} of the {n_hold} gate "
                        "projects, which flatters its figures"
                    )
        description = (
            f"holdout: {n_hold} projects closed {cutoff.date()}..{as_of.date()}; challenger "
            f"fitted on the {n_before} closed before {cutoff.date()}"
        )
        return QuantileGateRows(
            rows, rows[outcome].to_numpy(dtype=float), model.predict(rows), champion_q,
            description, notes,
        )  # fmt: skip
    k = min(options.cv_folds, labelled["project_id"].nunique())
    folds = grouped_folds(labelled, k, options.seed)
    rows = labelled.reset_index(drop=True)
    challenger_q = np.full((len(rows), len(LEVELS)), np.nan)
    champion_q = None if champion is None else np.full((len(rows), len(LEVELS)), np.nan)
    theirs: Method | None = None if champion is None else champion.model.method
    their_calibration: Calibration = calibration
    if champion is not None:
        their_calibration = champion.model.metadata.get("calibration") or calibration
    fold_of = np.empty(len(rows), dtype=int)
    for i, (train_idx, test_idx) in enumerate(folds):
        progress(f"{target}: challenger fold {i + 1}/{len(folds)}")
        train, test = rows.iloc[train_idx], rows.iloc[test_idx]
        fold_of[test_idx] = i
        challenger_q[test_idx] = fit(train, target, method, calibration, options).predict(test)
        if champion_q is not None and theirs is not None:
            progress(f"{target}: champion's method fold {i + 1}/{len(folds)}")
            champion_q[test_idx] = default_quantile_fit(
                train, target, theirs, their_calibration, options
            ).predict(test)
    if champion_q is not None:
        notes.append(
            f"both scored out of fold on the same folds (champion's method {theirs}, "
            "refitted without each fold)"
        )
    description = (
        f"{len(folds)}-fold grouped cross-validation over {rows['project_id'].nunique()} "
        f"projects (the holdout {cutoff.date()}..{as_of.date()} had {n_hold} projects, "
        f"fewer than {options.min_holdout_projects})"
    )
    return QuantileGateRows(
        rows.assign(cv_fold=fold_of), rows[outcome].to_numpy(dtype=float), challenger_q,
        champion_q, description, notes,
    )  # fmt: skip


def _figures(entry: Mapping[str, Any] | None) -> IntervalFigures | None:
    if entry is None:
        return None
    return IntervalFigures(entry.get("interval_score"), entry.get("coverage_error"))


def retrain_quantile_target(
    frame: pd.DataFrame,
    target: str,
    as_of: pd.Timestamp,
    options: TrainingOptions,
    *,
    method: Method | None = None,
    fit: QuantileFit = default_quantile_fit,
    recipe_name: str = "default",
    progress: Callable[[str], None] = _quiet,
) -> RetrainResult:
    """Train a quantile challenger on `frame` (the training table as known at `as_of`,
    with outcomes: `with_outcomes`), gate it on the interval score, promote or refuse.

    `method` None chooses between the methods as `forewarn train` does (coverage from 20 %
    elapsed on, out of sample); `fit` and `recipe_name` let a caller swap how the model is
    fitted (the tests fit a deliberately worse one); the name enters the fingerprint.
    `tracking.configure` must have been called. The champion alias moves once, after
    every check, and only on promotion.
    """
    as_of = pd.Timestamp(as_of).normalize()
    outcome = OUTCOMES[target]
    labelled = frame.loc[frame[outcome].notna()].reset_index(drop=True)
    n = labelled["project_id"].nunique()
    if n < MIN_PROJECTS:
        return RetrainResult(
            target, "skipped", [f"{target} quantiles skipped: {n} project(s) with a known "
                                f"{outcome}, {MIN_PROJECTS} needed"],
        )  # fmt: skip
    recipe = {**options.recipe(), "recipe": recipe_name, "method": method or "chosen"}
    fingerprint = training_fingerprint(labelled, target, as_of, recipe)
    champion_info = tracking.alias_version(target, tracking.CHAMPION)
    for alias, info in (
        (tracking.CHAMPION, champion_info),
        (tracking.CHALLENGER, tracking.alias_version(target, tracking.CHALLENGER)),
    ):
        if info is not None and info.tags.get("fingerprint") == fingerprint:
            what = info.tags.get("gate_decision", "trained")
            return RetrainResult(
                target, "no change",
                [f"{info.name} v{info.version} ({alias}, {what}) was trained on the same "
                 f"inputs as of {as_of.date()} (fingerprint {fingerprint}): nothing to do"],
                fingerprint=fingerprint,
            )  # fmt: skip
    champion = tracking.load_quantiles(target) if champion_info is not None else None

    report: dict[str, Any] = {}
    chosen: Method
    if method is None:
        evaluation = evaluate_quantiles(labelled, target, options, progress=progress)
        report = evaluation.report
        chosen = report["method"] or "conformal"
        calibration: Calibration = report["calibration"]
    else:
        chosen = method
        calibration = _calibration(labelled, target, options)
    method = chosen
    gate = _gate_quantiles(
        labelled, target, as_of, options, method, calibration, fit, champion, progress
    )
    figures = compare_quantiles(
        gate.rows, gate.y, gate.challenger, gate.champion, options.n_bootstrap, options.seed
    )
    challenger_fig = _figures(figures["challenger"])
    champion_fig = _figures(figures["champion"])
    assert challenger_fig is not None
    if champion is not None and champion_fig is None:
        decision = GateDecision(True, gate.notes[:1])
    else:
        decision = decide_intervals(challenger_fig, champion_fig, options.gate_interval_margin)
        comparison = figures["comparison"]
        if comparison is not None and comparison.get("ci"):
            lo, hi = comparison["ci"]
            decision.reasons.append(
                f"champion − challenger interval score {comparison['interval_score_diff']:+.4f}, "
                f"95 % project-bootstrap interval [{lo:+.4f}, {hi:+.4f}]"
            )
        decision.reasons.extend(gate.notes)

    progress(f"{target}: fitting the {method} challenger on all {n} projects")
    model = fit(labelled, target, method, calibration, options)
    challenger_figures: dict[str, Any] = {
        "interval_score": challenger_fig.interval_score,
        "coverage_error": challenger_fig.coverage_error,
        "method": method,
    }
    champion_figures: dict[str, Any] | None = None
    if champion is not None and champion_fig is not None:
        champion_figures = {
            "interval_score": champion_fig.interval_score,
            "coverage_error": champion_fig.coverage_error,
            "method": champion.model.method,
            "version": champion.version,
        }
    gate_report = {
        "target": target,
        "gate_rows": gate.description,
        "challenger": figures["challenger"],
        "champion": figures["champion"],
        "comparison": figures["comparison"],
    }
    tags = {
        "trained_by": "retrain",
        "fit_name": recipe_name,
        "fingerprint": fingerprint,
        "method": method,
        "gate_decision": decision.word,
        "gate_reasons": " | ".join(decision.reasons),
        "gate_rows": gate.description,
        "gate_champion_version": champion.version if champion else "none",
        "gate_figures": json.dumps(
            {"challenger": challenger_figures, "champion": champion_figures}, default=str
        ),
        "interval_score": challenger_fig.interval_score,
    }
    logged = {**report, "gate": gate_report} if report else {"gate": gate_report}
    info = tracking.log_quantiles(
        target,
        model,
        {"gate": {"challenger": challenger_figures, "champion": champion_figures or {}}},
        logged,
        render_markdown(report) if report else f"# {target}: retrain gate\n",
        {"method": method, "seed": options.seed, "levels": list(model.levels)},
        tags,
        run_name=f"retrain-{target}-{as_of.date()}",
    )
    decision = settle_aliases(target, info.version, decision)
    return RetrainResult(
        target,
        decision.word,
        decision.reasons,
        champion=champion_figures,
        challenger={**challenger_figures, "version": info.version, "run_id": info.run_id},
        gate_rows=gate.description,
        fingerprint=fingerprint,
        report={"quantiles": logged},
    )


def retrain_quantiles(
    table: pd.DataFrame,
    portfolio: Portfolio,
    as_of: pd.Timestamp,
    options: TrainingOptions,
    classifiers: Sequence[str],
    progress: Callable[[str], None] = _quiet,
) -> dict[str, RetrainResult]:
    """`forewarn retrain`'s quantile step: each retrained classifier's quantile target
    (finish with delay, cost with overrun), under its retrain lock; nothing unless
    ``options.quantiles``. `tracking.configure` must have been called."""
    if not getattr(options, "quantiles", False):
        return {}
    frame = with_outcomes(table, portfolio.projects, as_of)
    results: dict[str, RetrainResult] = {}
    for classifier in classifiers:
        target = QUANTILE_OF.get(classifier)
        if target is None:
            continue
        with tracking.retrain_lock(target):
            results[target] = retrain_quantile_target(
                frame, target, as_of, options, progress=progress
            )
    return results
