"""Forecast quality against the rules PMOs use: the champion's recipe, the best rule and the
logistic regression, per stage, with the three-valued verdict — by portfolio size.

Portfolios: simulated ones of 30, 60, 120, 500 and 2,000 projects (3 seeds each; the size
is the number simulated, the closed ones are what is trained on); simulated ones shaped like
the real portfolios PMOs bring (`SHAPES`: monthly EVM without PM forecasts; actual cost and
milestones with ~2 reports a project; baseline and budget alone); little06 (121 real
software projects, delay at tolerance 0.5: at 0.05 nearly all are late) and subsamples of
30 and 60 of its projects. Each runs `training.pipeline.evaluate_recipe`, what `forewarn
train` reports: the protocol it chooses by size, the recipe chosen by nested grouped CV.

    .venv/bin/python bench/bench_quality.py                 # everything (long on 2 cores)
    .venv/bin/python bench/bench_quality.py --sizes 30 60 --seeds 1 --no-little06 --shapes
    .venv/bin/python bench/bench_quality.py --sizes --shapes approval --no-little06

Prints one table per target: rows = portfolio, columns = stages, each cell
"champion / best rule (name) verdict", then the verdict counts. Not a test: figures to read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.contract import Portfolio  # noqa: E402
from features.loading import load_portfolio, write_portfolio  # noqa: E402
from features.pointintime import training_table  # noqa: E402
from features.simulator import simulate_portfolio  # noqa: E402
from training.evaluate import STAGE_LABELS, VERDICT_WORDS  # noqa: E402
from training.models import TARGET_LABELS  # noqa: E402
from training.pipeline import TrainingOptions, evaluate_recipe, untrainable_reason  # noqa: E402

LITTLE06 = ROOT / "data" / "examples" / "little06"
SHORT = {"better": "B", "cant_tell": "?", "worse": "W", None: "-"}


def _subsample(portfolio: Portfolio, n: int, seed: int) -> Portfolio:
    ids = portfolio.projects["project_id"].to_numpy()
    keep = set(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False))

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["project_id"].isin(keep)].reset_index(drop=True)

    return Portfolio(
        cut(portfolio.projects), cut(portfolio.status_reports), cut(portfolio.changes), "sub"
    )


def _simulated(n: int, seed: int) -> Portfolio:
    return simulate_portfolio(n, seed=seed).portfolio


# Portfolios shaped like the real ones PMOs bring (issue 12's table), simulated: what they
# record, not how many. The simulated size is chosen so the closed share is near theirs.
SHAPES = {
    # monthly EVM tracking (PV, EV, AC), no PM forecast, no RAG: ~29 closed
    "evm": (50, "monthly PV/EV/AC, no PM forecast"),
    # actual cost and milestones, no EV, ~2 reports a project: ~63 closed
    "cost+milestones": (100, "actual cost and milestones, no EV, 2 reports a project"),
    # one record at approval: baseline and budget only
    "approval": (1000, "baseline and budget only, no status report"),
}


def _shaped(shape: str, seed: int) -> Portfolio:
    n, _ = SHAPES[shape]
    p = _simulated(n, seed)
    reports = p.status_reports
    keep = ["project_id", "report_date"]
    if shape == "evm":
        keep += ["percent_complete", "planned_value", "earned_value", "actual_cost"]
        reports = reports.assign(month=pd.to_datetime(reports["report_date"]).dt.to_period("M"))
        reports = reports.groupby(["project_id", "month"], as_index=False).last()
    elif shape == "cost+milestones":
        keep += ["actual_cost", "milestones_planned", "milestones_done"]
        rng = np.random.default_rng(seed)
        reports = reports.assign(draw=rng.random(len(reports)))
        reports = reports[reports.groupby("project_id")["draw"].rank(method="first") <= 2]
        reports = reports.sort_values(["project_id", "report_date"])
    else:
        reports = reports.iloc[:0]
    changes = p.changes.iloc[:0] if shape == "approval" else p.changes
    # Through the files and the loader, as a user's portfolio arrives: absent optional
    # columns are what the loader makes of them.
    shaped = Portfolio(p.projects, reports[keep].reset_index(drop=True), changes, shape)
    with tempfile.TemporaryDirectory() as folder:
        write_portfolio(shaped, Path(folder))
        return load_portfolio(Path(folder)).portfolio


def run_one(
    name: str, portfolio: Portfolio, targets: list[str], options: TrainingOptions
) -> list[dict[str, Any]]:
    table = training_table(portfolio, options.delay_tolerance, options.overrun_tolerance).frame
    out = []
    for target in targets:
        reason = untrainable_reason(table, target)
        if reason is not None:
            out.append({"portfolio": name, "target": target, "skipped": reason})
            continue
        labelled = table.loc[table[TARGET_LABELS[target]].notna()]
        started = time.perf_counter()
        report = evaluate_recipe(labelled, target, options).report
        comparison = report["comparison"]
        row: dict[str, Any] = {
            "portfolio": name,
            "target": target,
            "projects": report["n_projects"],
            "protocol": report["protocol"],
            "seconds": time.perf_counter() - started,
            "counts_rule": comparison["stage_verdict_counts"],
        }
        logistic_counts = {"better": 0, "cant_tell": 0, "worse": 0}
        for label in STAGE_LABELS:
            c = comparison["by_stage"][label]
            lg = c.get("vs_logistic") or {}
            if lg.get("verdict"):
                logistic_counts[lg["verdict"]] += 1
            row[label] = (
                report["by_stage"][label]["auc"],
                c.get("best_rule"),
                c.get("best_rule_auc"),
                c.get("verdict"),
                lg.get("auc"),
                lg.get("verdict"),
            )
        row["counts_logistic"] = logistic_counts
        out.append(row)
        print(_line(row), flush=True)
    return out


def _n(value: Any) -> str:
    return "  —  " if value is None else f"{value:.3f}"


def _line(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"{row['portfolio']:>18} {row['target']:8} {row['skipped']}"
    cells = []
    for label in STAGE_LABELS[:4]:
        model, rule, rule_auc, v, lg_auc, lv = row[label]
        cells.append(
            f"{_n(model)}/{_n(rule_auc)} {(rule or '-')[:6]:6} {SHORT[v]} "
            f"lr {_n(lg_auc)} {SHORT[lv]}"
        )
    return (
        f"{row['portfolio']:>18} {row['target']:8} {row['projects']:5} {row['protocol']:11} "
        + " | ".join(cells)
        + f" | {row['seconds']:.0f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[30, 60, 120, 500, 2000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-little06", action="store_true")
    parser.add_argument(
        "--shapes",
        nargs="*",
        default=list(SHAPES),
        choices=list(SHAPES),
        help="simulated portfolios that record what real ones do (none: --shapes with no name)",
    )
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    options = TrainingOptions(n_bootstrap=args.bootstrap, plots=False)
    print(
        "cells per stage (0-20 | 20-40 | 40-60 | 60-80): champion AUC / best rule AUC, the "
        "best rule, verdict vs it (B better, ? can't tell, W worse), logistic regression AUC "
        "and verdict vs it"
    )
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        for seed in range(1, args.seeds + 1):
            rows += run_one(f"sim {n} s{seed}", _simulated(n, seed), ["delay", "overrun"], options)
    for shape in args.shapes:
        for seed in range(1, args.seeds + 1):
            rows += run_one(f"{shape} s{seed}", _shaped(shape, seed), ["delay", "overrun"], options)
    if not args.no_little06:
        little = load_portfolio(LITTLE06).portfolio
        wide = TrainingOptions(n_bootstrap=args.bootstrap, plots=False, delay_tolerance=0.5)
        rows += run_one("little06 tol 0.5", little, ["delay"], wide)
        for n in (30, 60):
            for seed in range(1, args.seeds + 1):
                rows += run_one(
                    f"little06 {n} s{seed}", _subsample(little, n, seed), ["delay"], wide
                )

    print("\nverdict counts over stages 0-20 … 80+ (better / can't tell / worse)")
    print(f"{'portfolio':>18} {'target':8} {'vs best rule':>16} {'vs logistic':>16}")
    for row in rows:
        if "skipped" in row:
            continue
        r, lg = row["counts_rule"], row["counts_logistic"]
        print(
            f"{row['portfolio']:>18} {row['target']:8} "
            f"{r['better']:>5} / {r['cant_tell']} / {r['worse']:<5} "
            f"{lg['better']:>5} / {lg['cant_tell']} / {lg['worse']}"
        )
    worse = [
        (row["portfolio"], row["target"], label)
        for row in rows
        if "skipped" not in row
        for label in STAGE_LABELS
        if row[label][3] == "worse" or row[label][5] == "worse"
    ]
    print(f"\nstages where the champion is {VERDICT_WORDS['worse']}: {worse or 'none'}")


if __name__ == "__main__":
    main()
