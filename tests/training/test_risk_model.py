"""RiskModel: text round trip, TreeSHAP additivity, the NumPy path, and direction tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.calibration import Calibrator, fit_calibrator
from training.models import RiskModel, category_codes, encode_features, fit_risk_model


@pytest.fixture(scope="module")
def table(synthetic_table: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return synthetic_table(300, seed=11)


@pytest.fixture(scope="module")
def overrun_model(table: pd.DataFrame) -> RiskModel:
    return fit_risk_model(table, "overrun", seed=1, max_trees=80)


@pytest.fixture(scope="module")
def delay_model(table: pd.DataFrame) -> RiskModel:
    return fit_risk_model(table, "delay", seed=1, max_trees=80)


def test_text_round_trip_gives_identical_predictions(
    overrun_model: RiskModel, table: pd.DataFrame, tmp_path: Path
) -> None:
    paths = overrun_model.to_files(tmp_path)
    assert paths["booster"].read_text().startswith("tree\n")  # LightGBM's own text format
    again = RiskModel.from_files(tmp_path)
    np.testing.assert_array_equal(again.predict(table), overrun_model.predict(table))
    np.testing.assert_array_equal(again.contributions(table), overrun_model.contributions(table))
    assert again.categorical_levels == overrun_model.categorical_levels
    assert again.calibrator == overrun_model.calibrator


def test_contributions_sum_to_the_raw_margin(delay_model: RiskModel, table: pd.DataFrame) -> None:
    contributions = delay_model.contributions(table)
    assert contributions.shape == (len(table), len(delay_model.feature_names) + 1)
    np.testing.assert_allclose(
        contributions.sum(axis=1), delay_model.raw_margin(table), rtol=0, atol=1e-9
    )
    # The base value (last column) is the same for every row.
    assert np.ptp(contributions[:, -1]) == pytest.approx(0.0)


def test_numpy_path_matches_the_frame_path(delay_model: RiskModel, table: pd.DataFrame) -> None:
    one = table.iloc[[7]]
    matrix = delay_model.encode(one)
    assert matrix.dtype == np.float64
    assert delay_model.predict(matrix) == pytest.approx(delay_model.predict(one))
    assert delay_model.predict(matrix[0]) == pytest.approx(delay_model.predict(one))


def test_categories_use_stored_codes_and_unseen_ones_are_missing(
    delay_model: RiskModel, table: pd.DataFrame
) -> None:
    levels = delay_model.categorical_levels["project_type"]
    assert levels == sorted(levels)
    rows = table.iloc[:3].copy()
    rows["project_type"] = [levels[1], "never-seen", None]
    codes = delay_model.encode(rows)[:, delay_model.feature_names.index("project_type")]
    assert codes[0] == 1.0 and np.isnan(codes[1]) and np.isnan(codes[2])


def test_few_and_many_rows_get_the_same_category_codes() -> None:
    levels = ["1", "it", "ops"]
    values = np.array(["ops", None, "never-seen", np.nan, 1, "it", pd.NA, "1"], dtype=object)
    few = category_codes(values, levels)  # the per-value path (a request's few rows)
    many = category_codes(np.tile(values, 20), levels)[: len(values)]  # the vectorised path
    np.testing.assert_array_equal(few, [2.0, np.nan, np.nan, np.nan, 0.0, 1.0, np.nan, 0.0])
    np.testing.assert_array_equal(many, few)


def test_integer_and_float_columns_encode_alike(
    delay_model: RiskModel, table: pd.DataFrame
) -> None:
    rows = table.iloc[:5].copy()
    as_ints = rows.assign(n_reports=rows["n_reports"].astype("int64"))  # not the float block
    names, levels = delay_model.feature_names, delay_model.categorical_levels
    np.testing.assert_array_equal(
        encode_features(as_ints, names, levels), encode_features(rows, names, levels)
    )


def test_lower_cpi_never_lowers_overrun_risk(overrun_model: RiskModel, table: pd.DataFrame) -> None:
    """All else equal, a project whose CPI falls must not get a lower overrun risk."""
    rows = table.loc[table["cpi"].notna()].sample(200, random_state=0)
    grid = np.linspace(1.3, 0.5, 17)  # CPI falling
    risks = np.column_stack([overrun_model.predict(rows.assign(cpi=value)) for value in grid])
    assert (np.diff(risks, axis=1) >= -1e-12).all()
    # And the constraint is not vacuous: falling CPI does raise the risk somewhere.
    assert (risks[:, -1] - risks[:, 0]).max() > 0.05


def test_larger_forecast_slip_never_lowers_delay_risk(
    delay_model: RiskModel, table: pd.DataFrame
) -> None:
    rows = table.loc[table["forecast_slip"].notna()].sample(200, random_state=1)
    grid = np.linspace(-0.1, 0.5, 13)
    risks = np.column_stack([delay_model.predict(rows.assign(forecast_slip=v)) for v in grid])
    assert (np.diff(risks, axis=1) >= -1e-12).all()


def test_calibrators_are_monotone_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-margin))).astype(float)
    for method in ("isotonic", "sigmoid"):
        calibrator = fit_calibrator(margin, y, np.ones(2000), method)
        grid = np.linspace(-6, 6, 200)
        p = calibrator.transform(grid)
        assert (np.diff(p) >= 0).all() and p.min() > 0 and p.max() < 1
        again = Calibrator.from_dict(calibrator.to_dict())
        np.testing.assert_array_equal(again.transform(grid), p)


def test_probabilities_are_calibrated_on_later_projects(
    delay_model: RiskModel,
) -> None:
    meta = delay_model.metadata
    assert meta["n_calibration_projects"] + meta["n_fit_projects"] == meta["n_projects"]
    assert 0 < meta["best_iteration"] <= 80
    assert meta["monotone"] == {"spi": -1, "forecast_slip": 1}


def test_too_few_projects_is_a_clear_error(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    with pytest.raises(ValueError, match="at least 10"):
        fit_risk_model(synthetic_table(6, seed=1), "delay")
