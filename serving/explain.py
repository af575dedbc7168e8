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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.catalogue import FEATURES
from features.columns import FeatureColumns, Features, FrameColumns, columns_of
from serving.i18n import N_, _, fmt_short_money, month_name, ngettext

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
    out: list[list[dict[str, Any]]] = [[] for _row in range(n)]
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
#
# Every sentence is a catalog message with named placeholders (serving.i18n): the word
# order is the translator's. Numbers inside sentences keep the code's format (0.86, 12%):
# the same digits in English and Chinese.


def sentence(feature: str, get: Getter) -> str:
    """One feature of one project in words, from its value and its neighbours', in the
    language in force (`serving.i18n.use`)."""
    value = get(feature)
    phrase = _PHRASES.get(feature) or _pattern_phrase(feature)
    if phrase is not None:
        try:
            text = phrase(value, get)
        except (TypeError, ValueError, ArithmeticError, IndexError, KeyError):
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


def _days(n: float) -> str:
    count = round(n)
    return ngettext("{n} day", "{n} days", count).format(n=count)


def _weeks(days: float) -> str:
    weeks = abs(days) / 7
    if weeks < 1.5:
        return _days(abs(days))
    count = round(weeks)
    return ngettext("{n} week", "{n} weeks", count).format(n=count)


def _pct(fraction: float) -> str:
    return f"{abs(fraction) * 100:.0f}%"


def _planned_days(get: Getter) -> float | None:
    return _num(get("planned_duration_days"))


def _span(get: Getter, n: int) -> str:
    """'over the last 6 reports (~10 weeks)'."""
    cadence = _num(get("report_cadence_days"))
    if cadence is None or cadence <= 0:
        return _("over the last {n} reports").format(n=n)
    return _("over the last {n} reports (~{weeks})").format(n=n, weeks=_weeks(cadence * (n - 1)))


_METRIC_LABELS = {"spi": N_("SPI"), "cpi": N_("CPI"), "percent_complete": N_("percent complete")}


def _change_phrase(metric: str, n: int) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        label = _(_METRIC_LABELS[metric])
        change = _num(value)
        if change is None:
            return _(
                "{label} over the last {n} reports is not known (missing in some of them)"
            ).format(label=label, n=n)
        span = _span(get, n)
        if metric == "percent_complete":
            if abs(change) < 0.5:
                return _("No reported progress {span}").format(span=span)
            if change > 0:
                return _("Progress advanced {points} points {span}").format(
                    points=f"{abs(change):.0f}", span=span
                )
            return _("Progress went back {points} points {span}").format(
                points=f"{abs(change):.0f}", span=span
            )
        current = _num(get(metric))
        if current is None:
            return _("{label} changed by {change} {span}").format(
                label=label, change=f"{change:+.2f}", span=span
            )
        before = current - change
        if abs(change) < 0.005:
            return _("{label} held at {current} {span}").format(
                label=label, current=f"{current:.2f}", span=span
            )
        text = (
            _("{label} fell from {before} to {current} {span}")
            if change < 0
            else _("{label} rose from {before} to {current} {span}")
        )
        return text.format(label=label, before=f"{before:.2f}", current=f"{current:.2f}", span=span)

    return phrase


def _slope_phrase(metric: str, n: int) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        label = _(_METRIC_LABELS[metric])
        slope = _num(value)
        if slope is None:
            return _(
                "{label} trend over the last {n} reports not known (fewer reports, or gaps)"
            ).format(label=label, n=n)
        if metric == "percent_complete":
            return _(
                "Progress has averaged {points} points per week over the last {n} reports"
            ).format(points=f"{slope:.1f}", n=n)
        if abs(slope) < 0.0005:
            return _("{label} flat over the last {n} reports").format(label=label, n=n)
        text = (
            _("{label} falling by {rate} a week over the last {n} reports")
            if slope < 0
            else _("{label} rising by {rate} a week over the last {n} reports")
        )
        return text.format(label=label, rate=f"{abs(slope):.3f}", n=n)

    return phrase


def _volatility_phrase(metric: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        label = _(_METRIC_LABELS[metric])
        v = _num(value)
        if v is None:
            return _("{label} volatility not known (fewer than 6 reports, or gaps)").format(
                label=label
            )
        if metric == "percent_complete":
            return _(
                "Progress moves by about {v} points from one report to the next (last 6 reports)"
            ).format(v=f"{v:.2f}")
        return _("{label} moves by about {v} from one report to the next (last 6 reports)").format(
            label=label, v=f"{v:.2f}"
        )

    return phrase


def _improved_phrase(metric: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        label = _(_METRIC_LABELS[metric])
        v = _num(value)
        if v is None:
            return _("{label} not known at the latest report").format(label=label)
        if v < 0.5:
            return _("{label} improved at the latest report").format(label=label)
        count = round(v)
        return ngettext(
            "{label} has not improved for {n} week", "{label} has not improved for {n} weeks", count
        ).format(label=label, n=count)

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


def _count(singular: str, plural: str, none: str) -> Phrase:
    """A count: `none` at zero, else the singular or plural message with {n}."""

    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return None
        if v == 0:
            return _(none)
        count = round(v)
        # Two catalog entries, not one plural entry: each is marked (N_) where declared.
        return _(singular if count == 1 else plural).format(n=count)

    return phrase


def _slippage(singular: str, plural: str, none: str) -> Phrase:
    """Milestones due minus done: late ones as a count, more done than due as ahead."""
    count = _count(singular, plural, none)

    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is not None and round(v) < 0:
            return _("{n} milestones ahead of the baseline").format(n=-round(v))
        return count(value, get)

    return phrase


def _flag(on: str, off: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        return None if v is None else _(on if v >= 0.5 else off)

    return phrase


def _budget(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return _("No budget (BAC) in the baseline")
    return _("Budget at completion of {amount}").format(amount=fmt_short_money(math.expm1(v)))


def _duration(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _("Planned duration of {weeks} (~{months} months)").format(
        weeks=_weeks(v), months=f"{v / 30.44:.0f}"
    )


def _month(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None or not 1 <= v <= 12:
        return None
    return _("Planned to start in {month}").format(month=month_name(int(v)))


def _elapsed(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if v > 1:
        return _("Past its planned finish: {pct} of the planned duration has elapsed").format(
            pct=_pct(v)
        )
    return _("{pct} of the planned duration has elapsed").format(pct=_pct(v))


def _complete(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _("{pct} complete at the latest report").format(pct=f"{v:.0f}%")


def _gap(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    done, elapsed = _num(get("percent_complete")), _num(get("elapsed_fraction"))
    detail = (
        _(" ({done} done with {elapsed} of the time gone)").format(
            done=f"{done:.0f}%", elapsed=_pct(elapsed)
        )
        if done is not None and elapsed is not None
        else ""
    )
    if abs(v) < 0.005:
        return _("Progress in line with the calendar{detail}").format(detail=detail)
    points = f"{abs(v) * 100:.0f}"
    if v < 0:
        return _("Progress {points} points behind the calendar{detail}").format(
            points=points, detail=detail
        )
    return _("Progress {points} points ahead of the calendar{detail}").format(
        points=points, detail=detail
    )


def _spi(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return _("SPI not known: no planned or earned value in the latest report")
    return _("SPI is {v}: {pct} of the work planned to date has been done").format(
        v=f"{v:.2f}", pct=_pct(v)
    )


def _cpi(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return _("CPI not known: no actual cost or earned value in the latest report")
    return _("CPI is {v}: each 1.00 spent has earned {v} of work").format(v=f"{v:.2f}")


def _earned_schedule(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _("Work done is where the plan expected it after {weeks}").format(weeks=_weeks(v))


def _spi_t(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _("SPI(t) is {v}: the work advances at {pct} of the planned pace").format(
        v=f"{v:.2f}", pct=_pct(v)
    )


def _sv_t(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if abs(v) < 1:
        return _("On schedule by earned schedule")
    if v < 0:
        return _("{weeks} behind schedule by earned schedule").format(weeks=_weeks(v))
    return _("{weeks} ahead of schedule by earned schedule").format(weeks=_weeks(v))


def _ieac_days(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if planned is None:
        return _("At the current pace the project takes {weeks}").format(weeks=_weeks(v))
    late = v - planned
    if abs(late) < 7:
        return _("At the current pace the project finishes on its planned date")
    if late > 0:
        return _("At the current pace it finishes {weeks} after its planned date").format(
            weeks=_weeks(late)
        )
    return _("At the current pace it finishes {weeks} before its planned date").format(
        weeks=_weeks(late)
    )


def _ieac_fraction(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _("At the current pace the project takes {pct} of its planned duration").format(
        pct=_pct(v)
    )


def _tcpi(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _(
        "TCPI is {v}: the remaining work must earn {v} per 1.00 spent to finish on budget"
    ).format(v=f"{v:.2f}")


def _eac(label: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return None
        over = v - 1
        if abs(over) < 0.005:
            return _("At the current {label} the project finishes on budget").format(label=label)
        if over > 0:
            return _("At the current {label} the project finishes {pct} over budget").format(
                label=label, pct=_pct(over)
            )
        return _("At the current {label} the project finishes {pct} under budget").format(
            label=label, pct=_pct(over)
        )

    return phrase


def _spent(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    done = _num(get("percent_complete"))
    if done is None:
        return _("{pct} of the budget spent").format(pct=_pct(v))
    return _("{pct} of the budget spent with the work {done} complete").format(
        pct=_pct(v), done=f"{done:.0f}%"
    )


def _forecast_overrun(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if abs(v) < 0.005:
        return _("The project manager forecasts finishing on budget")
    if v > 0:
        return _("The project manager forecasts finishing {pct} over budget").format(pct=_pct(v))
    return _("The project manager forecasts finishing {pct} under budget").format(pct=_pct(v))


def _forecast_slip(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if planned is None:
        if v > 0:
            return _("Forecast finish {pct} of the planned duration past the baseline").format(
                pct=_pct(v)
            )
        return _("Forecast finish {pct} of the planned duration before the baseline").format(
            pct=_pct(v)
        )
    days = v * planned
    if abs(days) < 1:
        return _("Forecast finish on the baseline date")
    if days > 0:
        return _("Forecast finish moved {weeks} past the baseline").format(weeks=_weeks(days))
    return _("Forecast finish moved {weeks} ahead of the baseline").format(weeks=_weeks(days))


def _forecast_movement(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if planned is None:
        return _("The forecast finish has moved by {pct} of the planned duration in total").format(
            pct=_pct(v)
        )
    return _("The forecast finish has moved {weeks} in total across revisions").format(
        weeks=_weeks(v * planned)
    )


def _days_since(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return _("No status report yet")
    return _("Last status report {days} before the scoring date").format(days=_days(v))


def _cadence(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else _("Reports usually every {days}").format(days=_days(v))


def _share(text: str, missing: str | None = None) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return None if missing is None else _(missing)
        return _(text).format(pct=_pct(v))

    return phrase


def _rate_per_month(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    return _("{rate} change requests a month since the start").format(rate=f"{v:.1f}")


def _cost_impact(value: Value, get: Getter) -> str | None:
    v = _num(value)
    if v is None:
        return None
    if abs(v) < 0.0005:
        return _("Approved changes leave the budget unchanged")
    if v > 0:
        return _("Approved changes add {pct} to the budget").format(pct=_pct(v))
    return _("Approved changes remove {pct} from the budget").format(pct=_pct(v))


def _schedule_impact(value: Value, get: Getter) -> str | None:
    v, planned = _num(value), _planned_days(get)
    if v is None:
        return None
    if abs(v) < 0.0005:
        return _("Approved changes leave the schedule unchanged")
    size = (
        _weeks(v * planned)
        if planned is not None
        else _("{pct} of the planned duration").format(pct=_pct(v))
    )
    if v > 0:
        return _("Approved changes add {size} to the schedule").format(size=size)
    return _("Approved changes remove {size} from the schedule").format(size=size)


_NO_PEERS = N_("No closed project in the portfolio to compare with yet")


def _type_rate(known: str, unknown: str) -> Phrase:
    """A type's rate: `known` names the type ({kind}), `unknown` when it has none."""

    def phrase(value: Value, get: Getter) -> str | None:
        v = _num(value)
        if v is None:
            return _(_NO_PEERS)
        kind = get("project_type")
        if isinstance(kind, str):
            return _(known).format(kind=kind, pct=_pct(v))
        return _(unknown).format(pct=_pct(v))

    return phrase


def _category(named: str, none: str) -> Phrase:
    def phrase(value: Value, get: Getter) -> str | None:
        if isinstance(value, str) and value:
            return _(named).format(value=value)
        return _(none)

    return phrase


_STATUS_COLOURS = (N_("green"), N_("amber"), N_("red"))


def _status_colour(value: Value, get: Getter) -> str | None:
    """The PMO's own RAG at the latest report (contract v1.1 `rag`, ranked 0–2)."""
    v = _num(value)
    if v is None:
        return _("The latest status report gives no status colour")
    return _("The latest status report is {colour}").format(colour=_(_STATUS_COLOURS[int(v)]))


def _quarter(value: Value, get: Getter) -> str | None:
    v = _num(value)
    return None if v is None else _("Planned to start in Q{quarter}").format(quarter=int(v))


_PHRASES: dict[str, Phrase] = {
    "project_type": _category(N_("Project type '{value}'"), N_("No project type")),
    "portfolio": _category(N_("Portfolio '{value}'"), N_("No portfolio")),
    "log_budget": _budget,
    "planned_duration_days": _duration,
    "start_month": _month,
    "start_quarter": _quarter,
    "has_budget": _flag(N_("The baseline has a budget"), N_("No budget (BAC) in the baseline")),
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
    "open_risks": _count(N_("{n} open risk"), N_("{n} open risks"), N_("No open risk")),
    "open_issues": _count(N_("{n} open issue"), N_("{n} open issues"), N_("No open issue")),
    "rag": _status_colour,
    "has_progress_data": _flag(
        N_("The latest report gives progress"),
        N_("No progress figures (percent complete or earned value) in the latest report"),
    ),
    "has_earned_value": _flag(
        N_("The latest report gives planned and earned value"),
        N_("No earned-value figures (PV and EV) in the latest report"),
    ),
    "has_cost_data": _flag(
        N_("Cost data reported against a budget"),
        N_("No cost data: no actual cost reported, or no budget to compare it with"),
    ),
    "n_reports": _count(
        N_("{n} status report so far"), N_("{n} status reports so far"), N_("No status report yet")
    ),
    "days_since_last_report": _days_since,
    "report_cadence_days": _cadence,
    "missing_report_rate": _share(N_("{pct} of the expected status reports are missing")),
    "forecast_slip": _forecast_slip,
    "forecast_revisions": _count(
        N_("{n} revision of the forecast finish"),
        N_("{n} revisions of the forecast finish"),
        N_("Forecast finish never revised"),
    ),
    "forecast_movement": _forecast_movement,
    "milestone_slippage": _slippage(
        N_("{n} milestone late"), N_("{n} milestones late"), N_("No milestone late")
    ),
    "milestones_done": _count(
        N_("{n} milestone done"), N_("{n} milestones done"), N_("No milestone done yet")
    ),
    "has_forecast": _flag(
        N_("The latest report gives a forecast finish"),
        N_("No forecast finish in the latest report"),
    ),
    "has_milestones": _flag(N_("Milestones reported"), N_("No milestones reported")),
    "changes_raised": _count(
        N_("{n} change request raised so far"),
        N_("{n} change requests raised so far"),
        N_("No change request raised"),
    ),
    "changes_approved": _count(
        N_("{n} change request approved"),
        N_("{n} change requests approved"),
        N_("No change request approved"),
    ),
    "changes_pending": _count(
        N_("{n} change request awaiting a decision"),
        N_("{n} change requests awaiting a decision"),
        N_("No change request pending"),
    ),
    "change_rate_per_month": _rate_per_month,
    "changes_last_30d": _count(
        N_("{n} change request raised in the last 30 days"),
        N_("{n} change requests raised in the last 30 days"),
        N_("No change request in the last 30 days"),
    ),
    "changes_last_90d": _count(
        N_("{n} change request raised in the last 90 days"),
        N_("{n} change requests raised in the last 90 days"),
        N_("No change request in the last 90 days"),
    ),
    "approved_cost_impact": _cost_impact,
    "approved_schedule_impact": _schedule_impact,
    "baseline_changes": _count(
        N_("{n} re-baseline approved"), N_("{n} re-baselines approved"), N_("Never re-baselined")
    ),
    # The portfolio context comes from the models' comparison base (the champions' context,
    # fixed at training, as batch scoring and the service use it), not from the scoring
    # date: say so rather than state the count as a fact about that date.
    "closed_projects": _count(
        N_("Compared with {n} closed project of the portfolio's history (as the models know it)"),
        N_("Compared with {n} closed projects of the portfolio's history (as the models know it)"),
        N_("No closed project in the portfolio's history to compare with"),
    ),
    "type_closed_projects": _count(
        N_("{n} closed project of the same type to compare with"),
        N_("{n} closed projects of the same type to compare with"),
        N_("No closed project of this type to compare with"),
    ),
    "closed_late_rate": _share(
        N_("{pct} of the portfolio's closed projects finished late"), _NO_PEERS
    ),
    "type_late_rate": _type_rate(
        N_("'{kind}' projects in this portfolio finish late {pct} of the time"),
        N_("Projects of this type in this portfolio finish late {pct} of the time"),
    ),
    "closed_overrun_rate": _share(
        N_("{pct} of the portfolio's closed projects went over budget"), _NO_PEERS
    ),
    "type_overrun_rate": _type_rate(
        N_("'{kind}' projects in this portfolio go over budget {pct} of the time"),
        N_("Projects of this type in this portfolio go over budget {pct} of the time"),
    ),
}

_DEFINITIONS = {f.name: f for f in FEATURES}

# How a PMO names a feature when its value is missing ("SPI(t) not known: ...").
_ABBREVIATIONS = {
    "spi": "SPI",
    "cpi": "CPI",
    "tcpi": "TCPI",
    "spi_t": "SPI(t)",
    "sv_t_days": N_("Schedule variance SV(t)"),
    "ieac_t_days": N_("Forecast duration IEAC(t)"),
    "ieac_t_fraction": N_("Forecast duration IEAC(t)"),
    "eac_cpi_ratio": N_("Estimate at completion (by CPI)"),
    "eac_cpi_spi_ratio": N_("Estimate at completion (by CPI × SPI)"),
}


_SOURCES = (
    ("status_reports", N_("{label} not known: the status reports give no {columns}")),
    ("changes", N_("{label} not known: the change requests give no {columns}")),
    ("projects", N_("{label} not known: the baseline gives no {columns}")),
)


def _label(feature: str) -> str:
    """The feature's name for a person: an abbreviation, a catalogued label, else its
    words (an extra attribute keeps its own name: it is the PMO's column)."""
    if feature in _ABBREVIATIONS:
        return _(_ABBREVIATIONS[feature])
    if feature in _DEFINITIONS:
        label = _FEATURE_LABELS.get(feature)
        if label is not None:
            return _(label)
    words = feature.replace("_", " ")
    for short, long in (("spi", "SPI"), ("cpi", "CPI")):
        words = words.replace(f"{short} ", f"{long} ")
    return words[:1].upper() + words[1:]


def _missing(feature: str) -> str:
    """A missing value, and the inputs that would have given it."""
    declared = _DEFINITIONS.get(feature)
    label = _label(feature)
    if declared is None:
        return _("{label} not known").format(label=label)
    by_table: dict[str, list[str]] = {}
    for source in declared.inputs:
        table, column = source.split(".", 1)
        by_table.setdefault(table, []).append(column)
    for table, where in _SOURCES:
        if table in by_table:
            return _(where).format(label=label, columns=", ".join(by_table[table]))
    return _("{label} not known").format(label=label)


def _fallback(feature: str, value: Value) -> str:
    """For a feature without a phrase of its own: its name, value and unit."""
    if value is None:
        return _missing(feature)
    declared = _DEFINITIONS.get(feature)
    if isinstance(value, str):
        return _("{label} '{value}'").format(label=_label(feature), value=value)
    unit = (
        f" {_(_UNITS.get(declared.unit, declared.unit))}"
        if declared is not None and declared.unit != "flag"
        else ""
    )
    return _("{label} of {value}{unit}").format(
        label=_label(feature), value=f"{value:.3g}", unit=unit
    )


# Labels of catalogued features that fall back to their definition when a phrase cannot
# read their value (a missing one, mostly): the words a PMO reads for the column.
_FEATURE_LABELS: dict[str, str] = {
    "project_type": N_("Project type"),
    "portfolio": N_("Portfolio"),
    "log_budget": N_("Budget at completion"),
    "has_budget": N_("Budget in the baseline"),
    "has_progress_data": N_("Progress figures"),
    "has_earned_value": N_("Earned-value figures"),
    "has_cost_data": N_("Cost data"),
    "spi_slope_3": N_("SPI trend over 3 reports"),
    "spi_change_3": N_("SPI change over 3 reports"),
    "spi_slope_6": N_("SPI trend over 6 reports"),
    "spi_change_6": N_("SPI change over 6 reports"),
    "spi_volatility_6": N_("SPI volatility"),
    "cpi_slope_3": N_("CPI trend over 3 reports"),
    "cpi_change_3": N_("CPI change over 3 reports"),
    "cpi_slope_6": N_("CPI trend over 6 reports"),
    "cpi_change_6": N_("CPI change over 6 reports"),
    "cpi_volatility_6": N_("CPI volatility"),
    "percent_complete_slope_3": N_("Progress trend over 3 reports"),
    "percent_complete_change_3": N_("Progress over 3 reports"),
    "percent_complete_slope_6": N_("Progress trend over 6 reports"),
    "percent_complete_change_6": N_("Progress over 6 reports"),
    "percent_complete_volatility_6": N_("Progress volatility"),
    "spi_weeks_since_improved": N_("Weeks since SPI improved"),
    "cpi_weeks_since_improved": N_("Weeks since CPI improved"),
    "days_since_last_report": N_("Days since the last status report"),
    "has_forecast": N_("Forecast finish"),
    "rag": N_("Status colour of the latest report"),
    "has_milestones": N_("Milestones"),
    "forecast_slip": N_("Forecast slip"),
    "forecast_movement": N_("Forecast movement"),
    "forecast_revisions": N_("Forecast revisions"),
    "planned_duration_days": N_("Planned duration"),
    "start_month": N_("Start month"),
    "start_quarter": N_("Start quarter"),
    "elapsed_fraction": N_("Elapsed share of the planned duration"),
    "percent_complete": N_("Percent complete"),
    "progress_gap": N_("Progress gap"),
    "earned_schedule_days": N_("Earned schedule"),
    "spent_fraction": N_("Share of the budget spent"),
    "forecast_overrun": N_("Forecast overrun"),
    "open_risks": N_("Open risks"),
    "open_issues": N_("Open issues"),
    "n_reports": N_("Status reports"),
    "report_cadence_days": N_("Report cadence"),
    "missing_report_rate": N_("Missing report rate"),
    "milestone_slippage": N_("Milestone slippage"),
    "milestones_done": N_("Milestones done"),
    "changes_raised": N_("Change requests raised"),
    "changes_approved": N_("Change requests approved"),
    "changes_pending": N_("Change requests pending"),
    "change_rate_per_month": N_("Change requests a month"),
    "changes_last_30d": N_("Change requests in the last 30 days"),
    "changes_last_90d": N_("Change requests in the last 90 days"),
    "approved_cost_impact": N_("Approved cost impact"),
    "approved_schedule_impact": N_("Approved schedule impact"),
    "baseline_changes": N_("Re-baselines"),
    "closed_projects": N_("Closed projects to compare with"),
    "type_closed_projects": N_("Closed projects of the same type"),
    "closed_late_rate": N_("Late rate of closed projects"),
    "type_late_rate": N_("Late rate of the same type"),
    "closed_overrun_rate": N_("Overrun rate of closed projects"),
    "type_overrun_rate": N_("Overrun rate of the same type"),
}


# The catalogue's units, in words (features.catalogue declares them in English).
_UNITS: dict[str, str] = {
    "category": N_("category"),
    "changes per month": N_("changes per month"),
    "count": N_("count"),
    "days": N_("days"),
    "fraction": N_("fraction"),
    "fraction of BAC": N_("fraction of BAC"),
    "fraction of PD": N_("fraction of PD"),
    "ln(currency)": N_("ln(currency)"),
    "month": N_("month"),
    "percent": N_("percent"),
    "percentage points": N_("percentage points"),
    "percentage points per week": N_("percentage points per week"),
    "quarter": N_("quarter"),
    "ratio": N_("ratio"),
    "ratio per week": N_("ratio per week"),
    "ratio to BAC": N_("ratio to BAC"),
    "weeks": N_("weeks"),
    "rank 0–2": N_("rank 0–2"),
}
