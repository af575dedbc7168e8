"""Faults, each provoked for real: an unreachable tracking store, a corrupt or missing model
artifact, a worker killed mid-request, a full disk while writing quarantine or scores, and
SIGTERM while `forewarn score` writes.

Servers run on 127.0.0.1 and are stopped by the test (live_server._kill); the full disk is
a 32 KB tmpfs mounted for the test (root; skipped where mounting is not allowed).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from live_server import (
    KEY,
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

from features.loading import write_portfolio
from features.simulator import simulate_portfolio
from serving.client import projects_from_portfolio
from serving.response_models import ErrorResponse

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    yield from trained_store(tmp_path_factory)


def _start_unready(env: dict[str, str], log: Path) -> Server:
    """`forewarn serve`, once it is alive and has said in its log why it is not ready."""
    port = _free_port()
    command = [sys.executable, "-m", "forewarn.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    running = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "Forewarn is not ready" not in running.log_tail():
        if process.poll() is not None or time.monotonic() > deadline:
            _kill(running)
            pytest.fail(f"no not-ready line from the server:\n{running.log_tail()}")
        time.sleep(0.5)
    return running


def _assert_up_not_ready(server: Server, reason: str) -> None:
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code != 200
    models = httpx.get(f"{server.url}/models", headers=AUTH, timeout=10)
    assert models.status_code == 503
    assert reason in ErrorResponse.model_validate_json(models.text).error
    refused = httpx.post(f"{server.url}/score", headers=AUTH, timeout=10, json={
        "projects": [{"project_id": "P", "planned_start": "2024-01-01",
                      "planned_finish": "2024-12-31"}]})  # fmt: skip
    assert refused.status_code == 503, refused.text
    error = ErrorResponse.model_validate_json(refused.text).error
    assert "could not load the champion models" in error and reason in error, error


def test_unreachable_tracking_store_leaves_the_service_up_not_ready(
    store: Store, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = _env(store, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    env["MLFLOW_TRACKING_URI"] = nowhere
    server = _start_unready(env, tmp_path / "serve.log")
    try:
        # Unreachable, not "no champion": training one would not help.
        _assert_up_not_ready(server, f"the tracking store {nowhere} is unreachable")
        # An outage is one line that says so, not the network stack's chained traceback.
        assert "Traceback" not in server.log.read_text()
    finally:
        _kill(server)


@pytest.fixture
def damaged_models(store: Store, request: pytest.FixtureRequest) -> Iterator[str]:
    """The champions' LightGBM text files corrupted or deleted; restored afterwards."""
    root = Path(store.uri.removeprefix("sqlite:///")).parent
    files = sorted((root / "artifacts").rglob("model.lgb"))
    assert len(files) == 2, files
    backups = {f: f.read_bytes() for f in files}
    for f in files:
        if request.param == "corrupt":
            f.write_bytes(b"tree\nnot a LightGBM model\x00\xff")
        else:
            f.unlink()
    try:
        yield str(request.param)
    finally:
        for f, content in backups.items():
            f.write_bytes(content)


@pytest.mark.parametrize("damaged_models", ["corrupt", "missing"], indirect=True)
def test_a_corrupt_or_missing_model_leaves_the_service_up_not_ready(
    store: Store, damaged_models: str, tmp_path: Path
) -> None:
    server = _start_unready(_env(store), tmp_path / "serve.log")
    try:
        _assert_up_not_ready(server, store.uri)
        assert "Traceback" in server.log.read_text()  # a real fault keeps its traceback
    finally:
        _kill(server)


def test_a_worker_killed_mid_request_the_other_answers_and_it_restarts(
    store: Store, tmp_path: Path
) -> None:
    import psutil

    env = _env(store)
    env.update(
        FOREWARN_WORKERS="2",
        FOREWARN_MAX_PROJECTS_PER_REQUEST="5000",
        FOREWARN_MAX_BODY_BYTES=str(200_000_000),
        FOREWARN_BALANCE_CONNECTIONS="false",
    )
    server = _start(["forewarn.cli", "serve"], env, REPO, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while server.log_tail().count("Forewarn loaded") < 2:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.5)
        ids = store.portfolio.projects["project_id"].tolist()
        projects = projects_from_portfolio(store.portfolio, ids)
        many = [p.model_copy(update={"project_id": f"{p.project_id}-{k}"}) for k in range(8)
                for p in projects]  # fmt: skip
        big = {"projects": [p.model_dump(mode="json", exclude_none=True) for p in many]}
        port = int(server.url.rsplit(":", 1)[1])
        outcome: dict[str, Any] = {}

        def slow() -> None:
            try:
                outcome["status"] = httpx.post(f"{server.url}/score", json=big, headers=AUTH,
                                               timeout=120).status_code  # fmt: skip
            except httpx.HTTPError as exc:
                outcome["error"] = type(exc).__name__

        thread = threading.Thread(target=slow)
        thread.start()
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and thread.is_alive():
            for worker in psutil.Process(server.process.pid).children(recursive=True):
                held = worker.net_connections(kind="tcp")
                if any(c.status == "ESTABLISHED" and c.laddr.port == port for c in held):
                    victim = worker
            time.sleep(0.05)
        assert victim is not None, "no worker took the big request"
        time.sleep(0.5)  # into the request
        victim.kill()
        thread.join(120)
        assert "status" not in outcome or outcome["status"] >= 500, outcome  # cut short
        # The other worker answers new connections meanwhile.
        small = {"projects": big["projects"][:1]}
        for _ in range(5):
            with httpx.Client(timeout=30) as fresh:
                answer = fresh.post(f"{server.url}/score", json=small, headers=AUTH)
            assert answer.status_code == 200, answer.text[:300]
        # And the killed one comes back: two workers with their models again.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            alive = [w for w in psutil.Process(server.process.pid).children(recursive=True)
                     if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]  # fmt: skip
            if server.log_tail().count("Forewarn loaded") >= 3 and victim.pid not in {
                w.pid for w in alive
            }:
                break
            assert time.monotonic() < deadline, f"not restarted:\n{server.log_tail()}"
            time.sleep(0.5)
    finally:
        _kill(server)


# ------------------------------------------------------------------- files: whole or none


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 32 KB tmpfs of its own: a real full disk once 32 KB are written."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _cli(args: list[str], env: dict[str, str], cwd: Path, **kw: Any) -> Any:
    return subprocess.run([sys.executable, "-m", "forewarn.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, **kw)  # fmt: skip


def test_a_full_disk_while_writing_scores_leaves_no_partial_file(
    store: Store, tmp_path: Path, full_disk: Path
) -> None:
    out = full_disk / "scores.csv"
    out.write_text("the previous scores\n")
    run = _cli(["score", str(store.data), "--out", str(out), "--explain"], _env(store), tmp_path)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    said = " ".join((run.stdout + run.stderr).split())
    assert "could not write" in said and "no partial file" in said, said
    assert out.read_text() == "the previous scores\n"
    assert sorted(p.name for p in full_disk.iterdir()) == ["scores.csv"]


def test_a_full_disk_while_writing_quarantine_leaves_no_partial_file(
    store: Store, tmp_path: Path, full_disk: Path
) -> None:
    sim = simulate_portfolio(60, seed=4).portfolio
    reports = sim.status_reports.copy()
    reports["percent_complete"] = 250.0  # every report breaks the contract: quarantined
    data = tmp_path / "bad"
    write_portfolio(type(sim)(sim.projects, reports, sim.changes), data)
    assert sum(f.stat().st_size for f in data.iterdir()) > 100_000  # a quarantine that big
    run = _cli(["validate", str(data), "--out", str(full_disk)], _env(store), tmp_path)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    said = " ".join((run.stdout + run.stderr).split())
    assert "could not write the quarantine file" in said and "No space left" in said, said
    assert list(full_disk.iterdir()) == []


def test_sigterm_while_score_writes_leaves_the_whole_file_or_none(
    store: Store, tmp_path: Path
) -> None:
    env = _env(store)
    reference = tmp_path / "reference.csv"
    done = _cli(["score", str(store.data), "--out", str(reference), "--explain"], env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = len(pd.read_csv(reference))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scores.csv"
    command = [sys.executable, "-m", "forewarn.cli", "score", str(store.data), "--out",
               str(out), "--explain"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if any(p.name.endswith(".partial") for p in out_dir.iterdir()):
            break  # the write has begun: terminate it now
        time.sleep(0.001)
    caught_writing = process.poll() is None
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)
    left = sorted(p.name for p in out_dir.iterdir())
    assert not any(name.endswith(".partial") for name in left), left
    if out.exists():  # finished before the signal landed: then it is whole
        assert len(pd.read_csv(out)) == rows
    else:
        assert code != 0
    print(f"SIGTERM during the write: {caught_writing}; exit {code}; left {left}")
    shutil.rmtree(out_dir)


# ------------------------------------------------- last: it adds versions to the store


def test_two_retrains_at_once_promote_once(store: Store, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store.uri)

    def versions() -> dict[str, int]:
        return {name: len(client.search_model_versions(f"name='{name}'"))
                for name in ("forewarn-delay", "forewarn-overrun")}  # fmt: skip

    before = versions()
    command = [sys.executable, "-m", "forewarn.cli", "retrain", str(store.data), "--as-of",
               store.as_of.isoformat(), "--json"]  # fmt: skip
    runs = [subprocess.Popen(command, cwd=tmp_path, env=_env(store), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outputs = [r.communicate(timeout=900) for r in runs]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode in (0, 1), err[-3000:]
    # One challenger per target was trained and gated; the other run found its fingerprint.
    assert versions() == {name: n + 1 for name, n in before.items()}, outputs
    assert sum("nothing to do" in out for out, _ in outputs) == 1, outputs
