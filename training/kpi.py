"""Portfolio KPIs: will this year's projects reach the on-time and within-budget targets?

The cohort of a period is the projects due to finish in it (``planned_finish`` in the
year), not cancelled. Those already closed count with their outcome; each running one
counts with its calibrated probability from the champion classifier (on time =
1 − p_late, within budget = 1 − p_over_budget; within budget means an overrun of at most
the overrun tolerance, the "budget deviation ≤ 5 %" PMOs report). The number that succeed
is Poisson-binomial when projects are independent. They are not quite (one market, one
vendor, one PMO): `correlation` is the latent correlation of a one-factor Gaussian copula
(Vasicek), which keeps every project's own probability and widens the spread of the count;
0 gives the plain Poisson-binomial. The count's distribution gives the expected share, a
90 % interval and the probability of reaching the target share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from features.labels import label_projects

QUADRATURE_NODES = 41
INTERVAL = 0.90
KPI_LABELS = {"on_time": "late", "within_budget": "over_budget"}


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """P(k successes), k = 0 … n, for independent trials of success probabilities `p`.

    Rows of a 2-D `p` are independent scenarios: the result is (rows, n + 1).
    """
    p = np.atleast_2d(np.asarray(p, dtype=float))
    rows, n = p.shape
    pmf = np.zeros((rows, n + 1))
    pmf[:, 0] = 1.0
    for j in range(n):  # one convolution per project: O(n²), a few ms for a thousand
        pj = p[:, j : j + 1]
        pmf[:, 1 : j + 2] = pmf[:, 1 : j + 2] * (1 - pj) + pmf[:, : j + 1] * pj
        pmf[:, 0:1] *= 1 - pj
    return pmf


def count_distribution(p: np.ndarray, correlation: float = 0.0) -> np.ndarray:
    """P(k successes) when the trials share a latent factor with `correlation` (0 ≤ ρ < 1).

    Conditional on the factor z, success i has probability Φ((Φ⁻¹(pᵢ) + √ρ z) / √(1 − ρ)),
    whose average over z is pᵢ; the count is Poisson-binomial given z, mixed over z by
    Gauss-Hermite quadrature.
    """
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must be in [0, 1), got {correlation}")
    if correlation == 0 or len(p) == 0:
        return poisson_binomial(p)[0]
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    weights = weights / weights.sum()
    shifted = (norm.ppf(p)[None, :] + np.sqrt(correlation) * nodes[:, None]) / np.sqrt(
        1 - correlation
    )
    return weights @ poisson_binomial(norm.cdf(shifted))


def share_forecast(
    p_success: np.ndarray,
    known_successes: int,
    known_total: int,
    target: float,
    correlation: float = 0.0,
    interval: float = INTERVAL,
) -> dict[str, Any]:
    """The cohort's success share: expected, central `interval`, P(share ≥ target).

    `p_success` are the running projects' probabilities; `known_*` the closed ones'.
    """
    p = np.asarray(p_success, dtype=float)
    p = p[np.isfinite(p)]
    total = known_total + len(p)
    if total == 0:
        return {"n_projects": 0, "n_running": 0, "n_closed": 0, "expected": None,
                "interval": None, "p_reach_target": None, "target": target}  # fmt: skip
    pmf = count_distribution(p, correlation)
    shares = (known_successes + np.arange(len(p) + 1)) / total
    cdf = np.cumsum(pmf)
    tail = (1 - interval) / 2
    last = len(shares) - 1
    low = shares[min(int(np.searchsorted(cdf, tail - 1e-12)), last)]
    high = shares[min(int(np.searchsorted(cdf, 1 - tail - 1e-12)), last)]
    return {
        "n_projects": int(total),
        "n_running": len(p),
        "n_closed": int(known_total),
        "expected": float(np.dot(pmf, shares)),
        "interval": [float(low), float(high)],
        "p_reach_target": float(pmf[shares >= target - 1e-12].sum()),
        "target": target,
    }


def cohort(projects: pd.DataFrame, year: int) -> pd.Series:
    """Projects due to finish in `year` (planned_finish), cancelled ones left out."""
    due = pd.to_datetime(projects["planned_finish"]).dt.year == year
    return due & (projects["status"] != "cancelled")


def kpi_forecast(
    projects: pd.DataFrame,
    scores: pd.DataFrame,
    year: int,
    as_of: pd.Timestamp,
    *,
    delay_tolerance: float,
    overrun_tolerance: float,
    targets: Mapping[str, float],
    correlation: float,
) -> dict[str, Any]:
    """Both KPIs for the cohort of `year` as known at `as_of`.

    `scores` holds ``project_id, p_late, p_over_budget`` of the running projects (what
    batch scoring returns). Closed by `as_of`: the outcome; running and scored: the
    probability; neither (not started, not scorable) is counted as left out.
    """
    in_cohort = cohort(projects, year)
    ids = projects.loc[in_cohort, "project_id"]
    labels = label_projects(projects, delay_tolerance, overrun_tolerance, as_of=as_of)
    labels = labels.set_index("project_id").reindex(ids)
    scored = scores.set_index("project_id").reindex(ids)
    out: dict[str, Any] = {"year": year, "as_of": str(pd.Timestamp(as_of).date())}
    p_columns = {"on_time": "p_late", "within_budget": "p_over_budget"}
    for kpi, label in KPI_LABELS.items():
        known = labels[label].dropna()
        p_bad = scored[p_columns[kpi]].astype(float)
        running = p_bad[labels[label].isna() & p_bad.notna()]
        left_out = int(len(ids) - len(known) - len(running))
        entry = share_forecast(
            1.0 - running.to_numpy(),
            int((known == 0).sum()),
            len(known),
            targets[kpi],
            correlation,
        )
        entry["left_out"] = left_out
        out[kpi] = entry
    out["correlation"] = correlation
    return out


def realised_kpis(
    projects: pd.DataFrame, delay_tolerance: float, overrun_tolerance: float
) -> list[dict[str, Any]]:
    """Closed projects' KPIs by year of actual finish and portfolio (and all portfolios)."""
    labels = label_projects(projects, delay_tolerance, overrun_tolerance)
    frame = pd.DataFrame(
        {
            "year": pd.to_datetime(projects["actual_finish"]).dt.year.to_numpy(),
            "portfolio": projects["portfolio"].fillna("—").astype(str).to_numpy()
            if "portfolio" in projects
            else "—",
            "on_time": 1.0 - labels["late"].to_numpy(),
            "within_budget": 1.0 - labels["over_budget"].to_numpy(),
        }
    )
    frame = frame.loc[frame["on_time"].notna()]
    both = pd.concat([frame, frame.assign(portfolio="all")], ignore_index=True)
    grouped = both.groupby(["year", "portfolio"])
    table = grouped.agg(
        n_closed=("on_time", "size"),
        on_time=("on_time", "mean"),
        n_with_budget=("within_budget", "count"),
        within_budget=("within_budget", "mean"),
    ).reset_index()
    rows = []
    for record in table.to_dict("records"):
        rows.append(
            {
                "year": int(record["year"]),
                "portfolio": record["portfolio"],
                "n_closed": int(record["n_closed"]),
                "on_time": float(record["on_time"]),
                "n_with_budget": int(record["n_with_budget"]),
                "within_budget": None
                if record["n_with_budget"] == 0
                else float(record["within_budget"]),
            }
        )
    return rows
