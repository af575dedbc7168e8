"""How long `forewarn --help` takes (target < 1 s), beside a bare `python -c pass`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 7
BIN = Path(sys.executable).parent


def _median_seconds(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ours = _median_seconds([str(BIN / "forewarn"), "--help"])
    floor = _median_seconds([sys.executable, "-c", "pass"])
    print(f"{'what':<28}{'median s':>10}{'target s':>10}{'ratio':>8}")
    print(f"{'python -c pass (floor)':<28}{floor:>10.3f}{'':>10}{'':>8}")
    print(f"{'forewarn --help':<28}{ours:>10.3f}{1.0:>10.1f}{ours / floor:>7.1f}x")
    print(f"target met: {ours < 1.0} (median of {RUNS} runs)")


if __name__ == "__main__":
    main()
