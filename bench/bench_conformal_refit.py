"""Why the forward-calibrated conformal ranges over-cover early in a project: refit or not.

Forward calibration (`training.quantiles`, ``calibration="forward"``) takes the residuals of
a median model fitted on the earlier 70 % of the training side's closures, measured on the
latest 30 %, and adds them to a median model **refitted on every closure** (what is served).
Textbook split conformal would serve the model the residuals were measured on. This bench
puts the two side by side on the forward split `forewarn train` uses for a large portfolio
(trained on the projects closed before the cutoff, tested on those closed after):

- ``refit`` (served today): the median booster fitted on the whole training side.
- ``split``: the median booster fitted on its earlier 70 % only, with the same offsets.

    .venv/bin/python bench/bench_conformal_refit.py            # 2,000 simulated projects
    .venv/bin/python bench/bench_conformal_refit.py --projects 500

Prints per target and stage the coverage of P10 / P50 / P80 / P90 (in %) of both, their
interval scores (P10–P90, lower is better) and the ratio split / refit, and the mean shift
of the refitted median over the split one on the test rows. Not a test: figures to read.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.pointintime import training_table  # noqa: E402
from features.simulator import simulate_portfolio  # noqa: E402
from training.evaluate import STAGE_LABELS, stage_labels  # noqa: E402
from training.intervals import interval_score  # noqa: E402
from training.quantiles import (  # noqa: E402
    FORWARD_CALIBRATION_SHARE,
    LEVELS,
    OUTCOMES,
    fit_quantiles,
    with_outcomes,
)
from training.splits import forward_cutoff  # noqa: E402

TEST_SHARE = 0.25  # TrainingOptions.test_share: the forward protocol's later side


def _cells(y: np.ndarray, q: np.ndarray, w: np.ndarray) -> tuple[str, float]:
    cover = "/".join(f"{100 * np.average(y <= q[:, i], weights=w):.0f}" for i in range(len(LEVELS)))
    return cover, float(np.average(interval_score(y, q[:, 0], q[:, -1]), weights=w))


def run(table: pd.DataFrame, target: str) -> None:
    outcome = OUTCOMES[target]
    labelled = table.loc[table[outcome].notna()].reset_index(drop=True)
    cutoff = forward_cutoff(labelled, TEST_SHARE)
    closed = pd.to_datetime(labelled["actual_finish"])
    train, test = labelled.loc[closed < cutoff], labelled.loc[closed >= cutoff]
    started = time.perf_counter()
    refit = fit_quantiles(train, target, "conformal", calibration="forward")
    # The booster the forward offsets were measured with: fitted on the earlier closures.
    train_closed = pd.to_datetime(train["actual_finish"])
    earlier = train.loc[train_closed < forward_cutoff(train, FORWARD_CALIBRATION_SHARE)]
    split_booster = fit_quantiles(earlier, target, "conformal", calibration="folds").boosters
    split = replace(refit, boosters=split_booster)
    seconds = time.perf_counter() - started
    y = test[outcome].to_numpy(dtype=float)
    w = test["weight"].to_numpy(dtype=float)
    stages = stage_labels(test["elapsed_fraction"].to_numpy(dtype=float))
    q_refit, q_split = refit.predict(test), split.predict(test)
    shift = q_refit[:, 1] - q_split[:, 1]
    print(
        f"\n== {target} · trained on {train['project_id'].nunique()} projects closed before "
        f"{cutoff.date()}, tested on {test['project_id'].nunique()} closed after · {seconds:.0f} s"
    )
    print(
        f"   {'stage':6} {'refit P10/50/80/90':>19} {'split':>12} {'IS refit':>9} "
        f"{'IS split':>9} {'ratio':>6} {'P50 shift':>10}"
    )
    for stage in ("all", *STAGE_LABELS):
        m = np.ones(len(y), dtype=bool) if stage == "all" else stages == stage
        if not m.any():
            continue
        c_refit, is_refit = _cells(y[m], q_refit[m], w[m])
        c_split, is_split = _cells(y[m], q_split[m], w[m])
        print(
            f"   {stage:6} {c_refit:>19} {c_split:>12} {is_refit:>9.3f} {is_split:>9.3f} "
            f"{is_split / is_refit:>6.2f} {np.average(shift[m], weights=w[m]):>+10.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sim = simulate_portfolio(args.projects, seed=args.seed)
    table = with_outcomes(training_table(sim.portfolio).frame, sim.portfolio.projects)
    for target in ("finish", "cost"):
        run(table, target)


if __name__ == "__main__":
    main()
