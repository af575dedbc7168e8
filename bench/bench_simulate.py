"""Simulator speed: `forewarn simulate --projects 2000 --seed 7` must take well under 60 s.

Times simulate_portfolio(2000, seed=7) and then writing it as contract CSV (median of
--runs), beside the floor: writing the same frames with plain ``DataFrame.to_csv``. With
--big it also times a portfolio of about 1,000,000 status reports (the feature benchmark's
size). Prints a table; not a test. Wall-clock and this process's CPU time are shown side by
side, with the load average, so that a slow figure on a busy machine can be told apart.

    .venv/bin/python bench/bench_simulate.py [--projects 2000] [--runs 3] [--big]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from features.loading import write_portfolio
from features.simulator import simulate_portfolio

LIMIT_S = 60.0
BIG_REPORTS = 1_000_000


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _median_of(runs: int, fn: Callable[[], Any]) -> tuple[Any, float, float]:
    results = [_timed(fn) for _ in range(runs)]
    return (
        results[-1][0],
        statistics.median(r[1] for r in results),
        statistics.median(r[2] for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also ~1,000,000 status reports")
    args = parser.parse_args()

    rows: list[tuple[str, str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def simulate_and_write() -> int:
            sim = simulate_portfolio(args.projects, seed=args.seed)
            write_portfolio(sim.portfolio, out / "ours")
            return sum(sim.portfolio.counts().values())

        n_rows, ours, ours_cpu = _median_of(args.runs, simulate_and_write)
        portfolio = simulate_portfolio(args.projects, seed=args.seed).portfolio
        _, sim_wall, sim_cpu = _median_of(
            args.runs, lambda: simulate_portfolio(args.projects, seed=args.seed)
        )
        frames = (portfolio.projects, portfolio.status_reports, portfolio.changes)

        def plain_to_csv() -> None:
            for i, frame in enumerate(frames):
                frame.to_csv(out / f"plain-{i}.csv", index=False)

        _, floor, floor_cpu = _median_of(args.runs, plain_to_csv)

        counts = portfolio.counts()
        what = f"{args.projects:,} projects, seed {args.seed} ({n_rows:,} rows)"
        rows.append(
            (
                f"simulate + write CSV, {what}",
                f"{ours:.2f} s",
                f"{ours_cpu:.2f} s",
                f"< {LIMIT_S:.0f} s",
                f"{ours / LIMIT_S:.3f}",
                f"{n_rows / ours:,.0f} rows/s",
            )
        )
        rows.append(
            (
                "  of which simulate_portfolio alone",
                f"{sim_wall:.2f} s",
                f"{sim_cpu:.2f} s",
                "",
                "",
                f"{n_rows / sim_wall:,.0f} rows/s",
            )
        )
        rows.append(
            (
                "floor: plain DataFrame.to_csv of the same frames",
                f"{floor:.2f} s",
                f"{floor_cpu:.2f} s",
                "",
                f"ours {ours / floor:.1f}×",
                f"{n_rows / floor:,.0f} rows/s",
            )
        )

        if args.big:
            per_project = counts["status_reports"] / counts["projects"]
            n_big = int(round(BIG_REPORTS / per_project, -3))
            sim, wall, cpu = _timed(lambda: simulate_portfolio(n_big, seed=args.seed))
            big_rows = sum(sim.portfolio.counts().values())
            rows.append(
                (
                    f"simulate_portfolio({n_big:,}): "
                    f"{sim.portfolio.counts()['status_reports']:,} reports",
                    f"{wall:.2f} s",
                    f"{cpu:.2f} s",
                    f"< {LIMIT_S:.0f} s",
                    f"{wall / LIMIT_S:.3f}",
                    f"{big_rows / wall:,.0f} rows/s",
                )
            )

    header = ("case", "wall (median)", "cpu", "limit", "wall/limit", "throughput")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"median of {args.runs} runs"
    )
    for line in (header, *rows):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    print("within the limit:", ours < LIMIT_S)


if __name__ == "__main__":
    main()
