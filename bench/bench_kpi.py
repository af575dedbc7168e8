"""The KPI forecast's own backtest: run point in time at past dates of a simulated portfolio
and check that the realised on-time (and within-budget) share of the year's cohort falls
inside the forecast's 90 % interval.

At each date D (quarterly): classifiers fitted on the projects closed by D only
(`training.models.fit_risk_model`, the calibrated LightGBM), the running projects scored
with features as known at D, and `training.kpi.kpi_forecast` for the projects due to finish
in D's year. The realised share is that of the same cohort once closed (projects still
running when the simulation ends, or cancelled, are in neither). Baseline: every running
project given the base rate of the projects closed by D (the same Poisson-binomial).

    .venv/bin/python bench/bench_kpi.py                      # 1,000 projects, seed 1
    .venv/bin/python bench/bench_kpi.py --projects 600 --correlations 0 0.1

Prints one line per date, then per correlation: how many dates the interval held the
realised share (the target: ≥ 80 %), the mean interval width, and the same for the
baseline with the ratio of widths. Not a test: figures to read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.labels import label_projects  # noqa: E402
from features.pointintime import snapshot, training_table  # noqa: E402
from features.simulator import simulate_portfolio  # noqa: E402
from training.kpi import cohort, kpi_forecast  # noqa: E402
from training.models import fit_risk_model  # noqa: E402

TARGETS = {"on_time": 0.9, "within_budget": 0.9}
MIN_CLOSED = 40  # closed projects to train on at a date
KPIS = {
    "on_time": ("delay", "late", "p_late"),
    "within_budget": ("overrun", "over_budget", "p_over_budget"),
}


def _scores(portfolio: Any, day: pd.Timestamp, kind: str) -> pd.DataFrame:
    """p_late / p_over_budget of the projects running at `day`: the model, or the base rate."""
    table = training_table(portfolio, as_of=day).frame
    features = snapshot(portfolio, day, running_only=True)
    out = pd.DataFrame({"project_id": features["project_id"].to_numpy()})
    for target, label, column in KPIS.values():
        labelled = table.loc[table[label].notna()]
        if kind == "model":
            model = fit_risk_model(labelled, target, max_trees=150)
            out[column] = model.predict(features)
        else:
            rate = labelled.groupby("project_id")[label].first().mean()
            out[column] = float(rate)
    if "has_budget" in features:
        no_budget = features["has_budget"].to_numpy(dtype=float) == 0
        out.loc[no_budget, "p_over_budget"] = np.nan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--correlations", type=float, nargs="*", default=[0.0, 0.05, 0.1, 0.2])
    args = parser.parse_args()
    sim = simulate_portfolio(args.projects, seed=args.seed)
    portfolio, today = sim.portfolio, pd.Timestamp(sim.today)
    projects = portfolio.projects
    final = label_projects(projects)
    resolved = projects.loc[final["late"].notna().to_numpy()]
    # A year is usable when 90 % of its cohort has an outcome by the simulation's end (else
    # the realised share would be that of the early finishers only).
    due = pd.to_datetime(projects["planned_finish"]).dt.year
    cohort_of = due[projects["status"] != "cancelled"]
    closed_share = (
        due[final["late"].notna().to_numpy()].value_counts() / cohort_of.value_counts()
    ).fillna(0)
    usable = sorted(
        int(y)
        for y, share in closed_share.items()
        if share >= 0.9 and cohort_of.value_counts()[y] >= 30
    )
    dates = [
        pd.Timestamp(f"{y}-{m:02d}-01")
        for y in usable
        for m in (1, 4, 7, 10)
        if pd.Timestamp(f"{y}-{m:02d}-01") < today
        and label_projects(projects, as_of=pd.Timestamp(f"{y}-{m:02d}-01"))["late"].notna().sum()
        >= MIN_CLOSED
    ]
    print(
        f"simulated {args.projects} projects (seed {args.seed}, data to {today.date()}); "
        f"cohort years {usable}; {len(dates)} quarterly dates with ≥ {MIN_CLOSED} closed projects"
    )
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for day in dates:
        scores = {kind: _scores(portfolio, day, kind) for kind in ("model", "base_rate")}
        in_cohort = cohort(resolved, day.year)
        ids = resolved.loc[in_cohort, "project_id"]
        realised_labels = final.set_index("project_id").reindex(ids)
        for rho in args.correlations:
            for kind, frame in scores.items():
                out = kpi_forecast(
                    resolved, frame, day.year, day, delay_tolerance=0.05,
                    overrun_tolerance=0.05, targets=TARGETS, correlation=rho,
                )  # fmt: skip
                for kpi, (_, label, _) in KPIS.items():
                    known = realised_labels[label].dropna()
                    entry = out[kpi]
                    if entry["interval"] is None or len(known) == 0:
                        continue
                    realised = float((known == 0).mean())
                    low, high = entry["interval"]
                    rows.append(
                        {
                            "date": day.date(),
                            "rho": rho,
                            "kind": kind,
                            "kpi": kpi,
                            "n": entry["n_projects"],
                            "running": entry["n_running"],
                            "expected": entry["expected"],
                            "low": low,
                            "high": high,
                            "realised": realised,
                            "inside": low <= realised <= high,
                        }
                    )
    seconds = time.perf_counter() - started
    table = pd.DataFrame(rows)
    first = table.loc[(table["rho"] == args.correlations[-1]) & (table["kind"] == "model")]
    print(f"\nper date, model, correlation {args.correlations[-1]}:")
    print(f"{'date':>10} {'kpi':>13} {'n':>4} {'run':>4} {'expected':>8} {'90% interval':>14} "
          f"{'realised':>8} inside")  # fmt: skip
    for r in first.itertuples():
        print(
            f"{r.date!s:>10} {r.kpi:>13} {r.n:>4} {r.running:>4} {r.expected:>8.0%} "
            f"{f'{r.low:.0%}–{r.high:.0%}':>14} {r.realised:>8.0%} {'yes' if r.inside else 'NO'}"
        )
    print("\ninside the 90 % interval (target ≥ 80 % of dates), mean width; model vs base rate:")
    print(f"{'kpi':>13} {'rho':>5} {'model inside':>14} {'width':>6} {'base inside':>13} "
          f"{'width':>6} {'width ratio':>11}")  # fmt: skip
    for (kpi, rho), part in table.groupby(["kpi", "rho"]):
        m = part.loc[part["kind"] == "model"]
        b = part.loc[part["kind"] == "base_rate"]
        mw, bw = (m["high"] - m["low"]).mean(), (b["high"] - b["low"]).mean()
        print(
            f"{kpi:>13} {rho:>5.2f} {f'{m.inside.sum()}/{len(m)} {m.inside.mean():.0%}':>14} "
            f"{mw:>6.1%} {f'{b.inside.sum()}/{len(b)} {b.inside.mean():.0%}':>13} {bw:>6.1%} "
            f"{mw / bw if bw else float('nan'):>11.2f}"
        )
    print(f"\n{seconds:.0f} s for {len(dates)} dates")


if __name__ == "__main__":
    main()
