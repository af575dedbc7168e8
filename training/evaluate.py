"""Evaluation of a target's model beside its baselines: discrimination, calibration, timing.

Every metric is weighted by the per-project row weights (each project counts once), and
every interval resamples projects, not rows: a project's reports share one outcome, so
resampling rows would make the intervals far too narrow. Stages are bands of the elapsed
fraction of the planned duration. `evaluate_target` returns the `--json` shape of the CLI;
`render_markdown` turns it into the readable report. docs/evaluation.md explains the choices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from training.baselines import LOGISTIC, RULE_TITLES, BaselineScores

STAGES: tuple[tuple[str, float, float], ...] = (
    ("0-20", -math.inf, 0.2),
    ("20-40", 0.2, 0.4),
    ("40-60", 0.4, 0.6),
    ("60-80", 0.6, 0.8),
    ("80+", 0.8, math.inf),
)
STAGE_LABELS = tuple(s[0] for s in STAGES)
ECE_BINS = 10
MIN_RULE_COVERAGE = 0.5  # a rule is a stage's best only where it reads half its rows or more
VERDICTS = ("better", "cant_tell", "worse")
VERDICT_WORDS = {"better": "better", "cant_tell": "can't tell", "worse": "worse", None: "n/a"}
EARLY_BAND = 0.5  # "detected by mid-project": first red at or before half the planned time
_BOOTSTRAP_CHUNK = 50  # resamples per batch: bounds memory at chunk x rows floats


def stage_labels(elapsed: np.ndarray) -> np.ndarray:
    """Stage label of each row from its elapsed fraction (before the start counts as 0-20)."""
    elapsed = np.asarray(elapsed, dtype=float)
    edges = [s[2] for s in STAGES[:-1]]
    idx = np.searchsorted(edges, np.nan_to_num(elapsed, nan=0.0), side="right")
    return np.asarray(STAGE_LABELS, dtype=object)[idx]


# ---------------------------------------------------------------------------- metrics


def _auc_parts(y: np.ndarray, score: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted concordant pairs (ties one half) and all positive-negative pairs, for each
    row of weight matrix W (b, n).

    Sorting once and summing weights per distinct score makes 200 resamples cost a few
    matrix passes instead of 200 calls to sklearn.
    """
    order = np.argsort(score, kind="mergesort")
    s, yy = score[order], y[order]
    Wo = W[:, order]
    if len(s) == 0:
        return np.zeros(len(W)), np.zeros(len(W))
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(Wo * yy, starts, axis=1)
    neg = np.add.reduceat(Wo * (1.0 - yy), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    numerator = (pos * (below + 0.5 * neg)).sum(axis=1)
    return numerator, pos.sum(axis=1) * neg.sum(axis=1)


def _auc_many(
    y: np.ndarray, score: np.ndarray, W: np.ndarray, strata: np.ndarray | None = None
) -> np.ndarray:
    """Weighted ROC-AUC for each row of weight matrix W (b, n); ties count one half.

    With `strata`, only pairs within the same stratum count: cross-validation's folds,
    so that each fold's model is judged on the rankings it makes itself. Pooling
    out-of-fold scores across folds would also compare one fold's model with another's,
    whose intercepts differ by chance — with a few dozen projects that alone pushes a
    model that merely repeats a rule well below the rule (and below 0.5 on one-sided
    outcomes, where holding out a late project makes the rest look more on time).
    """
    if strata is None:
        numerator, denominator = _auc_parts(y, score, W)
    else:
        numerator, denominator = np.zeros(len(W)), np.zeros(len(W))
        for stratum in np.unique(strata):
            m = strata == stratum
            n, d = _auc_parts(y[m], score[m], W[:, m])
            numerator += n
            denominator += d
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def weighted_auc(
    y: np.ndarray, score: np.ndarray, weight: np.ndarray, strata: np.ndarray | None = None
) -> float | None:
    """ROC-AUC with row weights (pairs within a stratum only, with `strata`); None
    without both outcomes."""
    y, score, weight = (np.asarray(a, dtype=float) for a in (y, score, weight))
    keep = ~(np.isnan(y) | np.isnan(score) | np.isnan(weight))
    y, score, weight = y[keep], score[keep], weight[keep]
    if len(y) == 0 or y.min() == y.max():
        return None
    auc = _auc_many(y, score, weight[None, :], None if strata is None else strata[keep])[0]
    return None if np.isnan(auc) else float(auc)


def pr_auc(y: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float | None:
    """Area under the precision-recall curve (average precision), weighted."""
    y, score, weight = _clean(y, score, weight)
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(average_precision_score(y, score, sample_weight=weight))


def brier(y: np.ndarray, p: np.ndarray, weight: np.ndarray) -> float | None:
    """Weighted mean squared error of the probability."""
    y, p, weight = _clean(y, p, weight)
    if len(y) == 0 or weight.sum() <= 0:
        return None
    return float(np.average((p - y) ** 2, weights=weight))


def reliability_table(
    y: np.ndarray, p: np.ndarray, weight: np.ndarray, n_bins: int = ECE_BINS
) -> pd.DataFrame:
    """Per equal-width probability bin: weight, mean predicted p, observed share."""
    y, p, weight = _clean(y, p, weight)
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "w": weight, "wp": weight * p, "wy": weight * y})
    grouped = frame.groupby("bin")[["w", "wp", "wy"]].sum()
    grouped = grouped.loc[grouped["w"] > 0]
    return pd.DataFrame(
        {
            "weight": grouped["w"],
            "mean_predicted": grouped["wp"] / grouped["w"],
            "observed": grouped["wy"] / grouped["w"],
        }
    ).reset_index()


def calibration_error(
    y: np.ndarray, p: np.ndarray, weight: np.ndarray, n_bins: int = ECE_BINS
) -> float | None:
    """Expected calibration error: weighted mean |observed − predicted| over 10 p-bins."""
    table = reliability_table(y, p, weight, n_bins)
    if table.empty:
        return None
    gaps = (table["observed"] - table["mean_predicted"]).abs()
    return float(np.average(gaps, weights=table["weight"]))


def _clean(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    cast = [np.asarray(a, dtype=float) for a in arrays]
    keep = np.logical_and.reduce([~np.isnan(a) for a in cast])
    return tuple(a[keep] for a in cast)


# -------------------------------------------------------------------------- bootstrap


class ProjectBootstrap:
    """Resamples of projects, shared by every method so that differences are paired."""

    def __init__(self, project_ids: np.ndarray, n_resamples: int, seed: int) -> None:
        codes, uniques = pd.factorize(pd.Series(project_ids), sort=True)
        self.codes = np.asarray(codes)
        self.n_resamples = n_resamples
        rng = np.random.default_rng(seed)
        n_projects = len(uniques)
        # Row r of counts: how often each project was drawn in resample r.
        self.counts = rng.multinomial(
            n_projects, np.full(n_projects, 1.0 / n_projects), size=n_resamples
        ).astype(float)

    def auc_samples(
        self,
        y: np.ndarray,
        score: np.ndarray,
        weight: np.ndarray,
        mask: np.ndarray,
        strata: np.ndarray | None = None,
    ) -> np.ndarray:
        """AUC in each resample over the rows in `mask` (NaN where a class is absent)."""
        keep = mask & ~np.isnan(score) & ~np.isnan(y)
        if self.n_resamples == 0 or not keep.any():
            return np.full(self.n_resamples, np.nan)
        yy, ss, ww, cc = y[keep], score[keep], weight[keep], self.codes[keep]
        st = None if strata is None else strata[keep]
        out = []
        for start in range(0, self.n_resamples, _BOOTSTRAP_CHUNK):
            W = self.counts[start : start + _BOOTSTRAP_CHUNK][:, cc] * ww[None, :]
            out.append(_auc_many(yy, ss, W, st))
        return np.concatenate(out)


def _interval(samples: np.ndarray) -> list[float] | None:
    finite = samples[~np.isnan(samples)]
    # Fewer than half the resamples usable means the interval would describe luck.
    if len(finite) < max(10, len(samples) // 2):
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


# ------------------------------------------------------------------- early warning


def early_warning(
    project_ids: np.ndarray, elapsed: np.ndarray, y: np.ndarray, red: np.ndarray
) -> dict[str, Any]:
    """When each project was first flagged red, summarised by outcome.

    For projects with the outcome (late, over budget): the share ever flagged red, the
    median elapsed fraction at the first red flag counting never-flagged projects as
    "later than any" (null when more than half were never flagged), the same median over the
    flagged ones only, and the share flagged by mid-project. For the others: the share
    ever flagged red (false alarms).
    """
    frame = pd.DataFrame(
        {
            "project_id": project_ids,
            "elapsed": np.asarray(elapsed, dtype=float),
            "y": np.asarray(y, dtype=float),
            "red_at": np.where(np.asarray(red, dtype=bool), elapsed, np.inf),
        }
    )
    projects = frame.groupby("project_id").agg(y=("y", "first"), first_red=("red_at", "min"))
    positive = projects.loc[projects["y"] == 1, "first_red"].to_numpy()
    negative = projects.loc[projects["y"] == 0, "first_red"].to_numpy()
    detected = positive[np.isfinite(positive)]
    median_all = float(np.median(positive)) if len(positive) else None
    return {
        "n_positive_projects": len(positive),
        "n_negative_projects": len(negative),
        "detected_share": _share(np.isfinite(positive)),
        "median_first_red": median_all
        if median_all is not None and math.isfinite(median_all)
        else None,
        "median_first_red_detected": float(np.median(detected)) if len(detected) else None,
        "detected_by_50_share": _share(positive <= EARLY_BAND),
        "false_alarm_share": _share(np.isfinite(negative)),
    }


def threshold_for_false_alarms(
    project_ids: np.ndarray, y: np.ndarray, p: np.ndarray, share: float
) -> float:
    """The lowest red threshold on `p` that flags at most `share` of the negative projects.

    A negative project is flagged when its highest p reaches the threshold, so the
    threshold sits just above the (k+1)-th highest of those maxima, k = share x negatives.
    """
    frame = pd.DataFrame({"project_id": project_ids, "y": y, "p": p})
    projects = frame.groupby("project_id").agg(y=("y", "first"), top=("p", "max"))
    tops = np.sort(projects.loc[projects["y"] == 0, "top"].to_numpy())[::-1]
    k = int(np.floor(share * len(tops) + 1e-9))
    if k >= len(tops):
        return 0.0
    return float(np.nextafter(tops[k], np.inf))


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


# ------------------------------------------------------------------------ assembly


def _block(
    y: np.ndarray,
    score: np.ndarray,
    probability: np.ndarray,
    weight: np.ndarray,
    project_ids: np.ndarray,
    mask: np.ndarray,
    samples: np.ndarray,
    strata: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of one method on the rows in `mask` (rows without a score left out)."""
    m = mask & ~np.isnan(score)
    return {
        "auc": weighted_auc(y[m], score[m], weight[m], None if strata is None else strata[m]),
        "auc_ci": _interval(samples),
        "pr_auc": pr_auc(y[m], score[m], weight[m]),
        "brier": brier(y[m], probability[m], weight[m]),
        "ece": calibration_error(y[m], probability[m], weight[m]),
        "n_rows": int(m.sum()),
        "n_projects": int(pd.unique(project_ids[m]).size),
    }


def _paired(
    y: np.ndarray,
    model_score: np.ndarray,
    other: np.ndarray,
    weight: np.ndarray,
    mask: np.ndarray,
    model_samples: np.ndarray,
    other_samples: np.ndarray,
    strata: np.ndarray | None = None,
) -> dict[str, Any]:
    """The model's AUC on exactly the baseline's rows, and the paired difference."""
    m = mask & ~np.isnan(other)
    st = None if strata is None else strata[m]
    model_auc = weighted_auc(y[m], model_score[m], weight[m], st)
    other_auc = weighted_auc(y[m], other[m], weight[m], st)
    return {
        "model_auc_same_rows": model_auc,
        "auc_diff": None if model_auc is None or other_auc is None else model_auc - other_auc,
        "auc_diff_ci": _interval(model_samples - other_samples),
    }


def evaluate_target(
    rows: pd.DataFrame,
    y: np.ndarray,
    model_p: np.ndarray,
    baselines: Mapping[str, BaselineScores | None],
    red_threshold: float,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The model and each baseline on the same rows, overall, by stage, and early warning.

    `rows` needs `project_id`, `elapsed_fraction` and `weight`; `y` and `model_p` align with
    it. A baseline that is None, or has no applicable row, is reported as null. Each
    baseline also carries the model's AUC on exactly its rows and the paired bootstrap
    interval of the difference (the same project resamples for both). With a ``cv_fold``
    column (cross-validation's stacked out-of-fold rows), AUCs count pairs within a fold.
    """
    y = np.asarray(y, dtype=float)
    model_p = np.asarray(model_p, dtype=float)
    weight = rows["weight"].to_numpy(dtype=float)
    pids = rows["project_id"].to_numpy()
    strata = rows["cv_fold"].to_numpy() if "cv_fold" in rows else None
    elapsed = rows["elapsed_fraction"].to_numpy(dtype=float, na_value=np.nan)
    stages = stage_labels(elapsed)
    boot = ProjectBootstrap(pids, n_bootstrap, seed)
    everything = np.ones(len(rows), dtype=bool)
    stage_masks = {label: stages == label for label in STAGE_LABELS}
    model_samples = {
        label: boot.auc_samples(y, model_p, weight, m, strata) for label, m in stage_masks.items()
    }
    model_samples["all"] = boot.auc_samples(y, model_p, weight, everything, strata)
    # Early warning follows each project through its reports once: the first repeat.
    once = rows["cv_repeat"].to_numpy() == 0 if "cv_repeat" in rows else everything

    def warned(red: np.ndarray) -> dict[str, Any]:
        return early_warning(pids[once], elapsed[once], y[once], red[once])

    report: dict[str, Any] = _block(
        y, model_p, model_p, weight, pids, everything, model_samples["all"], strata
    )
    report["positive_share"] = _share(pd.Series(y).groupby(pids).first().to_numpy() == 1)
    report["by_stage"] = {
        label: _block(y, model_p, model_p, weight, pids, m, model_samples[label], strata)
        for label, m in stage_masks.items()
    }
    report["early_warning"] = warned(model_p >= red_threshold)
    report["baselines"] = {}
    for name, scores in baselines.items():
        if scores is None or not scores.applicable.any():
            report["baselines"][name] = None
            continue
        ok = scores.applicable
        entry: dict[str, Any] = {}
        for label, mask in [("all", ok), *[(k, ok & v) for k, v in stage_masks.items()]]:
            other_samples = boot.auc_samples(y, scores.score, weight, mask, strata)
            # Where the baseline covers every row of the scope, the model's samples exist.
            scope = everything if label == "all" else stage_masks[label]
            same = bool((mask == scope).all())
            mine = (
                model_samples[label] if same else boot.auc_samples(y, model_p, weight, mask, strata)
            )
            block = _block(
                y, scores.score, scores.probability, weight, pids, mask, other_samples, strata
            )
            block.update(
                _paired(y, model_p, scores.score, weight, mask, mine, other_samples, strata)
            )
            block["coverage"] = float(mask.sum() / max(int(scope.sum()), 1))
            block["verdict"] = verdict(block["auc_diff_ci"])
            if label == "all":
                entry.update(block)
                entry["description"] = scores.description
                entry["is_rule"] = scores.is_rule
                entry["by_stage"] = {}
            else:
                entry["by_stage"][label] = block
        entry["early_warning"] = warned(scores.red & ok)
        if scores.is_rule and entry["early_warning"]["false_alarm_share"] is not None:
            # The model with its red threshold moved so that it raises no more false
            # alarms than this rule: who warns earlier at the same cost?
            limit = entry["early_warning"]["false_alarm_share"]
            threshold = threshold_for_false_alarms(pids[once], y[once], model_p[once], limit)
            entry["model_early_warning_same_false_alarms"] = {
                "threshold": threshold,
                **warned(model_p >= threshold),
            }
        report["baselines"][name] = entry
    report["comparison"] = compare(report)
    report["verdict"] = report["comparison"]["all"]["verdict"]
    report["n_rows"] = len(rows)
    report["n_projects"] = int(pd.unique(pids).size)
    return report


def verdict(ci: list[float] | None) -> str:
    """Three values from a paired interval of (model − other): better only when the whole
    interval is above zero, worse only when it is all below, else can't tell."""
    if ci is None:
        return "cant_tell"
    if ci[0] > 0:
        return "better"
    if ci[1] < 0:
        return "worse"
    return "cant_tell"


def _best_rule(report: Mapping[str, Any], label: str) -> str | None:
    """The strongest applicable rule of one scope: the highest AUC among the rules that
    read at least `MIN_RULE_COVERAGE` of its rows."""
    best: tuple[float, str] | None = None
    for name, entry in report["baselines"].items():
        if entry is None or not entry.get("is_rule"):
            continue
        block = entry if label == "all" else entry["by_stage"][label]
        if block["auc"] is None or block["coverage"] < MIN_RULE_COVERAGE:
            continue
        if best is None or block["auc"] > best[0]:
            best = (block["auc"], name)
    return None if best is None else best[1]


def compare(report: Mapping[str, Any]) -> dict[str, Any]:
    """Overall and per stage: the best rule, the model against it and against the logistic
    regression, each with its paired interval and verdict."""
    out: dict[str, Any] = {"by_stage": {}}
    logistic = report["baselines"].get(LOGISTIC)
    for label in ("all", *STAGE_LABELS):
        name = _best_rule(report, label)
        entry: dict[str, Any] = {"best_rule": name, "verdict": None}
        if name is not None:
            rule_block = report["baselines"][name]
            block = rule_block if label == "all" else rule_block["by_stage"][label]
            entry.update(
                best_rule_auc=block["auc"],
                model_auc_same_rows=block["model_auc_same_rows"],
                auc_diff=block["auc_diff"],
                auc_diff_ci=block["auc_diff_ci"],
                verdict=block["verdict"],
            )
        if logistic is not None:
            lb = logistic if label == "all" else logistic["by_stage"][label]
            entry["vs_logistic"] = {
                "auc": lb["auc"],
                "auc_diff": lb["auc_diff"],
                "auc_diff_ci": lb["auc_diff_ci"],
                "verdict": lb["verdict"],
            }
        if label == "all":
            out["all"] = entry
        else:
            out["by_stage"][label] = entry
    counts = {v: 0 for v in VERDICTS}
    for entry in out["by_stage"].values():
        if entry["verdict"] is not None:
            counts[entry["verdict"]] += 1
    out["stage_verdict_counts"] = counts
    return out


# ------------------------------------------------------------------------- report


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


def _ci(value: Any) -> str:
    return "" if not value else f" [{value[0]:.3f}, {value[1]:.3f}]"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.0%}"


TARGET_WORDS = {
    "delay": ("late", "on time"),
    "overrun": ("over budget", "on budget"),
}


def _title(name: str) -> str:
    return "model (the champion's recipe)" if name == "model" else RULE_TITLES.get(name, name)


def verdict_sentence(report: Mapping[str, Any]) -> str:
    """The model against the best rule, overall, in words a PMO reads (and the interval)."""
    entry = report.get("comparison", {}).get("all", {})
    name = entry.get("best_rule")
    if name is None:
        return "No rule applies to these rows: the model is compared with the logistic regression."
    ci = entry.get("auc_diff_ci")
    interval = (
        f"; AUC difference {entry['auc_diff']:+.3f}" if entry.get("auc_diff") is not None else ""
    )
    interval += f", 95% interval [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
    words = {
        "better": "better than",
        "worse": "worse than",
        "cant_tell": "can't tell whether it is better than",
    }[entry["verdict"]]
    return f"Against the best rule ({_title(name)}): **{words}** the rule{interval}."


def render_markdown(
    reports: Mapping[str, Mapping[str, Any] | None],
    title: str = "Forewarn evaluation",
    context: list[str] | None = None,
) -> str:
    """A readable report of `evaluate_target` results, one section per target."""
    lines = [f"# {title}", ""]
    lines += [f"- {c}" for c in context or []]
    lines += [
        "",
        "AUCs carry 95% intervals from resampling projects (not rows). Weighted metrics",
        "count each project once. A rule's Brier and calibration error are those of its red",
        "flag read as p = 1 / 0. “model, same rows” is the model on exactly the rows where",
        "the baseline has its inputs. Verdicts: **better** when the whole 95% interval of the",
        "AUC difference is above zero, **worse** when it is all below, else **can't tell**.",
        "“—” = not applicable.",
        "",
    ]
    for target, report in reports.items():
        lines.append(f"## {target}")
        lines.append("")
        if report is None:
            lines += ["Not trained: see the command's message for why.", ""]
            continue
        yes, no = TARGET_WORDS.get(target, ("positive", "negative"))
        lines.append(
            f"{report['n_projects']} projects, {report['n_rows']} rows; "
            f"{_pct(report.get('positive_share'))} of the projects ended {yes}."
            + (
                f" Registered version: {report['model_version']}."
                if report.get("model_version")
                else ""
            )
        )
        if report.get("recipe"):
            lines.append(f"Champion's recipe: {report['recipe']}.")
        lines.append(verdict_sentence(report))
        names = list(report["baselines"])
        lines += [
            "",
            "| method | AUC [95% CI] | PR-AUC | Brier | ECE | rows covered |",
            "|---|---|---|---|---|---|",
        ]
        lines.append(
            f"| {_title('model')} | {_num(report['auc'])}{_ci(report['auc_ci'])} | "
            f"{_num(report['pr_auc'])} | {_num(report['brier'])} | {_num(report['ece'])} | 100% |"
        )
        for name in names:
            b = report["baselines"].get(name)
            if b is None:
                lines.append(f"| {_title(name)} | not applicable | — | — | — | 0% |")
                continue
            lines.append(
                f"| {_title(name)} | {_num(b['auc'])}{_ci(b['auc_ci'])} | "
                f"{_num(b['pr_auc'])} | {_num(b['brier'])} | {_num(b['ece'])} | "
                f"{_pct(b['coverage'])} |"
            )
        lines += ["", "AUC by stage (elapsed share of the planned duration):", ""]
        header = ["stage", "rows", "model"]
        shown = [n for n in names if report["baselines"].get(n) is not None]
        header += [_title(n) for n in shown]
        header += ["best rule", "model vs best rule", "verdict", "vs logistic"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        comparison = report.get("comparison", {}).get("by_stage", {})
        for label in STAGE_LABELS:
            s = report["by_stage"][label]
            cells = [label, str(s["n_rows"]), _num(s["auc"]) + _ci(s["auc_ci"])]
            cells += [_num(report["baselines"][n]["by_stage"][label]["auc"]) for n in shown]
            c = comparison.get(label, {})
            best = c.get("best_rule")
            cells += [
                "—" if best is None else _title(best),
                "—"
                if c.get("auc_diff") is None
                else f"{c['auc_diff']:+.3f}{_ci(c.get('auc_diff_ci'))}",
                VERDICT_WORDS[c.get("verdict")],
                VERDICT_WORDS[(c.get("vs_logistic") or {}).get("verdict")],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Early warning (red flags; projects that ended {yes} vs {no}):",
            "",
            f"| method | {yes} projects flagged | median elapsed at first red "
            f"| median, flagged only | flagged by 50% | {no} projects flagged (false alarms) |",
            "|---|---|---|---|---|---|",
        ]
        methods: list[tuple[str, Mapping[str, Any] | None]] = [("model", report["early_warning"])]
        methods += [(n, (report["baselines"].get(n) or {}).get("early_warning")) for n in names]
        for name, ew in methods:
            if ew is None:
                lines.append(f"| {_title(name)} | — | — | — | — | — |")
                continue
            lines.append(
                f"| {_title(name)} | {_pct(ew['detected_share'])} | "
                f"{_pct(ew['median_first_red'])} | {_pct(ew['median_first_red_detected'])} | "
                f"{_pct(ew['detected_by_50_share'])} | {_pct(ew['false_alarm_share'])} |"
            )
        for name in names:
            matched = (report["baselines"].get(name) or {}).get(
                "model_early_warning_same_false_alarms"
            )
            if matched is None:
                continue
            lines.append(
                f"| model at the {_title(name)}'s false-alarm share "
                f"(red at p ≥ {matched['threshold']:.2f}) | {_pct(matched['detected_share'])} | "
                f"{_pct(matched['median_first_red'])} | "
                f"{_pct(matched['median_first_red_detected'])} | "
                f"{_pct(matched['detected_by_50_share'])} | {_pct(matched['false_alarm_share'])} |"
            )
        lines.append("")
        for name in names:
            b = report["baselines"].get(name)
            if b is not None:
                lines.append(f"- {_title(name)}: {b['description']}")
        lines.append("")
    return "\n".join(lines)
