"""Load benchmark: the service under steady load from locust, with its memory before and
after.

    .venv/bin/python bench/bench_load.py [--minutes 1] [--users 16] [--workers 2]
    .venv/bin/python bench/bench_load.py --minutes 10      # the full run of issue 17

Trains small champions into a tmp MLflow store (as bench_serve.py does), serves them with
`forewarn serve` on 127.0.0.1, lets locust (headless, `--users` users spawned at once, no
think time, bounded by `--minutes`) send single-project `POST /score` requests (30 status
reports and 5 changes each), and prints the error rate, p50/p99 and requests/s beside
their limits, and the workers' resident memory (RSS, summed) before and after the load
beside the 10 % growth limit. Locust and the server share the machine's two cores, and
other work on it shows in the figures: compare runs by their medians. Not a test.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_serve import API_KEY, free_port, request_bodies, stop, train_store, wait_ready  # noqa: E402

# The limits the figures are printed beside (bench_serve.py's p99 target at 16 clients).
P99_LIMIT_MS = 60.0
ERROR_LIMIT = 0.0
RSS_GROWTH_LIMIT = 0.10


def workers_rss(pid: int) -> int:
    """Resident bytes of the server's processes (arbiter and workers), summed."""
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def load(url: str, bodies: Path, users: int, minutes: float, out: Path) -> dict[str, Any]:
    """One headless locust run; its aggregated /score row."""
    env = {**os.environ, "FOREWARN_BENCH_BODIES": str(bodies), "FOREWARN_BENCH_KEY": API_KEY}
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(REPO / "bench" / "locust_forewarn.py"),
        "--headless", "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{max(int(minutes * 60), 5)}s", "--host", url,
        "--csv", str(out / "locust"), "--only-summary", "--loglevel", "WARNING",
        "--stop-timeout", "10",
    ]  # fmt: skip
    subprocess.run(command, env=env, check=False, timeout=minutes * 60 + 300,
                   stdout=subprocess.DEVNULL, stderr=(out / "locust.log").open("wb"))  # fmt: skip
    with (out / "locust_stats.csv").open() as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    return rows["/score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long locust runs")
    parser.add_argument("--users", type=int, default=16, help="concurrent locust users")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--projects", type=int, default=400, help="simulated portfolio size")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    print(f"training champions on {args.projects} simulated projects ...", flush=True)
    uri, portfolio = train_store(root, args.projects, seed=7)
    bodies = root / "bodies.jsonl"
    bodies.write_bytes(b"\n".join(request_bodies(portfolio, 200)) + b"\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")},
        "MLFLOW_TRACKING_URI": uri,
        "FOREWARN_API_KEY": API_KEY,
        "FOREWARN_WORKERS": str(args.workers),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    port = free_port()
    log = root / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "forewarn.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready("/readyz", port, server, log)
        deadline = time.monotonic() + 300
        while log.read_text(errors="replace").count("Forewarn loaded") < args.workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"workers not loaded: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}"
        load(url, bodies, args.users, 0.1, root)  # warm-up: first requests, lazy imports
        before = workers_rss(server.pid)
        print(f"locust: {args.users} users for {args.minutes:g} min ...", flush=True)
        row = load(url, bodies, args.users, args.minutes, root)
        after = workers_rss(server.pid)
    finally:
        stop(server)

    requests = int(row["Request Count"])
    failures = int(row["Failure Count"])
    error_rate = failures / requests if requests else 1.0
    p50, p99 = float(row["50%"]), float(row["99%"])
    growth = after / before - 1
    print()
    print(f"{'figure':<28}{'ours':>12}{'limit':>12}{'ratio':>8}")
    print(f"{'requests':<28}{requests:>12,}{'':>12}{'':>8}")
    print(f"{'requests/s':<28}{float(row['Requests/s']):>12.1f}{'':>12}{'':>8}")
    print(f"{'error rate':<28}{error_rate:>12.4%}{ERROR_LIMIT:>12.0%}{'':>8}")
    print(f"{'p50 (ms)':<28}{p50:>12.0f}{'':>12}{'':>8}")
    print(f"{'p99 (ms)':<28}{p99:>12.0f}{P99_LIMIT_MS:>12.0f}{p99 / P99_LIMIT_MS:>8.2f}")
    print(f"{'server RSS before (MB)':<28}{before / 2**20:>12.0f}{'':>12}{'':>8}")
    print(f"{'server RSS after (MB)':<28}{after / 2**20:>12.0f}{'':>12}{'':>8}")
    print(f"{'RSS growth':<28}{growth:>12.1%}{RSS_GROWTH_LIMIT:>12.0%}"
          f"{growth / RSS_GROWTH_LIMIT:>8.2f}")  # fmt: skip
    summary = {"requests": requests, "error_rate": error_rate, "p50_ms": p50, "p99_ms": p99,
               "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
               "users": args.users, "minutes": args.minutes, "workers": args.workers}  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
