"""Baselines: the rules' flags, and "not applicable" (never zero) when inputs are missing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from training.baselines import (
    evm_rag,
    evm_rule,
    fit_logistic,
    logistic_scores,
    pm_forecast_rule,
)
from training.evaluate import weighted_auc
from training.models import categorical_columns, feature_columns


def test_evm_rule_flags_and_score() -> None:
    rows = pd.DataFrame(
        {"spi": [0.85, 0.97, 1.02, np.nan, 0.93], "cpi": [1.0, 0.89, 1.01, 0.8, 0.96]}
    )
    rule = evm_rule(rows)
    assert rule is not None
    assert list(rule.red) == [True, True, False, False, False]
    np.testing.assert_allclose(rule.score, [0.15, 0.11, -0.01, np.nan, 0.07])
    assert list(evm_rag(rows["spi"].to_numpy(), rows["cpi"].to_numpy())) == [
        "red", "red", "green", "n/a", "amber",
    ]  # fmt: skip


def test_evm_rule_is_not_applicable_without_cost_data() -> None:
    rows = pd.DataFrame({"spi": [0.8, 0.9, 1.0], "cpi": [np.nan, np.nan, np.nan]})
    assert evm_rule(rows) is None
    assert evm_rule(pd.DataFrame({"forecast_slip": [0.1]})) is None


def test_pm_forecast_rule_uses_the_tolerance_and_is_null_without_forecasts() -> None:
    rows = pd.DataFrame({"forecast_slip": [0.0, 0.04, 0.06, np.nan]})
    rule = pm_forecast_rule(rows, "delay", tolerance=0.05)
    assert rule is not None
    assert list(rule.red) == [False, False, True, False]
    assert np.isnan(rule.score[3]) and np.isnan(rule.probability[3])
    none = pd.DataFrame({"forecast_slip": [0.1], "forecast_overrun": [np.nan]})
    assert pm_forecast_rule(none, "overrun", tolerance=0.05) is None


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
