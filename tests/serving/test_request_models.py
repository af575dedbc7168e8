"""The request models are contract v1, field by field, and refuse what the contract refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from features.contract import COLUMNS
from serving.request_models import (
    ChangeIn,
    ExplainRequest,
    ProjectIn,
    ScoreRequest,
    StatusReportIn,
)

EXAMPLE: dict[str, Any] = ScoreRequest.model_json_schema()["example"]

MODELS: dict[str, type[BaseModel]] = {
    "projects": ProjectIn,
    "status_reports": StatusReportIn,
    "changes": ChangeIn,
}
REQUEST_ONLY = {"attributes", "status_reports", "changes"}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    properties: dict[str, Any] = model.model_json_schema()["properties"]
    return properties


@pytest.mark.parametrize("table", list(MODELS))
def test_fields_are_the_contract_columns(table: str) -> None:
    model = MODELS[table]
    contract = {c.name: c for c in COLUMNS[table]}
    assert set(model.model_fields) - REQUEST_ONLY == set(contract)
    schema = _schema(model)
    for name, column in contract.items():
        field = model.model_fields[name]
        nested_id = table != "projects" and name == "project_id"  # implied by the nesting
        assert field.is_required() == (column.required and not nested_id), name
        assert field.description, f"{table}.{name} is undocumented"
        options = [schema[name], *schema[name].get("anyOf", [])]
        bounds = {k: o[k] for o in options for k in ("minimum", "maximum") if k in o}
        assert bounds.get("minimum") == column.minimum, name
        assert bounds.get("maximum") == column.maximum, name
        allowed = [v for o in options for v in o.get("enum", [])]
        assert sorted(allowed) == sorted(column.allowed), name


def test_every_response_field_is_documented() -> None:
    from serving import response_models

    for name in dir(response_models):
        model = getattr(response_models, name)
        if isinstance(model, type) and issubclass(model, BaseModel) and model is not BaseModel:
            for field_name, field in model.model_fields.items():
                assert field.description, f"{name}.{field_name} is undocumented"


def test_the_examples_validate() -> None:
    request = ScoreRequest.model_validate(EXAMPLE)
    assert request.projects[0].status_reports[1].earned_value == 440_000
    ExplainRequest.model_validate(ExplainRequest.model_json_schema()["example"])


def _errors(body: dict[str, Any], model: type[BaseModel] = ScoreRequest) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return [
        {"loc": e["loc"], "type": e["type"], "msg": e["msg"]}
        for e in caught.value.errors(include_input=False)
    ]


def _example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def test_negative_cost_names_field_and_bound() -> None:
    body = _example()
    body["projects"][0]["status_reports"][1]["actual_cost"] = -1
    [error] = _errors(body)
    assert error["loc"] == ("projects", 0, "status_reports", 1, "actual_cost")
    assert error["msg"] == "Input should be greater than or equal to 0"


def test_percent_complete_above_100() -> None:
    body = _example()
    body["projects"][0]["status_reports"][0]["percent_complete"] = 101
    [error] = _errors(body)
    assert error["loc"][-1] == "percent_complete" and "less than or equal to 100" in error["msg"]


def test_missing_wrong_type_unknown_and_not_a_number() -> None:
    body = _example()
    del body["projects"][0]["planned_finish"]
    body["projects"][0]["budget"] = "lots"
    body["projects"][0]["budjet"] = 5
    body["projects"][0]["status_reports"][0]["planned_value"] = float("nan")
    body["projects"][0]["changes"][0]["kind"] = "scopes"
    found = {e["loc"]: e["msg"] for e in _errors(body)}
    assert found[("projects", 0, "planned_finish")] == "Field required"
    assert "valid number" in found[("projects", 0, "budget")]
    assert found[("projects", 0, "budjet")] == "Extra inputs are not permitted"
    assert "finite number" in found[("projects", 0, "status_reports", 0, "planned_value")]
    assert "'scope'" in found[("projects", 0, "changes", 0, "kind")]


def test_a_nested_row_of_another_project_is_refused() -> None:
    body = _example()
    body["projects"][0]["status_reports"][0]["project_id"] = "P-9999"
    [error] = _errors(body)
    assert error["loc"] == ("projects", 0)
    assert "P-9999" in error["msg"] and "not this project's" in error["msg"]
    body["projects"][0]["status_reports"][0]["project_id"] = "P-0042"  # the same: fine
    ScoreRequest.model_validate(body)


def test_project_limit_is_in_the_model_and_its_schema() -> None:
    limited = ScoreRequest.limited_to(2)
    assert limited.model_json_schema()["properties"]["projects"]["maxItems"] == 2
    assert limited.model_json_schema()["example"] == EXAMPLE
    body = _example()
    body["projects"] = [{**body["projects"][0], "project_id": f"P{i}"} for i in range(3)]
    [error] = _errors(body, limited)
    assert error["loc"] == ("projects",) and "at most 2 items" in error["msg"]
    assert _errors({"projects": []})[0]["type"] == "too_short"
