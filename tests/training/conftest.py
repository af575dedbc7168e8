"""Fixtures for the training tests: synthetic training tables and a throwaway MLflow store.

The synthetic table has the shape `features.pointintime.training_table` returns (meta
columns, then features) and a signal that grows with elapsed time, so models can learn and
tests can fail. It is built here so the training units do not depend on the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TYPES = np.array(["it", "construction", "rail"], dtype=object)
PORTFOLIOS = np.array(["north", "south", "east"], dtype=object)


def make_table(
    n_projects: int = 300,
    seed: int = 0,
    start: str = "2018-01-01",
    span_days: int = 1800,
    with_cost: bool = True,
    report_every_days: int = 30,
    shift_start: str | None = None,
) -> pd.DataFrame:
    """A synthetic training table: one row per report plus an at-approval row per project.

    With `shift_start`, the world changes for projects planned to start on or after it: the
    "south" portfolio's projects slip badly from day one (a vendor failing, say), which a
    model trained on earlier projects cannot know.
    """
    rng = np.random.default_rng(seed)
    n = n_projects
    planned_start = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, span_days, n), "D")
    duration = rng.integers(150, 600, n).astype(float)
    kind = rng.integers(0, 3, n)
    hidden = rng.normal(0, 1, n)
    slip = 0.12 * hidden + 0.08 * (kind == 0) + rng.normal(0, 0.08, n)
    portfolio = rng.integers(0, 3, n)
    if shift_start is not None:
        slip = slip + 0.3 * ((planned_start >= pd.Timestamp(shift_start)) & (portfolio == 1))
    overrun = 0.10 * (0.7 * hidden + 0.7 * rng.normal(0, 1, n)) + 0.05 * (kind == 0) + 0.02
    planned_finish = planned_start + pd.to_timedelta(duration, "D")
    actual_finish = planned_finish + pd.to_timedelta(np.round(slip * duration), "D")
    actual_days = (actual_finish - planned_start).days.to_numpy().astype(float)
    n_reports = np.maximum(1, np.ceil(actual_days / report_every_days).astype(int) - 1)

    rows = n_reports + 1  # plus the at-approval row
    pid = np.repeat(np.arange(n), rows)
    step = np.concatenate([np.arange(r) for r in rows])
    days = step * report_every_days
    elapsed = days / duration[pid]
    e = np.minimum(elapsed, 1.0)
    noise = rng.normal(0, 1, (4, len(pid)))
    spi = np.clip(1 - 0.9 * slip[pid] * e + 0.05 * noise[0], 0.3, 1.5)
    cpi = np.clip(1 / (1 + 1.2 * overrun[pid] * e) + 0.04 * noise[1], 0.3, 1.5)
    forecast_slip = 0.5 * slip[pid] * e + 0.03 * noise[2]
    forecast_overrun = 0.5 * overrun[pid] * e + 0.03 * noise[3]
    approval = step == 0
    for col in (spi, cpi, forecast_slip, forecast_overrun):
        col[approval] = np.nan
    if not with_cost:
        cpi[:] = np.nan
        forecast_overrun[:] = np.nan

    ids = np.array([f"P{i:04d}" for i in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "project_id": ids[pid],
            "as_of": planned_start[pid] + pd.to_timedelta(days, "D"),
            "weight": 1.0 / rows[pid],
            "late": (slip[pid] > 0.05).astype(float),
            "over_budget": (overrun[pid] > 0.05).astype(float) if with_cost else np.nan,
            "actual_finish": actual_finish[pid],
            "elapsed_fraction": elapsed,
            "percent_complete": np.clip(100 * e * spi, 0, 100),
            "spi": spi,
            "cpi": cpi,
            "forecast_slip": forecast_slip,
            "forecast_overrun": forecast_overrun,
            "has_cost_data": float(with_cost),
            "n_reports": step.astype(float),
            "planned_duration_days": duration[pid],
            "project_type": TYPES[kind][pid],
            "portfolio": PORTFOLIOS[portfolio][pid],
        }
    )
    return frame


@pytest.fixture(scope="session")
def synthetic_table() -> Callable[..., pd.DataFrame]:
    return make_table


@pytest.fixture
def mlflow_store(tmp_path: Path) -> dict[str, str]:
    """A sqlite MLflow store inside tmp_path, never the repository's models/."""
    store = tmp_path / "mlruns"
    store.mkdir()
    return {
        "tracking_uri": f"sqlite:///{store / 'mlflow.db'}",
        "artifact_root": (store / "artifacts").as_uri(),
    }
