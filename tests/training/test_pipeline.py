"""End to end on a small simulated portfolio: train, register, load by alias, evaluate, CLI.

Every MLflow store is sqlite in tmp_path, never the repository's models/.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import Portfolio
from features.loading import write_portfolio
from features.pointintime import training_table
from features.simulator import simulate_portfolio
from training import tracking
from training.pipeline import Store, TrainingOptions, evaluate, train
from training.recipes import RECIPES

pytestmark = pytest.mark.slow

OPTIONS = TrainingOptions(n_bootstrap=30, max_trees=60, reference_rows=500)
METRIC_KEYS = {"auc", "pr_auc", "brier", "ece", "by_stage", "early_warning", "baselines"}
STAGES = {"0-20", "20-40", "40-60", "60-80", "80+"}


@pytest.fixture(scope="module")
def portfolio() -> Portfolio:
    return simulate_portfolio(300, seed=5).portfolio


def _store(mlflow_store: dict[str, str]) -> Store:
    return Store(mlflow_store["tracking_uri"], mlflow_store["artifact_root"], "test")


def test_train_registers_champions_that_load_by_alias(
    portfolio: Portfolio, mlflow_store: dict[str, str], tmp_path: Path
) -> None:
    store = _store(mlflow_store)
    results = train(portfolio, OPTIONS, store, settings_params={"api_key": "x", "seed": 42})

    for target in ("delay", "overrun"):
        result = results[target]
        assert result.skipped is None and result.version == "1"
        out = result.to_json()
        assert out is not None
        assert set(out) >= METRIC_KEYS and {"n_projects", "n_rows", "model_version"} <= set(out)
        assert set(out["by_stage"]) == STAGES
        rules = {"delay": {"spi", "spi_t"}, "overrun": {"cpi", "tcpi"}}[target]
        assert set(out["baselines"]) == {*rules, "pm_forecast", "rag", "logistic_regression"}
        for rule in rules:
            assert {"auc", "brier", "ece", "by_stage", "verdict"} <= set(out["baselines"][rule])
        assert out["verdict"] in ("better", "cant_tell", "worse")
        assert out["recipe"] in RECIPES
        json.dumps(out, allow_nan=False)  # the CLI prints it strictly

        champion = tracking.alias_version(target, tracking.CHAMPION)
        # A first model that is worse than the rule is registered but not champion.
        expected = "2" if out["verdict"] == "worse" else "1"
        assert champion is not None and champion.version == expected
        loaded = tracking.load_model(target, tracking.CHAMPION)
        assert loaded.verdict in ("better", "cant_tell", "worse")
        assert loaded.tags["recipe"] == loaded.model.recipe
        assert loaded.tags["fingerprint"] and loaded.tags["data_as_of"]

        files = tracking.download_model(target, "champion", tmp_path / target)
        assert (files / "model.lgb").read_text().startswith("tree\nversion=")
        assert (files / "extra_files" / "risk_model.json").exists()
        assert not list(files.rglob("*.pkl"))

        artifacts = tracking.run_artifacts(loaded.run_id)
        for expected in (
            f"plots/calibration_{target}.png",
            f"plots/shap_summary_{target}.png",
            f"evaluation/{target}.json",
            f"evaluation/{target}.md",
            "data_fingerprint.json",
            "features.json",
            "reference/reference.parquet",
        ):
            assert expected in artifacts

    logged = tracking.load_evaluation("delay")
    assert logged["auc"] == pytest.approx(results["delay"].report["auc"])  # type: ignore[index]
    reference = tracking.load_reference("delay")
    model = tracking.load_model("delay").model
    assert {"project_id", "as_of", "late", "p_late", "seen_by_trees"} <= set(reference.columns)
    assert set(model.feature_names) <= set(reference.columns)
    np.testing.assert_allclose(model.predict(reference), reference["p_late"])

    # A second training registers a new version; the champion stays until retrain says so.
    again = train(portfolio, OPTIONS, store, targets=("delay",))
    assert again["delay"].version == "2"
    assert tracking.alias_version("delay", tracking.CHAMPION).version == "1"  # type: ignore[union-attr]

    # Evaluating the registered champion: every project here was in its training data.
    evaluated = evaluate(portfolio, OPTIONS, store, targets=("delay",))
    assert evaluated["delay"].report is not None
    assert "in-sample" in evaluated["delay"].notes[0]


def test_as_of_uses_only_what_was_known(portfolio: Portfolio, mlflow_store: dict[str, str]) -> None:
    as_of = pd.Timestamp("2024-06-30")
    known = training_table(portfolio, 0.05, 0.05, as_of=as_of).frame
    results = train(
        portfolio, replace(OPTIONS, plots=False), _store(mlflow_store),
        targets=("delay",), as_of=as_of,
    )  # fmt: skip
    loaded = tracking.load_model("delay")
    assert pd.Timestamp(loaded.model.metadata["closed_through"]) <= as_of
    assert loaded.model.metadata["n_projects"] == known["project_id"].nunique()
    assert loaded.tags["data_as_of"] == "2024-06-30"
    assert results["delay"].report is not None


def test_cli_skips_a_target_without_cost_data_with_one_clear_line(
    portfolio: Portfolio,
    mlflow_store: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from forewarn.cli import app

    projects = portfolio.projects.assign(budget=np.nan, final_cost=np.nan)
    reports = portfolio.status_reports.assign(
        planned_value=np.nan, earned_value=np.nan, actual_cost=np.nan, forecast_cost=np.nan
    )
    data = tmp_path / "no-cost"
    write_portfolio(Portfolio(projects, reports, portfolio.changes), data)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store["tracking_uri"])
    monkeypatch.setenv("FOREWARN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FOREWARN_OUT_DIR", str(tmp_path / "out"))

    result = CliRunner().invoke(app, ["train", str(data), "--cv", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["overrun"] is None
    delay = out["delay"]
    assert set(delay) >= METRIC_KEYS and delay["model_version"] == "1"
    # No SPI, SPI(t) without earned value: not applicable, never zero.
    assert delay["baselines"]["spi"] is None and delay["baselines"]["spi_t"] is None
    assert delay["baselines"]["pm_forecast"] is not None
    assert delay["comparison"]["all"]["best_rule"] in ("pm_forecast", None)
    skipped = [line for line in result.stderr.splitlines() if "overrun skipped" in line]
    assert len(skipped) == 1 and "no cost data" in skipped[0]


def _shuffled_fit(train_rows: pd.DataFrame, target: str, options: TrainingOptions) -> Any:
    """The recipe on labels shuffled across projects: a model that must lose to the rule."""
    from training.pipeline import default_fit

    label = "late" if target == "delay" else "over_budget"
    per_project = train_rows.groupby("project_id", sort=True)[label].first()
    rng = np.random.default_rng(0)
    shuffled = pd.Series(rng.permutation(per_project.to_numpy()), index=per_project.index)
    lightgbm = replace(options, recipes=("lightgbm",))
    return default_fit(
        train_rows.assign(**{label: train_rows["project_id"].map(shuffled)}), target, lightgbm
    )


def test_a_first_model_worse_than_the_rule_is_registered_but_the_rule_becomes_champion(
    portfolio: Portfolio, mlflow_store: dict[str, str]
) -> None:
    store = _store(mlflow_store)
    options = replace(OPTIONS, plots=False, n_bootstrap=100)
    results = train(portfolio, options, store, targets=("delay",), fit=_shuffled_fit)
    result = results["delay"]
    assert result.report is not None and result.report["verdict"] == "worse"
    assert any("registered but NOT champion" in note for note in result.notes)
    assert any("uses the calibrated rule instead" in note for note in result.notes)
    champion = tracking.load_model("delay", tracking.CHAMPION)
    assert result.version == "1" and champion.version == "2"
    assert champion.model.recipe == "rule" and champion.tags["chosen_because"] == "rule_better"
    assert champion.model.metadata["rule"] in ("spi", "spi_t", "pm_forecast", "rag")


def test_a_one_sided_label_warns_and_names_the_tolerance_setting() -> None:
    from training.pipeline import label_share_warnings

    rows = pd.DataFrame({"project_id": [f"P{i}" for i in range(20)], "late": [1.0] * 19 + [0.0]})
    (warning,) = label_share_warnings(rows, "delay", OPTIONS)
    assert "95%" in warning and "FOREWARN_DELAY_TOLERANCE" in warning
    balanced = rows.assign(late=[1.0, 0.0] * 10)
    assert label_share_warnings(balanced, "delay", OPTIONS) == []
