"""The champion's recipes: the rule's index calibrated, the logistic score, boosting from the
rule; chosen by nested grouped CV; every one explained exactly and stored without pickle."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from training.linear import LinearScore, fit_linear
from training.models import RiskModel, categorical_columns, feature_columns
from training.pipeline import TrainingOptions, evaluate_recipe
from training.recipes import best_rule, fit_champion, select_recipe


def _spi_only(table: pd.DataFrame, seed: int, noise: float = 0.04) -> pd.DataFrame:
    """The same rows with an outcome generated from SPI alone: late when the project's mean
    SPI over its reports, plus noise, is below the median."""
    rng = np.random.default_rng(seed)
    mean_spi = table.groupby("project_id")["spi"].mean()
    drawn = mean_spi + rng.normal(0, noise, len(mean_spi))
    late = (drawn < drawn.median()).astype(float)
    return table.assign(late=table["project_id"].map(late).to_numpy())


def test_outcome_from_spi_alone_the_champion_is_the_rule_and_ties_it_at_every_stage(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    table = _spi_only(synthetic_table(40, seed=11), seed=3)
    options = TrainingOptions(n_bootstrap=50, plots=False, seed=5, num_threads=1)
    report = evaluate_recipe(table, "delay", options).report
    assert report["protocol"] == "repeated_cv"  # 40 projects: no forward split
    spi = report["baselines"]["spi"]
    for label in report["by_stage"]:
        block = spi["by_stage"][label]
        if block["auc"] is None:
            continue
        assert abs(block["model_auc_same_rows"] - block["auc"]) <= 0.02, label
        assert report["comparison"]["by_stage"][label]["verdict"] != "worse", label
    features = feature_columns(table)
    model = fit_champion(table, "delay", features, categorical_columns(table, features), seed=5)
    assert model.recipe in ("rule", "boost_from_rule")
    assert model.metadata["rule"] == "spi"


def test_a_signal_the_rule_misses_earns_a_richer_recipe(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    # Lateness driven by the project type the SPI does not see: the rule cannot win.
    table = synthetic_table(240, seed=2)
    late = (table["project_type"] == "it").astype(float)
    noisy = late.where(np.random.default_rng(1).random(len(late)) > 0.05, 1 - late)
    table = table.assign(late=table["project_id"].map(noisy.groupby(table["project_id"]).first()))
    features = feature_columns(table)
    selection = select_recipe(table, "delay", features, categorical_columns(table, features))
    assert selection.chosen.recipe != "rule"
    rule_loss = next(c["log_loss"] for c in selection.candidates if c["recipe"] == "rule")
    chosen = next(c for c in selection.candidates if c["candidate"] == selection.chosen.label())
    assert chosen["log_loss"] < rule_loss


@pytest.mark.parametrize("recipe", ["rule", "logistic", "boost_from_rule", "lightgbm"])
def test_every_recipe_round_trips_as_text_and_explains_its_score_exactly(
    synthetic_table: Callable[..., pd.DataFrame], recipe: str
) -> None:
    table = synthetic_table(60, seed=4)
    features = feature_columns(table)
    model = fit_champion(
        table, "delay", features, categorical_columns(table, features), recipes=(recipe,)
    )
    assert model.recipe == recipe
    booster_text, meta_json = model.to_strings()
    assert booster_text.startswith("tree")  # LightGBM's text format, never a pickle
    again = RiskModel.from_strings(booster_text, meta_json)
    rows = table.head(40)
    np.testing.assert_allclose(again.predict(rows), model.predict(rows), rtol=0, atol=1e-12)
    contributions = again.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), again.raw_margin(rows), rtol=0, atol=1e-9)
    if recipe in ("rule", "boost_from_rule"):
        # The rule's index is a driver of its own: its column carries the prior's share.
        spi = again.feature_names.index("spi")
        assert np.abs(contributions[:, spi]).max() > 0


def test_a_lower_spi_never_lowers_the_risk_whatever_the_recipe(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    table = synthetic_table(80, seed=6)
    features = feature_columns(table)
    row = table.iloc[[len(table) // 2]]
    for recipe in ("rule", "logistic", "boost_from_rule", "lightgbm"):
        model = fit_champion(
            table, "delay", features, categorical_columns(table, features), recipes=(recipe,)
        )
        worse = row.assign(spi=row["spi"] - 0.3)
        assert model.predict(worse)[0] >= model.predict(row)[0] - 1e-12, recipe


def test_linear_score_drops_a_coefficient_of_the_wrong_sign() -> None:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"spi": rng.normal(1, 0.1, n), "other": rng.normal(0, 1, n)})
    # In this sample a higher SPI goes with lateness: the known direction forbids it.
    y = (frame["spi"] + 0.5 * frame["other"] + rng.normal(0, 0.05, n) > 1.0).astype(int)
    score = fit_linear(frame, y.to_numpy(), np.ones(n), ["spi", "other"], directions={"spi": -1})
    assert score.features == ["other"]
    again = LinearScore.from_dict(score.to_dict())
    columns = {"other": frame["other"].to_numpy()}
    np.testing.assert_allclose(again.margin(columns, n), score.margin(columns, n))
    np.testing.assert_allclose(
        score.shares(columns, n).sum(axis=1) + score.base_value(), score.margin(columns, n)
    )


def test_the_rule_is_spi_t_then_spi_unless_another_is_clearly_stronger() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n).astype(float)
    frame = pd.DataFrame(
        {
            "project_id": [f"P{i}" for i in range(n)],
            "weight": 1.0,
            "late": y,
            "spi": 1 - 0.1 * y + rng.normal(0, 0.1, n),
            "spi_t": 1 - 0.1 * y + rng.normal(0, 0.095, n),  # a hair stronger: noise
            "forecast_slip": 0.3 * y + rng.normal(0, 0.05, n),  # far stronger
        }
    )
    chosen = best_rule(frame, "delay")
    assert chosen is not None and chosen.name == "pm_forecast"
    chosen = best_rule(frame.drop(columns="forecast_slip"), "delay")
    assert chosen is not None and chosen.name == "spi_t"  # earned schedule first
    chosen = best_rule(frame.drop(columns=["forecast_slip", "spi_t"]), "delay")
    assert chosen is not None and chosen.name == "spi"
