"""How much the plain rules (SPI, CPI, ...) tell on the simulator, beside a real portfolio.

Issue 12, "Simulator honesty": on a real EVM portfolio of 29 closed construction / IT /
event projects (monthly EVM tracking) SPI alone, ranked by 1 − SPI in the last report of
each stage, reaches a ROC-AUC for "late" of 0.74 / 0.74 / 0.90 / 0.85 at 0–20 / 20–40 /
40–60 / 60–80 % of the planned duration elapsed, and CPI alone for "over budget" 0.72 /
0.78 / 0.89 / 0.84. A simulator on which the rules are much weaker makes them look worse
than they are (and a model look better than it is); one on which they are much stronger
early leaks (DESIGN.md: AUC above 0.95 early).

For simulated portfolios of each --sizes (--seeds each) this prints, per stage, the median
over seeds of the AUC of each rule, using the figures the models see
(`features.pointintime.build_features` on `training_rows`) and the labels of
`features.labels` at 5 % tolerance: one row per closed project per stage, its last report
in the stage. Beside SPI and CPI, the real portfolio's figure and the ratio; then SPI(t)
(earned schedule), TCPI, the PM's forecast slip / overrun and the PMO's status colour
(``rag``, red > amber > green) where the portfolio has one. Not a test.

    .venv/bin/python bench/bench_rules.py [--sizes 30 120 500 2000] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.contract import Portfolio
from features.labels import label_projects
from features.pointintime import build_features, training_rows
from features.simulator import simulate_portfolio

STAGES = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8))
STAGE_NAMES = tuple(f"{int(lo * 100)}–{int(hi * 100)}%" for lo, hi in STAGES)

# The real portfolio of issue 12 (29 closed projects, monthly EVM): AUC by stage.
REAL = {
    ("late", "spi"): (0.74, 0.74, 0.90, 0.85),
    ("over_budget", "cpi"): (0.72, 0.78, 0.89, 0.84),
}

# (target, rule, the feature column, sign: +1 when a larger value means more risk)
RULES = (
    ("late", "spi", "spi", -1.0),
    ("late", "spi_t", "spi_t", -1.0),
    ("late", "forecast_slip", "forecast_slip", 1.0),
    ("late", "rag", "rag", 1.0),
    ("over_budget", "cpi", "cpi", -1.0),
    ("over_budget", "tcpi", "tcpi", 1.0),
    ("over_budget", "forecast_overrun", "forecast_overrun", 1.0),
    ("over_budget", "rag", "rag", 1.0),
)
_RAG_SCORE = {"green": 0.0, "amber": 1.0, "red": 2.0}


def stage_rows(portfolio: Portfolio) -> pd.DataFrame:
    """One row per closed project per stage: its last report in the stage, with the
    features the models see, the ``rag`` of that report when the portfolio has one, and
    the labels (5 % tolerances)."""
    rows, _ = training_rows(portfolio)
    rows = rows[~rows["at_approval"]].reset_index(drop=True)
    features = build_features(portfolio, rows)
    columns = ["project_id", "as_of", "elapsed_fraction", "spi", "spi_t", "cpi", "tcpi"]
    columns += ["forecast_slip", "forecast_overrun"]
    frame = features[columns].copy()
    reports = portfolio.status_reports
    if "rag" in reports.columns:
        rag = reports[["project_id", "report_date", "rag"]].rename(columns={"report_date": "as_of"})
        frame = frame.merge(rag, on=["project_id", "as_of"], how="left")
        frame["rag"] = frame["rag"].map(_RAG_SCORE).astype("float64")
    else:
        frame["rag"] = np.nan
    stage = np.full(len(frame), -1)
    for i, (lo, hi) in enumerate(STAGES):
        stage[(frame["elapsed_fraction"] >= lo) & (frame["elapsed_fraction"] < hi)] = i
    frame["stage"] = stage
    frame = frame[frame["stage"] >= 0].sort_values(["project_id", "as_of"], kind="stable")
    last = frame.groupby(["project_id", "stage"], sort=False).tail(1)
    labels = label_projects(portfolio.projects).set_index("project_id")
    last = last.join(labels[["late", "over_budget"]], on="project_id")
    return last.reset_index(drop=True)


def rule_aucs(rows: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    """AUC of each rule's index for its target, per stage; NaN where it does not apply."""
    out: dict[tuple[str, str, int], float] = {}
    for target, rule, column, sign in RULES:
        for stage in range(len(STAGES)):
            at = rows[(rows["stage"] == stage) & rows[target].notna() & rows[column].notna()]
            y = at[target].to_numpy()
            if len(at) < 4 or y.min() == y.max():
                out[target, rule, stage] = float("nan")
                continue
            out[target, rule, stage] = float(roc_auc_score(y, sign * at[column].to_numpy()))
    return out


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for line in (header, *rows):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 120, 500, 2000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--drift", action="store_true", help="simulate drifted portfolios")
    args = parser.parse_args()

    started = time.perf_counter()
    results: dict[int, list[dict[tuple[str, str, int], float]]] = {}
    closed: dict[int, list[int]] = {}
    rates: dict[int, list[tuple[float, float]]] = {}
    for size in args.sizes:
        for seed in args.seeds:
            portfolio = simulate_portfolio(size, seed=seed, drift=args.drift).portfolio
            rows = stage_rows(portfolio)
            results.setdefault(size, []).append(rule_aucs(rows))
            labels = label_projects(portfolio.projects)
            closed.setdefault(size, []).append(int(labels["late"].notna().sum()))
            rates.setdefault(size, []).append(
                (float(labels["late"].mean()), float(labels["over_budget"].mean()))
            )

    print(
        f"ROC-AUC of single rules by stage of the planned duration (last report in the stage, "
        f"closed projects); median over seeds {args.seeds}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {time.perf_counter() - started:.0f} s"
    )
    print()
    print("SPI alone for late, CPI alone for over budget, beside the real EVM portfolio (29):")
    header = ("rule / size", *STAGE_NAMES, "mean |Δ|")
    lines: list[tuple[str, ...]] = []
    for (target, rule), real in REAL.items():
        lines.append((f"{rule} → {target}: real (29)", *(f"{v:.2f}" for v in real), ""))
        for size in args.sizes:
            sim = [_median([r[target, rule, s] for r in results[size]]) for s in range(4)]
            ratio = [s / r for s, r in zip(sim, real, strict=True)]
            gap = _median([abs(s - r) for s, r in zip(sim, real, strict=True)])
            cells = [f"{v} ({q:.2f}×)" for v, q in zip(map(_fmt, sim), ratio, strict=True)]
            lines.append((f"  simulated {size:,}", *cells, _fmt(gap)))
    _table(header, lines)
    print()
    print("Every rule (median over seeds; in brackets min–max over seeds):")
    header = ("target: rule", "size", *STAGE_NAMES)
    lines = []
    for target, rule, _, _ in RULES:
        for size in args.sizes:
            cells = []
            for s in range(4):
                values = [r[target, rule, s] for r in results[size]]
                finite = [v for v in values if np.isfinite(v)]
                spread = f" [{min(finite):.2f}–{max(finite):.2f}]" if len(finite) > 1 else ""
                cells.append(_fmt(_median(values)) + spread)
            lines.append((f"{target}: {rule}", f"{size:,}", *cells))
    _table(header, lines)
    print()
    for size in args.sizes:
        late = statistics.median(r[0] for r in rates[size])
        over = statistics.median(r[1] for r in rates[size])
        print(
            f"{size:>6,} projects: closed (median) {statistics.median(closed[size]):.0f}, "
            f"late {late:.1%}, over budget {over:.1%}"
        )


if __name__ == "__main__":
    main()
