"""The contract's rules are declared once (`features.contract`): a rule added, reworded or of
a kind nobody taught is seen alike by a file load and by the service's intake."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

import features.contract as contract
from features.contract import Ordered, Unique
from features.loading import summarise_quarantine, validate_frames
from serving.intake import request_tables
from serving.request_models import ProjectIn, ScoreRequest

EXAMPLE: dict[str, Any] = ScoreRequest.model_json_schema()["example"]


def _request(**changes: Any) -> list[ProjectIn]:
    body = copy.deepcopy(EXAMPLE)
    body["projects"][0].update(changes)
    return ScoreRequest.model_validate(body).projects


def _files(projects: list[ProjectIn]) -> dict[str, pd.DataFrame]:
    """The request's projects as the three tables of a file."""
    base = [p.model_dump(exclude={"attributes", "status_reports", "changes"}) for p in projects]
    children = {
        table: pd.DataFrame(
            [
                {**row.model_dump(), "project_id": p.project_id}
                for p in projects
                for row in getattr(p, table)
            ]
        )
        for table in ("status_reports", "changes")
    }
    return {"projects": pd.DataFrame(base), **children}


def _request_rules(projects: list[ProjectIn]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        request_tables(projects)
    return [(e["loc"], e["msg"]) for e in caught.value.errors(include_input=False)]


def _with_rules(monkeypatch: pytest.MonkeyPatch, *rules: Any, dropping: Any = None) -> None:
    kept = tuple(r for r in contract.RULES if r != dropping)
    monkeypatch.setattr(contract, "RULES", kept + rules)


def test_a_rule_added_to_the_contract_is_enforced_by_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forecast = Ordered("status_reports", "forecast_finish", "report_date", strict=False)
    projects = _request()
    projects[0].status_reports[1].forecast_finish = projects[0].status_reports[1].report_date
    projects[0].status_reports[0].forecast_finish = pd.Timestamp("2024-04-01").date()
    assert len(validate_frames(_files(projects), {}).quarantine) == 0  # not a rule yet
    request_tables(projects)

    _with_rules(monkeypatch, forecast)
    q = validate_frames(_files(projects), {}).quarantine
    assert q[["row", "column", "rule"]].values.tolist() == [
        [2, "forecast_finish", "forecast_finish must not be before report_date"]
    ]
    assert _request_rules(projects) == [
        (
            ("projects", 0, "status_reports", 0, "forecast_finish"),
            "forecast_finish must not be before report_date",
        )
    ]


def test_a_rule_reworded_in_the_contract_is_reworded_in_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [unique_id] = [r for r in contract.rules("projects") if isinstance(r, Unique)]
    reworded = Unique(
        "projects", ("project_id",), "project {project_id} is listed twice", "a project twice"
    )
    _with_rules(monkeypatch, reworded, dropping=unique_id)
    projects = _request() * 2

    q = validate_frames(_files(projects), {}).quarantine
    mine = q[q["table"] == "projects"]
    assert mine["rule"].tolist() == ["project P-0042 is listed twice (rows 2 and 3)"] * 2
    assert "a project twice" in set(summarise_quarantine(q)["rule"])
    assert {msg for _, msg in _request_rules(projects)} >= {"project P-0042 is listed twice"}


@dataclass(frozen=True)
class _Untaught:
    table: str = "projects"
    column: str = "budget"
    text: str = "budget must be a round number"
    summary: str = "budget must be a round number"


def test_a_kind_of_rule_neither_knows_is_an_error_not_a_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_rules(monkeypatch, _Untaught())
    projects = _request()
    with pytest.raises(TypeError, match=r"features\.loading cannot run"):
        validate_frames(_files(projects), {})
    with pytest.raises(TypeError, match=r"serving\.intake cannot check"):
        request_tables(projects)


@pytest.mark.parametrize("day", ["1677-10-01", "2262-01-01"])
def test_a_date_outside_the_contract_years_is_refused_by_both(day: str) -> None:
    projects = _request()
    frames = _files(projects)
    frames["projects"]["actual_start"] = day
    q = validate_frames(frames, {}).quarantine
    rules = set(q.loc[q["table"] == "projects", "rule"])
    assert rules == {f"actual_start {contract.DATE_RULE}"}

    body = copy.deepcopy(EXAMPLE)
    body["projects"][0]["actual_start"] = day
    with pytest.raises(ValidationError) as caught:
        ScoreRequest.model_validate(body)
    [error] = caught.value.errors(include_input=False)
    assert (error["loc"], error["msg"]) == (("projects", 0, "actual_start"), contract.DATE_RULE)
