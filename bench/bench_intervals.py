"""Quantile forecasts against reference-class forecasting: coverage by stage and level,
interval score and the ratio, by portfolio.

Portfolios: simulated ones of 500 and 2,000 projects (seed 1; finish and cost) and little06
(121 real software projects, finish only: it has no cost data). Each runs
`training.intervals.evaluate_quantiles`, what `forewarn train` logs for `forewarn-finish`
and `forewarn-cost`: the classifiers' protocol, both methods, the reference class.

    .venv/bin/python bench/bench_intervals.py                      # 500, 2,000, little06
    .venv/bin/python bench/bench_intervals.py --sizes 500 --no-little06

Prints per portfolio and target a table: rows = stages, cells = coverage of P10 / P50 /
P80 / P90 for the chosen method and the reference class, then the interval scores
(P10–P90, lower is better), the ratio model / reference and the verdict; "±5 ok" when
every level of the chosen method is within 5 points of nominal. Not a test: figures to read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.contract import Portfolio  # noqa: E402
from features.loading import load_portfolio  # noqa: E402
from features.pointintime import training_table  # noqa: E402
from features.simulator import simulate_portfolio  # noqa: E402
from training.evaluate import STAGE_LABELS, VERDICT_WORDS  # noqa: E402
from training.intervals import REFERENCE, evaluate_quantiles  # noqa: E402
from training.pipeline import TrainingOptions  # noqa: E402
from training.quantiles import LEVELS, level_names, with_outcomes  # noqa: E402

LITTLE06 = ROOT / "data" / "examples" / "little06"
TOLERANCE = 5.0  # points of coverage either side of nominal


def _cov(block: dict[str, Any]) -> str:
    if block["coverage"] is None:
        return "—"
    return "/".join(f"{100 * block['coverage'][n]:.0f}" for n in level_names())


def _within(block: dict[str, Any]) -> bool:
    cov = block["coverage"]
    return cov is not None and all(
        abs(100 * (cov[n] - q)) <= TOLERANCE for n, q in zip(level_names(), LEVELS, strict=True)
    )


def run_one(name: str, portfolio: Portfolio, targets: list[str], options: TrainingOptions) -> None:
    table = with_outcomes(training_table(portfolio).frame, portfolio.projects)
    for target in targets:
        started = time.perf_counter()
        report = evaluate_quantiles(table, target, options).report
        seconds = time.perf_counter() - started
        method = report["method"]
        model, ref = report["methods"][method], report[REFERENCE]
        print(f"\n== {name} · {target} · {report['n_projects']} projects · {seconds:.0f} s")
        print(f"   protocol: {report['protocol']}")
        print(f"   method:   {report['method_choice']}")
        print(
            f"   {'stage':6} {'rows':>6}  {'cover P10/50/80/90 model':>25} {'reference':>12} "
            f"{'IS model':>9} {'IS ref':>8} {'ratio':>6}  {'verdict':10} ±5"
        )
        for stage in ("all", *STAGE_LABELS):
            m = model if stage == "all" else model["by_stage"][stage]
            r = ref if stage == "all" else ref["by_stage"][stage]
            cmp = report["comparison"][method]
            c = cmp if stage == "all" else cmp["by_stage"][stage]
            if m["interval_score"] is None:
                print(f"   {stage:6} {0:>6}  no held-out rows")
                continue
            ratio = m["interval_score"] / r["interval_score"] if r["interval_score"] else None
            print(
                f"   {stage:6} {m['n_rows']:>6}  {_cov(m):>25} {_cov(r):>12} "
                f"{m['interval_score']:>9.3f} {r['interval_score']:>8.3f} "
                f"{'—' if ratio is None else f'{ratio:.2f}':>6}  "
                f"{VERDICT_WORDS[c['verdict']]:10} {'ok' if _within(m) else 'NO'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[500, 2000])
    parser.add_argument("--no-little06", action="store_true")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    options = TrainingOptions(n_bootstrap=args.bootstrap, plots=False)
    if not args.no_little06:
        little = load_portfolio(LITTLE06).portfolio
        run_one("little06", little, ["finish"], options)
    for n in args.sizes:
        run_one(f"sim {n} s1", simulate_portfolio(n, seed=1).portfolio, ["finish", "cost"], options)


if __name__ == "__main__":
    main()
