"""Data and prediction drift: do the running projects still look like the training rows?

The core is `check_drift`, a pure function of two frames that returns a `DriftResult`
(per-column statistic, threshold and verdict, the share of drifted columns, pass/fail per
test). The statistics are computed here with NumPy and SciPy, the same way as the Evidently
drift methods the HTML report of `render_html` names (its own KS statistic, registered with
Evidently, and Evidently's Jensen-Shannon distance), so the figures in the JSON summary are
the figures in that report, and the verdict needs no Evidently.

Two choices carry the weight (docs/monitoring.md explains them at length):

* Distances, not p-values. Reference rows are status reports of closed projects (many rows
  per project, not independent) and current frames range from a hundred to 100,000 rows; a
  p-value flags trivial shifts on large frames. Numeric columns use the Kolmogorov-Smirnov
  statistic D (the largest gap between the two CDFs: scale-free and blind to the outliers
  that ratios such as EAC/BAC produce), categorical columns and 0/1 flags the Jensen-Shannon
  distance. A column drifts when its distance reaches the threshold *and* the distance is
  beyond what chance gives at these sample sizes (the 1% critical value), so a small
  portfolio does not cry wolf.
* Like with like. `snapshot_reference` turns the training rows into what a snapshot of
  running projects looks like (the cohort that had fully closed by the training date, each
  row weighted by its project's duration, the current mix of stages and planned durations)
  before anything is compared, and features that a one-date snapshot cannot share with rows
  spread over years are left out with the reason (`snapshot_incomparable`).

Evidently is imported only by `render_html`: importing it takes seconds.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from features.contract import Portfolio

# Stage = elapsed fraction of the planned duration in fifths, plus "past planned finish":
# running projects past their planned finish are a population of their own (all late), so
# the stage matching keeps them apart where training.evaluate's "80+" band merges them.
STAGE_EDGES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, math.inf)
STAGE_LABELS: tuple[str, ...] = ("0-20%", "20-40%", "40-60%", "60-80%", "80-100%", ">100%")

NUMERIC_METHOD = "ks_statistic"  # registered with Evidently by `register_stattests`
CATEGORICAL_METHOD = "jensenshannon"
DEFAULT_ALPHA = 0.01

# Features whose value on one date cannot be compared with training rows spread over years.
_DATE_BOUND: dict[str, str] = {
    "days_since_last_report": "training rows are taken on report dates, where it is always 0",
    "start_month": "a snapshot on one date over-represents the months just before that date",
    "start_quarter": "a snapshot on one date over-represents the quarters just before it",
}
_CONTEXT_REASON = (
    "portfolio history as of the date: one value per date (and type) in a snapshot, a "
    "spread over years in training rows"
)


class DriftInputError(ValueError):
    """The frames cannot be compared (a column the reference has is missing entirely)."""


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the statistic, the threshold it is held to, the verdict.

    `threshold` is the one applied: the larger of `base_threshold` (the setting) and
    `noise_floor` (the distance chance alone reaches at these sample sizes, at level alpha).
    """

    column: str
    kind: str  # "numeric" or "categorical"
    method: str
    statistic: float
    threshold: float
    drifted: bool
    base_threshold: float
    noise_floor: float
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
        by_name = {c.column: c for c in self.columns}
        return json_safe(
            {
                "passed": self.passed,
                "share_drifted": self.share_drifted,
                "share_threshold": self.share_threshold,
                "n_columns": len(self.columns),
                "drifted_columns": [asdict(by_name[name]) for name in self.drifted_columns],
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


def json_safe(obj: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, NumPy scalars Python ones."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


# ----------------------------------------------------------------------- statistics


def ks_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic D: the largest gap between the two ECDFs."""
    r = np.sort(reference)
    c = np.sort(current)
    grid = np.concatenate([r, c])
    gap = np.searchsorted(r, grid, side="right") / len(r)
    gap -= np.searchsorted(c, grid, side="right") / len(c)
    return float(np.abs(gap).max())


def js_distance(reference: pd.Series, current: pd.Series) -> float:
    """Jensen-Shannon distance (natural log) of two samples' category shares, as Evidently's
    ``jensenshannon`` method computes it for a categorical column."""
    from scipy.spatial import distance

    ref_counts, cur_counts = reference.value_counts(), current.value_counts()
    keys = sorted(set(ref_counts.index) | set(cur_counts.index), key=str)
    ref_share = ref_counts.reindex(keys, fill_value=0).to_numpy("float64") / len(reference)
    cur_share = cur_counts.reindex(keys, fill_value=0).to_numpy("float64") / len(current)
    return float(distance.jensenshannon(ref_share, cur_share))


_STATTESTS_REGISTERED = False


def register_stattests() -> None:
    """Register the KS statistic with Evidently so that its report can use it by name."""
    global _STATTESTS_REGISTERED
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    if _STATTESTS_REGISTERED:
        return
    _STATTESTS_REGISTERED = True

    def _ks_statistic(
        reference_data: pd.Series, current_data: pd.Series, feature_type: Any, threshold: float
    ) -> tuple[float, bool]:
        d = ks_distance(reference_data.to_numpy("float64"), current_data.to_numpy("float64"))
        return d, d >= threshold

    register_stattest(
        StatTest(
            name=NUMERIC_METHOD,
            display_name="Kolmogorov-Smirnov statistic D",
            allowed_feature_types=[ColumnType.Numerical],
            default_threshold=0.15,
        ),
        _ks_statistic,
    )


def noise_floor(
    kind: str, n_current: int, n_reference: int, alpha: float, categories: int
) -> float:
    """The distance that chance alone exceeds with probability `alpha` at these sizes.

    Numeric: the asymptotic critical value of D, sqrt(-ln(alpha/2)/2 · (n+m)/(n·m)).
    Categorical: the Jensen-Shannon distance is about sqrt(chi2 / (8·N)) with N = n·m/(n+m)
    and chi2 the two-sample Pearson statistic, chi-squared with (categories − 1) dof.
    """
    from scipy.stats import chi2

    if n_current < 1 or n_reference < 1:
        return math.inf
    harmonic = n_current * n_reference / (n_current + n_reference)
    if kind == "numeric":
        return math.sqrt(-math.log(alpha / 2) / 2 / harmonic)
    if categories < 2:
        return 0.0
    return math.sqrt(float(chi2.ppf(1 - alpha, categories - 1)) / (8 * harmonic))


def _finite(series: pd.Series) -> pd.Series:
    """True where a value is present (not NaN/None and, for numbers, not ±inf)."""
    if pd.api.types.is_numeric_dtype(series):
        return pd.Series(np.isfinite(series.to_numpy(dtype="float64")), index=series.index)
    return series.notna()


def snapshot_incomparable(columns: Sequence[str]) -> dict[str, str]:
    """Features of `columns` that a one-date snapshot cannot share with training rows, and why."""
    from features.catalogue import FEATURES

    context = {f.name for f in FEATURES if f.family == "context"}
    out = {c: _DATE_BOUND[c] for c in columns if c in _DATE_BOUND}
    out.update({c: _CONTEXT_REASON for c in columns if c in context})
    return out


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
            + ": it was logged with a different feature list; retrain, or check the model"
        )
    broken: list[str] = []
    keep: list[str] = []
    excluded: dict[str, str] = {}
    for col in columns:
        ref_values = reference[col][_finite(reference[col])]
        cur_has = col in current.columns and bool(_finite(current[col]).any())
        if ref_values.empty and not cur_has:
            excluded[col] = "missing in both reference and current data"
        elif ref_values.empty:
            excluded[col] = "no values in the reference sample (the model never saw it)"
        elif not cur_has:
            broken.append(col)
        else:
            keep.append(col)
    if broken:
        raise DriftInputError(
            f"column(s) {', '.join(broken)} have values in the reference sample but are "
            "entirely missing in the current data: check that the portfolio still carries "
            "the inputs they are built from (docs/features.md lists them)"
        )
    return keep, excluded


def _column_drift(
    reference: pd.Series,
    current: pd.Series,
    kind: str,
    base_threshold: float,
    alpha: float,
    reference_groups: pd.Series | None,
) -> ColumnDrift:
    """One column's distance (KS D or Jensen-Shannon), present values only."""
    present_ref = _finite(reference)
    ref = reference[present_ref]
    cur = current[_finite(current)]
    # Rows of one project are not independent: the reference counts as many observations
    # as it has projects, which keeps the noise floor honest.
    n_ref = (
        int(reference_groups[present_ref].nunique()) if reference_groups is not None else len(ref)
    )
    if kind == "categorical":
        # Evidently counts categories by value; one dtype on both sides keeps 1 and 1.0 equal.
        ref, cur = ref.astype(str), cur.astype(str)
        method = CATEGORICAL_METHOD
        categories = len(set(ref.unique()) | set(cur.unique()))
        statistic = js_distance(ref, cur)
    else:
        method = NUMERIC_METHOD
        categories = 0
        statistic = ks_distance(ref.to_numpy("float64"), cur.to_numpy("float64"))
    floor = noise_floor(kind, len(cur), n_ref, alpha, categories)
    threshold = max(base_threshold, floor)
    return ColumnDrift(
        column=str(reference.name),
        kind=kind,
        method=method,
        statistic=statistic,
        threshold=threshold,
        drifted=statistic >= threshold,
        base_threshold=base_threshold,
        noise_floor=floor,
        n_reference=len(ref),
        n_current=len(cur),
    )


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    categorical: Sequence[str],
    *,
    numeric_threshold: float = 0.15,
    categorical_threshold: float = 0.10,
    share_threshold: float = 0.10,
    prediction_columns: Sequence[str] = (),
    prediction_threshold: float = 0.25,
    alpha: float = DEFAULT_ALPHA,
    exclude: Mapping[str, str] | None = None,
    reference_groups: str | None = "project_id",
    known_categories: Mapping[str, Sequence[str]] | None = None,
    unseen_threshold: float = 0.05,
) -> DriftResult:
    """Compare `current` with `reference` column by column and run the drift tests.

    A feature column drifts when its distance (KS statistic for numeric columns,
    Jensen-Shannon for those in `categorical`, 0/1 flags included) reaches its threshold:
    `numeric_threshold` / `categorical_threshold`, raised to the level-`alpha` noise floor
    when the samples are small. The data-drift test fails when the share of drifted feature
    columns reaches `share_threshold`. Each of `prediction_columns` (model scores present in
    both frames) is a test of its own, failing when its KS statistic reaches
    `prediction_threshold` (or the noise floor). `exclude` maps columns to leave out to the
    reason, which the summary lists; so are columns missing in both frames. A column with
    reference values that is entirely missing in `current` raises `DriftInputError`.
    `reference_groups` names the column that groups reference rows into projects, if any.
    For each column of `known_categories` (the levels the model was trained with), a test
    fails when the share of current values outside them reaches `unseen_threshold`: the
    model cannot tell those projects' programme or type apart from a missing one.
    """
    if len(reference) == 0 or len(current) == 0:
        raise DriftInputError(
            f"nothing to compare: {len(reference)} reference row(s), {len(current)} current row(s)"
        )
    exclude = dict(exclude or {})
    keep, excluded = comparable_columns(
        reference, current, [c for c in columns if c not in exclude]
    )
    excluded = {**{c: r for c, r in exclude.items() if c in columns}, **excluded}
    if not keep:
        raise DriftInputError("no feature can be compared: every one is missing or excluded")
    cats = set(categorical)
    groups = (
        reference[reference_groups]
        if reference_groups is not None and reference_groups in reference.columns
        else None
    )

    def one(col: str, kind: str, threshold: float) -> ColumnDrift:
        return _column_drift(reference[col], current[col], kind, threshold, alpha, groups)

    drift = [
        one(c, "categorical", categorical_threshold)
        if c in cats
        else one(c, "numeric", numeric_threshold)
        for c in keep
    ]
    n_drifted = sum(c.drifted for c in drift)
    share = n_drifted / len(drift)
    tests = [
        DriftTest(
            name="share of drifted features",
            passed=share < share_threshold,
            value=share,
            threshold=share_threshold,
            description=f"{n_drifted} of {len(drift)} features drifted (KS D ≥ "
            f"{numeric_threshold}, Jensen-Shannon ≥ {categorical_threshold}, or the "
            f"{alpha:.0%} noise floor when higher); fails at a share of "
            f"{share_threshold:.0%} or more",
        )
    ]
    predictions: list[ColumnDrift] = []
    for col in prediction_columns:
        if col not in reference.columns or col not in current.columns:
            raise DriftInputError(f"prediction column {col!r} is not in both frames")
        p = one(col, "numeric", prediction_threshold)
        predictions.append(p)
        tests.append(
            DriftTest(
                name=f"prediction drift: {col}",
                passed=not p.drifted,
                value=p.statistic,
                threshold=p.threshold,
                description=f"KS statistic of {col} between current projects and the "
                f"reference; fails at {p.threshold:.3f} or more",
            )
        )
    unseen: dict[str, dict[str, Any]] = {}
    for col, levels in (known_categories or {}).items():
        if col not in current.columns:
            continue
        values = current[col].dropna().astype(str)
        outside = values[~values.isin({str(v) for v in levels})]
        share_out = float(len(outside) / len(values)) if len(values) else 0.0
        unseen[col] = {
            "share": share_out,
            "values": outside.value_counts().head(10).to_dict(),
        }
        tests.append(
            DriftTest(
                name=f"unseen categories: {col}",
                passed=share_out < unseen_threshold,
                value=share_out,
                threshold=unseen_threshold,
                description=f"share of current projects whose {col} the model was not trained "
                f"on ({', '.join(map(str, list(unseen[col]['values'])[:5])) or 'none'}); "
                f"fails at {unseen_threshold:.0%} or more",
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
        context={"unseen_categories": unseen} if unseen else {},
    )


# ----------------------------------------------------------------- like with like


def stage_of(elapsed_fraction: pd.Series) -> pd.Series:
    """Stage label per row (object dtype; NaN where the elapsed fraction is unknown)."""
    values = elapsed_fraction.astype("float64").clip(lower=0.0)
    stages = pd.cut(values, bins=list(STAGE_EDGES), labels=list(STAGE_LABELS), right=False)
    return stages.astype("object")


def match_stages(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    weights: np.ndarray | None = None,
    stage_column: str = "elapsed_fraction",
    size_column: str | None = None,
    size_bands: int = 3,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Subsample the reference so that its stage mix (and size mix) is the current frame's.

    Cells are stages, crossed with `size_bands` quantile bands of `size_column` in the
    current frame when given. Within each cell, rows are drawn with probability proportional
    to `weights` (uniform when None) by systematic sampling, and the sample size is the
    largest at which no row would be expected more than once: no row is repeated, which
    would understate the reference's spread. Returns the sample and both mixes.
    """
    ref_cell = stage_of(reference[stage_column]).to_numpy(dtype=object)
    cur_cell = stage_of(current[stage_column]).to_numpy(dtype=object)
    mix: dict[str, Any] = {
        "current": _shares(cur_cell, STAGE_LABELS),
        "reference": _shares(ref_cell, STAGE_LABELS),
    }
    if size_column is not None:
        cur_size = current[size_column].astype("float64")
        edges = np.unique(np.nanquantile(cur_size, np.linspace(0, 1, size_bands + 1)[1:-1]))
        band_names = [f"{size_column} band {i + 1}/{len(edges) + 1}" for i in range(len(edges) + 1)]

        def band(values: pd.Series) -> np.ndarray:
            return np.asarray(band_names, dtype=object)[
                np.searchsorted(edges, values.astype("float64").to_numpy(), side="right")
            ]

        ref_band, cur_band = band(reference[size_column]), band(current[size_column])
        mix["size_column"] = size_column
        mix["size_edges"] = [float(e) for e in edges]
        mix["current_size"] = _shares(cur_band, band_names)
        mix["reference_size"] = _shares(ref_band, band_names)
        ref_cell = ref_cell + " × " + ref_band
        cur_cell = cur_cell + " × " + cur_band
    w = np.ones(len(reference)) if weights is None else np.asarray(weights, dtype="float64")
    cur_share = pd.Series(cur_cell).value_counts(normalize=True)
    empty = [str(c) for c in cur_share.index if not np.any(ref_cell == c)]
    if empty:
        raise DriftInputError(
            f"the reference sample has no rows at {', '.join(empty)} where current projects "
            "are: cannot compare like with like (train on a longer history)"
        )
    # Largest n with n · share(c) · w_i / W(c) ≤ 1 for every row i of every cell c.
    n = min(
        float(w[ref_cell == c].sum()) / (share * float(w[ref_cell == c].max()))
        for c, share in cur_share.items()
    )
    rng = np.random.default_rng(seed)
    picks = []
    for c, share in cur_share.items():
        idx = rng.permutation(np.flatnonzero(ref_cell == c))
        k = max(1, math.floor(n * share))
        cum = np.cumsum(w[idx])
        points = (rng.uniform() + np.arange(k)) * (cum[-1] / k)
        picks.append(idx[np.minimum(np.searchsorted(cum, points, side="right"), len(idx) - 1)])
    chosen = np.sort(np.concatenate(picks))
    matched = reference.iloc[chosen].reset_index(drop=True)
    mix["reference_rows_matched"] = len(matched)
    return matched, mix


def _shares(labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    return {n: float(np.mean(labels == n)) if len(labels) else 0.0 for n in names}


def snapshot_reference(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    trained_until: pd.Timestamp | None = None,
    horizon_days: float | None = None,
    min_rows: int = 300,
    size_column: str | None = "planned_duration_days",
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Turn training rows into what a snapshot of running projects looks like.

    Three differences separate them, none of which is drift:

    1. Survivors. Training rows come from projects closed by the training date, so long
       projects started in the last years are missing while a snapshot is full of them.
       Only the cohort that started at least `horizon_days` before `trained_until` (the
       95th percentile of project ages in the reference when None) is kept: by then nearly
       all of it had closed, long projects included. Skipped, and said so, when fewer than
       `min_rows` rows would remain.
    2. Time. A snapshot catches a project in proportion to how long it runs, while the
       reference draws each project about equally (training's `reference_sample` takes
       rows in proportion to 1/rows of their project). Each row is weighted by its
       project's duration as far as the reference shows it: the oldest age among the
       project's rows, at least the planned duration.
    3. Stage and size. `match_stages` gives the reference the current mix of stages
       crossed with terciles of `size_column` (planned duration): long projects stay
       under-represented among closed ones however the rows are weighted, and nearly
       every feature moves with the stage.

    Needs ``as_of``, ``elapsed_fraction`` and ``planned_duration_days``; steps whose
    columns are missing are skipped and reported in the returned description.
    """
    info: dict[str, Any] = {"reference_rows": len(reference)}
    ref = reference
    needed = {"as_of", "elapsed_fraction", "planned_duration_days"}
    if needed <= set(ref.columns):
        age = ref["elapsed_fraction"].astype("float64") * ref["planned_duration_days"].astype(
            "float64"
        )
        as_of = pd.to_datetime(ref["as_of"])
        started = as_of - pd.to_timedelta(age.fillna(0.0), unit="D")
        until = pd.Timestamp(trained_until) if trained_until is not None else as_of.max()
        if horizon_days is None:
            # A project's oldest row in the reference is about its whole duration.
            oldest = age.groupby(ref["project_id"]).max() if "project_id" in ref.columns else age
            horizon_days = float(oldest.quantile(0.95))
        cutoff = until - pd.Timedelta(days=float(horizon_days))
        in_cohort = (started <= cutoff).to_numpy()
        info["cohort"] = {
            "trained_until": until.date().isoformat(),
            "horizon_days": round(float(horizon_days)),
            "started_by": cutoff.date().isoformat(),
            "rows": int(in_cohort.sum()),
            "applied": bool(in_cohort.sum() >= min_rows),
        }
        if in_cohort.sum() >= min_rows:
            ref = ref[in_cohort]
    else:
        info["cohort"] = {"applied": False, "reason": f"reference lacks {sorted(needed)}"}
    if {"elapsed_fraction", "planned_duration_days"} <= set(ref.columns):
        planned = ref["planned_duration_days"].astype("float64")
        age = ref["elapsed_fraction"].astype("float64") * planned
        oldest = age.groupby(ref["project_id"]).transform("max") if "project_id" in ref else age
        duration = pd.concat([planned, oldest], axis=1).max(axis=1)
        fill = float(duration.median()) if duration.notna().any() else 1.0
        hi = float(duration.quantile(0.99)) if duration.notna().any() else fill
        # Clipped: one runaway project must not make its rows count ten times.
        weights = duration.fillna(fill).clip(lower=1.0, upper=max(hi, 1.0))
        info["duration_weighted"] = True
    else:
        weights = pd.Series(1.0, index=ref.index)
        info["duration_weighted"] = False
    size = size_column if size_column in ref.columns and size_column in current.columns else None
    try:
        matched, mix = match_stages(ref, current, weights.to_numpy(), size_column=size, seed=seed)
    except DriftInputError as exc:
        if size is None:
            raise
        # A small reference can lack a stage × size cell the current projects fill: match
        # the stages alone rather than refuse the check, and say so.
        matched, mix = match_stages(ref, current, weights.to_numpy(), seed=seed)
        mix["size_matching"] = f"skipped: {exc}"
    info["stages"] = mix
    return matched, info


# ---------------------------------------------------------------------------- report


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
    known_categories: Mapping[str, Sequence[str]] | None = None,
    max_rows: int = 20_000,
    title: str = "Forewarn drift report",
    seed: int = 0,
) -> EvidentlyReport:
    """Write the Evidently report of `result` to `out` (self-contained HTML).

    The report holds Evidently's `DriftedColumnsCount` over every compared feature (same
    methods and per-column thresholds as `result`, so its share test is `result`'s), a
    `ValueDrift` per model score, and a `ValueDrift` for each drifted feature plus the
    nearest misses, up to `max_column_plots`, and an `OutListValueCount` per column of
    `known_categories` that `result` tested for unseen values. Evidently draws its plots
    inside `run()`, about 0.1 s per column, so a plot for all 60-odd features would cost
    more than the check itself; the JSON summary lists every column.

    Frames longer than `max_rows` are sampled (uniformly, `seed`) for the report only:
    Evidently copies the whole frame once per column, which makes its cost grow with rows
    times columns, and a distribution plot of 20,000 rows looks like one of 100,000. The
    verdict and `result` always use every row; the report's title says when it sampled.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, OutListValueCount, ValueDrift
    from evidently.tests import lt

    register_stattests()
    compared = [c.column for c in result.columns]
    categorical = [c.column for c in result.columns if c.kind == "categorical"]
    numeric = [c for c in compared if c not in categorical]
    pred_cols = [p.column for p in result.predictions]
    by_ratio = sorted(result.columns, key=lambda c: c.statistic / c.threshold, reverse=True)
    plotted = [c for c in by_ratio if c.drifted]
    plotted += [c for c in by_ratio if not c.drifted][: max(0, max_column_plots - len(plotted))]
    metrics: list[Any] = [
        DriftedColumnsCount(
            columns=compared,
            drift_share=result.share_threshold,
            num_method=NUMERIC_METHOD,
            cat_method=CATEGORICAL_METHOD,
            per_column_threshold={c.column: c.threshold for c in result.columns},
        )
    ]
    metrics += [
        ValueDrift(column=c.column, method=c.method, threshold=c.threshold)
        for c in [*result.predictions, *plotted]
    ]
    for test in result.tests:
        col = test.name.removeprefix("unseen categories: ")
        if col != test.name and col in categorical and known_categories is not None:
            metrics.append(
                OutListValueCount(
                    column=col,
                    values=[str(v) for v in known_categories.get(col, [])],
                    share_tests=[lt(test.threshold)],
                )
            )
    definition = DataDefinition(
        numerical_columns=numeric + pred_cols, categorical_columns=categorical
    )
    frames = []
    sampled = []
    for name, frame in (("current", current), ("reference", reference)):
        if len(frame) > max_rows:
            sampled.append(f"{max_rows:,} of {len(frame):,} {name} rows")
            frame = frame.sample(n=max_rows, random_state=seed)
        part = frame[compared + pred_cols].copy()
        for col in categorical:
            # Same rule as check_drift: categories compared as text, missing left missing.
            part[col] = part[col].where(part[col].isna(), part[col].astype(str))
        for col in numeric + pred_cols:
            part[col] = part[col].astype("float64").replace([np.inf, -np.inf], np.nan)
        frames.append(Dataset.from_pandas(part, data_definition=definition))
    report = Report(metrics, include_tests=True, metadata={"title": title})
    with warnings.catch_warnings():
        # Evidently correlates every pair of columns for its plots; a constant column (a
        # flag that is 1 everywhere) makes numpy warn about 0/0 on stderr, to no one's use.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(frames[0], frames[1], name=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    _add_banner(out, title, result, sampled)
    summary = snapshot.dict()
    count = summary["metrics"][0]["value"]
    return EvidentlyReport(
        path=out,
        share_drifted=float(count["share"]),
        tests={
            t["name"]: str(getattr(t["status"], "value", t["status"])) for t in summary["tests"]
        },
    )


def _add_banner(path: Path, title: str, result: DriftResult, sampled: list[str]) -> None:
    """Put the verdict on top of Evidently's page: a reader sees first what failed and why."""
    from html import escape

    failed = [t for t in result.tests if not t.passed]
    verdict = "DRIFT: " + "; ".join(t.name for t in failed) if failed else "no drift"
    moved = ", ".join(result.drifted_columns) or "none"
    lines = [
        f"<h1 style='margin:0 0 .3em'>{escape(title)}</h1>",
        f"<p style='font-size:1.2em;margin:.2em 0'><b>{escape(verdict)}</b></p>",
        f"<p style='margin:.2em 0'>Features that moved ({result.share_drifted:.0%} of "
        f"{len(result.columns)}, limit {result.share_threshold:.0%}): {escape(moved)}</p>",
    ]
    if result.excluded:
        lines.append(
            f"<p style='margin:.2em 0;color:#555'>Not compared: {len(result.excluded)} "
            "feature(s), listed with the reason in the JSON summary.</p>"
        )
    if sampled:
        lines.append(
            "<p style='margin:.2em 0;color:#555'>Plots and the scores below are on a random "
            f"sample ({escape(', '.join(sampled))}); the verdict above uses every row.</p>"
        )
    colour = "#fdecea" if failed else "#e8f5e9"
    banner = (
        f"<div style='font-family:sans-serif;padding:1em 1.5em;background:{colour};"
        f"border-bottom:1px solid #ccc'>{''.join(lines)}</div>"
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("<body>", "<body>" + banner, 1), encoding="utf-8")


# -------------------------------------------------------------------------- pipeline


@dataclass
class DriftRun:
    """One `forewarn drift` run: the result, where its outputs went, the MLflow run."""

    result: DriftResult
    report: EvidentlyReport | None = None
    summary_path: Path | None = None
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class DriftThresholds:
    """The plain values the drift tests are held to (the CLI takes them from settings)."""

    numeric: float = 0.15
    categorical: float = 0.10
    share: float = 0.10
    prediction: float = 0.25
    unseen: float = 0.05
    alpha: float = DEFAULT_ALPHA


def latest_report_date(portfolio: Portfolio) -> pd.Timestamp:
    """The default as-of date: the latest status report in the portfolio."""
    last = portfolio.status_reports["report_date"].max()
    if pd.isna(last):
        raise DriftInputError("the portfolio has no status reports: pass --as-of")
    return pd.Timestamp(last).normalize()


def current_features(
    portfolio: Portfolio,
    as_of: pd.Timestamp,
    delay_tolerance: float,
    overrun_tolerance: float,
    extra_attributes: Sequence[str] = (),
) -> pd.DataFrame:
    """Feature rows of the projects running at `as_of` (what the models score today)."""
    from features.pointintime import snapshot

    current = snapshot(
        portfolio,
        as_of,
        running_only=True,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        extra_attributes=list(extra_attributes),
    )
    if current.empty:
        raise DriftInputError(
            f"no project is running on {as_of.date()}: nothing to compare (pick another --as-of)"
        )
    return current


def run_drift(
    portfolio: Portfolio,
    *,
    tracking_uri: str,
    alias: str = "champion",
    as_of: pd.Timestamp | None = None,
    thresholds: DriftThresholds | None = None,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] = (),
    out_html: Path | None = None,
    out_json: Path | None = None,
    experiment: str | None = None,
    artifact_root: str | None = None,
    seed: int = 0,
    models: Mapping[str, Any] | None = None,
    references: Mapping[str, pd.DataFrame] | None = None,
) -> DriftRun:
    """The drift check of `forewarn drift`: features, reference, check, report, MLflow.

    Builds the features of the projects running at `as_of` (default: the latest report
    date), loads the models under `alias` and the reference sample logged with them,
    reshapes the reference like a snapshot (`snapshot_reference`), scores both sides with
    the models, runs `check_drift`, writes the Evidently report and the JSON summary, and
    logs the figures in the MLflow `experiment` (None: not logged) tagged with the model
    versions. Raises `DriftInputError` on input that cannot be compared, `LookupError` when
    the registry has no such model. `models` (by target: anything with ``model``,
    ``name``, ``version`` and ``run_id``, e.g. `serving.champions.Champion`) and
    `references` (their logged samples, by target) are what the caller has already loaded
    from the registry under `alias`: given, they are not loaded again.
    """
    from features.catalogue import categorical_names, flag_names
    from training import tracking
    from training.models import PREDICTION_COLUMNS, TARGETS

    limits = thresholds or DriftThresholds()
    day = pd.Timestamp(as_of).normalize() if as_of is not None else latest_report_date(portfolio)
    loaded: dict[str, Any] = {t: models[t] for t in TARGETS if t in models} if models else {}
    for target in TARGETS if not loaded else ():
        try:
            loaded[target] = tracking.load_model(target, alias, tracking_uri=tracking_uri)
        except LookupError:
            continue  # a target may be untrainable (no cost data): check the other one
    if not loaded:
        raise LookupError(f"no model with alias or version {alias!r}: train one first")
    first = next(iter(loaded))
    reference = (references or {}).get(first)
    if reference is None:
        reference = tracking.load_reference(first, alias, tracking_uri=tracking_uri)
    current = current_features(portfolio, day, delay_tolerance, overrun_tolerance, extra_attributes)
    columns = list(dict.fromkeys(f for m in loaded.values() for f in m.model.feature_names))
    categorical = [
        c
        for c in columns
        if c in set(categorical_names(extra_attributes)) | set(flag_names())
        or any(c in m.model.categorical_levels for m in loaded.values())
    ]
    closed_through = loaded[first].model.metadata.get("closed_through")
    matched, info = snapshot_reference(
        reference,
        current,
        trained_until=pd.Timestamp(closed_through) if closed_through else None,
        seed=seed,
    )
    for name, m in loaded.items():
        column = PREDICTION_COLUMNS[name]
        current[column] = m.model.predict(current)
        matched[column] = m.model.predict(matched)
    known = {k: v for m in loaded.values() for k, v in m.model.categorical_levels.items()}
    result = check_drift(
        matched,
        current,
        columns,
        categorical,
        numeric_threshold=limits.numeric,
        categorical_threshold=limits.categorical,
        share_threshold=limits.share,
        prediction_columns=[PREDICTION_COLUMNS[t] for t in loaded],
        prediction_threshold=limits.prediction,
        alpha=limits.alpha,
        exclude=snapshot_incomparable(columns),
        known_categories=known,
        unseen_threshold=limits.unseen,
    )
    result.context.update(
        {
            "as_of": day.date().isoformat(),
            "portfolio": portfolio.source,
            "running_projects": len(current),
            "models": {
                t: {"name": m.name, "version": m.version, "run_id": m.run_id}
                for t, m in loaded.items()
            },
            "reference": info,
        }
    )
    run = DriftRun(result=result)
    if out_html is not None:
        run.report = render_html(
            matched,
            current,
            result,
            out_html,
            known_categories=known,
            title=f"Forewarn drift report — running projects on {day.date()}",
            seed=seed,
        )
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(result.to_json(), encoding="utf-8")
        run.summary_path = out_json
    if experiment is not None:
        run.mlflow_run_id = _log_drift(
            result, loaded, day, experiment, tracking_uri, artifact_root, run
        )
    return run


def _log_drift(
    result: DriftResult,
    loaded: Mapping[str, Any],
    day: pd.Timestamp,
    experiment: str,
    tracking_uri: str,
    artifact_root: str | None,
    run: DriftRun,
) -> str:
    """Figures as MLflow metrics, tagged with the model versions they are about."""
    from training import tracking

    metrics: dict[str, float] = {
        "passed": float(result.passed),
        "share_drifted": result.share_drifted,
        "n_drifted": float(len(result.drifted_columns)),
        "n_current": float(result.n_current),
        "n_reference": float(result.n_reference),
    }
    metrics.update({f"drift/{c.column}": c.statistic for c in result.columns})
    metrics.update({f"prediction_drift/{p.column}": p.statistic for p in result.predictions})
    unseen = result.context.get("unseen_categories", {})
    metrics.update({f"unseen/{col}": float(u["share"]) for col, u in unseen.items()})
    tags: dict[str, Any] = {
        "check": "drift",
        "as_of": day.date().isoformat(),
        "passed": str(result.passed).lower(),
        "failed_tests": "; ".join(t.name for t in result.tests if not t.passed) or "none",
        "drifted_columns": ", ".join(result.drifted_columns) or "none",
    }
    for target, m in loaded.items():
        tags[f"model.{target}.name"] = m.name
        tags[f"model.{target}.version"] = m.version
        tags[f"model.{target}.run_id"] = m.run_id
    artifacts = [p for p in (run.summary_path, run.report.path if run.report else None) if p]
    tracking.configure(tracking_uri, artifact_root, experiment)
    return tracking.log_monitoring(
        experiment,
        run_name=f"drift {day.date()}",
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
        params={k: v for k, v in result.context.items() if k in ("as_of", "portfolio")},
    )
