"""Every command that talks to MLflow, against a real PostgreSQL store and a tracking server.

One PostgreSQL cluster for the module (initdb in a temp folder, 127.0.0.1, stopped at the
end). Train, retrain, score and drift run through the CLI with
``MLFLOW_TRACKING_URI=postgresql://…``; then `mlflow server` on the same PostgreSQL (an
``http://`` URI, artifacts proxied to the server's own folder) takes a training run and
serves the champion to `forewarn score`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pgcluster import PostgresCluster, missing_reason
from typer.testing import CliRunner

from features.loading import write_portfolio
from features.simulator import simulate_portfolio

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]


@dataclass(frozen=True)
class World:
    pg: PostgresCluster
    data: Path
    today: pd.Timestamp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("pg-store")
    sim = simulate_portfolio(120, seed=5)
    write_portfolio(sim.portfolio, root / "portfolio")
    with PostgresCluster() as pg:
        yield World(pg, root / "portfolio", pd.Timestamp(sim.today))


def _cli(*args: str) -> tuple[int, str, str]:
    from forewarn.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, uri: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("FOREWARN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FOREWARN_OUT_DIR", str(tmp_path / "out"))


def _count(uri: str, table: str, where: str = "") -> int:
    import psycopg

    with psycopg.connect(uri) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} {where}").fetchone()
    assert row is not None
    return int(row[0])


# The classifiers' versions; train also registers the range models (forewarn-finish, -cost).
CLASSIFIERS = "WHERE name IN ('forewarn-delay', 'forewarn-overrun')"


def test_train_retrain_score_drift_on_postgres(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri = world.pg.create_database("direct")
    _env(monkeypatch, tmp_path, uri)

    code, out, err = _cli("train", str(world.data), "--json")
    assert code == 0, err
    trained = json.loads(out)
    assert {t: r["model_version"] for t, r in trained.items()} == {"delay": "1", "overrun": "1"}
    # Written into PostgreSQL itself (no sqlite file appeared beside the models folder).
    assert _count(uri, "model_versions", CLASSIFIERS) == 2
    assert _count(uri, "model_versions", "WHERE name LIKE 'forewarn-finish'") >= 1
    assert _count(uri, "runs") >= 4  # a run per classifier and per range model
    assert not (tmp_path / "models" / "mlflow.db").exists()

    as_of = (world.today - pd.Timedelta(days=120)).date().isoformat()
    code, out, err = _cli("retrain", str(world.data), "--as-of", as_of, "--json")
    assert code == 0, err
    retrained = json.loads(out)
    for target, result in retrained.items():
        assert result["model_version"] == "2", (target, result["decision"], result["reasons"])
    assert _count(uri, "model_versions", CLASSIFIERS) == 4

    scores = tmp_path / "scores.csv"
    code, out, err = _cli("score", str(world.data), "--out", str(scores), "--explain", "--json")
    assert code == 0, err
    frame = pd.read_csv(scores)
    assert len(frame) == json.loads(out)["projects"] > 0
    assert frame["p_late"].between(0, 1).all()

    code, out, err = _cli("drift", str(world.data), "--out", str(tmp_path / "drift.html"), "--json")
    assert code in (0, 1), err  # 1: drift found; either way it ran and logged
    assert json.loads(out)
    runs_after = _count(uri, "runs")
    assert runs_after >= 5  # 2 train + 2 retrain + the drift run, all in PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tracking_server(world: World, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`mlflow server` on PostgreSQL with its own artifact folder, on 127.0.0.1."""
    from training.tracking import store_uri

    backend = store_uri(world.pg.create_database("server"))
    artifacts = tmp_path / "server-artifacts"
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    command += ["--artifacts-destination", str(artifacts), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(0.5)
        yield url, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_train_and_score_through_a_tracking_server(
    world: World,
    tracking_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, artifacts = tracking_server
    _env(monkeypatch, tmp_path, url)

    code, out, err = _cli("train", str(world.data), "--target", "delay", "--json")
    assert code == 0, err
    assert json.loads(out)["delay"]["model_version"] == "1"
    # The artifacts went to the server's folder, none to this client's models folder.
    stored = {p.name for p in artifacts.rglob("*") if p.is_file()}
    assert {"model.lgb", "risk_model.json", "reference.parquet", "delay.json"} <= stored
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*.lgb"))

    scores = tmp_path / "scores.parquet"
    code, out, err = _cli("score", str(world.data), "--out", str(scores), "--json")
    assert code == 0, err
    summary = json.loads(out)
    # The delay classifier, and the finish ranges that train registered on its table.
    assert summary["models"]["delay"] == "forewarn-delay v1"
    assert set(summary["models"]) == {"delay", "finish"}
    assert len(pd.read_parquet(scores)) == summary["projects"] > 0
