"""Baselines: the rules' flags, and "not applicable" (never zero) when inputs are missing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from training.baselines import (
    RULES,
    all_rule_scores,
    evm_rag,
    fit_logistic,
    logistic_scores,
    rule,
    rule_scores,
)
from training.evaluate import weighted_auc
from training.models import categorical_columns, feature_columns


def test_each_target_has_its_own_rules_each_on_its_own_index() -> None:
    assert [r.name for r in RULES["delay"]] == ["spi", "spi_t", "pm_forecast", "rag"]
    assert [r.name for r in RULES["overrun"]] == ["cpi", "tcpi", "pm_forecast", "rag"]
    rows = pd.DataFrame(
        {"spi": [0.85, 0.97, np.nan], "cpi": [1.0, 0.8, 0.9], "tcpi": [1.2, 1.0, np.nan]}
    )
    spi = rule_scores(rows, "delay", rule("delay", "spi"), 0.05)
    assert spi is not None
    assert list(spi.red) == [True, False, False]  # SPI < 0.90; no input, no flag
    np.testing.assert_allclose(spi.score, [-0.85, -0.97, np.nan])  # lower SPI ranks riskier
    tcpi = rule_scores(rows, "overrun", rule("overrun", "tcpi"), 0.05)
    assert tcpi is not None and list(tcpi.red) == [True, False, False]  # TCPI > 1.10
    np.testing.assert_allclose(tcpi.score, [1.2, 1.0, np.nan])
    # CPI is not read by any delay rule: 1 − min(SPI, CPI) was a straw man for delay.
    assert "cpi" not in {r.column for r in RULES["delay"]}


def test_the_evm_colour_for_the_report() -> None:
    spi, cpi = np.array([0.85, 0.97, 1.02, np.nan, 0.93]), np.array([1.0, 0.89, 1.01, 0.8, 0.96])
    assert list(evm_rag(spi, cpi)) == ["red", "red", "green", "n/a", "amber"]


def test_a_rule_without_input_is_not_applicable_never_zero() -> None:
    rows = pd.DataFrame({"spi": [0.8, 0.9, 1.0], "cpi": [np.nan, np.nan, np.nan]})
    scores = all_rule_scores(rows, "overrun", 0.05)
    assert scores["cpi"] is None and scores["tcpi"] is None and scores["rag"] is None
    assert all_rule_scores(rows, "delay", 0.05)["spi"] is not None


def test_pm_forecast_and_rag_rules() -> None:
    rows = pd.DataFrame(
        {"forecast_slip": [0.0, 0.04, 0.06, np.nan], "rag": [0.0, 1.0, 2.0, np.nan]}
    )
    pm = rule_scores(rows, "delay", rule("delay", "pm_forecast"), 0.05)
    assert pm is not None
    assert list(pm.red) == [False, False, True, False]
    assert np.isnan(pm.score[3]) and np.isnan(pm.probability[3])
    rag = rule_scores(rows, "delay", rule("delay", "rag"), 0.05)
    assert rag is not None and list(rag.red) == [False, False, True, False]
    none = pd.DataFrame({"forecast_slip": [0.1], "forecast_overrun": [np.nan]})
    assert rule_scores(none, "overrun", rule("overrun", "pm_forecast"), 0.05) is None


def test_logistic_regression_learns_from_the_same_features(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    train = synthetic_table(150, seed=4)
    test = synthetic_table(80, seed=5)
    features = feature_columns(train)
    pipeline = fit_logistic(train, "delay", features, categorical_columns(train, features))
    scores = logistic_scores(pipeline, test, red_threshold=0.6)
    auc = weighted_auc(test["late"].to_numpy(), scores.score, test["weight"].to_numpy())
    assert auc is not None and auc > 0.75
    assert not scores.is_rule and scores.applicable.all()
