"""Concurrent writers on one MLflow store: four `forewarn train` and two `forewarn retrain`
processes started at once, on an empty store.

On PostgreSQL nothing may be lost: every process succeeds, every run is recorded with its
metrics and artifacts, the versions are 1..N with no gap and no duplicate, and `champion`
ends on a version that passed the gate against the very champion it replaced (or, for a
trained version, took an empty seat). What the writers race on and where Forewarn retries
is in `training.tracking`'s docstring.

The same test runs against sqlite to say what happens there: sqlite takes one writer at a
time and answers the others "database is locked"; with the same retries the writers get
through, one after the other, on a store that already exists (on a new file, writers
starting together broke MLflow's table creation: docs/operations.md, sqlite is for one
user).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from pgcluster import PostgresCluster, missing_reason

from features.loading import write_portfolio
from features.simulator import simulate_portfolio

pytestmark = pytest.mark.slow

TRAINERS = 4
RETRAINERS = 2
FORBIDDEN = ("database is locked", "unique", "duplicate key", "deadlock", "traceback")


@dataclass(frozen=True)
class Portfolio:
    data: Path
    as_of: tuple[str, str]  # the two retrains' dates
    env: dict[str, str]


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Portfolio:
    """A small portfolio on disk, and an environment whose bytecode cache is shared.

    PYTHONDONTWRITEBYTECODE makes each process compile MLflow afresh (~10 s of CPU each);
    one warm-up import fills a cache that the six writers then share.
    """
    root = tmp_path_factory.mktemp("writers")
    sim = simulate_portfolio(80, seed=3)
    write_portfolio(sim.portfolio, root / "portfolio")
    today = pd.Timestamp(sim.today)
    dates = tuple((today - pd.Timedelta(days=d)).date().isoformat() for d in (60, 150))
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-c", "import training.pipeline, mlflow.lightgbm, forewarn.cli"],
        env=env,
        check=True,
    )
    return Portfolio(root / "portfolio", (dates[0], dates[1]), env)


@dataclass
class Finished:
    command: str
    code: int
    stdout: str
    stderr: str


def _run_writers(portfolio: Portfolio, uri: str, root: Path) -> list[Finished]:
    forewarn = str(Path(sys.executable).parent / "forewarn")
    commands = [
        [forewarn, "train", str(portfolio.data), "--target", "delay", "--json"]
        for _ in range(TRAINERS)
    ] + [
        [forewarn, "retrain", str(portfolio.data), "--target", "delay", "--as-of", day, "--json"]
        for day in portfolio.as_of[:RETRAINERS]
    ]
    env = {
        **portfolio.env,
        "MLFLOW_TRACKING_URI": uri,
        "FOREWARN_MODELS_DIR": str(root / "models"),
    }
    procs = []
    for i, command in enumerate(commands):
        out_dir = {"FOREWARN_OUT_DIR": str(root / f"out{i}")}
        procs.append(
            subprocess.Popen(
                command,
                env={**env, **out_dir},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    finished = []
    for command, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=1800)
        finished.append(Finished(command[1], proc.returncode, out, err))
    return finished


def _check_store(uri: str, finished: list[Finished]) -> None:
    """Every run, version and alias as a careful reader of the registry would check them."""
    from mlflow import MlflowClient

    from training import tracking

    for f in finished:
        assert f.code == 0, (f.command, f.stderr[-3000:])
        lowered = f.stderr.lower()
        assert not any(word in lowered for word in FORBIDDEN), (f.command, f.stderr[-3000:])

    reported: list[str] = []
    for f in finished:
        version = json.loads(f.stdout)["delay"]["model_version"]
        assert version is not None, (f.command, f.stdout[-2000:])
        reported.append(version)

    tracking.configure(uri)
    versions = tracking.list_versions("delay")
    numbers = [int(v.version) for v in versions]
    assert numbers == list(range(1, len(finished) + 1)), numbers  # unique, gap-free
    assert sorted(map(int, reported)) == numbers  # each process got the version it reports

    client = MlflowClient()
    for v in versions:
        run = client.get_run(v.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics.get("auc") is not None, v.version
        artifacts = set(tracking.run_artifacts(v.run_id))
        assert {"evaluation/delay.json", "reference/reference.parquet"} <= artifacts, artifacts
        assert any(a.endswith("features.json") for a in artifacts)
    # and the models themselves load back, each from its own artifacts
    assert tracking.load_model("delay", "1").model.booster.num_trees() > 0
    assert tracking.load_model("delay", str(numbers[-1])).model.booster.num_trees() > 0

    champion = tracking.alias_version("delay", tracking.CHAMPION)
    assert champion is not None
    previous = tracking.alias_version("delay", tracking.PREVIOUS_CHAMPION)
    if champion.tags.get("trained_by") == "retrain":
        assert champion.tags["gate_decision"] == "promoted"
        # gated against exactly the champion it replaced
        assert champion.tags["gate_champion_version"] == (previous.version if previous else "none")
    else:
        assert champion.tags.get("trained_by") == "train"
        assert previous is None  # a trained model only takes an empty seat
    assert tracking.PROMOTION not in champion.tags
    # the promotion lock was released by everyone
    names = {m.name for m in client.search_registered_models()}
    # forewarn-finish: the quantile model `forewarn train` registers beside the classifier
    assert names == {"forewarn-delay", "forewarn-finish"}, names


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with PostgresCluster() as pg:
        yield pg


def test_four_trainers_and_two_retrainers_on_postgres(
    portfolio: Portfolio, postgres: PostgresCluster, tmp_path: Path
) -> None:
    uri = postgres.create_database("writers")
    started = time.monotonic()
    finished = _run_writers(portfolio, uri, tmp_path)
    print(f"6 writers on PostgreSQL: {time.monotonic() - started:.0f} s")
    _check_store(uri, finished)


def test_the_same_writers_on_sqlite(portfolio: Portfolio, tmp_path: Path) -> None:
    from training import tracking

    uri = f"sqlite:///{tmp_path / 'models' / 'mlflow.db'}"
    # An existing store (one analyst's): on a new file, writers starting together break
    # MLflow's table creation, which sqlite cannot run in a transaction.
    tracking.configure(uri, (tmp_path / "models" / "artifacts").as_uri())
    finished = _run_writers(portfolio, uri, tmp_path)
    _check_store(uri, finished)
