"""Reference-class forecasting: the PM's forecast widened by past misses, without leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pointintime import training_table
from features.simulator import simulate_portfolio
from training.intervals import evaluate_quantiles
from training.pipeline import TrainingOptions
from training.quantiles import with_outcomes
from training.reference_class import fit_reference_class, pm_forecast


def _rows(n: int, kind: str, elapsed: float, miss: float, forecast: float | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "project_id": [f"{kind}{i}" for i in range(n)],
            "weight": 1.0,
            "elapsed_fraction": elapsed,
            "project_type": kind,
            "forecast_slip": np.nan if forecast is None else forecast,
            "slip": (0.0 if forecast is None else forecast) + miss + np.linspace(0, 0.1, n),
        }
    )


def test_quantiles_of_the_miss_per_type_and_stage() -> None:
    train = pd.concat([_rows(20, "it", 0.5, 0.3, 0.1), _rows(20, "roads", 0.5, 0.0, None)])
    rc = fit_reference_class(train, "finish")
    assert {"it|40-60", "roads|40-60", "*|40-60", "*|*"} <= set(rc.classes)
    # An IT project at mid-term whose PM forecasts 0.2 slip: 0.2 + the IT misses (0.3 … 0.4).
    query = pd.DataFrame(
        {
            "elapsed_fraction": [0.5, 0.5],
            "project_type": ["it", "roads"],
            "forecast_slip": [0.2, np.nan],
        }
    )
    q = rc.predict(query)
    assert 0.5 <= q[0, 0] <= q[0, 1] <= q[0, -1] <= 0.6
    # No forecast: the baseline (0) plus the roads misses (0 … 0.1).
    assert 0.0 <= q[1, 0] <= q[1, -1] <= 0.1
    # An unknown type, or a stage without a class of its own, falls back.
    other = rc.predict(
        pd.DataFrame({"elapsed_fraction": [0.1], "project_type": ["rail"], "forecast_slip": [0.0]})
    )
    np.testing.assert_allclose(other[0], rc.classes["*|*"])


def test_small_class_pools_with_its_stage() -> None:
    train = pd.concat([_rows(20, "it", 0.5, 0.3, 0.0), _rows(3, "rail", 0.5, 5.0, 0.0)])
    rc = fit_reference_class(train, "finish")
    assert "rail|40-60" not in rc.classes and "*|40-60" in rc.classes


def test_pm_forecast_falls_back_to_the_baseline() -> None:
    frame = pd.DataFrame({"forecast_overrun": [0.2, np.nan]})
    assert pm_forecast(frame, "cost").tolist() == [0.2, 0.0]
    assert pm_forecast(frame, "finish").tolist() == [0.0, 0.0]


def test_a_held_out_projects_own_outcome_never_reaches_its_forecast() -> None:
    portfolio = simulate_portfolio(120, seed=5).portfolio
    table = with_outcomes(training_table(portfolio).frame, portfolio.projects)
    options = TrainingOptions(cv_folds=3, n_bootstrap=0)
    before = evaluate_quantiles(table, "finish", options, methods=())
    victim = before.rows["project_id"].iloc[0]
    changed = table.copy()
    changed.loc[changed["project_id"] == victim, "slip"] += 50.0
    after = evaluate_quantiles(changed, "finish", options, methods=())
    mine = (before.rows["project_id"] == victim).to_numpy()
    np.testing.assert_allclose(after.reference[mine], before.reference[mine])
    # The same change does move the forecasts of projects it trained (so this can fail).
    assert not np.allclose(after.reference[~mine], before.reference[~mine])


@pytest.mark.parametrize("bad", ["slip"])
def test_needs_an_outcome(bad: str) -> None:
    frame = _rows(5, "it", 0.5, 0.0, 0.0)
    frame[bad] = np.nan
    with pytest.raises(ValueError, match="no training row"):
        fit_reference_class(frame, "finish")
