"""Explanations: TreeSHAP contributions and the sentences a PMO reads.

Contributions come from LightGBM's own TreeSHAP (`pred_contrib`): the same values as
`shap.TreeExplainer` (a test holds them to 1e-9) at a fraction of the cost and without
importing shap (~4.5 s). They are in log-odds before calibration: each row sums to the raw
margin, the last column being the base value.

Sentences are built from the project's feature values, trends included ("CPI fell from 0.98
to 0.86 over the last 6 reports (~10 weeks)"); a feature without a phrasing of its own falls
back to its definition in `features.catalogue`.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.catalogue import FEATURES
from features.columns import FeatureColumns, Features, FrameColumns, columns_of

Value = float | str | None
Getter = Callable[[str], Value]


class Explainable(Protocol):
    """What explanations need of a model (`training.models.RiskModel` has it)."""

    feature_names: list[str]

    def contributions(self, X: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class Contributions:
    """TreeSHAP of n rows: values (n, f), base value (n,) and raw margin (n,), in log-odds."""

    values: np.ndarray
    base: np.ndarray
    feature_names: list[str]

    @property
    def raw_margin(self) -> np.ndarray:
        return self.base + self.values.sum(axis=1)


def tree_shap(model: Explainable, X: Any) -> Contributions:
    """LightGBM TreeSHAP (`pred_contrib`) of the rows of X, split into values and base."""
    matrix = np.asarray(model.contributions(X), dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] != len(model.feature_names) + 1:
        raise ValueError(
            f"contributions of shape {matrix.shape}: expected (n, {len(model.feature_names) + 1})"
            " for a binary model"
        )
    return Contributions(matrix[:, :-1], matrix[:, -1], list(model.feature_names))


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the k largest |contribution|, largest first: (n, min(k, f))."""
    k = min(k, values.shape[1])
    if k <= 0:
        return np.empty((values.shape[0], 0), dtype=int)
    # A stable sort keeps ties in feature order, so the same project always reads the same.
    return np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]


def python_value(value: Any) -> Value:
    """A cell as JSON-friendly Python: float, str or None (NaN and NA become None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return str(value)


def drivers(
    contributions: Contributions,
    features: Features,
    k: int,
    rows: Sequence[int] | None = None,
) -> list[list[dict[str, Any]]]:
    """The k strongest drivers of each row: {feature, value, contribution, sentence}.

    `features` holds the feature columns (and may hold more) for the same rows, in the same
    order, as `contributions`; `rows` limits the work to some of them (others get []).
    Features with a zero contribution (never used by the trees for this row) are left out.
    """
    n = contributions.values.shape[0]
    if len(features) != n:
        raise ValueError(f"{len(features)} feature rows for {n} contribution rows")
    chosen = range(n) if rows is None else rows
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    if k <= 0 or n == 0:
        return out
    idx = top_indices(contributions.values, k)
    columns = columns_of(features)
    names = contributions.feature_names
    for i in chosen:
        get = _getter(columns, i)
        row: list[dict[str, Any]] = []
        for j in idx[i]:
            contribution = float(contributions.values[i, j])
            if contribution == 0.0:
                continue
            name = names[j]
            row.append(
                {
                    "feature": name,
                    "value": python_value(get(name)),
                    "contribution": contribution,
                    "sentence": sentence(name, get),
                }
            )
        out[i] = row
    return out


def _getter(columns: FeatureColumns | FrameColumns, i: int) -> Getter:
    def get(name: str) -> Value:
        # A sentence may name a neighbour the frame lacks: it then reads as unknown.
        return python_value(columns.column(name)[i]) if name in columns else None

    return get


# --------------------------------------------------------------------------- sentences


def sentence(feature: str, get: Getter) -> str:
    """One feature of one project in words, from its value and its neighbours'."""
    value = get(feature)
    phrase = _PHRASES.get(feature) or _pattern_phrase(feature)
    if phrase is not None:
        try:
            text = phrase(value, get)
        except (TypeError, ValueError, ArithmeticError, IndexError):
            # A value outside what the phrase expects: the definition still reads right.
            text = None
        if text:
            return text[:1].upper() + text[1:]
    return _fallback(feature, value)


Phrase = Callable[[Value, Getter], str | None]


def _num(value: Value) -> float | None:
    if value is None or isinstance(value, str):
        return None
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else v


def _plural(n: float, word: str, plural: str | None = None) -> str:
    count = round(n)
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _weeks(days: float) -> str:
    weeks = abs(days) / 7
    if weeks < 1.5:
        return _plural(abs(days), "day")
    return _plural(weeks, "week")


def _pct(fraction: float) -> str:
    return f"{abs(fraction) * 100:.0f}%"


def _money(amount: float) -> str:
    for size, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(amount) >= size:
            return f"{amount / size:.3g}{suffix}"
    return f"{amount:.0f}"


def _planned_days(get: Getter) -> float | None:
    return _num(get("planned_duration_days"))


def _window_weeks(get: Getter, n_reports: int) -> str:
    cadence = _num(get("report_cadence_days"))
    if cadence is None or cadence <= 0:
        return ""
    return f" (~{_weeks(cadence * (n_reports - 1))})"


_METRIC_LABELS = {"spi": "SPI", "cpi": "CPI", "percent_complete": "percent complete"}


def _change_phrase(metric: str, n: int) -> Phrase:
    label = _METRIC_LABELS[metric]

    def phrase(value: Value, get: Getter) -> str | None:
        change = _num(value)
        if change is None:
            return f"{label} over the last {n} reports is not known (missing in some of them)"
        span = f"over the last {n} reports{_window_weeks(get, n)}"
        if metric == "percent_complete":
            if abs(change) < 0.5:
                return f"No reported progress {span}"
            verb = "advanced" if change > 0 else "went back"
            return f"Progress {verb} {abs(change):.0f} points {span}"
        current = _num(get(metric))
        if current is None:
            return f"{label} changed by {change:+.2f} {span}"
        before = current - change
        if abs(change) < 0.005:
            return f"{label} held at {current:.2f} {span}"
        verb = "fell" if change < 0 else "rose"
        return f"{label} {verb} from {before:.2f} to {current:.2f} {span}"

    return phrase


def _slope_phrase(metric: str, n: int) -> Phrase:
    label = _METRIC_LABELS[metric]

    def phrase(value: Value, get: Getter) -> str | None:
        slope = _num(value)
        if slope is None:
            return f"{label} trend over the last {n} reports not known (fewer reports, or gaps)"
        if metric == "percent_complete":
            return f"Progress has averaged {slope:.1f} points per week over the last {n} reports"
        if abs(slope) < 0.0005:
            return f"{label} flat over the last {n} reports"
        direction = "falling" if slope < 0 else "rising"
        return f"{label} {direction} by {abs(slope):.3f} a week over the last {n} reports"

    return phrase


def _volatility_phrase(metric: str) -> Phrase:
    label = _METRIC_LABELS[metric]

    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return f"{label} volatility not known (fewer than 6 reports, or gaps)"
        unit = " points" if metric == "percent_complete" else ""
        return f"{label} moves by about {v:.2f}{unit} from one report to the next (last 6 reports)"

    return phrase


def _improved_phrase(metric: str) -> Phrase:
    label = _METRIC_LABELS[metric]

    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return f"{label} not known at the latest report"
        if v < 0.5:
            return f"{label} improved at the latest report"
        return f"{label} has not improved for {_plural(v, 'week')}"

    return phrase


def _pattern_phrase(feature: str) -> Phrase | None:
    for metric in _METRIC_LABELS:
        for n in (3, 6):
            if feature == f"{metric}_change_{n}":
                return _change_phrase(metric, n)
            if feature == f"{metric}_slope_{n}":
                return _slope_phrase(metric, n)
        if feature == f"{metric}_volatility_6":
            return _volatility_phrase(metric)
        if feature == f"{metric}_weeks_since_improved":
            return _improved_phrase(metric)
    return None


def _count(word: str, suffix: str, none: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return None
        return none if v == 0 else f"{_plural(v, word)} {suffix}".rstrip()

    return phrase


def _flag(on: str, off: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        return None if v is None else (on if v >= 0.5 else off)

    return phrase


def _budget(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return "No budget (BAC) in the baseline"
    return f"Budget at completion of {_money(math.expm1(v))}"


def _duration(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else f"Planned duration of {_weeks(v)} (~{v / 30.44:.0f} months)"


def _month(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None or not 1 <= v <= 12:
        return None
    return f"Planned to start in {calendar.month_name[int(v)]}"


def _elapsed(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if v > 1:
        return f"Past its planned finish: {_pct(v)} of the planned duration has elapsed"
    return f"{_pct(v)} of the planned duration has elapsed"


def _complete(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else f"{v:.0f}% complete at the latest report"


def _gap(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    done, elapsed = _num(get("percent_complete")), _num(get("elapsed_fraction"))
    detail = (
        f" ({done:.0f}% done with {_pct(elapsed)} of the time gone)"
        if done is not None and elapsed is not None
        else ""
    )
    if abs(v) < 0.005:
        return f"Progress in line with the calendar{detail}"
    side = "behind" if v < 0 else "ahead of"
    return f"Progress {v * -100 if v < 0 else v * 100:.0f} points {side} the calendar{detail}"


def _spi(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return "SPI not known: no planned or earned value in the latest report"
    return f"SPI is {v:.2f}: {_pct(v)} of the work planned to date has been done"


def _cpi(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return "CPI not known: no actual cost or earned value in the latest report"
    return f"CPI is {v:.2f}: each 1.00 spent has earned {v:.2f} of work"


def _earned_schedule(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return f"Work done is where the plan expected it after {_weeks(v)}"


def _spi_t(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return f"SPI(t) is {v:.2f}: the work advances at {_pct(v)} of the planned pace"


def _sv_t(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if abs(v) < 1:
        return "On schedule by earned schedule"
    return f"{_weeks(v)} {'behind' if v < 0 else 'ahead of'} schedule by earned schedule"


def _ieac_days(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if planned is None:
        return f"At the current pace the project takes {_weeks(v)}"
    late = v - planned
    if abs(late) < 7:
        return "At the current pace the project finishes on its planned date"
    side = "after" if late > 0 else "before"
    return f"At the current pace it finishes {_weeks(late)} {side} its planned date"


def _ieac_fraction(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return f"At the current pace the project takes {_pct(v)} of its planned duration"


def _tcpi(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return (
        f"TCPI is {v:.2f}: the remaining work must earn {v:.2f} per 1.00 spent to finish on budget"
    )


def _eac(label: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return None
        over = v - 1
        if abs(over) < 0.005:
            return f"At the current {label} the project finishes on budget"
        side = "over" if over > 0 else "under"
        return f"At the current {label} the project finishes {_pct(over)} {side} budget"

    return phrase


def _spent(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    done = _num(get("percent_complete"))
    tail = f" with the work {done:.0f}% complete" if done is not None else ""
    return f"{_pct(v)} of the budget spent{tail}"


def _forecast_overrun(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if abs(v) < 0.005:
        return "The project manager forecasts finishing on budget"
    side = "over" if v > 0 else "under"
    return f"The project manager forecasts finishing {_pct(v)} {side} budget"


def _forecast_slip(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if planned is None:
        side = "past" if v > 0 else "before"
        return f"Forecast finish {_pct(v)} of the planned duration {side} the baseline"
    days = v * planned
    if abs(days) < 1:
        return "Forecast finish on the baseline date"
    return f"Forecast finish moved {_weeks(days)} {'past' if days > 0 else 'ahead of'} the baseline"


def _forecast_movement(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if planned is None:
        return f"The forecast finish has moved by {_pct(v)} of the planned duration in total"
    return f"The forecast finish has moved {_weeks(v * planned)} in total across revisions"


def _days_since(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return "No status report yet"
    return f"Last status report {_plural(v, 'day')} before the scoring date"


def _cadence(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else f"Reports usually every {_plural(v, 'day')}"


def _share(text: str, missing: str | None = None) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        return missing if v is None else text.format(pct=_pct(v))

    return phrase


def _rate_per_month(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else f"{v:.1f} change requests a month since the start"


def _cost_impact(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if abs(v) < 0.0005:
        return "Approved changes leave the budget unchanged"
    verb = "add" if v > 0 else "remove"
    return f"Approved changes {verb} {_pct(v)} {'to' if v > 0 else 'from'} the budget"


def _schedule_impact(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if abs(v) < 0.0005:
        return "Approved changes leave the schedule unchanged"
    size = _weeks(v * planned) if planned is not None else f"{_pct(v)} of the planned duration"
    verb = "add" if v > 0 else "remove"
    return f"Approved changes {verb} {size} {'to' if v > 0 else 'from'} the schedule"


_NO_PEERS = "No closed project in the portfolio to compare with yet"


def _type_rate(outcome: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return _NO_PEERS
        kind = get("project_type")
        who = f"'{kind}' projects" if isinstance(kind, str) else "Projects of this type"
        return f"{who} in this portfolio {outcome} {_pct(v)} of the time"

    return phrase


def _category(label: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        return f"{label} '{value}'" if isinstance(value, str) and value else f"No {label.lower()}"

    return phrase


def _quarter(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else f"Planned to start in Q{int(v)}"


_PHRASES: dict[str, Phrase] = {
    "project_type": _category("Project type"),
    "portfolio": _category("Portfolio"),
    "log_budget": _budget,
    "planned_duration_days": _duration,
    "start_month": _month,
    "start_quarter": _quarter,
    "has_budget": _flag("The baseline has a budget", "No budget (BAC) in the baseline"),
    "elapsed_fraction": _elapsed,
    "percent_complete": _complete,
    "progress_gap": _gap,
    "spi": _spi,
    "cpi": _cpi,
    "earned_schedule_days": _earned_schedule,
    "spi_t": _spi_t,
    "sv_t_days": _sv_t,
    "ieac_t_days": _ieac_days,
    "ieac_t_fraction": _ieac_fraction,
    "tcpi": _tcpi,
    "eac_cpi_ratio": _eac("CPI"),
    "eac_cpi_spi_ratio": _eac("CPI × SPI"),
    "spent_fraction": _spent,
    "forecast_overrun": _forecast_overrun,
    "open_risks": _count("open risk", "", "No open risk"),
    "open_issues": _count("open issue", "", "No open issue"),
    "has_progress_data": _flag(
        "The latest report gives progress",
        "No progress figures (percent complete or earned value) in the latest report",
    ),
    "has_earned_value": _flag(
        "The latest report gives planned and earned value",
        "No earned-value figures (PV and EV) in the latest report",
    ),
    "has_cost_data": _flag(
        "Cost data reported against a budget",
        "No cost data: no actual cost reported, or no budget to compare it with",
    ),
    "n_reports": _count("status report", "so far", "No status report yet"),
    "days_since_last_report": _days_since,
    "report_cadence_days": _cadence,
    "missing_report_rate": _share("{pct} of the expected status reports are missing"),
    "forecast_slip": _forecast_slip,
    "forecast_revisions": _count(
        "revision", "of the forecast finish", "Forecast finish never revised"
    ),
    "forecast_movement": _forecast_movement,
    "milestone_slippage": _count("milestone", "late", "No milestone late"),
    "milestones_done": _count("milestone", "done", "No milestone done yet"),
    "has_forecast": _flag(
        "The latest report gives a forecast finish", "No forecast finish in the latest report"
    ),
    "has_milestones": _flag("Milestones reported", "No milestones reported"),
    "changes_raised": _count("change request", "raised so far", "No change request raised"),
    "changes_approved": _count("change request", "approved", "No change request approved"),
    "changes_pending": _count("change request", "awaiting a decision", "No change request pending"),
    "change_rate_per_month": _rate_per_month,
    "changes_last_30d": _count(
        "change request", "raised in the last 30 days", "No change request in the last 30 days"
    ),
    "changes_last_90d": _count(
        "change request", "raised in the last 90 days", "No change request in the last 90 days"
    ),
    "approved_cost_impact": _cost_impact,
    "approved_schedule_impact": _schedule_impact,
    "baseline_changes": _count("re-baseline", "approved", "Never re-baselined"),
    "closed_projects": _count(
        "project", "closed in the portfolio before this date", "No project closed yet"
    ),
    "type_closed_projects": _count(
        "closed project", "of the same type", "No closed project of this type"
    ),
    "closed_late_rate": _share("{pct} of the portfolio's closed projects finished late", _NO_PEERS),
    "type_late_rate": _type_rate("finish late"),
    "closed_overrun_rate": _share(
        "{pct} of the portfolio's closed projects went over budget", _NO_PEERS
    ),
    "type_overrun_rate": _type_rate("go over budget"),
}

_DEFINITIONS = {f.name: f for f in FEATURES}

# How a PMO names a feature when its value is missing ("SPI(t) not known: ...").
_ABBREVIATIONS = {
    "spi": "SPI",
    "cpi": "CPI",
    "tcpi": "TCPI",
    "spi_t": "SPI(t)",
    "sv_t_days": "Schedule variance SV(t)",
    "ieac_t_days": "Forecast duration IEAC(t)",
    "ieac_t_fraction": "Forecast duration IEAC(t)",
    "eac_cpi_ratio": "Estimate at completion (by CPI)",
    "eac_cpi_spi_ratio": "Estimate at completion (by CPI × SPI)",
}


_SOURCES = (
    ("status_reports", "the status reports give"),
    ("changes", "the change requests give"),
    ("projects", "the baseline gives"),
)


def _label(feature: str) -> str:
    if feature in _ABBREVIATIONS:
        return _ABBREVIATIONS[feature]
    words = feature.replace("_", " ")
    for short, long in (("spi", "SPI"), ("cpi", "CPI")):
        words = words.replace(f"{short} ", f"{long} ")
    return words[:1].upper() + words[1:]


def _missing(feature: str) -> str:
    """A missing value, and the inputs that would have given it."""
    declared = _DEFINITIONS.get(feature)
    label = _label(feature)
    if declared is None:
        return f"{label} not known"
    by_table: dict[str, list[str]] = {}
    for source in declared.inputs:
        table, column = source.split(".", 1)
        by_table.setdefault(table, []).append(column)
    for table, where in _SOURCES:
        if table in by_table:
            return f"{label} not known: {where} no {', '.join(by_table[table])}"
    return f"{label} not known"


def _fallback(feature: str, value: Value) -> str:
    """For a feature without a phrase of its own: its name, value and unit."""
    if value is None:
        return _missing(feature)
    declared = _DEFINITIONS.get(feature)
    if isinstance(value, str):
        return f"{_label(feature)} '{value}'"
    unit = f" {declared.unit}" if declared is not None and declared.unit != "flag" else ""
    return f"{_label(feature)} of {value:.3g}{unit}"
