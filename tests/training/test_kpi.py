"""Portfolio KPIs: the Poisson-binomial, its correlated widening, cohorts, realised shares."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from training.kpi import (
    cohort,
    count_distribution,
    kpi_forecast,
    poisson_binomial,
    realised_kpis,
    share_forecast,
)


def test_poisson_binomial_matches_enumeration() -> None:
    p = np.array([0.1, 0.5, 0.7, 0.95])
    brute = np.zeros(5)
    for outcome in itertools.product([0, 1], repeat=4):
        o = np.array(outcome)
        brute[o.sum()] += np.prod(np.where(o == 1, p, 1 - p))
    np.testing.assert_allclose(poisson_binomial(p)[0], brute, atol=1e-12)


def test_correlation_keeps_the_mean_and_widens_the_spread() -> None:
    p = np.full(50, 0.8)
    k = np.arange(51)
    plain = count_distribution(p, 0.0)
    wide = count_distribution(p, 0.2)
    assert plain.sum() == pytest.approx(1) and wide.sum() == pytest.approx(1)
    assert k @ wide == pytest.approx(k @ plain, abs=0.05)
    var = lambda pmf: pmf @ (k - k @ pmf) ** 2  # noqa: E731
    assert var(plain) == pytest.approx(50 * 0.8 * 0.2)
    assert var(wide) > 2 * var(plain)


def test_share_forecast_with_closed_and_running_projects() -> None:
    # 8 closed, 6 of them on time; 2 running, certain-ish on time.
    out = share_forecast(np.array([1.0, 1.0]), 6, 8, target=0.8)
    assert out["n_projects"] == 10 and out["n_running"] == 2
    assert out["expected"] == pytest.approx(0.8, abs=1e-6)
    assert out["interval"] == [pytest.approx(0.8), pytest.approx(0.8)]
    assert out["p_reach_target"] == pytest.approx(1.0)
    half = share_forecast(np.full(100, 0.5), 0, 0, target=0.9)
    assert half["interval"][0] < 0.5 < half["interval"][1]
    assert half["p_reach_target"] < 1e-10


def _projects() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "project_id": ["a", "b", "c", "d", "e"],
            "portfolio": ["x", "x", "y", "y", "y"],
            "planned_start": pd.to_datetime(["2023-01-01"] * 5),
            "planned_finish": pd.to_datetime(
                ["2024-03-01", "2024-06-01", "2024-09-01", "2025-02-01", "2024-05-01"]
            ),
            "actual_finish": pd.to_datetime(["2024-03-01", "2024-09-01", None, None, None]),
            "budget": [100.0, 100.0, 100.0, np.nan, 100.0],
            "final_cost": [100.0, 120.0, np.nan, np.nan, np.nan],
            "status": ["closed", "closed", "active", "active", "cancelled"],
        }
    )


def test_cohort_and_forecast_count_closed_and_running() -> None:
    projects = _projects()
    assert cohort(projects, 2024).tolist() == [True, True, True, False, False]
    scores = pd.DataFrame(
        {"project_id": ["c", "d"], "p_late": [0.25, 0.9], "p_over_budget": [0.5, np.nan]}
    )
    out = kpi_forecast(
        projects, scores, 2024, pd.Timestamp("2024-10-01"),
        delay_tolerance=0.05, overrun_tolerance=0.05,
        targets={"on_time": 0.9, "within_budget": 0.9}, correlation=0.0,
    )  # fmt: skip
    on_time = out["on_time"]
    # a on time, b late (3 months over 14), c running with p_on_time 0.75.
    assert on_time["n_closed"] == 2 and on_time["n_running"] == 1
    assert on_time["expected"] == pytest.approx((1 + 0.75) / 3)
    assert on_time["p_reach_target"] == 0.0  # b is late: 2/3 at best
    budget = out["within_budget"]
    assert budget["expected"] == pytest.approx((1 + 0.5) / 3)


def test_realised_by_year_and_portfolio() -> None:
    rows = realised_kpis(_projects(), 0.05, 0.05)
    by = {(r["year"], r["portfolio"]): r for r in rows}
    assert by[(2024, "all")]["n_closed"] == 2
    assert by[(2024, "all")]["on_time"] == pytest.approx(0.5)
    assert by[(2024, "all")]["within_budget"] == pytest.approx(0.5)
    assert by[(2024, "x")]["n_closed"] == 2 and (2024, "y") not in by
