"""Tiny portfolios for the feature tests: hand-built ones and seeded random ones.

Dates are written as day numbers after 2020-01-01 so that the hand computations in the tests
stay readable. The random portfolio is built here, not with the simulator, so that these
tests do not move when the simulator is tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.contract import Portfolio, conform, empty_table

BASE = pd.Timestamp("2020-01-01")


def day(n: float) -> pd.Timestamp:
    """The date ``n`` days after 2020-01-01."""
    return BASE + pd.Timedelta(days=float(n))


def _table(rows: Sequence[dict[str, Any]], table: str) -> pd.DataFrame:
    if not rows:
        return empty_table(table)
    return conform(pd.DataFrame(list(rows)), table)


def make_portfolio(
    projects: Sequence[dict[str, Any]],
    reports: Sequence[dict[str, Any]] = (),
    changes: Sequence[dict[str, Any]] = (),
    extra_attributes: Sequence[str] = (),
) -> Portfolio:
    """A portfolio in contract v1 from row dicts (absent optional columns added, typed)."""
    return Portfolio(
        _table(projects, "projects"),
        _table(reports, "status_reports"),
        _table(changes, "changes"),
        source="test",
        extra_attributes=list(extra_attributes),
    )


def one_project(portfolio: Portfolio, project_id: str) -> Portfolio:
    """The same portfolio reduced to one project (as the service receives it)."""

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["project_id"] == project_id].reset_index(drop=True)

    return Portfolio(
        keep(portfolio.projects),
        keep(portfolio.status_reports),
        keep(portfolio.changes),
        source=portfolio.source,
        extra_attributes=list(portfolio.extra_attributes),
    )


def random_portfolio(n_projects: int, seed: int) -> Portfolio:
    """A seeded random portfolio with earned value, forecasts, milestones and changes.

    Some projects have no budget or no cost data, some reports are missing (irregular
    gaps), some reports post-date the finish, and there are cancelled and running projects.
    """
    rng = np.random.default_rng(seed)
    n = n_projects
    ids = np.array([f"R-{i:04d}" for i in range(n)], dtype=object)
    start = rng.integers(0, 1500, n)
    duration = rng.integers(60, 700, n)
    budget = np.round(np.exp(rng.normal(13, 1, n)), 0)
    budget[rng.random(n) < 0.15] = np.nan
    perf = np.clip(rng.normal(0.95, 0.08, n), 0.6, 1.3)
    slip = np.maximum(rng.normal(0.15, 0.25, n), -0.3)
    actual_finish = start + np.round(duration * (1 + slip)).astype(int)
    status = np.where(actual_finish < 1900, "closed", "active").astype(object)
    status[rng.random(n) < 0.05] = "cancelled"
    finish = np.where(status == "closed", actual_finish, -1)
    final_cost = np.round(budget * np.exp(rng.normal(0.08, 0.15, n)), 0)
    final_cost[status != "closed"] = np.nan
    projects = pd.DataFrame(
        {
            "project_id": ids,
            "portfolio": rng.choice(np.array(["north", "south"], dtype=object), n),
            "project_type": rng.choice(np.array(["it", "rail", "building", None], dtype=object), n),
            "planned_start": [day(d) for d in start],
            "planned_finish": [day(d) for d in start + duration],
            "budget": budget,
            "actual_start": [day(d) for d in start],
            "actual_finish": [day(d) if d >= 0 else pd.NaT for d in finish],
            "final_cost": final_cost,
            "status": status,
            "team_size": rng.integers(3, 40, n).astype(float),
            "vendor": rng.choice(np.array(["acme", "globex", None], dtype=object), n),
        }
    )

    cadence = rng.choice(np.array([7, 14, 30]), n)
    span = np.maximum(actual_finish - start, 30) + 2 * cadence  # a few reports past the end
    n_reports = np.minimum(span // cadence, 60)
    owner = np.repeat(np.arange(n), n_reports)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(n_reports) - n_reports, n_reports)
    r_day = start[owner] + (rank + 1) * cadence[owner]
    kept = rng.random(len(owner)) > 0.08  # missing reports
    owner, rank, r_day = owner[kept], rank[kept], r_day[kept]
    planned_frac = np.clip((r_day - start[owner]) / duration[owner], 0, 1)
    s_curve = planned_frac**2 * (3 - 2 * planned_frac)
    bac = np.nan_to_num(budget[owner], nan=1e6)
    pv = np.round(bac * s_curve, 2)  # cents: sums are not exact in floating point
    done_frac = np.clip(s_curve * perf[owner] * rng.normal(1, 0.03, len(owner)), 0, 1)
    ev = np.round(bac * done_frac, 2)
    ac = np.round(ev / np.clip(perf[owner] * rng.normal(1, 0.05, len(owner)), 0.5, 1.5), 0)
    no_cost = np.isnan(budget[owner])
    ev[no_cost], pv[no_cost], ac[no_cost] = np.nan, np.nan, np.nan
    forecast = (
        start[owner]
        + duration[owner]
        + np.round(np.maximum(0, slip[owner]) * duration[owner] * planned_frac / 7).astype(int) * 7
    )
    reports = pd.DataFrame(
        {
            "project_id": ids[owner],
            "report_date": [day(d) for d in r_day],
            "percent_complete": np.round(done_frac * 100, 1),
            "planned_value": pv,
            "earned_value": ev,
            "actual_cost": ac,
            "forecast_finish": [day(d) for d in forecast],
            "forecast_cost": np.round(bac * (1 + np.maximum(0, 1 / perf[owner] - 1) * 0.5), 0),
            "milestones_planned": np.floor(planned_frac * 6),
            "milestones_done": np.floor(done_frac * 6),
            "open_risks": rng.integers(0, 12, len(owner)).astype(float),
            "open_issues": rng.integers(0, 8, len(owner)).astype(float),
        }
    )

    n_changes = rng.poisson(duration / 120)
    c_owner = np.repeat(np.arange(n), n_changes)
    raised = start[c_owner] + (
        rng.random(len(c_owner)) * (actual_finish[c_owner] - start[c_owner])
    ).astype(int)
    lag = rng.integers(0, 60, len(c_owner))
    c_status = rng.choice(
        np.array(["approved", "approved", "rejected", "pending", "withdrawn"], dtype=object),
        len(c_owner),
    )
    decided = np.where(c_status == "pending", -1, raised + lag)
    changes = pd.DataFrame(
        {
            "project_id": ids[c_owner],
            "raised_date": [day(d) for d in raised],
            "change_id": [f"C-{i:05d}" for i in range(len(c_owner))],
            "kind": rng.choice(
                np.array(["scope", "schedule", "cost", "baseline", "other"], dtype=object),
                len(c_owner),
            ),
            "decided_date": [day(d) if d >= 0 else pd.NaT for d in decided],
            "status": c_status,
            "cost_impact": np.where(
                rng.random(len(c_owner)) < 0.2,
                np.nan,
                np.round(rng.normal(2e4, 3e4, len(c_owner)), 2),
            ),
            "schedule_impact_days": rng.integers(-5, 40, len(c_owner)).astype(float),
        }
    )
    return Portfolio(
        conform(projects, "projects"),
        conform(reports, "status_reports"),
        conform(changes, "changes"),
        source=f"random({n_projects}, {seed})",
        extra_attributes=["team_size", "vendor"],
    )


def read_little06() -> Portfolio:
    """data/examples/little06 read with pandas alone (independent of features.loading)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "data" / "examples" / "little06"
    return Portfolio(
        conform(pd.read_csv(folder / "projects.csv"), "projects"),
        conform(pd.read_csv(folder / "status_reports.csv"), "status_reports"),
        conform(pd.read_csv(folder / "changes.csv"), "changes"),
        source=str(folder),
    )
