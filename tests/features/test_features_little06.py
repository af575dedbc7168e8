"""Features of the real example portfolio, data/examples/little06, and `forewarn features`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from portfolio_builders import read_little06
from typer.testing import CliRunner

from features.catalogue import FEATURES
from features.pointintime import TrainingTable, training_table
from forewarn.cli import app

LITTLE06 = Path(__file__).resolve().parents[2] / "data" / "examples" / "little06"
COST = [
    f.name
    for f in FEATURES
    if f.kind != "flag" and any(i.endswith(("actual_cost", "budget")) for i in f.inputs)
]


@pytest.fixture(scope="module")
def table() -> TrainingTable:
    return training_table(read_little06(), 0.05, 0.05)


def test_little06_builds_with_cost_features_missing_and_flagged(table: TrainingTable) -> None:
    frame = table.frame
    assert frame["project_id"].nunique() == 121
    assert len(frame) == 121 + 6245 - table.excluded_reports  # approval rows + kept reports
    assert table.excluded_reports > 0  # weekly reports that went on after the release
    assert (frame["as_of"] < frame["actual_finish"]).all()
    assert frame[COST].isna().all().all()  # no cost data: NaN, never 0
    assert (frame[["has_budget", "has_cost_data", "has_earned_value"]] == 0).all().all()
    reported = frame["n_reports"] > 0
    assert frame.loc[reported, "has_forecast"].mean() > 0.9  # but forecasts are there
    assert frame.loc[reported, "forecast_slip"].notna().mean() > 0.9
    assert frame["changes_approved"].max() > 0
    assert frame.groupby("project_id")["weight"].sum().to_numpy() == pytest.approx(1.0)


def test_little06_label_counts(table: TrainingTable) -> None:
    counts = table.label_counts
    # 114 of 121 finished after the planned date (94 %); 112 more than 5 % late (93 %).
    assert counts["delay"] == {"late": 112, "on_time": 9, "unlabelled": 0, "cancelled": 0}
    assert counts["overrun"]["no_cost_data"] == 121
    assert table.frame["over_budget"].isna().all()


def test_forewarn_features_cli_writes_the_table_and_prints_counts(tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(app, ["features", str(LITTLE06), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == len(pd.read_parquet(out))
    assert report["label_counts"]["delay"]["late"] == 112
    assert report["excluded_reports"] > 0


def test_forewarn_features_cli_as_of_snapshot_to_csv(tmp_path: Path) -> None:
    out = tmp_path / "snapshot.csv"
    result = CliRunner().invoke(
        app, ["features", str(LITTLE06), "--out", str(out), "--as-of", "2001-06-01"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert (frame["as_of"] == "2001-06-01").all()
    assert frame["project_id"].is_unique
    assert "late" in result.stdout


def test_forewarn_features_cli_rejects_an_unknown_suffix(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["features", str(LITTLE06), "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 2
