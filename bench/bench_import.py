"""How long `forewarn import` takes on a 4,000-activity cost-loaded schedule (target < 10 s,
JVM start included), beside MPXJ alone reading the same file (JVM start included too).

The schedule is written once with MPXJ's own MSPDI writer (no real one that size is at hand):
4,000 activities in finish-to-start chains of 40, each costed and a fifth of them under way,
a milestone every 50, a status date in the middle. Each figure is the median of `--runs`
fresh processes (run in rounds, one of each command per round), so every run pays the JVM's
start as a user's command does: wall time (what the target is about) and CPU time (user +
system of every thread, the JVM's included), which a shared machine's load disturbs less.
Two floors: the JVM's start, and Python's with what `forewarn import` loads (its CLI,
settings, pandas). MPXJ alone runs twice: with the JVM's defaults (what a user of MPXJ gets)
and with the JVM options `forewarn import` starts Java with, so that the last ratio is ours
over MPXJ's own work.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 3  # the default of --runs
ACTIVITIES = 4_000
TARGET_S = 10.0
BIN = Path(sys.executable).parent

_MPXJ_ALONE = """
import sys, jpype, mpxj
jpype.startJVM(*sys.argv[2:])
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


def _medians(commands: list[list[str]], runs: int) -> list[tuple[float, float]]:
    """Median wall and CPU seconds (user + system, every thread: the JVM's too) of each
    command over `runs` rounds; each round runs every command once, so that a shared
    machine's load, which drifts over minutes, weighs on all of them alike."""
    walls: list[list[float]] = [[] for _ in commands]
    cpus: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for i, cmd in enumerate(commands):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            begin = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls[i].append(time.perf_counter() - begin)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[i].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus, strict=True)]


def main() -> None:
    from features.schedules.reader import JVM_OPTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="fresh processes per figure")
    runs = parser.parse_args().runs

    with tempfile.TemporaryDirectory() as tmp:
        schedule = Path(tmp) / "bench-4000.xml"
        _write_schedule(schedule)
        load = os.getloadavg()[0]
        commands = {
            "JVM start alone (floor)": [
                sys.executable,
                "-c",
                "import jpype, mpxj; jpype.startJVM()",
            ],
            "Python start alone (floor)": [
                sys.executable,
                "-c",
                "import forewarn.cli, forewarn.settings, features.schedules.mapping",
            ],
            "MPXJ alone, default JVM (baseline)": [
                sys.executable,
                "-c",
                _MPXJ_ALONE,
                str(schedule),
            ],
            "MPXJ alone, our JVM options": [
                sys.executable,
                "-c",
                _MPXJ_ALONE,
                str(schedule),
                *JVM_OPTIONS,
            ],
            "forewarn import (ours)": [
                str(BIN / "forewarn"),
                "import",
                str(schedule),
                "--out",
                str(Path(tmp) / "out"),
            ],
        }
        rows = list(zip(commands, _medians(list(commands.values()), runs), strict=True))
        load = max(load, os.getloadavg()[0])
    baseline = rows[2][1][0]
    ours_wall, ours_cpu = rows[-1][1]
    same_wall, same_cpu = rows[3][1]
    print(
        f"{ACTIVITIES:,}-activity cost-loaded MSPDI, median of {runs} fresh processes "
        f"(each pays its JVM start); {os.cpu_count()} CPUs, load average up to {load:.1f}"
    )
    print(f"JVM options of ours: {' '.join(JVM_OPTIONS)}")
    print(f"{'what':<38}{'wall s':>8}{'CPU s':>8}{'target s':>10}{'wall / baseline':>17}")
    for label, (wall, cpu) in rows:
        target = f"{TARGET_S:.1f}" if label.startswith("forewarn") else ""
        print(f"{label:<38}{wall:>8.2f}{cpu:>8.2f}{target:>10}{wall / baseline:>16.2f}x")
    print(f"target met (wall < {TARGET_S:.0f} s): {ours_wall < TARGET_S}; CPU {ours_cpu:.2f} s")
    print(
        f"ours / MPXJ alone with our JVM options: wall {ours_wall / same_wall:.2f}x, "
        f"CPU {ours_cpu / same_cpu:.2f}x"
    )


if __name__ == "__main__":
    main()
