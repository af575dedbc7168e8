"""Benchmark: batch scoring with explanations, local engine vs Spark local[2]; training runs
with 1 vs 4 concurrent writers on PostgreSQL.

Scoring: a simulated portfolio of 1,000 projects is copied under new ids to each size
(10,000 by default; --large adds 100,000), written as CSV, and scored with --explain by
the local engine (load + validate + features + scores + TreeSHAP + Parquet) and by Spark
local[2] (the same, once per bucket of projects in mapInPandas). The Spark session is
started beforehand, and right before each size's Spark runs a job on the 1,000-project
base warms it up: Spark kills Python workers idle for a minute, and a new one imports
Forewarn (pandas, LightGBM, scikit-learn) again; the JVM compiles each new query. Both are
printed apart ("warm-up s"): that is what a nightly job pays once. Beside them: bare
LightGBM predict + pred_contrib on the same feature rows (already built and encoded), both
models — what the trees alone cost.

Writers: `forewarn train --target delay` on an 80-project portfolio into a throwaway
PostgreSQL cluster, once alone, then four at once; the time per run and runs per minute.

Printed, not asserted. The machine is shared (2 cores): quote medians of repeated runs.

    .venv/bin/python bench/bench_scale.py [--sizes 10000] [--large] [--runs 1]
                                          [--buckets N] [--no-spark] [--no-writers]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import training  # noqa: F401  (sets the OpenMP wait policy before LightGBM loads)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scale"))  # the throwaway PostgreSQL cluster


def _portfolio(base, copies: int, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    """`copies` copies of `base` under new project (and change) ids, as CSV."""
    import pandas as pd

    from features.contract import Portfolio
    from features.loading import write_portfolio

    def copy(frame: pd.DataFrame, k: int) -> pd.DataFrame:
        out = frame.copy()
        out["project_id"] = out["project_id"].astype(str) + f"-{k}"
        if "change_id" in out:
            out["change_id"] = out["change_id"].astype(str) + f"-{k}"
        return out

    tables = {
        name: pd.concat([copy(getattr(base, name), k) for k in range(copies)], ignore_index=True)
        for name in ("projects", "status_reports", "changes")
    }
    write_portfolio(Portfolio(**tables), folder)
    return folder


def _train(root: Path) -> tuple[str, object]:
    import pandas as pd

    from features.simulator import simulate_portfolio
    from training.pipeline import Store, TrainingOptions, train

    sim = simulate_portfolio(1000, seed=21)
    uri = f"sqlite:///{root}/models/mlflow.db"
    train(
        sim.portfolio,
        TrainingOptions(plots=False, n_bootstrap=20),
        Store(uri, (root / "models" / "artifacts").as_uri()),
        as_of=pd.Timestamp(sim.today) - pd.Timedelta(days=365),
    )
    return uri, simulate_portfolio(1000, seed=22).portfolio


def _bare_trees(champions, portfolio, as_of) -> float:  # type: ignore[no-untyped-def]
    """Seconds for booster predict + pred_contrib of both models on the encoded rows."""
    from features.pointintime import snapshot

    features = snapshot(portfolio, as_of, running_only=True, context=champions.context)
    total = 0.0
    for model in champions.models().values():
        matrix = model.encode(features)
        start = time.perf_counter()
        model.booster.predict(matrix, raw_score=True, num_threads=2)
        model.booster.predict(matrix, pred_contrib=True, num_threads=2)
        total += time.perf_counter() - start
    return total


def _local(data: Path, champions, as_of, out: Path) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from features.loading import load_portfolio
    from serving.batch import BatchScores, score_portfolio, write_scores

    champions.set_threads(2)
    start = time.perf_counter()
    loaded = load_portfolio(data)
    scores: BatchScores = score_portfolio(
        loaded.portfolio,
        champions,
        as_of,
        red=0.6,
        amber=0.35,
        top_drivers=3,
        explain=True,
        delay_tolerance=0.05,
        overrun_tolerance=0.05,
    )
    write_scores(scores, out, explain=True)
    return time.perf_counter() - start, len(scores.frame)


def _spark(  # type: ignore[no-untyped-def]
    spark, data: Path, champions, as_of, out: Path, buckets: int | None
) -> tuple[float, int]:
    from serving.spark_batch import ScoringParameters, score_with_spark

    parameters = ScoringParameters(
        as_of=as_of,
        red=0.6,
        amber=0.35,
        top_drivers=3,
        explain=True,
        delay_tolerance=0.05,
        overrun_tolerance=0.05,
    )
    start = time.perf_counter()
    done = score_with_spark(spark, str(data), str(out), champions, parameters, buckets=buckets)
    return time.perf_counter() - start, done.projects


def scoring(args: argparse.Namespace, root: Path) -> None:
    from features.loading import load_portfolio
    from serving.batch import default_as_of
    from serving.champions import load_from_registry

    uri, base = _train(root)
    champions = load_from_registry(uri)
    spark = None
    if not args.no_spark:
        from serving.spark_batch import spark_session

        start = time.perf_counter()
        spark = spark_session("local[2]", "bench-scale")
        print(f"Spark local[2] session start: {time.perf_counter() - start:.1f} s (not counted)")
        warm = _portfolio(base, 1, root / "warm")
    sizes = [*args.sizes, *([100_000] if args.large else [])]
    print(f"load average before: {_load()}")
    print(
        f"\n{'projects':>9} {'running':>8} | {'bare trees s':>12} | {'local s':>8} {'proj/s':>8}"
        f" | {'buckets':>7} {'warm-up s':>9} {'spark s':>8} {'proj/s':>8}"
        f" | {'local/bare':>10} {'spark/local':>11}"
    )
    for size in sizes:
        data = _portfolio(base, size // 1000, root / f"p{size}")
        as_of = default_as_of(base)  # every copy has the same dates
        big = load_portfolio(data).portfolio
        bare = statistics.median(_bare_trees(champions, big, as_of) for _ in range(args.runs))
        del big
        local = [
            _local(data, champions, as_of, root / f"local{size}.parquet") for _ in range(args.runs)
        ]
        local_s, running = statistics.median(t for t, _ in local), local[0][1]
        spark_s = warm_s = float("nan")
        if spark is not None:
            warm_s, _ = _spark(spark, warm, champions, as_of, root / "warm-out", None)
            runs = [
                _spark(spark, data, champions, as_of, root / f"spark{size}", args.buckets)
                for _ in range(args.runs)
            ]
            spark_s = statistics.median(t for t, _ in runs)
            assert runs[0][1] == running, (runs[0][1], running)
        buckets = "-"
        if spark is not None:
            from serving.spark_batch import PROJECTS_PER_BUCKET, bucket_count

            buckets = str(args.buckets or bucket_count(spark, str(data), PROJECTS_PER_BUCKET))
        print(
            f"{size:>9,} {running:>8,} | {bare:>12.2f} | {local_s:>8.1f} {running / local_s:>8.0f}"
            f" | {buckets:>7} {warm_s:>9.1f} {spark_s:>8.1f} {running / spark_s:>8.0f}"
            f" | {local_s / bare:>10.0f}"
            f" {spark_s / local_s:>11.2f}",
            flush=True,
        )
    print(f"load average after: {_load()}")
    if spark is not None:
        spark.stop()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _train_command(data: Path, uri: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "FOREWARN_OUT_DIR": str(out)}
    env["PYTHONPYCACHEPREFIX"] = str(out.parent / "pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    forewarn = str(Path(sys.executable).parent / "forewarn")
    command = [forewarn, "train", str(data), "--target", "delay", "--json"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _timed(procs: list[subprocess.Popen[bytes]]) -> list[float]:
    start = time.perf_counter()
    times = []
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        times.append(time.perf_counter() - start)
    return times


def writers(args: argparse.Namespace, root: Path) -> None:
    from pgcluster import PostgresCluster, missing_reason

    from features.loading import write_portfolio
    from features.simulator import simulate_portfolio

    reason = missing_reason()
    if reason:
        print(f"\nwriters: skipped ({reason})")
        return
    data = root / "p80"
    write_portfolio(simulate_portfolio(80, seed=3).portfolio, data)
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", "import training.pipeline, mlflow.lightgbm"], env=env)
    with PostgresCluster() as pg:
        uri = pg.create_database("bench")
        alone = [
            _timed([_train_command(data, uri, root / f"alone{i}")])[0] for i in range(args.runs)
        ]
        together = [
            t
            for r in range(args.runs)
            for t in _timed([_train_command(data, uri, root / f"four{r}-{i}") for i in range(4)])
        ]
    one = statistics.median(alone)
    four_wall = max(together[-4:])
    print("\ntraining runs on PostgreSQL (forewarn train --target delay, 80 projects)")
    print(f"{'writers':>8} | {'s per run':>9} | {'runs/min':>8}")
    print(f"{1:>8} | {one:>9.1f} | {60 / one:>8.2f}")
    print(f"{4:>8} | {statistics.median(together):>9.1f} | {4 * 60 / four_wall:>8.2f}")
    print(f"4 writers' run time / one writer's: {statistics.median(together) / one:.2f}")
    print(f"load average after: {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--large", action="store_true", help="add 100,000 projects (slow)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--buckets", type=int, help="Spark buckets (default: one per 2,000)")
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--no-writers", action="store_true")
    parser.add_argument("--no-scoring", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        if not args.no_scoring:
            scoring(args, root)
        if not args.no_writers:
            writers(args, root)


if __name__ == "__main__":
    main()
