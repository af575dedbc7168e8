"""The Spark engine gives the local engine's answers: same projects, probabilities, RAG and
drivers, on Spark ``local[2]`` (one session for the module: starting one takes seconds)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.loading import load_portfolio, write_portfolio
from features.simulator import simulate_portfolio
from serving.batch import output_frame, score_portfolio
from serving.champions import load_from_registry

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 (make test)"),
]
pyspark = pytest.importorskip("pyspark")

RAG = dict(red=0.60, amber=0.35, top_drivers=3, delay_tolerance=0.05, overrun_tolerance=0.05)


@dataclass(frozen=True)
class Trained:
    data: Path
    uri: str
    models_dir: Path
    as_of: Any
    bad_project: str  # the project whose report breaks the contract


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from training.pipeline import Store, TrainingOptions, train

    root = tmp_path_factory.mktemp("spark")
    sim = simulate_portfolio(200, seed=11)
    train(
        sim.portfolio,
        TrainingOptions(plots=False, n_bootstrap=20),
        Store(f"sqlite:///{root}/models/mlflow.db", (root / "models" / "artifacts").as_uri()),
        as_of=pd.Timestamp(sim.today) - pd.Timedelta(days=365),
    )
    # scored: a fresh portfolio (other projects), with a row that breaks the contract
    fresh = simulate_portfolio(250, seed=12).portfolio
    write_portfolio(fresh, root / "portfolio")
    reports = pd.read_csv(root / "portfolio" / "status_reports.csv")
    reports.loc[3, "percent_complete"] = "lots"
    reports.to_csv(root / "portfolio" / "status_reports.csv", index=False)
    latest = pd.to_datetime(reports["report_date"]).max()
    bad = str(reports.loc[3, "project_id"])
    uri = f"sqlite:///{root}/models/mlflow.db"
    return Trained(root / "portfolio", uri, root / "models", latest, bad)


@pytest.fixture(scope="module")
def _stop_spark() -> Iterator[None]:
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture
def spark(_stop_spark: None) -> Any:
    """The module's session: reused while it runs, started again when the CLI test's
    ``forewarn score --engine spark`` has stopped it (the CLI stops what it gets)."""
    from serving.spark_batch import spark_session

    return spark_session("local[2]")


def _local(trained: Trained, explain: bool) -> pd.DataFrame:
    loaded = load_portfolio(trained.data)
    champions = load_from_registry(trained.uri)
    scores = score_portfolio(
        loaded.portfolio, champions, trained.as_of.date(), explain=explain, **RAG
    )
    return output_frame(scores, explain).sort_values("project_id").reset_index(drop=True)


def _spark(trained: Trained, spark: Any, out: Path, explain: bool) -> pd.DataFrame:
    from serving.spark_batch import ScoringParameters, score_with_spark

    champions = load_from_registry(trained.uri)
    parameters = ScoringParameters(as_of=trained.as_of.date(), explain=explain, **RAG)
    done = score_with_spark(spark, str(trained.data), str(out), champions, parameters, buckets=3)
    assert done.quarantined == 1  # the bad percent_complete, as the local loader finds it
    frame = pd.read_parquet(out / "scores")
    assert done.projects == len(frame)
    frame["as_of"] = pd.to_datetime(frame["as_of"].astype(str)).dt.date
    return frame.sort_values("project_id").reset_index(drop=True)


def _same(local: pd.DataFrame, spark: pd.DataFrame, explain: bool) -> None:
    assert local["project_id"].tolist() == spark["project_id"].tolist()
    assert len(local) > 50
    for col in ("p_late", "p_over_budget", "margin_late", "margin_over_budget", "spi", "cpi"):
        a, b = local[col].to_numpy(float), spark[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, equal_nan=True, err_msg=col)
    for col in ("rag", "rag_late", "rag_over_budget", "as_of", "late_reason", "delay_model"):
        assert local[col].fillna("").tolist() == spark[col].fillna("").tolist(), col
    if explain:
        for col in ("drivers_late", "drivers_over_budget"):
            for mine, theirs in zip(local[col], spark[col], strict=True):
                a, b = json.loads(mine), json.loads(theirs)
                assert [(d["feature"], d["sentence"]) for d in a] == [
                    (d["feature"], d["sentence"]) for d in b
                ]
                np.testing.assert_allclose(
                    [d["contribution"] for d in a], [d["contribution"] for d in b], atol=1e-12
                )


def test_engines_agree_with_explanations(trained: Trained, spark: Any, tmp_path: Path) -> None:
    local = _local(trained, explain=True)
    assert local["drivers_late"].map(lambda t: len(json.loads(t))).gt(0).any()
    _same(local, _spark(trained, spark, tmp_path / "out", explain=True), explain=True)


def test_engines_agree_without_explanations(trained: Trained, spark: Any, tmp_path: Path) -> None:
    local = _local(trained, explain=False)
    remote = _spark(trained, spark, tmp_path / "out", explain=False)
    assert "drivers_late" not in remote
    _same(local, remote, explain=False)


def test_cli_writes_partitioned_parquet(
    trained: Trained, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from forewarn.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FOREWARN_MODELS_DIR", str(trained.models_dir))
    out = tmp_path / "nightly"
    result = CliRunner().invoke(
        app,
        [
            *("score", str(trained.data), "--out", str(out), "--engine", "spark"),
            *("--master", "local[2]", "--explain", "--json"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["engine"] == "spark" and summary["quarantined"] == 1
    partitions = sorted(p.name for p in (out / "scores").iterdir() if p.is_dir())
    assert partitions == [f"as_of={trained.as_of.date()}"]
    assert len(pd.read_parquet(out / "scores")) == summary["projects"]
    bad = pd.read_parquet(out / "quarantine")
    assert bad["column"].tolist() == ["percent_complete"]
    assert bad["project_id"].tolist() == [trained.bad_project]
    local = load_portfolio(trained.data).quarantine
    assert local["column"].tolist() == ["percent_complete"] and local["value"].tolist() == ["lots"]
    assert bad["value"].tolist() == ["lots"]


def test_bucket_count_default(trained: Trained, spark: Any) -> None:
    from serving.spark_batch import bucket_count

    projects = pd.read_csv(trained.data / "projects.csv")["project_id"].nunique()
    assert projects == 250
    assert bucket_count(spark, str(trained.data), 100) == 3  # ceil(250 / 100)
    assert bucket_count(spark, str(trained.data), 2_000) == 2  # one per core of local[2]


def test_buckets_only_with_spark(trained: Trained, tmp_path: Path) -> None:
    from forewarn.cli import app

    result = CliRunner().invoke(
        app, ["score", str(trained.data), "--out", str(tmp_path / "s.parquet"), "--buckets", "4"]
    )
    assert result.exit_code == 2
    assert "--buckets applies to --engine spark only" in result.stderr
