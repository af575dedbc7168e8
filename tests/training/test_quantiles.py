"""Quantile models: never crossing, serialised without pickle, calibrated out of sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pointintime import training_table
from features.simulator import simulate_portfolio
from training.intervals import (
    evaluate_quantiles,
    interval_score,
    pinball_loss,
)
from training.pipeline import TrainingOptions
from training.quantiles import (
    LEVELS,
    QuantileModel,
    exceedance,
    finish_dates,
    fit_quantiles,
    non_crossing,
    quantile_features,
    weighted_quantiles,
    with_outcomes,
)


@pytest.fixture(scope="module")
def sim_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    portfolio = simulate_portfolio(160, seed=3).portfolio
    table = with_outcomes(training_table(portfolio).frame, portfolio.projects)
    return table, portfolio.projects


def test_non_crossing_sorts_every_row() -> None:
    raw = np.array([[0.3, 0.1, 0.2, 0.5], [0.0, 0.0, -1.0, 2.0]])
    out = non_crossing(raw)
    assert out.tolist() == [[0.1, 0.2, 0.3, 0.5], [-1.0, 0.0, 0.0, 2.0]]
    assert (
        np.diff(non_crossing(np.random.default_rng(0).normal(size=(500, 4))), axis=1) >= 0
    ).all()


def test_weighted_quantiles_by_hand() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    assert weighted_quantiles(values, np.ones(4), (0.25, 0.5, 0.75, 1.0)) == [1, 2, 3, 4]
    # All the weight on 4: every quantile is 4.
    assert weighted_quantiles(values, np.array([0, 0, 0, 1.0]), (0.1, 0.9)) == [4, 4]


def test_pinball_and_interval_score_by_hand() -> None:
    q = np.array([[0.0, 1.0, 2.0, 3.0]])
    # y = 4 is above every quantile: loss per level is level x (4 − q).
    expected = np.mean([0.1 * 4, 0.5 * 3, 0.8 * 2, 0.9 * 1])
    assert pinball_loss(np.array([4.0]), q)[0] == pytest.approx(expected)
    # Inside: the width; outside by 1 below: width + 2/0.2 x 1.
    assert interval_score(np.array([1.0]), np.array([0.0]), np.array([3.0]))[0] == 3.0
    assert interval_score(np.array([-1.0]), np.array([0.0]), np.array([3.0]))[0] == 13.0


def test_exceedance_reads_the_cdf_between_levels() -> None:
    q = np.array([[0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3]])
    p = exceedance(q, 0.15)
    assert p == pytest.approx([0.35, 0.35])  # halfway between P50 and P80
    assert exceedance(q, 1.0)[0] == pytest.approx(0.1)
    assert exceedance(q, -1.0)[0] == pytest.approx(0.9)


@pytest.mark.parametrize("method", ["quantile_lgbm", "conformal"])
def test_fitted_quantiles_never_cross_and_round_trip(
    method: str, sim_table: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    table, _ = sim_table
    model = fit_quantiles(table, "finish", method, max_trees=60)  # type: ignore[arg-type]
    assert "slip" not in model.feature_names and "overrun" not in model.feature_names
    q = model.predict(table)
    assert q.shape == (len(table), len(LEVELS))
    assert np.isfinite(q).all()
    assert (np.diff(q, axis=1) >= 0).all()
    assert q[:, 0].mean() < q[:, -1].mean()  # a real spread, not one value four times
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert all(f.endswith((".txt", ".json")) for f in files), files
    again = QuantileModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(table), q)


def test_outcome_is_never_a_feature(sim_table: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    table, _ = sim_table
    features = quantile_features(table)
    assert "slip" not in features and "overrun" not in features and "late" not in features


def test_finish_dates_in_days_of_the_planned_duration() -> None:
    frame = pd.DataFrame(
        {
            "planned_start": [pd.Timestamp("2024-01-01")],
            "planned_finish": [pd.Timestamp("2024-01-11")],
        }
    )
    dates = finish_dates(frame, np.array([[0.0, 0.5, 1.0, 2.0]]))
    assert [str(pd.Timestamp(d).date()) for d in dates[0]] == [
        "2024-01-11", "2024-01-16", "2024-01-21", "2024-01-31",
    ]  # fmt: skip


def test_conformal_covers_its_levels_out_of_sample(
    sim_table: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    table, _ = sim_table
    options = TrainingOptions(cv_folds=3, n_bootstrap=50, max_trees=60)
    ev = evaluate_quantiles(table, "finish", options, methods=("conformal",))
    coverage = ev.report["methods"]["conformal"]["coverage"]
    for name, level in zip(("p10", "p50", "p80", "p90"), LEVELS, strict=True):
        assert abs(coverage[name] - level) < 0.08, (name, coverage)
    assert ev.report["method"] == "conformal"
    # P(slip > 5 %) read off the ranges is an informative probability of "late".
    check = ev.report["exceedance"]
    assert check["brier"] < 0.2 and abs(check["mean_p"] - check["observed"]) < 0.1, check
    # Every held-out row has the reference class's quantiles too, in order.
    assert np.isfinite(ev.reference).all() and (np.diff(ev.reference, axis=1) >= 0).all()
