"""TreeSHAP from LightGBM equals shap's TreeExplainer; drivers and sentences read right."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.catalogue import FEATURES
from serving.explain import drivers, sentence, top_indices, tree_shap
from training.models import RiskModel


def _getter(values: dict[str, float | str | None]):  # type: ignore[no-untyped-def]
    return lambda name: values.get(name)


@pytest.mark.parametrize("target", ["delay", "overrun"])
def test_pred_contrib_equals_tree_explainer(
    models: dict[str, RiskModel], features: pd.DataFrame, target: str
) -> None:
    import shap  # ~4.5 s: only this test needs it

    model = models[target]
    X = model.encode(features.head(200))
    ours = tree_shap(model, X)
    explainer = shap.TreeExplainer(model.booster)
    theirs = np.asarray(explainer.shap_values(X))
    expected = np.atleast_1d(explainer.expected_value)[-1]
    assert theirs.shape == ours.values.shape
    np.testing.assert_allclose(ours.values, theirs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.base, expected, rtol=0, atol=1e-9)
    # Both the categorical features and missing CPI are exercised, not only plain splits.
    assert np.abs(ours.values[:, model.feature_names.index("project_type")]).max() > 0
    assert np.abs(ours.values[:, model.feature_names.index("cpi")]).max() > 0


@pytest.mark.parametrize("target", ["delay", "overrun"])
def test_contributions_sum_to_raw_margin(
    models: dict[str, RiskModel], features: pd.DataFrame, target: str
) -> None:
    model = models[target]
    shap_values = tree_shap(model, features)
    np.testing.assert_allclose(
        shap_values.raw_margin, model.raw_margin(features), rtol=0, atol=1e-9
    )


def test_top_indices_largest_absolute_first() -> None:
    values = np.array([[0.1, -0.5, 0.3, 0.0], [0.0, 0.0, 0.0, 2.0]])
    assert top_indices(values, 2).tolist() == [[1, 2], [3, 0]]
    assert top_indices(values, 10).shape == (2, 4)
    assert top_indices(values, 0).shape == (2, 0)


def test_drivers_carry_value_contribution_and_sentence(
    models: dict[str, RiskModel], features: pd.DataFrame
) -> None:
    model = models["overrun"]
    shap_values = tree_shap(model, features.head(50))
    found = drivers(shap_values, features.head(50), k=3, rows=[0, 1, 2])
    assert [len(d) for d in found[:3]] == [3, 3, 3]
    assert found[3] == []  # rows not asked for stay empty
    for i, row in enumerate(found[:3]):
        magnitudes = [abs(d["contribution"]) for d in row]
        assert magnitudes == sorted(magnitudes, reverse=True)
        for d in row:
            j = model.feature_names.index(d["feature"])
            assert d["contribution"] == pytest.approx(shap_values.values[i, j])
            assert isinstance(d["sentence"], str) and len(d["sentence"]) > 10
            raw = features.iloc[i][d["feature"]]
            if isinstance(raw, str):
                assert d["value"] == raw
            elif pd.isna(raw):
                assert d["value"] is None
            else:
                assert d["value"] == pytest.approx(float(raw))


def test_trend_sentence_names_both_ends_and_the_span() -> None:
    get = _getter({"cpi": 0.86, "cpi_change_6": -0.12, "report_cadence_days": 14.0})
    assert sentence("cpi_change_6", get) == (
        "CPI fell from 0.98 to 0.86 over the last 6 reports (~10 weeks)"
    )
    get = _getter({"spi": 1.02, "spi_change_3": 0.07, "report_cadence_days": 28.0})
    assert sentence("spi_change_3", get) == (
        "SPI rose from 0.95 to 1.02 over the last 3 reports (~8 weeks)"
    )


def test_change_and_forecast_sentences() -> None:
    assert (
        sentence("changes_last_90d", _getter({"changes_last_90d": 3.0}))
        == "3 change requests raised in the last 90 days"
    )
    assert (
        sentence("changes_last_90d", _getter({"changes_last_90d": 1.0}))
        == "1 change request raised in the last 90 days"
    )
    assert (
        sentence("changes_last_90d", _getter({"changes_last_90d": 0.0}))
        == "No change request in the last 90 days"
    )
    get = _getter({"forecast_slip": 42 / 350, "planned_duration_days": 350.0})
    assert sentence("forecast_slip", get) == "Forecast finish moved 6 weeks past the baseline"
    get = _getter({"forecast_overrun": 0.12})
    assert sentence("forecast_overrun", get) == (
        "The project manager forecasts finishing 12% over budget"
    )


def test_missing_values_are_said_not_invented() -> None:
    get = _getter({"cpi": None})
    assert sentence("cpi", get).startswith("CPI not known")
    assert sentence("log_budget", _getter({})) == "No budget (BAC) in the baseline"
    assert "0.00" not in sentence("cpi_change_6", _getter({"cpi_change_6": None}))


def test_every_feature_reads_as_a_sentence() -> None:
    assert sentence("region", _getter({"region": "north"})) == "Region 'north'"
    assert sentence("team_size", _getter({"team_size": 12.0})) == "Team size of 12"
    assert sentence("team_size", _getter({})) == "Team size not known"
    assert sentence("forecast_slip", _getter({})) == (
        "Forecast slip not known: the status reports give no forecast_finish"
    )
    # every declared feature reads as a sentence for a typical value and for a missing one
    for declared in FEATURES:
        typical: float | str = "it" if declared.kind == "categorical" else 0.4
        for value in (typical, None):
            words = sentence(declared.name, _getter({declared.name: value}))
            assert words[:1].isupper() or words[:1].isdigit(), (declared.name, words)
            assert "nan" not in words.lower().split(), (declared.name, words)
            assert "_" not in words.split(" no ")[0], (declared.name, words)


def test_sentence_survives_absurd_values() -> None:
    for declared in FEATURES:
        for value in (1e12, -1e12, 0.0, math.inf):
            assert sentence(declared.name, _getter({declared.name: value}))
