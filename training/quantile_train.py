"""`forewarn train`'s quantile step: P10–P90 of slip and overrun, registered beside the
classifiers as ``forewarn-finish`` and ``forewarn-cost``.

Wiring only (the steps live in `quantiles`, `reference_class`, `intervals` and
`tracking`). Called once from `training.pipeline.train` after the classifiers, on the same
training table: each quantile target rides on its classifier's result (finish on delay,
cost on overrun), adding ``report["quantiles"]`` and notes. The gate is the classifiers'
on the interval score: the first version becomes champion unless its interval score is
worse than the reference class's (paired project-bootstrap verdict); then the reference
class itself is registered and made champion, as the calibrated rule is for a classifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.contract import Portfolio
from training import tracking
from training.intervals import REFERENCE, render_markdown, train_quantile_target
from training.models import MIN_PROJECTS
from training.quantiles import OUTCOMES, QuantileModel, fit_quantiles, with_outcomes

if TYPE_CHECKING:
    from training.pipeline import Store, TargetResult, TrainingOptions

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
) -> tracking.VersionInfo:
    return tracking.log_quantiles(
        target,
        model,
        _metrics(report),
        report,
        render_markdown(report),
        {"method": model.method, "seed": options.seed, "levels": list(model.levels)},
        {**tags, "method": model.method},
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
