"""The real service on a loopback port: the same numbers as batch scoring, and its guards.

Small models are trained on a simulated portfolio into a throwaway MLflow store, then
`bentoml serve serving.service:Forewarn` runs in a subprocess on a free 127.0.0.1 port with
an API key, a small body limit and a small project limit. Every request goes to that
address only, and the server is stopped (and must exit) at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from features.catalogue import feature_names
from features.contract import Portfolio
from features.loading import load_portfolio, write_portfolio
from features.simulator import simulate_portfolio
from serving.client import ForewarnClient, ForewarnError, projects_from_portfolio
from serving.request_models import ScoreRequest
from training.pipeline import Store as TrainingStore
from training.pipeline import TrainingOptions, train

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KEY = "test-key-7f3a9c"
MAX_BODY = 1_000_000
MAX_PROJECTS = 40
READY_TIMEOUT_S = 240


@dataclass
class Store:
    uri: str
    data: Path
    portfolio: Portfolio
    as_of: date


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A simulated portfolio and its two champions, trained by `training.pipeline.train`
    into a tmp sqlite MLflow store."""
    import mlflow

    root = tmp_path_factory.mktemp("forewarn-serving")
    sim = simulate_portfolio(260, seed=11)
    data = root / "portfolio"
    write_portfolio(sim.portfolio, data)
    # Score what a file load gives, as batch scoring does (same dtypes, same rows).
    portfolio = load_portfolio(data).portfolio
    uri = f"sqlite:///{root}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    options = TrainingOptions(max_trees=60, plots=False, n_bootstrap=20, reference_rows=1000)
    try:
        trained = train(portfolio, options, TrainingStore(uri, (root / "artifacts").as_uri()))
    finally:
        mlflow.set_tracking_uri(previous)  # the store is the server's, not this process's
    assert {t: r.version for t, r in trained.items()} == {"delay": "1", "overrun": "1"}
    yield Store(uri=uri, data=data, portfolio=portfolio, as_of=sim.today)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _env(store: Store, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update(
        MLFLOW_TRACKING_URI=store.uri,
        FOREWARN_API_KEY=KEY,
        FOREWARN_MAX_BODY_BYTES=str(MAX_BODY),
        FOREWARN_MAX_PROJECTS_PER_REQUEST=str(MAX_PROJECTS),
        FOREWARN_WORKERS="1",  # two_workers below runs two
        BENTOML_DO_NOT_TRACK="true",
        **extra,
    )
    return env


def _start(serve: list[str], env: dict[str, str], cwd: Path, log: Path) -> Server:
    """`serve --host 127.0.0.1 --port <free>`, once /readyz says it is ready."""
    port = _free_port()
    command = [sys.executable, "-m", *serve, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{running.log_tail()}")
        try:
            if httpx.get(f"{running.url}/readyz", timeout=2).status_code == 200:
                return running
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            _kill(running)
            pytest.fail(f"not ready after {READY_TIMEOUT_S} s:\n{running.log_tail()}")
        time.sleep(0.5)


def _kill(running: Server) -> None:
    """Stop a server that a test left running: politely, then its workers by their ids.

    BentoML's workers run in process groups of their own, so killing the arbiter's group
    alone would leave them behind.
    """
    import psutil

    if running.process.poll() is not None:
        return
    workers = psutil.Process(running.process.pid).children(recursive=True)
    running.process.terminate()
    try:
        running.process.wait(30)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait(10)
    for worker in workers:
        if worker.is_running():
            worker.kill()


@pytest.fixture(scope="module")
def server(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "serve.log"
    # `forewarn serve` becomes `bentoml serve serving.service:Forewarn` (same process).
    running = _start(["forewarn.cli", "serve"], _env(store), REPO, log)
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
    assert slow_alone > 10 * max(alone), (slow_alone, alone)  # a slow request indeed
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
