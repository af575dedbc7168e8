"""Feature build speed: ~1,000,000 status reports (target < 20 s) and one project with 100
reports inside the service (target < 5 ms, median of many runs). Prints a table; not a test.

The machine may be shared: the table shows wall-clock time (what the targets are about) and
the CPU time of this process beside it, plus the load average, so that a slow figure on a
busy machine can be told from a slow build.

    .venv/bin/python bench/bench_features.py [--reports 1000000] [--runs 300]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from features.contract import Portfolio, conform
from features.pointintime import build_features, portfolio_context, training_table

BIG_TARGET_S = 20.0
ONE_TARGET_MS = 5.0


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _simulated(n_reports: int) -> tuple[Portfolio, str]:
    """A simulated portfolio with about n_reports status reports."""
    try:
        from features.simulator import simulate_portfolio
    except ImportError:  # the simulator is optional here: fall back to a synthetic portfolio
        return _synthetic(n_reports), "synthetic (features.simulator not available)"
    probe = simulate_portfolio(1000, seed=11).portfolio
    per_project = len(probe.status_reports) / len(probe.projects)
    n_projects = math.ceil(n_reports / per_project)
    return simulate_portfolio(n_projects, seed=7).portfolio, f"simulate_portfolio({n_projects})"


def _synthetic(n_reports: int, seed: int = 7) -> Portfolio:
    """Weekly reports with an S-curve PV and noisy EV/AC, built without the simulator."""
    rng = np.random.default_rng(seed)
    n = max(1, n_reports // 24)
    start = pd.Timestamp("2015-01-05") + pd.to_timedelta(rng.integers(0, 3000, n), "D")
    weeks = rng.integers(10, 40, n)
    ids = np.array([f"S-{i:06d}" for i in range(n)], dtype=object)
    budget = np.exp(rng.normal(14, 1, n))
    owner = np.repeat(np.arange(n), weeks)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(weeks) - weeks, weeks)
    frac = (rank + 1) / weeks[owner]
    pv = budget[owner] * frac**2 * (3 - 2 * frac)
    ev = pv * rng.normal(0.95, 0.05, len(owner))
    projects = pd.DataFrame(
        {
            "project_id": ids,
            "project_type": rng.choice(np.array(["it", "rail", "building"], dtype=object), n),
            "portfolio": "synthetic",
            "planned_start": start,
            "planned_finish": start + pd.to_timedelta(weeks * 7, "D"),
            "budget": budget,
            "actual_finish": start + pd.to_timedelta(weeks * 8, "D"),
            "final_cost": budget * rng.normal(1.1, 0.1, n),
        }
    )
    reports = pd.DataFrame(
        {
            "project_id": ids[owner],
            "report_date": start[owner] + pd.to_timedelta((rank + 1) * 7, "D"),
            "percent_complete": 100 * ev / budget[owner],
            "planned_value": pv,
            "earned_value": ev,
            "actual_cost": ev * rng.normal(1.05, 0.05, len(owner)),
            "forecast_finish": start[owner] + pd.to_timedelta(weeks[owner] * 7, "D"),
        }
    )
    changes = pd.DataFrame(
        {
            "project_id": ids[owner[::10]],
            "raised_date": reports["report_date"].to_numpy()[::10],
            "status": "approved",
            "decided_date": reports["report_date"].to_numpy()[::10],
            "cost_impact": 1000.0,
        }
    )
    return Portfolio(
        conform(projects, "projects"),
        conform(reports, "status_reports"),
        conform(changes, "changes"),
    )


def _one_project(n_reports: int = 100) -> Portfolio:
    """One running project with weekly reports and a few changes, as the service gets it."""
    start = pd.Timestamp("2024-01-01")
    dates = start + pd.to_timedelta(np.arange(1, n_reports + 1) * 7, "D")
    frac = np.arange(1, n_reports + 1) / (n_reports * 1.2)
    pv = 1e6 * frac**2 * (3 - 2 * frac)
    projects = pd.DataFrame(
        {
            "project_id": ["ONE"],
            "project_type": ["it"],
            "portfolio": ["north"],
            "planned_start": [start],
            "planned_finish": [start + pd.Timedelta(days=int(n_reports * 7 * 1.2))],
            "budget": [1e6],
        }
    )
    reports = pd.DataFrame(
        {
            "project_id": "ONE",
            "report_date": dates,
            "percent_complete": 100 * frac,
            "planned_value": pv,
            "earned_value": pv * 0.93,
            "actual_cost": pv * 1.04,
            "forecast_finish": dates[-1] + pd.Timedelta(days=60),
            "forecast_cost": 1.08e6,
        }
    )
    changes = pd.DataFrame(
        {
            "project_id": "ONE",
            "raised_date": dates[::10],
            "decided_date": dates[::10] + pd.Timedelta(days=9),
            "status": "approved",
            "kind": "scope",
            "cost_impact": 2500.0,
        }
    )
    return Portfolio(
        conform(projects, "projects"),
        conform(reports, "status_reports"),
        conform(changes, "changes"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()

    rows: list[tuple[str, str, str, str, str, str]] = []

    # 1. The whole table: one feature row per status report, then the training table.
    portfolio, source = _simulated(args.reports)
    reports = portfolio.status_reports
    every_report = pd.DataFrame(
        {"project_id": reports["project_id"], "as_of": reports["report_date"]}
    )
    frame, wall, cpu = _timed(lambda: build_features(portfolio, every_report))
    rows.append(
        (
            f"build_features, a row per report ({len(reports):,} reports)",
            f"{wall:.2f} s",
            f"{cpu:.2f} s",
            f"< {BIG_TARGET_S:.0f} s",
            f"{wall / BIG_TARGET_S:.2f}",
            f"{len(frame) / wall:,.0f} rows/s",
        )
    )
    table, wall, cpu = _timed(lambda: training_table(portfolio, 0.05, 0.05))
    rows.append(
        (
            f"training_table ({len(table.frame):,} rows)",
            f"{wall:.2f} s",
            f"{cpu:.2f} s",
            f"< {BIG_TARGET_S:.0f} s",
            f"{wall / BIG_TARGET_S:.2f}",
            f"{len(table.frame) / wall:,.0f} rows/s",
        )
    )
    del frame, table

    # 2. One project with 100 reports inside the service: context precomputed and passed in.
    one = _one_project(100)
    request = pd.DataFrame({"project_id": ["ONE"], "as_of": [pd.Timestamp("2026-01-01")]})
    context = portfolio_context(portfolio, request["as_of"])
    for _ in range(20):  # warm up imports and caches
        build_features(one, request, context=context)
    walls, cpus = [], []
    for _ in range(args.runs):
        _, wall, cpu = _timed(lambda: build_features(one, request, context=context))
        walls.append(wall * 1e3)
        cpus.append(cpu * 1e3)
    median = statistics.median(walls)
    rows.append(
        (
            f"build_features, 1 project × 100 reports (median of {args.runs})",
            f"{median:.2f} ms",
            f"{statistics.median(cpus):.2f} ms",
            f"< {ONE_TARGET_MS:.0f} ms",
            f"{median / ONE_TARGET_MS:.2f}",
            f"min {min(walls):.2f} ms",
        )
    )

    header = ("case", "wall", "cpu", "target", "wall/target", "throughput")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"portfolio: {source}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for line in (header, *rows):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    print(
        "targets met:",
        all(float(r[4]) < 1.0 for r in rows),
        "(ratio < 1 is within target)",
    )


if __name__ == "__main__":
    main()
