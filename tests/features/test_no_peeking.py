"""No peeking: whatever happens after ``as_of`` cannot change a feature row at ``as_of``.

For random small portfolios and a random ``as_of``, we append and alter every report, change
and outcome dated after ``as_of`` — new reports, revised values of later reports, new
changes, later decisions on earlier changes, later finishes, final costs and statuses — and
require every feature row at or before ``as_of`` to stay bit-identical.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from portfolio_builders import day, make_portfolio

from features.pointintime import build_features

Row = dict[str, Any]
Draw = Callable[..., Any]  # st.DrawFn, or DataObject.draw

MONEY = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False, allow_subnormal=False))
COUNT = st.one_of(st.none(), st.integers(0, 10).map(float))
TYPES = st.sampled_from(["it", "rail", None])


def _report(draw: Draw, project_id: str, when: int) -> Row:
    forecast = draw(st.one_of(st.none(), st.integers(-50, 900)))
    return {
        "project_id": project_id,
        "report_date": day(when),
        "percent_complete": draw(st.one_of(st.none(), st.floats(0, 100, allow_nan=False))),
        "planned_value": draw(MONEY),
        "earned_value": draw(MONEY),
        "actual_cost": draw(MONEY),
        "forecast_finish": None if forecast is None else day(forecast),
        "forecast_cost": draw(MONEY),
        "milestones_planned": draw(COUNT),
        "milestones_done": draw(COUNT),
        "open_risks": draw(COUNT),
    }


def _decision(draw: Draw, after: int) -> tuple[pd.Timestamp | None, str]:
    decided = draw(st.one_of(st.none(), st.integers(after, after + 120)))
    status = draw(st.sampled_from(["approved", "rejected", "withdrawn", "pending"]))
    return (None if decided is None else day(decided)), status


def _change(draw: Draw, project_id: str, raised: int) -> Row:
    decided, status = _decision(draw, raised)
    return {
        "project_id": project_id,
        "raised_date": day(raised),
        "decided_date": decided,
        "status": status,
        "kind": draw(st.sampled_from(["scope", "schedule", "cost", "baseline", "other"])),
        "cost_impact": draw(st.one_of(st.none(), st.floats(-1e5, 1e5, allow_nan=False))),
        "schedule_impact_days": draw(st.one_of(st.none(), st.integers(-30, 90).map(float))),
    }


def _outcome(draw: Draw, start: int, not_before: int) -> Row:
    finish = draw(st.one_of(st.none(), st.integers(max(start, not_before), start + 700)))
    if finish is None:
        status = draw(st.sampled_from(["active", "on_hold", "cancelled"]))
    else:
        status = draw(st.sampled_from(["closed", "closed", "cancelled"]))
    return {
        "actual_finish": None if finish is None else day(finish),
        "final_cost": draw(MONEY),
        "status": status,
    }


@st.composite
def scenarios(draw: Draw) -> tuple[list[Row], list[Row], list[Row], int]:
    """A small portfolio as row dicts, and an as_of day."""
    as_of = draw(st.integers(0, 500))
    projects: list[Row] = []
    reports: list[Row] = []
    changes: list[Row] = []
    for i in range(draw(st.integers(1, 4))):
        pid = f"P{i}"
        start = draw(st.integers(0, 300))
        projects.append(
            {
                "project_id": pid,
                "project_type": draw(TYPES),
                "planned_start": day(start),
                "planned_finish": day(start + draw(st.integers(1, 300))),
                "budget": draw(MONEY),
                **_outcome(draw, start, 0),
            }
        )
        days = draw(st.lists(st.integers(start - 10, start + 500), max_size=8, unique=True))
        reports += [_report(draw, pid, d) for d in sorted(days)]
        raised = draw(st.lists(st.integers(start - 10, start + 500), max_size=4))
        changes += [_change(draw, pid, d) for d in raised]
    return projects, reports, changes, as_of


def _after(when: pd.Timestamp | None, as_of: int) -> bool:
    return when is None or pd.isna(when) or when > day(as_of)


def _rewrite_the_future(
    draw: Draw, projects: list[Row], reports: list[Row], changes: list[Row], as_of: int
) -> tuple[list[Row], list[Row], list[Row]]:
    """Append and alter everything dated after as_of; leave the rest untouched."""
    projects, reports, changes = copy.deepcopy((projects, reports, changes))
    for i, row in enumerate(reports):  # later reports: new values
        if row["report_date"] > day(as_of):
            reports[i] = _report(draw, row["project_id"], (row["report_date"] - day(0)).days)
    for i, row in enumerate(changes):
        if row["raised_date"] > day(as_of):  # later requests: anything may differ
            raised = draw(st.integers(as_of + 1, as_of + 200))
            changes[i] = _change(draw, row["project_id"], raised)
        elif _after(row["decided_date"], as_of):  # earlier requests: their later decision
            decided, status = _decision(draw, as_of + 1)
            changes[i] = {**row, "decided_date": decided, "status": status}
    for row in projects:
        if _after(row["actual_finish"], as_of):  # outcomes not yet known at as_of
            start = (row["planned_start"] - day(0)).days
            row.update(_outcome(draw, start, as_of + 1))
    for row in projects:  # new reports and changes after as_of
        taken = {r["report_date"] for r in reports if r["project_id"] == row["project_id"]}
        for when in draw(st.lists(st.integers(as_of + 1, as_of + 300), max_size=3)):
            if day(when) not in taken:
                taken.add(day(when))
                reports.append(_report(draw, row["project_id"], when))
        for when in draw(st.lists(st.integers(as_of + 1, as_of + 300), max_size=2)):
            changes.append(_change(draw, row["project_id"], when))
    return projects, reports, changes


def _rows_up_to(projects: list[Row], reports: list[Row], as_of: int) -> pd.DataFrame:
    """Every project at as_of, its approval row and a row at each report date ≤ as_of."""
    rows = [(p["project_id"], day(as_of), False) for p in projects]
    rows += [
        (p["project_id"], p["planned_start"], True)
        for p in projects
        if p["planned_start"] <= day(as_of)
    ]
    rows += [
        (r["project_id"], r["report_date"], False)
        for r in reports
        if r["report_date"] <= day(as_of)
    ]
    return pd.DataFrame(rows, columns=["project_id", "as_of", "at_approval"])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_nothing_after_as_of_changes_a_row_at_as_of(
    scenario: tuple[list[Row], list[Row], list[Row], int], data: st.DataObject
) -> None:
    projects, reports, changes, as_of = scenario
    future = _rewrite_the_future(data.draw, projects, reports, changes, as_of)
    rows = _rows_up_to(projects, reports, as_of)
    before = build_features(make_portfolio(projects, reports, changes), rows)
    after = build_features(make_portfolio(*future), rows)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
