"""The service's intake gives what a file load gives: the same tables, the same verdicts."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.loading import FIRST_DATA_ROW, validate_frames
from serving.intake import request_tables
from serving.request_models import ProjectIn, ScoreRequest

EXAMPLE: dict[str, Any] = ScoreRequest.model_json_schema()["example"]


def _projects(body: dict[str, Any]) -> list[ProjectIn]:
    return ScoreRequest.model_validate(body).projects


def _as_files(projects: list[ProjectIn]) -> dict[str, pd.DataFrame]:
    """The request written as the three tables of a portfolio file, in request order."""
    base = [p.model_dump(exclude={"attributes", "status_reports", "changes"}) for p in projects]
    for row, p in zip(base, projects, strict=True):
        row.update(p.attributes)
    children = {
        table: [
            {**row.model_dump(), "project_id": p.project_id}
            for p in projects
            for row in getattr(p, table)
        ]
        for table in ("status_reports", "changes")
    }
    return {
        "projects": pd.DataFrame(base),
        **{t: pd.DataFrame(rows) for t, rows in children.items()},
    }


def _two_projects() -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    second = copy.deepcopy(body["projects"][0])
    second.update(project_id="P-0043", budget=None, attributes={"region": "north"})
    body["projects"][0]["attributes"] = {"region": "south"}
    body["projects"].append(second)
    return body


def test_valid_request_gives_the_tables_a_file_load_gives() -> None:
    projects = _projects(_two_projects())
    ours = request_tables(projects, extra_attributes=["region"]).to_portfolio()
    files = validate_frames(_as_files(projects), {}, extra_attributes=["region"])
    assert len(files.quarantine) == 0
    for table in ("projects", "status_reports", "changes"):
        pd.testing.assert_frame_equal(
            getattr(ours, table), getattr(files.portfolio, table), check_like=True
        )
    assert ours.extra_attributes == ["region"]


def test_status_is_derived_as_a_file_load_derives_it() -> None:
    body = _two_projects()
    body["projects"][0]["status"] = None
    body["projects"][1].update(status=None, actual_finish="2024-12-01")
    portfolio = request_tables(_projects(body)).to_portfolio()
    assert portfolio.projects["status"].tolist() == ["active", "closed"]


Breaker = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Breaker:
    def breaker(body: dict[str, Any]) -> None:
        target = body["projects"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return breaker


def _duplicate_report(body: dict[str, Any]) -> None:
    reports = body["projects"][1]["status_reports"]
    reports.append(copy.deepcopy(reports[0]))


def _duplicate_id(body: dict[str, Any]) -> None:
    body["projects"][1]["project_id"] = body["projects"][0]["project_id"]


# Each case breaks one contract rule that spans fields or rows; (table, row, column) is
# where a file load quarantines it, with rows counted in file order.
CASES: dict[str, tuple[Breaker, list[tuple[str, int, str]]]] = {
    "finish before start": (
        _set((0, "planned_finish"), "2023-12-31"),
        [("projects", 0, "planned_finish")],
    ),
    "actual finish before actual start": (
        _set((1, "actual_finish"), "2024-01-01"),
        [("projects", 1, "actual_finish")],
    ),
    "closed without finish": (_set((0, "status"), "closed"), [("projects", 0, "actual_finish")]),
    "report before start": (
        _set((1, "status_reports", 1, "report_date"), "2023-11-30"),
        [("status_reports", 3, "report_date")],
    ),
    "decided before raised": (
        _set((1, "changes", 0, "decided_date"), "2024-05-01"),
        [("changes", 2, "decided_date")],
    ),
    "report date twice": (
        _duplicate_report,
        [("status_reports", 2, "report_date"), ("status_reports", 4, "report_date")],
    ),
    "project id twice": (
        _duplicate_id,
        [("projects", 0, "project_id"), ("projects", 1, "project_id")],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_verdict_and_rule_as_a_file_load(case: str) -> None:
    breaker, expected = CASES[case]
    body = _two_projects()
    breaker(body)
    projects = _projects(body)

    files = validate_frames(_as_files(projects), {})
    q = files.quarantine
    if case != "project id twice":  # a duplicate id takes the project's rows along with it
        q = q[~q["rule"].str.endswith("was quarantined")]
    found = sorted(
        (str(t), int(r) - FIRST_DATA_ROW, str(c))
        for t, r, c in q[["table", "row", "column"]].values
    )
    file_rules = set(q["rule"])
    assert found == sorted(set(found)) and set(found) >= set(expected)

    with pytest.raises(ValidationError) as caught:
        request_tables(projects)
    errors = caught.value.errors(include_input=False)
    locs = {e["loc"] for e in errors}
    for table, row, column in expected:
        if table == "projects":
            assert ("projects", row, column) in locs
        else:
            flat = _as_files(projects)[table]
            owner = flat.loc[row, "project_id"]
            i = [p.project_id for p in projects].index(owner)
            j = row - int((flat["project_id"].iloc[:row] != owner).sum())
            assert ("projects", i, table, j, column) in locs, (case, locs)
    # A file names its rows ("(rows 2 and 3)"); the request's locations say that instead.
    file_rules = {re.sub(r"\s*\(rows? [^)]*\)", "", rule) for rule in file_rules}
    for error in errors:
        assert error["type"] == "contract_rule"
        assert error["msg"] in file_rules, (error["msg"], file_rules)


def test_explain_locations_drop_the_list_index() -> None:
    body = copy.deepcopy(EXAMPLE)
    body["projects"][0]["status_reports"][0]["report_date"] = "2023-01-02"
    with pytest.raises(ValidationError) as caught:
        request_tables(_projects(body), title="ExplainRequest", loc_prefix=("project",))
    [error] = caught.value.errors(include_input=False)
    assert error["loc"] == ("project", "status_reports", 0, "report_date")
    assert error["msg"] == "report_date before the project's start 2024-01-08"
    assert caught.value.title == "ExplainRequest"


def test_dates_convert_as_numpy_converts_them() -> None:
    values = [date(2024, 2, 29), None, date(1969, 12, 31), date(1900, 1, 1), date(2261, 12, 31)]
    body = copy.deepcopy(EXAMPLE)
    template = body["projects"][0]
    body["projects"] = [
        {**template, "project_id": f"P-{i}", "actual_start": v and v.isoformat()}
        for i, v in enumerate(values)
    ]
    got = request_tables(_projects(body)).projects["actual_start"]
    expected = np.array(values, dtype="datetime64[D]").astype("datetime64[ns]")
    assert got.dtype == expected.dtype
    assert np.array_equal(got.view("int64"), expected.view("int64"))  # NaT included
