"""Labels exactly as DESIGN.md defines them, on tiny hand-built projects."""

from __future__ import annotations

import numpy as np
import pytest
from portfolio_builders import day, make_portfolio

from features.labels import label_counts, label_projects


def _project(pid: str, finish: float | None, **extra: object) -> dict[str, object]:
    # Planned duration 100 days, so slip = (actual − planned finish) / 100 exactly.
    row: dict[str, object] = {
        "project_id": pid,
        "planned_start": day(0),
        "planned_finish": day(100),
        "budget": 1000.0,
        "actual_finish": None if finish is None else day(finish),
    }
    row.update(extra)
    return row


def test_slip_and_overrun_follow_the_design_formulas() -> None:
    projects = make_portfolio(
        [
            _project("on-tolerance", 105, final_cost=1050.0),  # slip 0.05, overrun 0.05: not late
            _project("just-late", 106, final_cost=1051.0),  # slip 0.06, overrun 0.051
            _project("early", 90, final_cost=900.0),  # slip −0.10, overrun −0.10
        ]
    ).projects
    labels = label_projects(projects, delay_tolerance=0.05, overrun_tolerance=0.05)
    assert labels["slip"].tolist() == pytest.approx([0.05, 0.06, -0.10])
    assert labels["overrun"].tolist() == pytest.approx([0.05, 0.051, -0.10])
    assert labels["late"].tolist() == [0.0, 1.0, 0.0]
    assert labels["over_budget"].tolist() == [0.0, 1.0, 0.0]
    assert list(labels.columns) == ["project_id", "slip", "overrun", "late", "over_budget"]


def test_tolerances_are_arguments() -> None:
    projects = make_portfolio([_project("p", 120, final_cost=1100.0)]).projects  # 0.2, 0.1
    strict = label_projects(projects, 0.0, 0.0)
    lenient = label_projects(projects, 0.5, 0.5)
    assert (strict["late"].item(), strict["over_budget"].item()) == (1.0, 1.0)
    assert (lenient["late"].item(), lenient["over_budget"].item()) == (0.0, 0.0)


def test_no_final_cost_or_budget_means_no_overrun_label_not_a_false_one() -> None:
    projects = make_portfolio(
        [
            _project("no-final-cost", 130),
            _project("no-budget", 130, budget=None, final_cost=5000.0),
            _project("zero-budget", 130, budget=0.0, final_cost=5000.0),
        ]
    ).projects
    labels = label_projects(projects)
    assert labels["late"].tolist() == [1.0, 1.0, 1.0]  # the delay label is still there
    assert labels["over_budget"].isna().all()
    assert labels["overrun"].isna().all()
    counts = label_counts(labels, projects)
    assert counts["overrun"]["no_cost_data"] == 3
    assert counts["overrun"]["over_budget"] + counts["overrun"]["within_budget"] == 0


def test_cancelled_and_running_projects_are_unlabelled_and_counted() -> None:
    projects = make_portfolio(
        [
            _project("late", 150, final_cost=2000.0, status="closed"),
            _project("on-time", 100, final_cost=1000.0, status="closed"),
            _project("cancelled", 60, final_cost=400.0, status="cancelled"),
            _project("running", None, status="active"),
            _project("on-hold", None, status="on_hold"),
        ]
    ).projects
    labels = label_projects(projects)
    assert labels["late"].tolist()[:2] == [1.0, 0.0]
    assert labels[["late", "over_budget", "slip", "overrun"]].iloc[2:].isna().all().all()
    counts = label_counts(labels, projects)
    assert counts["projects"] == 5
    assert (counts["closed"], counts["cancelled"], counts["running"]) == (2, 1, 2)
    assert counts["delay"] == {"late": 1, "on_time": 1, "unlabelled": 2, "cancelled": 1}
    assert counts["overrun"] == {
        "over_budget": 1,
        "within_budget": 1,
        "no_cost_data": 0,
        "unlabelled": 2,
        "cancelled": 1,
    }


def test_status_derived_from_actual_finish_when_absent() -> None:
    # conform() derives closed/active from actual_finish when the status column is empty.
    projects = make_portfolio([_project("done", 110), _project("open", None)]).projects
    labels = label_projects(projects)
    assert labels["late"].tolist()[0] == 1.0
    assert np.isnan(labels["late"].tolist()[1])


def test_as_of_unlabels_projects_closing_later() -> None:
    projects = make_portfolio([_project("early", 90), _project("later", 130)]).projects
    labels = label_projects(projects, as_of=day(100))
    assert labels["late"].tolist()[0] == 0.0
    assert np.isnan(labels["late"].tolist()[1])
    counts = label_counts(labels, projects, as_of=day(100))
    assert (counts["closed"], counts["running"]) == (1, 1)
    assert counts["delay"]["unlabelled"] == 1


def test_zero_planned_duration_gives_no_delay_label() -> None:
    projects = make_portfolio(
        [
            {
                "project_id": "z",
                "planned_start": day(5),
                "planned_finish": day(5),
                "actual_finish": day(9),
            }
        ]
    ).projects
    assert label_projects(projects)["late"].isna().all()
