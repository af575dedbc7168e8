"""The client: contract files become requests losslessly; answers and refusals are typed."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
import pandas as pd
import pytest

from features.simulator import simulate_portfolio
from serving.client import ForewarnClient, ForewarnError, projects_from_portfolio
from serving.intake import request_tables


def test_portfolio_rows_survive_the_round_trip() -> None:
    portfolio = simulate_portfolio(40, seed=3).portfolio
    ids = portfolio.projects["project_id"].iloc[[5, 0, 17]].tolist()
    projects = projects_from_portfolio(portfolio, ids)
    assert [p.project_id for p in projects] == ids
    back = request_tables(projects).to_portfolio()
    order = {p: i for i, p in enumerate(ids)}

    def ordered(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        # Request order of the projects, then each table's own key within a project.
        rank = frame["project_id"].map(order)
        return (
            frame.assign(_rank=rank)
            .sort_values(["_rank", *keys], kind="stable")
            .drop(columns="_rank")
            .reset_index(drop=True)
        )

    for table, keys in (
        ("projects", []),
        ("status_reports", ["report_date"]),
        ("changes", ["raised_date", "change_id"]),
    ):
        original = getattr(portfolio, table)
        expected = original[original["project_id"].isin(ids)]
        assert len(expected) > 0, table
        pd.testing.assert_frame_equal(
            ordered(getattr(back, table), keys)[expected.columns], ordered(expected, keys)
        )
    with pytest.raises(KeyError, match="not in the portfolio"):
        projects_from_portfolio(portfolio, ["nope"])


SCORE = {
    "projects": [
        {
            "project_id": "P1",
            "as_of": "2024-06-30",
            "p_late": 0.7,
            "p_over_budget": None,
            "rag_late": "red",
            "rag_over_budget": "n/a",
            "rag": "red",
            "late_reason": None,
            "over_budget_reason": "no budget",
            "drivers_late": [
                {"feature": "spi", "value": 0.8, "contribution": 0.4, "sentence": "SPI is 0.80"}
            ],
            "drivers_over_budget": [],
            "models": [{"target": "delay", "name": "forewarn-delay", "version": "2"}],
        }
    ],
    "thresholds": {"red": 0.6, "amber": 0.35},
}


def _client(handler: Any, max_projects: int | None = 500) -> ForewarnClient:
    return ForewarnClient(
        "http://forewarn.test",
        api_key="k",
        transport=httpx.MockTransport(handler),
        max_projects=max_projects,
    )


def test_score_sends_the_token_and_parses_the_answer() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json=SCORE)

    with _client(handler) as fw:
        answer = fw.score([{"project_id": "P1"}], as_of=date(2024, 6, 30))
    assert seen["auth"] == "Bearer k"
    assert seen["body"] == {"projects": [{"project_id": "P1"}], "as_of": "2024-06-30"}
    assert answer.projects[0].rag == "red" and answer.projects[0].p_over_budget is None
    assert answer.projects[0].drivers_late[0].sentence == "SPI is 0.80"


def test_score_splits_a_list_over_the_service_limit() -> None:
    sent: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/docs.json":  # the limit, as the service declares it
            schema = {"properties": {"projects": {"maxItems": 2}}}
            body = {"content": {"application/json": {"schema": schema}}}
            return httpx.Response(200, json={"paths": {"/score": {"post": {"requestBody": body}}}})
        ids = [p["project_id"] for p in json.loads(request.content)["projects"]]
        sent.append(ids)
        one = SCORE["projects"][0]
        return httpx.Response(
            200,
            json={
                "projects": [{**one, "project_id": i} for i in ids],
                "thresholds": SCORE["thresholds"],
            },
        )

    ids = [f"P{i}" for i in range(5)]
    with _client(handler, max_projects=None) as fw:
        answer = fw.score([{"project_id": i} for i in ids])
    assert sent == [["P0", "P1"], ["P2", "P3"], ["P4"]]
    assert [p.project_id for p in answer.projects] == ids


def test_refusals_become_errors_that_say_where() -> None:
    detail = [{"loc": ["projects", 0, "budget"], "msg": "Input should be a valid number"}]
    answers = iter(
        [
            httpx.Response(400, json={"error": "1 validation error", "detail": detail}),
            httpx.Response(503, json=[{"error": "overloaded"}]),  # BentoML's list form
            httpx.Response(502, text="bad gateway"),
        ]
    )
    with _client(lambda request: next(answers)) as fw:
        with pytest.raises(ForewarnError) as bad:
            fw.score([{"project_id": "P1"}])
        assert bad.value.status == 400
        assert "projects.0.budget: Input should be a valid number" in str(bad.value)
        with pytest.raises(ForewarnError, match="overloaded"):
            fw.models()
        with pytest.raises(ForewarnError, match="bad gateway"):
            fw.explain({"project_id": "P1"})


def test_ready_is_false_when_nothing_listens() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(handler) as fw:
        assert fw.ready() is False
