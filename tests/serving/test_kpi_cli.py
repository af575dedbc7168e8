"""`forewarn kpi` end to end: champions registered in a sqlite store in tmp_path (real
models, fitted small), the command run through the CLI, in English and Chinese, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.loading import write_portfolio
from features.pointintime import training_table
from features.simulator import simulate_portfolio
from forewarn.cli import app
from training import tracking
from training.models import fit_risk_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    root = tmp_path_factory.mktemp("kpi")
    sim = simulate_portfolio(150, seed=9)
    write_portfolio(sim.portfolio, root / "data")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.configure(uri, (root / "artifacts").as_uri(), "test")
    table = training_table(sim.portfolio).frame
    for target, label in (("delay", "late"), ("overrun", "over_budget")):
        model = fit_risk_model(table.loc[table[label].notna()], target, max_trees=40)
        record = tracking.TrainingRecord(
            target=target, model=model, report={}, report_markdown="", params={},
            fingerprint={}, tags={}, reference=table.head(300),
        )  # fmt: skip
        info = tracking.log_training(record)
        tracking.promote(target, info.version)
    return root, uri, pd.Timestamp(sim.today).year


def _run(registered: tuple[Path, str, int], monkeypatch: pytest.MonkeyPatch, *args: str):
    root, uri, _ = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("FOREWARN_OUT_DIR", str(root / "out"))
    return CliRunner().invoke(app, ["kpi", str(root / "data"), *args])


def test_kpi_json(registered: tuple[Path, str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(registered, monkeypatch, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["year"] == registered[2]
    for kpi in ("on_time", "within_budget"):
        entry = out[kpi]
        assert entry["target"] == 0.9 and entry["n_projects"] > 0
        low, high = entry["interval"]
        assert low <= entry["expected"] <= high
    assert out["correlation"] == 0.1
    assert out["models"]["delay"] == "forewarn-delay v1"
    assert {r["portfolio"] for r in out["realised"]} >= {"all"}


def test_kpi_text_in_both_languages(
    registered: tuple[Path, str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    year = registered[2] - 1
    english = _run(registered, monkeypatch, "--year", str(year))
    assert english.exit_code == 0, english.output
    assert (
        f"On-time delivery {year}:" in english.stdout and "chance of reaching 90%" in english.stdout
    )
    chinese = _run(registered, monkeypatch, "--year", str(year), "--lang", "zh-CN")
    assert chinese.exit_code == 0, chinese.output
    assert "按时交付" in chinese.stdout and "On-time" not in chinese.stdout
