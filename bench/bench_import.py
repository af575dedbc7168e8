"""How long `forewarn import` takes on a 4,000-activity cost-loaded schedule (target < 10 s,
JVM start included), beside MPXJ alone reading the same file (JVM start included too).

The schedule is written once with MPXJ's own MSPDI writer (no real one that size is at hand):
4,000 activities in finish-to-start chains of 40, each costed and a fifth of them under way,
a milestone every 50, a status date in the middle. Each figure is the median of RUNS fresh
processes, so every run pays the JVM's start as a user's command does.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 3
ACTIVITIES = 4_000
TARGET_S = 10.0
BIN = Path(sys.executable).parent

_MPXJ_ALONE = """
import sys, jpype, mpxj
jpype.startJVM()
from org.mpxj.reader import UniversalProjectReader
project = UniversalProjectReader().read(sys.argv[1])
assert project.getTasks().size() >= 4000
"""


def _write_schedule(path: Path) -> None:
    import numpy as np
    import pandas as pd

    from features.schedules.series import write_mspdi

    rng = np.random.default_rng(7)
    start = pd.Timestamp("2025-01-06")
    n = ACTIVITIES
    chain = np.arange(n) % 40  # position in its chain of 40
    days = rng.integers(2, 30, n)
    offset = np.zeros(n, dtype=int)
    for i in range(1, n):  # finish-to-start within a chain
        offset[i] = 0 if chain[i] == 0 else offset[i - 1] + days[i - 1]
    offset += (np.arange(n) // 40) * 3  # chains start staggered
    bs = pd.Series(start + pd.to_timedelta(offset, unit="D"))
    bf = bs + pd.Series(pd.to_timedelta(days, unit="D"))
    milestone = np.arange(n) % 50 == 49
    bf = bf.where(~milestone, bs)
    cost = np.where(milestone, 0.0, rng.uniform(1_000, 50_000, n).round(2))
    status = start + pd.Timedelta(days=200)
    elapsed = ((status - bs) / (bf - bs).where(bf > bs, pd.Timedelta(days=1))).clip(0, 1)
    percent = np.round(100 * np.asarray(elapsed) * rng.uniform(0.7, 1.1, n)).clip(0, 100)
    plan = pd.DataFrame(
        {
            "name": [f"Activity {i + 1}" for i in range(n)],
            "milestone": milestone,
            "baseline_start": bs,
            "baseline_finish": bf,
            "start": bs,
            "finish": bf,
            "baseline_cost": cost,
            "percent_complete": percent,
            "actual_cost": cost * percent / 100 * rng.uniform(0.9, 1.3, n),
            "cost": cost * rng.uniform(0.95, 1.2, n),
            "actual_start": bs.where(percent > 0),
            "actual_finish": bf.where(percent >= 100),
        }
    )
    predecessors = [-1 if chain[i] == 0 else i - 1 for i in range(n)]
    write_mspdi(
        path, plan, status, "Bench 4000", "6f1d2c3b-0000-4000-8000-000000004000", predecessors
    )


def _median_seconds(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        begin = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        schedule = Path(tmp) / "bench-4000.xml"
        _write_schedule(schedule)
        ours = _median_seconds(
            [str(BIN / "forewarn"), "import", str(schedule), "--out", str(Path(tmp) / "out")]
        )
        alone = _median_seconds([sys.executable, "-c", _MPXJ_ALONE, str(schedule)])
        floor = _median_seconds([sys.executable, "-c", "import jpype, mpxj; jpype.startJVM()"])
    print(f"{ACTIVITIES:,}-activity cost-loaded MSPDI, median of {RUNS} fresh processes")
    print(f"{'what':<40}{'median s':>10}{'target s':>10}{'ratio':>8}")
    print(f"{'JVM start alone (floor)':<40}{floor:>10.2f}{'':>10}{'':>8}")
    print(f"{'MPXJ alone reads it (baseline)':<40}{alone:>10.2f}{'':>10}{'':>8}")
    print(f"{'forewarn import (ours)':<40}{ours:>10.2f}{TARGET_S:>10.1f}{ours / alone:>7.2f}x")
    print(f"target met: {ours < TARGET_S}")


if __name__ == "__main__":
    main()
