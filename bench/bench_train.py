"""Benchmark: train + evaluate + log both models on the 2000-project demo portfolio.

Target: under 60 s on 2 cores. Printed beside a bare LightGBM fit on the same rows (the
same parameters, 300 trees, no early stopping, no calibration, no baselines, no MLflow)
and the ratio. Each run writes to a fresh MLflow store in a temporary folder, never to
models/. Not a test: figures only.

    .venv/bin/python bench/bench_train.py [--runs 3] [--projects 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import training  # noqa: F401  (sets the OpenMP wait policy before LightGBM loads)


def _bare_fit(table, target: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds for one plain lgb.train on the target's labelled rows."""
    import lightgbm as lgb

    from training.models import (
        DEFAULT_PARAMS,
        MAX_TREES,
        TARGET_LABELS,
        categorical_columns,
        category_levels,
        encode_features,
        feature_columns,
    )

    label = TARGET_LABELS[target]
    rows = table.loc[table[label].notna()]
    features = feature_columns(rows)
    categorical = categorical_columns(rows, features)
    levels = category_levels(rows, categorical)
    start = time.perf_counter()
    data = lgb.Dataset(
        encode_features(rows, features, levels),
        label=rows[label].to_numpy(dtype=float),
        weight=rows["weight"].to_numpy(dtype=float),
        feature_name=features,
        categorical_feature=[features.index(c) for c in categorical],
    )
    lgb.train({**DEFAULT_PARAMS, "num_threads": 2, "seed": 0}, data, num_boost_round=MAX_TREES)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from features.pointintime import training_table
    from features.simulator import simulate_portfolio
    from training.pipeline import Store, TrainingOptions, train

    portfolio = simulate_portfolio(args.projects, seed=args.seed).portfolio
    start = time.perf_counter()
    table = training_table(portfolio, 0.05, 0.05).frame
    table_s = time.perf_counter() - start
    n_projects = int(table["project_id"].nunique())

    walls: list[float] = []
    cpus: list[float] = []
    steps: list[dict[str, float]] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{Path(tmp) / 'mlflow.db'}", (Path(tmp) / "a").as_uri())
            marks: dict[str, float] = {}
            t0 = time.perf_counter()

            def progress(message: str, marks: dict[str, float] = marks, t0: float = t0) -> None:
                marks[message] = time.perf_counter() - t0

            c0 = time.process_time()
            results = train(portfolio, TrainingOptions(), store, progress=progress)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            steps.append(marks)
            assert all(r.version for r in results.values()), "a target was not registered"
        print(f"run {run + 1}: {walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU", file=sys.stderr)

    bare = [_bare_fit(table, "delay") + _bare_fit(table, "overrun") for _ in range(args.runs)]
    median_wall, median_bare = statistics.median(walls), statistics.median(bare)

    print(
        f"\n{args.projects} simulated projects (seed {args.seed}): {n_projects} closed, "
        f"{len(table):,} training rows; training table built in {table_s:.1f} s (not counted)"
    )
    print(f"runs: {args.runs}; walls {', '.join(f'{w:.1f}' for w in walls)} s\n")
    print(f"| {'what':58} | {'wall s (median)':>15} | {'CPU s':>6} | {'ratio':>6} |")
    print(f"|{'-' * 60}|{'-' * 17}|{'-' * 8}|{'-' * 8}|")
    print(
        f"| {'bare LightGBM fit, 300 trees, both targets, same rows':58} | "
        f"{median_bare:15.1f} | {'':>6} | {1.0:6.1f} |"
    )
    print(
        f"| {'forewarn train: evaluate + fit + log + register, both':58} | "
        f"{median_wall:15.1f} | {statistics.median(cpus):6.1f} | "
        f"{median_wall / median_bare:6.1f} |"
    )
    print(f"| {'limit':58} | {60.0:15.1f} | {'':>6} | {60.0 / median_bare:6.1f} |")
    print("\nwhere the time goes (first run, seconds since start at each step):")
    for message, at in steps[0].items():
        print(f"  {at:6.1f}  {message}")
    verdict = "within" if median_wall < 60 else "OVER"
    print(f"\n{verdict} the 60 s budget (median {median_wall:.1f} s)")


if __name__ == "__main__":
    main()
