"""Data and prediction drift: do the running projects still look like the training rows?

The core is `check_drift`, a pure function of two frames that returns a `DriftResult`
(per-column statistic, threshold and verdict, the share of drifted columns, pass/fail per
test). Statistics come from Evidently's own registered drift methods, so the figures in
the JSON summary are the figures in the Evidently HTML report that `render_html` writes.

Why distances, not p-values: reference rows are status reports of closed projects (many
rows per project, not independent) and current frames range from a few hundred to 100,000
rows. A p-value test would flag trivial shifts on large frames and trust correlated rows
too much; the normed Wasserstein distance (numeric) and the Jensen-Shannon distance
(categorical and 0/1 flags) measure how far the distributions moved, whatever the size.

Evidently is imported inside functions: importing it takes seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.stages import STAGE_LABELS, stage_of

NUMERIC_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"


class DriftInputError(ValueError):
    """The frames cannot be compared (a column the reference has is missing entirely)."""


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the statistic, the threshold it is held to, the verdict."""

    column: str
    kind: str  # "numeric" or "categorical"
    method: str
    statistic: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int


@dataclass(frozen=True)
class DriftTest:
    """One pass/fail test of the drift check."""

    name: str
    passed: bool
    value: float
    threshold: float
    description: str


@dataclass
class DriftResult:
    """Everything the drift check found; `to_json()` is the machine-readable summary."""

    columns: list[ColumnDrift]
    predictions: list[ColumnDrift]
    share_drifted: float
    share_threshold: float
    tests: list[DriftTest]
    excluded: dict[str, str] = field(default_factory=dict)
    n_reference: int = 0
    n_current: int = 0
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every test passed."""
        return all(t.passed for t in self.tests)

    @property
    def drifted_columns(self) -> list[str]:
        """Feature columns that drifted, the largest statistic relative to its threshold first."""
        drifted = [c for c in self.columns if c.drifted]
        drifted.sort(key=lambda c: c.statistic / c.threshold, reverse=True)
        return [c.column for c in drifted]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no NaN: a missing statistic becomes null)."""
        return _no_nan(
            {
                "passed": self.passed,
                "share_drifted": self.share_drifted,
                "share_threshold": self.share_threshold,
                "n_columns": len(self.columns),
                "drifted_columns": [
                    asdict(c)
                    for name in self.drifted_columns
                    for c in self.columns
                    if c.column == name
                ],
                "predictions": [asdict(p) for p in self.predictions],
                "tests": [asdict(t) for t in self.tests],
                "columns": [asdict(c) for c in self.columns],
                "excluded": dict(self.excluded),
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "context": self.context,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, default=str, allow_nan=False)


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_nan(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def comparable_columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """Split `columns` into those that can be compared and those excluded (with the reason).

    Raises `DriftInputError` naming every column that has values in the reference but is
    absent or entirely missing in the current frame: the inputs are broken, not drifted.
    """
    missing_in_reference = [c for c in columns if c not in reference.columns]
    if missing_in_reference:
        raise DriftInputError(
            "reference sample lacks column(s) "
            + ", ".join(missing_in_reference)
            + ": it was logged with a different feature list; retrain or pass the model's"
            " features"
        )
    broken: list[str] = []
    keep: list[str] = []
    excluded: dict[str, str] = {}
    for col in columns:
        ref_has = bool(_finite(reference[col]).any())
        cur_has = col in current.columns and bool(_finite(current[col]).any())
        if not ref_has and not cur_has:
            excluded[col] = "missing in both reference and current data"
        elif not ref_has:
            excluded[col] = "no values in the reference sample (the model never saw it)"
        elif not cur_has:
            broken.append(col)
        else:
            keep.append(col)
    if broken:
        raise DriftInputError(
            f"column(s) {', '.join(broken)} have values in the reference sample but are "
            "entirely missing in the current data: check that the portfolio still carries "
            "the inputs they are built from"
        )
    return keep, excluded


def _finite(series: pd.Series) -> pd.Series:
    """True where a value is present (not NaN/None and, for numbers, not ±inf)."""
    if pd.api.types.is_numeric_dtype(series):
        return pd.Series(np.isfinite(series.to_numpy(dtype="float64")), index=series.index)
    return series.notna()


def _column_stat(
    reference: pd.Series, current: pd.Series, kind: str, method: str, threshold: float
) -> tuple[float, bool]:
    """Evidently's registered drift method on one column, present values only."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    ref = reference[_finite(reference)]
    cur = current[_finite(current)]
    column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical
    if kind == "categorical":
        # Evidently counts categories by value; one dtype on both sides keeps 1 and 1.0 equal.
        ref, cur = ref.astype(str), cur.astype(str)
    stattest = get_stattest(ref, cur, column_type, method)
    out = stattest(ref, cur, column_type, threshold)
    return float(out.drift_score), bool(out.drifted)


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    categorical: Sequence[str],
    *,
    stattest_threshold: float = 0.1,
    share_threshold: float = 0.3,
    prediction_columns: Sequence[str] = (),
    prediction_threshold: float = 0.1,
    numeric_method: str = NUMERIC_METHOD,
    categorical_method: str = CATEGORICAL_METHOD,
) -> DriftResult:
    """Compare `current` with `reference` column by column and run the drift tests.

    A feature column drifts when its distance reaches `stattest_threshold`; the data-drift
    test fails when the share of drifted feature columns reaches `share_threshold`. Each
    column in `prediction_columns` (model scores present in both frames) is a test of its
    own that fails when its distance reaches `prediction_threshold`. Columns in
    `categorical` (and 0/1 flags, passed in it too) use `categorical_method`, the others
    `numeric_method`. Columns missing in both frames are excluded and listed; a column with
    reference values that is entirely missing in `current` raises `DriftInputError`.
    """
    if len(reference) == 0 or len(current) == 0:
        raise DriftInputError(
            f"nothing to compare: {len(reference)} reference row(s), {len(current)} current row(s)"
        )
    keep, excluded = comparable_columns(reference, current, columns)
    if not keep:
        raise DriftInputError("no column can be compared: every one is missing in both frames")
    cats = set(categorical)

    def one(col: str, threshold: float, as_kind: str | None = None) -> ColumnDrift:
        kind = as_kind or ("categorical" if col in cats else "numeric")
        method = categorical_method if kind == "categorical" else numeric_method
        stat, drifted = _column_stat(reference[col], current[col], kind, method, threshold)
        return ColumnDrift(
            column=col,
            kind=kind,
            method=method,
            statistic=stat,
            threshold=threshold,
            drifted=drifted,
            n_reference=int(_finite(reference[col]).sum()),
            n_current=int(_finite(current[col]).sum()),
        )

    drift = [one(col, stattest_threshold) for col in keep]
    n_drifted = sum(c.drifted for c in drift)
    share = n_drifted / len(drift)
    tests = [
        DriftTest(
            name="share of drifted features",
            passed=share < share_threshold,
            value=share,
            threshold=share_threshold,
            description=f"{n_drifted} of {len(drift)} features drifted "
            f"({numeric_method} / {categorical_method} distance ≥ {stattest_threshold}); "
            f"fails at a share of {share_threshold:.0%} or more",
        )
    ]
    predictions: list[ColumnDrift] = []
    for col in prediction_columns:
        if col not in reference.columns or col not in current.columns:
            raise DriftInputError(f"prediction column {col!r} is not in both frames")
        p = one(col, prediction_threshold, as_kind="numeric")
        predictions.append(p)
        tests.append(
            DriftTest(
                name=f"prediction drift: {col}",
                passed=not p.drifted,
                value=p.statistic,
                threshold=prediction_threshold,
                description=f"{p.method} distance of {col} between current and reference; "
                f"fails at {prediction_threshold} or more",
            )
        )
    return DriftResult(
        columns=drift,
        predictions=predictions,
        share_drifted=share,
        share_threshold=share_threshold,
        tests=tests,
        excluded=excluded,
        n_reference=len(reference),
        n_current=len(current),
    )


def match_stages(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    stage_column: str = "elapsed_fraction",
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Subsample the reference so that its stage mix is the current frame's.

    Training rows are every status report of closed projects, from approval to finish;
    running projects on one date sit wherever they are in their life. Many features move
    with the stage (progress, report counts, cumulative changes), so comparing the raw
    reference with a snapshot would report the stage mix as drift. The largest stratified
    subsample without replacement that has the current stage shares is drawn instead (no
    row is repeated, which would understate the reference's spread). Returns it and a
    description of both mixes for the summary.
    """
    ref_stage = stage_of(reference[stage_column])
    cur_stage = stage_of(current[stage_column])
    cur_share = cur_stage.value_counts(normalize=True)
    ref_count = ref_stage.value_counts()
    # The largest n with n * share(s) <= available(s) for every stage the current frame has.
    limits = [ref_count.get(s, 0) / share for s, share in cur_share.items() if share > 0]
    n = int(min(limits)) if limits else 0
    mix = {
        "stage_column": stage_column,
        "current": {s: float(cur_share.get(s, 0.0)) for s in STAGE_LABELS},
        "reference": {
            s: float(ref_stage.value_counts(normalize=True).get(s, 0.0)) for s in STAGE_LABELS
        },
        "reference_rows_before": len(reference),
    }
    if n < 1:
        empty = [s for s in cur_share.index if ref_count.get(s, 0) == 0]
        raise DriftInputError(
            f"the reference sample has no rows at stage(s) {', '.join(map(str, empty))} "
            "where current projects are; cannot compare like with like"
        )
    rng = np.random.default_rng(seed)
    picks: list[np.ndarray] = []
    for s, share in cur_share.items():
        idx = np.flatnonzero((ref_stage == s).to_numpy())
        k = min(len(idx), round(n * share))
        picks.append(rng.choice(idx, size=k, replace=False))
    chosen = np.sort(np.concatenate(picks)) if picks else np.array([], dtype=int)
    matched = reference.iloc[chosen].reset_index(drop=True)
    mix["reference_rows_matched"] = len(matched)
    return matched, mix


@dataclass(frozen=True)
class EvidentlyReport:
    """The written report and what Evidently itself concluded, to cross-check the summary."""

    path: Path
    share_drifted: float
    tests: dict[str, str]  # Evidently's test name → SUCCESS / FAIL / ...


def render_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    out: Path,
    *,
    max_column_plots: int = 12,
    title: str = "Forewarn drift report",
) -> EvidentlyReport:
    """Write the Evidently report of `result` to `out` (self-contained HTML).

    The report holds Evidently's `DriftedColumnsCount` over every compared feature (its
    share test is the same test as `result`'s), a `ValueDrift` per model score, and a
    `ValueDrift` for the drifted features plus the nearest misses, up to
    `max_column_plots`: Evidently draws its plots inside `run()`, about 0.1 s per column,
    so a plot per feature would cost more than the check itself on large frames.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    compared = [c.column for c in result.columns]
    categorical = [c.column for c in result.columns if c.kind == "categorical"]
    numeric = [c for c in compared if c not in categorical]
    pred_cols = [p.column for p in result.predictions]
    by_ratio = sorted(result.columns, key=lambda c: c.statistic / c.threshold, reverse=True)
    plotted = [c for c in by_ratio if c.drifted]
    plotted += [c for c in by_ratio if not c.drifted][: max(0, max_column_plots - len(plotted))]
    methods = {c.column: c.method for c in result.columns}
    threshold = result.columns[0].threshold
    metrics: list[Any] = [
        DriftedColumnsCount(
            columns=compared,
            drift_share=result.share_threshold,
            num_method=NUMERIC_METHOD,
            cat_method=CATEGORICAL_METHOD,
            per_column_method=methods,
            threshold=threshold,
        )
    ]
    metrics += [
        ValueDrift(column=p.column, method=p.method, threshold=p.threshold)
        for p in result.predictions
    ]
    metrics += [
        ValueDrift(column=c.column, method=c.method, threshold=c.threshold) for c in plotted
    ]

    definition = DataDefinition(
        numerical_columns=numeric + pred_cols, categorical_columns=categorical
    )
    frames = []
    for frame in (current, reference):
        part = frame[compared + pred_cols].copy()
        for col in categorical:
            # Same rule as check_drift: categories compared as text, missing left missing.
            part[col] = part[col].where(part[col].isna(), part[col].astype(str))
        frames.append(Dataset.from_pandas(part, data_definition=definition))
    report = Report(metrics, include_tests=True, metadata={"title": title})
    snapshot = report.run(frames[0], frames[1], name=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    summary = snapshot.dict()
    count = summary["metrics"][0]["value"]
    return EvidentlyReport(
        path=out,
        share_drifted=float(count["share"]),
        tests={t["name"]: str(t["status"]) for t in summary["tests"]},
    )
