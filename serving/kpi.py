"""`forewarn kpi`: the portfolio's on-time and within-budget shares for a year, forecast from
the champions' calibrated probabilities, beside the realised KPIs of closed projects.

Scores come from batch scoring (`serving.batch.score_portfolio`, the service's own code);
the arithmetic (cohort, Poisson-binomial, correlation) is `training.kpi`'s. The sentences
are in the language in force (`serving.i18n`); the JSON keys never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from features.contract import Portfolio
from serving import i18n
from serving.batch import score_portfolio
from serving.champions import Champions
from training.kpi import kpi_forecast, realised_kpis

KPI_WORDS = {
    "on_time": i18n.N_("On-time delivery"),
    "within_budget": i18n.N_("Within budget"),
}


@dataclass(frozen=True)
class KpiOptions:
    """What the KPI forecast depends on (the CLI takes it from the settings)."""

    on_time_target: float = 0.90
    within_budget_target: float = 0.90
    correlation: float = 0.1
    year: int | None = None  # None: the as-of date's year

    @property
    def targets(self) -> dict[str, float]:
        return {"on_time": self.on_time_target, "within_budget": self.within_budget_target}


def kpi_summary(
    projects: pd.DataFrame,
    scores: pd.DataFrame,
    as_of: date,
    options: KpiOptions,
    *,
    delay_tolerance: float,
    overrun_tolerance: float,
) -> dict[str, Any]:
    """The KPI forecast from the running projects' scores, and the realised KPIs by year."""
    out = kpi_forecast(
        projects,
        scores[["project_id", "p_late", "p_over_budget"]],
        options.year or as_of.year,
        pd.Timestamp(as_of),
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        targets=options.targets,
        correlation=options.correlation,
    )
    out["budget_deviation"] = overrun_tolerance
    out["realised"] = realised_kpis(projects, delay_tolerance, overrun_tolerance)
    return out


def portfolio_kpis(
    portfolio: Portfolio,
    champions: Champions,
    as_of: date,
    options: KpiOptions,
    *,
    red: float,
    amber: float,
    delay_tolerance: float,
    overrun_tolerance: float,
) -> dict[str, Any]:
    """The KPI forecast as known at `as_of`, scored by batch scoring with the champions."""
    scores = score_portfolio(
        portfolio,
        champions,
        as_of,
        red=red,
        amber=amber,
        top_drivers=0,
        explain=False,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
    ).frame
    out = kpi_summary(
        portfolio.projects,
        scores,
        as_of,
        options,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
    )
    out["models"] = {t: f"{c.name} v{c.version}" for t, c in champions.by_target.items()}
    return out


def fmt_chance(p: float | None) -> str:
    """A probability as a person reads it: '< 1 %' and '> 99 %' at the ends."""
    if p is None:
        return "—"
    if p < 0.01:
        return "< 1%"
    if p > 0.99:
        return "> 99%"
    return f"{p:.0%}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def kpi_sentences(forecast: Mapping[str, Any]) -> list[str]:
    """One sentence per KPI: "On-time delivery 2025: 71% expected (64–78%); chance of
    reaching 90%: < 1% (120 projects: 80 closed, 40 running)"."""
    lines = []
    for kpi, words in KPI_WORDS.items():
        entry = forecast[kpi]
        if entry["expected"] is None:
            lines.append(
                i18n._("{kpi} {year}: no project due to finish in the year").format(
                    kpi=i18n._(words), year=forecast["year"]
                )
            )
            continue
        low, high = entry["interval"]
        lines.append(
            i18n._(
                "{kpi} {year}: {expected} expected ({low}–{high}); chance of reaching "
                "{target}: {chance} ({n} projects: {closed} closed, {running} running)"
            ).format(
                kpi=i18n._(words),
                year=forecast["year"],
                expected=_pct(entry["expected"]),
                low=_pct(low),
                high=_pct(high),
                target=_pct(entry["target"]),
                chance=fmt_chance(entry["p_reach_target"]),
                n=entry["n_projects"],
                closed=entry["n_closed"],
                running=entry["n_running"],
            )
        )
    lines.append(
        i18n._(
            "Intervals (90 per cent) from the per-project probabilities, widened for a shared "
            "correlation of {rho} between projects; within budget = at most {deviation} "
            "over budget"
        ).format(rho=f"{forecast['correlation']:.2f}", deviation=_pct(forecast["budget_deviation"]))
    )
    return lines
