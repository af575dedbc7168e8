"""The real service on a loopback port: the same numbers as batch scoring, and its guards.

Small models are trained on a simulated portfolio into a throwaway MLflow store, then
`bentoml serve serving.service:Forewarn` runs in a subprocess on a free 127.0.0.1 port with
an API key, a small body limit and a small project limit. Every request goes to that
address only, and the server is stopped (and must exit) at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from live_server import (
    KEY,
    MAX_BODY,
    MAX_PROJECTS,
    READY_TIMEOUT_S,
    REPO,
    Server,
    Store,
    _env,
    _free_port,
    _kill,
    _start,
    trained_store,
)

from features.catalogue import feature_names
from serving.client import ForewarnClient, ForewarnError, projects_from_portfolio
from serving.request_models import ScoreRequest
from serving.response_models import ErrorResponse

pytestmark = pytest.mark.slow

BODY_TIMEOUT_S = 2
FUZZ_EXAMPLES = 40  # per operation: about a minute here


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    # With the quantile champions: the Bento must pack them too.
    yield from trained_store(tmp_path_factory, quantiles=True)


@pytest.fixture(scope="module")
def server(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "serve.log"
    # `forewarn serve` becomes `bentoml serve serving.service:Forewarn` (same process).
    env = _env(store, FOREWARN_DATA=str(store.data), FOREWARN_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S))
    running = _start(["forewarn.cli", "serve"], env, REPO, log)
    try:
        yield running
    finally:
        _kill(running)  # when test_server_stops_cleanly did not run or failed


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[ForewarnClient]:
    with ForewarnClient(server.url, api_key=KEY, timeout=60) as fw:
        yield fw


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _running_ids(store: Store, n: int) -> list[str]:
    projects = store.portfolio.projects
    day = pd.Timestamp(store.as_of)
    running = projects[
        (projects["planned_start"] <= day)
        & ~(projects["actual_finish"] <= day)
        & (projects["status"] != "cancelled")
    ]
    return running["project_id"].head(n).tolist()


def _payload(store: Store, ids: list[str]) -> dict[str, Any]:
    projects = projects_from_portfolio(store.portfolio, ids)
    return {
        "projects": [p.model_dump(mode="json", exclude_none=True) for p in projects],
        "as_of": store.as_of.isoformat(),
    }


# ----------------------------------------------------------------------------- answers


def test_probes_are_open(server: Server) -> None:
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_same_probabilities_as_batch_scoring(
    store: Store, client: ForewarnClient, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    run = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "score", str(store.data), "--out", str(out),
         "--as-of", store.as_of.isoformat(), "--explain", "--json"],
        cwd=REPO, env=_env(store), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    batch = pd.read_parquet(out).set_index("project_id")
    assert summary["projects"] == len(batch) > MAX_PROJECTS

    ids = batch.index[:MAX_PROJECTS].tolist()
    served = client.score(projects_from_portfolio(store.portfolio, ids), as_of=store.as_of)
    assert [p.project_id for p in served.projects] == ids
    for project in served.projects:
        row = batch.loc[project.project_id]
        assert project.as_of == store.as_of
        for p_col, rag_col, drivers_col in (
            ("p_late", "rag_late", "drivers_late"),
            ("p_over_budget", "rag_over_budget", "drivers_over_budget"),
        ):
            mine = getattr(project, p_col)
            if pd.isna(row[p_col]):
                assert mine is None
            else:
                assert mine == pytest.approx(row[p_col], rel=0, abs=1e-12)
            assert getattr(project, rag_col) == row[rag_col]
            batch_drivers = json.loads(row[drivers_col])
            assert [d.feature for d in getattr(project, drivers_col)] == [
                d["feature"] for d in batch_drivers
            ]
        assert project.rag == row["rag"]
        assert {m.name for m in project.models} == {"forewarn-delay", "forewarn-overrun"}


def test_drivers_read_like_sentences(store: Store, client: ForewarnClient) -> None:
    served = client.score(projects_from_portfolio(store.portfolio, _running_ids(store, 5)),
                          as_of=store.as_of)  # fmt: skip
    for project in served.projects:
        assert 1 <= len(project.drivers_late) <= 3
        for driver in project.drivers_late:
            assert driver.sentence[:1].isupper() or driver.sentence[:1].isdigit()
            assert "nan" not in driver.sentence.lower().split()


def test_overrun_without_budget_gets_a_reason(store: Store, client: ForewarnClient) -> None:
    project = projects_from_portfolio(store.portfolio, _running_ids(store, 1))[0]
    no_budget = project.model_copy(update={"budget": None})
    scored = client.score([no_budget], as_of=store.as_of).projects[0]
    assert scored.p_over_budget is None
    assert scored.rag_over_budget == "n/a"
    assert scored.over_budget_reason and "budget" in scored.over_budget_reason
    assert scored.drivers_over_budget == []
    assert scored.p_late is not None and scored.rag == scored.rag_late


def test_explain_gives_the_full_vector_in_log_odds(store: Store, client: ForewarnClient) -> None:
    project = projects_from_portfolio(store.portfolio, _running_ids(store, 1))[0]
    explained = client.explain(project, as_of=store.as_of)
    scored = client.score([project], as_of=store.as_of).projects[0]
    assert [r.target for r in explained.risks] == ["delay", "overrun"]
    for risk, p in zip(explained.risks, (scored.p_late, scored.p_over_budget), strict=True):
        assert "log-odds" in risk.space
        assert sorted(c.feature for c in risk.contributions) == sorted(feature_names())
        total = risk.base_value + sum(c.contribution for c in risk.contributions)
        assert total == pytest.approx(risk.raw_margin, abs=1e-9)
        assert risk.probability == pytest.approx(p, abs=1e-12)
        magnitudes = [abs(c.contribution) for c in risk.contributions]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_models_route_names_the_champions(client: ForewarnClient) -> None:
    info = client.models()
    assert [m.target for m in info.models] == ["delay", "overrun"]
    for model in info.models:
        assert model.name == f"forewarn-{model.target}"
        assert model.version == "1" and model.run_id
        assert model.trained_at and datetime.fromisoformat(model.trained_at)
        assert model.verdict == model.tags["verdict"]  # what training recorded
        assert model.recipe == model.tags["recipe"]
        assert model.source == "mlflow"


def test_openapi_is_valid_and_its_example_scores(server: Server) -> None:
    response = httpx.get(f"{server.url}/docs.json", headers=_auth())
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    for path in ("/score", "/explain", "/models", "/livez", "/readyz"):
        assert path in spec["paths"], path
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    example = body["schema"]["example"]
    assert body["schema"]["properties"]["projects"]["maxItems"] == MAX_PROJECTS
    ScoreRequest.model_validate(example)
    scored = httpx.post(f"{server.url}/score", json=example, headers=_auth(), timeout=60)
    assert scored.status_code == 200, scored.text
    assert scored.json()["projects"][0]["project_id"] == example["projects"][0]["project_id"]


# ------------------------------------------------------------------------------- guards


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/score"), ("POST", "/explain"), ("GET", "/models"), ("GET", "/docs.json")],
)
def test_401_without_the_token(server: Server, store: Store, method: str, path: str) -> None:
    body = _payload(store, _running_ids(store, 1)) if method == "POST" else None
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.request(method, f"{server.url}{path}", json=body, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert KEY not in response.text


def _han(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_sentences_and_reasons_in_the_asked_language(server: Server, store: Store) -> None:
    """lang=zh-CN (or Accept-Language) gives Chinese sentences and reasons; keys, feature
    codes and numbers stay as they are; the default stays English."""
    payload = _payload(store, _running_ids(store, 3))
    payload["projects"][0].pop("budget", None)  # a reason to translate too
    url = f"{server.url}/score"
    english = httpx.post(url, json=payload, headers=_auth(), timeout=60)
    chinese = httpx.post(url, json={**payload, "lang": "zh-CN"}, headers=_auth(), timeout=60)
    by_header = httpx.post(
        url, json=payload, headers={**_auth(), "Accept-Language": "zh-CN,zh;q=0.9"}, timeout=60
    )
    assert english.status_code == chinese.status_code == by_header.status_code == 200
    en, zh = english.json()["projects"], chinese.json()["projects"]
    assert by_header.json()["projects"] == zh
    assert [p.keys() for p in en] == [p.keys() for p in zh]
    assert en[0]["over_budget_reason"] and not _han(en[0]["over_budget_reason"])
    assert _han(zh[0]["over_budget_reason"])
    for a, b in zip(en, zh, strict=True):
        assert (a["p_late"], a["rag"]) == (b["p_late"], b["rag"])
        for da, db in zip(a["drivers_late"], b["drivers_late"], strict=True):
            assert (da["feature"], da["value"], da["contribution"]) == (
                db["feature"],
                db["value"],
                db["contribution"],
            )
            assert not _han(da["sentence"]) and _han(db["sentence"])
    explained = httpx.post(
        f"{server.url}/explain",
        json={"project": payload["projects"][1], "as_of": payload["as_of"], "lang": "zh-CN"},
        headers=_auth(),
        timeout=60,
    )
    assert explained.status_code == 200
    assert all(_han(d["sentence"]) for r in explained.json()["risks"] for d in r["drivers"])
    refused = httpx.post(url, json={**payload, "lang": "fr"}, headers=_auth(), timeout=60)
    assert refused.status_code == 400 and "en, zh-CN" in refused.text


def _error(server: Server, body: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/score", json=body, headers=_auth(), timeout=60)
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text and KEY not in response.text
    data: dict[str, Any] = response.json()
    return data


def _one_project(store: Store) -> dict[str, Any]:
    payload = _payload(store, _running_ids(store, 1))
    project = payload["projects"][0]
    assert project["status_reports"], "a running project with reports"
    return payload


def test_400_negative_cost_names_field_and_rule(server: Server, store: Store) -> None:
    payload = _one_project(store)
    payload["projects"][0]["status_reports"][0]["actual_cost"] = -5
    [detail] = _error(server, payload)["detail"]
    assert detail["loc"] == ["projects", 0, "status_reports", 0, "actual_cost"]
    assert "greater than or equal to 0" in detail["msg"]


def test_400_report_before_the_start(server: Server, store: Store) -> None:
    payload = _one_project(store)
    project = payload["projects"][0]
    start = date.fromisoformat(project["planned_start"])
    if project.get("actual_start"):
        start = min(start, date.fromisoformat(project["actual_start"]))
    project["status_reports"][0]["report_date"] = date(start.year - 1, 1, 15).isoformat()
    [detail] = _error(server, payload)["detail"]
    assert detail["loc"] == ["projects", 0, "status_reports", 0, "report_date"]
    assert "before the project's start" in detail["msg"]


def test_400_missing_required_field(server: Server, store: Store) -> None:
    payload = _one_project(store)
    del payload["projects"][0]["planned_start"]
    [detail] = _error(server, payload)["detail"]
    assert detail["loc"] == ["projects", 0, "planned_start"]
    assert detail["msg"] == "Field required"


def test_400_wrong_type(server: Server, store: Store) -> None:
    payload = _one_project(store)
    payload["projects"][0]["budget"] = "a lot"
    [detail] = _error(server, payload)["detail"]
    assert detail["loc"] == ["projects", 0, "budget"]
    assert "valid number" in detail["msg"]


def test_400_too_many_projects(server: Server, store: Store) -> None:
    payload = _one_project(store)
    payload["projects"] = [
        {**payload["projects"][0], "project_id": f"X{i}", "status_reports": [], "changes": []}
        for i in range(MAX_PROJECTS + 1)
    ]
    [detail] = _error(server, payload)["detail"]
    assert detail["loc"] == ["projects"]
    assert f"at most {MAX_PROJECTS}" in detail["msg"]


def test_400_through_the_client(server: Server, store: Store, client: ForewarnClient) -> None:
    project = projects_from_portfolio(store.portfolio, _running_ids(store, 1))[0]
    broken = project.model_copy(update={"planned_finish": project.planned_start})
    with pytest.raises(ForewarnError) as caught:
        client.score([broken], as_of=store.as_of)
    assert caught.value.status == 400
    assert "projects.0.planned_finish: planned_finish must be after planned_start" in str(
        caught.value
    )


def test_413_for_an_oversized_body(server: Server) -> None:
    big = b'{"projects": [' + b" " * (MAX_BODY + 10) + b"]}"
    headers = {**_auth(), "Content-Type": "application/json"}
    declared = httpx.post(f"{server.url}/score", content=big, headers=headers)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for start in range(0, len(big), 16_384):
            yield big[start : start + 16_384]

    streamed = httpx.post(f"{server.url}/score", content=chunks(), headers=headers)
    assert streamed.status_code == 413


# ------------------------------------------------------------------- under attack (17, 19)


def _refusal(response: httpx.Response, status: int) -> ErrorResponse:
    """The answer is `status` in the declared error shape, with nothing internal in it."""
    assert response.status_code == status, response.text
    for leak in ("Traceback", KEY, "IODescriptor", "errors.pydantic.dev", "validation error"):
        assert leak not in response.text, leak
    return ErrorResponse.model_validate_json(response.text)


def test_every_refusal_is_the_declared_error_model(server: Server, store: Store) -> None:
    spec = httpx.get(f"{server.url}/docs.json", headers=_auth()).json()
    declared = spec["components"]["schemas"]["ErrorResponse"]
    assert declared["properties"]["detail"]["type"] == "array"
    for path, codes in (("/score", ("400", "401", "408", "413", "415", "429")),
                        ("/explain", ("400", "401", "413")), ):  # fmt: skip
        responses = spec["paths"][path]["post"]["responses"]
        for code in codes:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, code)
    payload = _one_project(store)
    payload["projects"][0]["budget"] = "a lot"
    payload["projects"][0]["status_reports"][0]["actual_cost"] = -5
    bad = _refusal(httpx.post(f"{server.url}/score", json=payload, headers=_auth()), 400)
    assert len(bad.detail) == 2 and bad.error.startswith("2 problems in the request: ")
    assert {d.type for d in bad.detail} == {"number_type", "greater_than_equal"}
    _refusal(httpx.post(f"{server.url}/score", json=payload), 401)
    big = b'{"projects": [' + b" " * (MAX_BODY + 10) + b"]}"
    headers = {**_auth(), "Content-Type": "application/json"}
    _refusal(httpx.post(f"{server.url}/score", content=big, headers=headers), 413)
    form = {**_auth(), "Content-Type": "multipart/form-data"}  # once a 500
    _refusal(httpx.post(f"{server.url}/score", content=b"{}", headers=form), 415)


def test_a_rejected_request_is_one_log_line_without_body_or_traceback(
    server: Server, store: Store
) -> None:
    before = server.log.read_text(errors="replace")
    payload = _one_project(store)
    marker = "Q-7f1c-secret-project"
    payload["projects"][0]["project_id"] = marker
    payload["projects"][0]["status_reports"][0]["percent_complete"] = 180
    for _ in range(5):
        _refusal(httpx.post(f"{server.url}/score", json=payload, headers=_auth()), 400)
    _refusal(httpx.post(f"{server.url}/score?token={marker}", json=payload), 401)
    deadline = time.monotonic() + 10
    while server.log.read_text(errors="replace").count("rejected route=") < (
        before.count("rejected route=") + 6
    ):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    new = server.log.read_text(errors="replace")[len(before) :]
    lines = [line for line in new.splitlines() if "rejected route=" in line]
    assert len(lines) == 6, new
    assert sum("status=400 rule=less_than_equal" in line for line in lines) == 5
    assert "at=projects.0.status_reports.0.percent_complete" in lines[0]
    assert "status=401" in lines[-1]
    assert "Traceback" not in new and "Exception on" not in new
    assert marker not in new and KEY not in new


def test_metrics_stay_small_whatever_paths_are_sent(server: Server) -> None:
    import random

    rng = random.Random(5)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(1000):
            path = "/" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=12))
            http.get(path, headers=_auth() if i % 2 else {})  # with the key and without
        metrics = http.get("/metrics", headers=_auth())
    assert metrics.status_code == 200
    assert len(metrics.content) < 200_000, len(metrics.content)
    assert 'route="other"' in metrics.text
    assert 'route="/score"' in metrics.text  # the earlier tests' requests


@pytest.mark.parametrize(
    ("where", "value"),
    [("as_of", "9999-12-31"), ("as_of", "0001-01-01"), ("planned_start", "0001-01-01"),
     ("report_date", "2262-05-01")],
)  # fmt: skip
def test_dates_outside_1678_2261_get_400(
    server: Server, store: Store, where: str, value: str
) -> None:
    payload = _one_project(store)
    project = payload["projects"][0]
    if where == "as_of":
        payload["as_of"] = value
        loc = ["as_of"]
    elif where == "planned_start":
        project["planned_start"] = value
        loc = ["projects", 0, "planned_start"]
    else:
        project["status_reports"][0]["report_date"] = value
        loc = ["projects", 0, "status_reports", 0, "report_date"]
    refused = _refusal(httpx.post(f"{server.url}/score", json=payload, headers=_auth()), 400)
    assert [d.loc for d in refused.detail] == [loc]
    assert "1678" in refused.detail[0].msg and "2261" in refused.detail[0].msg


def test_the_view_refuses_a_date_it_cannot_hold(server: Server, store: Store) -> None:
    [pid] = _running_ids(store, 1)
    url = f"{server.url}/views/explain/{pid}"
    for day in ("9999-12-31", "1500-01-01"):
        page = httpx.get(url, params={"as_of": day}, headers=_auth(), timeout=60)
        assert page.status_code == 400, page.text[:300]
        assert "1678" in page.text
    assert httpx.get(url, params={"as_of": store.as_of.isoformat()}, headers=_auth(),
                     timeout=120).status_code == 200  # fmt: skip


def test_a_slow_body_gets_408_and_others_are_answered(server: Server, store: Store) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps(_payload(store, _running_ids(store, 1))).encode()

    async def slow_sender() -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:10])
        started = time.monotonic()
        answer = await reader.read(4096)  # the server answers before the body is complete
        writer.close()
        return answer, time.monotonic() - started

    async def main() -> tuple[list[tuple[bytes, float]], float]:
        senders = [asyncio.create_task(slow_sender()) for _ in range(8)]
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(headers=_auth(), timeout=60) as http:
            t0 = time.monotonic()
            quick = await http.post(f"{server.url}/score", content=body,
                                    headers={"Content-Type": "application/json"})  # fmt: skip
            quick_took = time.monotonic() - t0
        assert quick.status_code == 200, quick.text
        return list(await asyncio.gather(*senders)), quick_took

    answers, quick_took = asyncio.run(main())
    assert quick_took < BODY_TIMEOUT_S, "the slow senders held the others up"
    for answer, took in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert BODY_TIMEOUT_S - 0.5 < took < BODY_TIMEOUT_S + 5, took


def test_a_project_without_status_reports_is_scored_with_a_caveat(
    store: Store, client: ForewarnClient
) -> None:
    project = projects_from_portfolio(store.portfolio, _running_ids(store, 1))[0]
    bare = project.model_copy(update={"project_id": "BARE", "status_reports": []})
    scored = client.score([project, bare], as_of=store.as_of).projects
    assert scored[0].caveats == []
    assert len(scored[1].caveats) == 1 and "no status report" in scored[1].caveats[0]
    assert scored[1].p_late is not None  # still scored, with the caveat


def test_the_client_splits_a_list_over_the_limit(store: Store, client: ForewarnClient) -> None:
    ids = _running_ids(store, MAX_PROJECTS + 5)
    assert len(ids) == MAX_PROJECTS + 5
    projects = projects_from_portfolio(store.portfolio, ids)
    answer = client.score(projects, as_of=store.as_of)
    assert [p.project_id for p in answer.projects] == ids
    assert client.projects_per_request() == MAX_PROJECTS


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    """All of schemathesis's checks (and the hook's), a fixed seed, a bounded run."""
    here = Path(__file__).parent
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(here)}
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(here / "schemathesis.toml"),
        "run", f"{server.url}/docs.json",
        "--header", f"Authorization: Bearer {KEY}",
        "--seed", "17", "--max-examples", str(FUZZ_EXAMPLES), "--workers", "2",
        "--request-timeout", "60", "--no-color",
    ]  # fmt: skip
    started = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    took = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert "No issues found" in out, out[-3000:]
    print(f"schemathesis: {took:.0f} s; {out.strip().splitlines()[-1]}")


# ------------------------------------------------------------------------- two workers


@pytest.fixture(scope="module")
def two_workers(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`forewarn serve` with two workers and room for a big request; yielded once both
    workers have loaded their models."""
    log = tmp_path_factory.mktemp("two-workers") / "serve.log"
    env = _env(store)
    env.update(
        FOREWARN_WORKERS="2",
        FOREWARN_MAX_PROJECTS_PER_REQUEST="5000",
        FOREWARN_MAX_BODY_BYTES=str(200_000_000),
    )
    running = _start(["forewarn.cli", "serve"], env, REPO, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while running.log_tail().count("Forewarn loaded") < 2:
            assert time.monotonic() < deadline, running.log_tail()
            time.sleep(0.5)
        yield running
    finally:
        _kill(running)


def test_a_slow_request_does_not_hold_up_small_ones(two_workers: Server, store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ids = _running_ids(store, 60)
    projects = projects_from_portfolio(store.portfolio, ids)
    many = [p.model_copy(update={"project_id": f"{p.project_id}-{k}"}) for k in range(15)
            for p in projects]  # fmt: skip
    big = {"projects": [p.model_dump(mode="json", exclude_none=True) for p in many],
           "as_of": store.as_of.isoformat()}  # fmt: skip
    small = _payload(store, ids[:1])
    url = f"{two_workers.url}/score"

    def post(body: dict[str, Any]) -> float:
        with httpx.Client(headers=_auth(), timeout=120) as http:  # a connection of its own
            started = time.perf_counter()
            answer = http.post(url, json=body)
            assert answer.status_code == 200, answer.text[:500]
            return time.perf_counter() - started

    alone = [post(small) for _ in range(5)]
    slow_alone = post(big)
    # A slow request indeed (the median: the first small call also warms the connection).
    assert slow_alone > 10 * sorted(alone)[2], (slow_alone, alone)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(post, big)
        time.sleep(slow_alone / 5)  # well into it
        quick = [post(small) for _ in range(5)]
        done_first = not slow.done()
        slow_took = slow.result()
    assert done_first, "the small requests waited for the slow one"
    assert max(quick) < slow_took / 3, (quick, slow_took)


# ------------------------------------------------------------------------------- the Bento


def test_built_bento_serves_the_same_answers(
    store: Store, client: ForewarnClient, tmp_path: Path
) -> None:
    env = _env(store, BENTOML_HOME=str(tmp_path / "bentoml"))
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    tag = re.search(r'Successfully built Bento\(tag="([^"]+)"\)', build.stdout)
    assert tag, build.stdout[-2000:]
    # No registry at serving time: the Bento must carry its models.
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path}/absent/mlflow.db"
    bento = _start(["bentoml", "serve", tag.group(1)], env, tmp_path, tmp_path / "bento.log")
    try:
        with ForewarnClient(bento.url, api_key=KEY, timeout=60) as packed:
            assert {m.source for m in packed.models().models} == {"bento"}
            projects = projects_from_portfolio(store.portfolio, _running_ids(store, 25))
            ours = packed.score(projects, as_of=store.as_of)
            theirs = client.score(projects, as_of=store.as_of)
            assert ours == theirs
            # The ranges came from the Bento's own copy of forewarn-finish / forewarn-cost.
            assert all(p.finish_p80 is not None for p in ours.projects)
            assert any(p.cost_p80 is not None for p in ours.projects)
            assert packed.explain(projects[0], as_of=store.as_of) == client.explain(
                projects[0], as_of=store.as_of
            )
    finally:
        _kill(bento)
    assert bento.process.returncode == 0, bento.log_tail()


# ------------------------------------------------------------------------------ last: stop


def test_server_stops_cleanly(server: Server) -> None:
    import psutil

    workers = psutil.Process(server.process.pid).children(recursive=True)
    assert workers, "the arbiter runs its worker(s) as children"
    server.process.terminate()
    code = server.process.wait(timeout=60)
    assert code == 0, server.log_tail()
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers left running: {alive}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) != 0


def test_refuses_an_open_bind_without_a_key(store: Store) -> None:
    env = _env(store)
    env.pop("FOREWARN_API_KEY")
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Forewarn"]
    command += ["--host", "0.0.0.0", "--port", str(_free_port())]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode != 0
    assert "FOREWARN_API_KEY" in run.stderr + run.stdout


def test_cli_serve_refuses_an_open_bind_without_a_key(store: Store) -> None:
    env = _env(store)
    env.pop("FOREWARN_API_KEY")
    command = [sys.executable, "-m", "forewarn.cli", "serve", "--host", "0.0.0.0"]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "FOREWARN_API_KEY" in run.stderr
