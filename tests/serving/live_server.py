"""The real service on a loopback port, for the tests that need one: a trained store and
`forewarn serve` in a subprocess on a free 127.0.0.1 port, stopped (workers too) by `_kill`.

Imported by the test modules (tests/serving has no package: pytest puts this folder on
sys.path).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from features.contract import Portfolio
from features.loading import load_portfolio, write_portfolio
from features.simulator import simulate_portfolio
from training.pipeline import Store as TrainingStore
from training.pipeline import TrainingOptions, train

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


def trained_store(
    tmp_path_factory: pytest.TempPathFactory, quantiles: bool = False
) -> Iterator[Store]:
    """A simulated portfolio and its two champions, trained by `training.pipeline.train`
    into a tmp sqlite MLflow store; with `quantiles`, forewarn-finish / -cost too."""
    import mlflow

    root = tmp_path_factory.mktemp("forewarn-serving")
    sim = simulate_portfolio(260, seed=11)
    data = root / "portfolio"
    write_portfolio(sim.portfolio, data)
    # Score what a file load gives, as batch scoring does (same dtypes, same rows).
    portfolio = load_portfolio(data).portfolio
    uri = f"sqlite:///{root}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    options = TrainingOptions(
        max_trees=60, plots=False, n_bootstrap=20, reference_rows=1000, quantiles=quantiles
    )
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
