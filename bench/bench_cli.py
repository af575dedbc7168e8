"""Start-up a user feels: `forewarn --help`, and `forewarn report` on a 55-project portfolio
with trained champions, beside what issue 13 measured before (0.94 s and 32 s) and a bare
`python -c pass`.

    .venv/bin/python bench/bench_cli.py [--runs 7] [--report-runs 3] [--projects 55]

The portfolio is simulated and the champions trained once, in a temporary folder (their
time is not counted); each timed command is a fresh process, as a user runs it. Targets
(issue 13): --help ≤ 0.5 s, report ≤ 5 s (wall, on a quiet machine). The machine is shared:
medians of wall and of CPU seconds (what the command itself costs), and the load average.
`--reuse DIR` skips the simulation and training of an earlier run. Not a test.
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

BIN = Path(sys.executable).parent
BEFORE = {"forewarn --help": 0.94, "forewarn report": 32.0}  # issue 13, before the work
TARGET = {"forewarn --help": 0.5, "forewarn report": 5.0}


def _median_seconds(
    cmd: list[str], runs: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system) of the command's process:
    on a busy machine the CPU time is what the command itself costs."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def _portfolio_with_champions(root: Path, projects: int, env: dict[str, str]) -> Path:
    data = root / "portfolio"
    forewarn = str(BIN / "forewarn")
    subprocess.run([forewarn, "simulate", "--out", str(data), "--projects", str(projects)],
                   check=True, capture_output=True, env=env)  # fmt: skip
    subprocess.run([forewarn, "train", str(data), "--json"], check=True, capture_output=True,
                   env=env)  # fmt: skip
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of --help")
    parser.add_argument("--report-runs", type=int, default=3, help="timed runs of report")
    parser.add_argument("--projects", type=int, default=55, help="simulated projects")
    parser.add_argument("--reuse", type=Path, help="a folder an earlier run printed")
    args = parser.parse_args()

    root = args.reuse or Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREWARN_", "MLFLOW_"))}
    env.update(FOREWARN_MODELS_DIR=str(root / "models"), FOREWARN_OUT_DIR=str(root / "out"))
    if args.reuse:
        data = root / "portfolio"
    else:
        print(f"simulating {args.projects} projects, training champions in {root}", flush=True)
        data = _portfolio_with_champions(root, args.projects, env)

    forewarn = str(BIN / "forewarn")
    ours = {
        "forewarn --help": _median_seconds([forewarn, "--help"], args.runs, env),
        "forewarn report": _median_seconds([forewarn, "report", str(data)], args.report_runs, env),
    }
    floor, floor_cpu = _median_seconds([sys.executable, "-c", "pass"], args.runs)
    load = os.getloadavg()
    print()
    print(f"{'what':<24}{'wall s':>9}{'cpu s':>8}{'before s':>10}{'ratio':>8}{'target s':>10}"
          f"{'met':>6}")  # fmt: skip
    print(f"{'python -c pass (floor)':<24}{floor:>9.3f}{floor_cpu:>8.3f}")
    for name, (seconds, cpu) in ours.items():
        met = "yes" if seconds <= TARGET[name] else "no"
        print(f"{name:<24}{seconds:>9.3f}{cpu:>8.3f}{BEFORE[name]:>10.2f}"
              f"{seconds / BEFORE[name]:>7.2f}x{TARGET[name]:>10.1f}{met:>6}")  # fmt: skip
    loads = " / ".join(f"{x:.1f}" for x in load)
    print(f"medians of {args.runs} (--help) and {args.report_runs} (report) runs; "
          f"load average {loads} on {os.cpu_count()} CPUs")  # fmt: skip


if __name__ == "__main__":
    main()
