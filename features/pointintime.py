"""Point-in-time features: one row per ``(project_id, as_of)``, built only from what was known.

DESIGN.md, "Features, point in time": a row sees the project's baseline row, its status
reports with ``report_date ≤ as_of`` and its changes raised by ``as_of`` (a decision counts
only once ``decided_date ≤ as_of``); portfolio context uses only projects closed strictly
before ``as_of``. The definitions are declared in `features.catalogue`.

One code path, `build_features`, serves the whole training table and a single project inside
the service. It is vectorised over all rows at once: status reports are sorted by
``(project, report_date)`` and every per-report quantity (indices, earned schedule, windows
over the last reports, cumulative counts) is computed on the sorted arrays with segment
offsets; each feature row then looks up its latest report with one ``searchsorted`` on
``(project, day)`` keys. Everything computed at a report uses only that report and the ones
before it, so looking a report up never leaks later ones. Sums of floats are taken per
project (never across projects), so a project's features are bit-identical whether it is
built alone or inside the whole table.

The service builds one project of ~30 reports per request, where each NumPy call costs
about a microsecond whatever its size and each pandas column access far more: there the
code counts calls. Quantities of the same shape go through one call together (the three
trended indices, the lagged windows, the cumulative counts), the request's columns come as
arrays (`PortfolioColumns`, read by `_Columns`), and the portfolio context can be prepared once
(`prepare_context`). None of this changes a value: stacking only adds a leading axis, and
every float is computed by the same operations in the same order as one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import (
    FEATURE_NAMES,
    SCHEDULE_HEALTH_INPUTS,
    SCHEDULE_HEALTH_NAMES,
    feature_names,
)
from features.columns import FeatureColumns
from features.contract import RAG_COLOURS, Portfolio, PortfolioColumns
from features.labels import closed_mask, label_counts, label_projects

_DAY_NS = 86_400 * 1_000_000_000
_NAT = np.iinfo(np.int64).min
_WINDOW = 6  # the longest "last n reports" window
_MONTH_DAYS = 30.44
_PRIOR_STRENGTH = 5.0  # projects' worth of weight pulling a type's rate toward the overall one
_FLOAT_MAX = float(np.finfo(np.float64).max)
_F8 = np.dtype("float64")
_OBJECT = np.dtype(object)
_NS = np.dtype("datetime64[ns]")
_BOOL = np.dtype(bool)
_PLAIN_DTYPES = (_F8, _OBJECT, _NS, _BOOL)  # stored as NumPy arrays, read as they are

DateLike = date | pd.Timestamp | str

CONTEXT_FEATURES = [
    "closed_projects",
    "type_closed_projects",
    "closed_late_rate",
    "type_late_rate",
    "closed_overrun_rate",
    "type_overrun_rate",
]


@dataclass
class TrainingTable:
    """The training table, how many reports were dropped for post-dating the finish, and
    the label counts of the portfolio it came from."""

    frame: pd.DataFrame
    excluded_reports: int
    label_counts: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- small helpers


class _Columns:
    """One input table's columns as arrays, each as ``frame[name].to_numpy(dtype)`` gives it.

    The table is a frame (read column by column through the public ``to_numpy``), or a
    mapping of column name → array (a `PortfolioColumns` table, the service's: its float64,
    object, bool and datetime64[ns] arrays are used as they are, never written).
    """

    __slots__ = ("names", "stored", "table")

    def __init__(self, table: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        self.table = table
        self.stored: dict[Any, np.ndarray] = {}
        if not isinstance(table, pd.DataFrame):
            self.names = list(table)
            for name, values in table.items():
                if isinstance(values, np.ndarray) and values.dtype in _PLAIN_DTYPES:
                    self.stored[name] = values
            return
        self.names = table.columns.tolist()

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __call__(self, name: str, dtype: np.dtype[Any]) -> np.ndarray:
        """Column ``name`` as ``dtype``; dates (``datetime64[ns]``) as ``to_numpy()`` gives
        them, which `_days` converts."""
        stored = self.stored.get(name)
        if stored is not None and stored.dtype == dtype:
            return stored
        return self.converted(name, None if dtype == _NS else dtype)

    def converted(self, name: str, dtype: Any) -> np.ndarray:
        """Column ``name`` converted to ``dtype`` (None: the column's own NumPy form)."""
        if isinstance(self.table, pd.DataFrame):
            return self.table[name].to_numpy(dtype)
        return np.asarray(self.table[name], dtype=dtype)

    def dtype(self, name: str) -> Any:
        """The column's dtype as stored (a pandas dtype for a frame's extension column)."""
        if isinstance(self.table, pd.DataFrame):
            return self.table[name].dtype
        return np.asarray(self.table[name]).dtype


def _days(values: Any) -> np.ndarray:
    """Dates (datetime64 array or Series) → float days since 1970-01-01, NaN for NaT."""
    ns = np.asarray(values, dtype="datetime64[ns]").view("int64")
    out = np.floor_divide(ns, _DAY_NS).astype("float64")
    out[ns == _NAT] = np.nan
    return out


def _positive(values: np.ndarray) -> np.ndarray:
    """The values where > 0, NaN elsewhere: the denominators of ratios."""
    return np.where(values > 0, values, np.nan)


def _nan_to_num(values: np.ndarray) -> np.ndarray:
    """``np.nan_to_num`` of a float array (NaN → 0, ±inf → ± the largest float), in four
    ufunc calls instead of its ~10 µs of Python."""
    zeroed = np.where(np.isnan(values), 0.0, values)
    return np.minimum(np.maximum(zeroed, -_FLOAT_MAX), _FLOAT_MAX)


def _rag_rank(colours: np.ndarray) -> np.ndarray:
    """Status colours as ranks (green 0, amber 1, red 2; NaN when absent)."""
    rank = np.full(len(colours), np.nan)
    for i, colour in enumerate(RAG_COLOURS):
        rank[colours == colour] = float(i)
    return rank


def _nan_like(values: np.ndarray) -> np.ndarray:
    return np.full(len(values), np.nan)


def _segments(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by project code: position, first position of the row's project, and
    a dense segment number (0, 1, ... per project)."""
    n = len(codes)
    pos = np.arange(n)
    first = np.empty(n, dtype=bool)
    first[:1] = True
    first[1:] = codes[1:] != codes[:-1]
    start = np.maximum.accumulate(np.where(first, pos, 0)) if n else pos
    return pos, start, first.cumsum() - 1


def _segment_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum within each project segment, along the last axis (several series may
    be stacked on the first).

    Only for integer-valued inputs (counts, whole days): their global cumulative sums are
    exact, so subtracting the sum before the segment start is too.
    """
    cs = values.cumsum(axis=-1)
    before = np.where(start > 0, cs.take(np.maximum(start - 1, 0), axis=-1), 0.0)
    return cs - before


def _segment_accumulate(
    ufunc: np.ufunc, values: np.ndarray, codes: np.ndarray, fill: float
) -> np.ndarray:
    """``ufunc.accumulate`` down the rows within each project segment (rows sorted by
    project ``codes``), bit-identical to running it on the segment alone (so a project built
    alone gets the same floats as in the whole table).

    The segments are laid out as the columns of padded grids (rank × segment) and
    accumulated down the rows, one whole row per step; ``values`` may have extra trailing
    dimensions (several columns at once). Segments are grouped by length class (up to 1, 2,
    4, 8, ... values), one grid per class, so one long segment cannot blow up the padding:
    the grids hold fewer than twice as many cells as there are values.
    """
    if len(values) == 0:
        return values.copy()
    if codes[0] == codes[-1]:  # one segment (one project): its grid would be the values
        return ufunc.accumulate(values, axis=0)
    pos, start, seg = _segments(codes)
    rank = pos - start
    n_seg = int(seg[-1]) + 1
    length = np.bincount(seg, minlength=n_seg)
    length_class = np.ceil(np.log2(np.maximum(length, 1))).astype(np.int64)
    out = np.empty_like(values)
    for c in np.unique(length_class):  # a loop over length classes (≤ ~10), not segments
        members = length_class == c
        column = np.cumsum(members) - 1  # the segment's column in this class's grid
        rows = np.flatnonzero(members[seg])
        at = (rank[rows], column[seg[rows]])
        grid = np.full((2 ** int(c), int(members.sum()), *values.shape[1:]), fill)
        grid[at] = values[rows]
        out[rows] = ufunc.accumulate(grid, axis=0)[at]
    return out


def _lagged(values: np.ndarray, pos: np.ndarray, start: np.ndarray, n: int) -> np.ndarray:
    """``(..., n, rows)``: ``[..., s, i]`` holds the value s reports before report i in the
    same project (NaN before the project's first report); leading axes of ``values`` (series
    stacked on the first) are kept. Lags on rows, reports on the last axis, so that
    reductions over the window run as whole-array operations."""
    idx = pos - np.arange(n)[:, None]
    out = values.take(np.maximum(idx, 0), axis=-1)  # C-ordered, unlike values[..., idx]
    out[..., idx < start] = np.nan
    return out


def _take(values: np.ndarray, k: np.ndarray, has: np.ndarray) -> np.ndarray:
    """values[k] where the row has a report, NaN elsewhere."""
    if len(values) == 0:
        return np.full(len(k), np.nan)
    return np.where(has, values[np.maximum(k, 0)], np.nan)


def _keys(codes: np.ndarray, days: np.ndarray, lo: float, span: float) -> np.ndarray:
    """Sortable float keys ``code × span + (day − lo)``; exact integers well below 2**53."""
    return codes * span + (days - lo)


# ------------------------------------------------------------------ per-report quantities


def _earned_schedule(
    seg: np.ndarray,
    start: np.ndarray,
    firsts: np.ndarray,
    t: np.ndarray,
    pv: np.ndarray,
    ev: np.ndarray,
    duration_r: np.ndarray,
    bac_r: np.ndarray,
) -> np.ndarray:
    """Earned schedule in days after planned_start at every report (see the catalogue).

    The PV curve of report k is the project's reported PV up to k (running maximum, as PV is
    cumulative). C is found for all reports at once by one searchsorted on keys
    ``segment × 4 + PV/scale``; the scaling only places the search, and the result is then
    corrected with exact comparisons of PV and EV, so it does not depend on the scale.
    ``firsts`` are the positions of the projects' first reports; ``duration_r`` and
    ``bac_r`` the report's planned duration and budget (NaN unless positive).
    """
    has_pv = ~np.isnan(pv)
    if not has_pv.any():
        return np.full(len(t), np.nan)
    cend = has_pv.cumsum()  # the curve points of the report's project up to it: [cstart, cend)
    cstart = cend[start] - has_pv[start]
    c_seg = seg[has_pv]
    c_t = t[has_pv]
    c_pv = _segment_accumulate(np.maximum, pv[has_pv], c_seg, -np.inf)

    scale = np.fmax.reduceat(np.fmax(pv, ev), firsts)[seg]
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    # Bounds by maximum/minimum, not np.clip (5 µs a call): the keys only place the search.
    c_key = c_seg * 4.0 + np.minimum(np.maximum(c_pv / scale[has_pv], 0.0), 2.0)
    ok = ~np.isnan(ev) & (cend > cstart)
    q_key = seg * 4.0 + np.minimum(np.maximum(ev / scale, 0.0), 2.0)
    j = c_key.searchsorted(q_key, side="right") - 1
    j = np.minimum(np.maximum(j, cstart - 1), cend - 1)
    # Exact correction: C is the last point with PV_C ≤ EV (ties of the float keys aside).
    # take(mode="clip") reads index −1 as 0 and past the end as the last point. Rows not
    # ``ok`` are left out by every mask below, so their j need not be right.
    for _ in range(2):
        j = j - ((j >= cstart) & (c_pv.take(j, mode="clip") > ev))
    for _ in range(2):
        j = j + ((j + 1 < cend) & (c_pv.take(j + 1, mode="clip") <= ev))

    before = ok & (j < cstart)
    last = ok & ~before & (j == cend - 1)
    mid = ok & ~before & ~last
    t_c, pv_c = c_t.take(j, mode="clip"), c_pv.take(j, mode="clip")
    gain = ev - pv_c
    # Before the first reported point the curve starts at (0, 0): planned_start, nothing earned.
    es_before = np.maximum(c_t.take(cstart, mode="clip"), 0.0) * ev / c_pv.take(cstart, mode="clip")
    t_n, pv_n = c_t.take(j + 1, mode="clip"), c_pv.take(j + 1, mode="clip")
    es_mid = t_c + gain / (pv_n - pv_c) * (t_n - t_c)
    # At or above the last reported PV the future PV is unknown; the baseline's end point
    # (PD, BAC) is known, so interpolate toward it (or stop at t_C without a budget).
    complete = ev >= bac_r
    toward = (bac_r > pv_c) & (duration_r > t_c)
    es_last = np.where(
        complete,
        duration_r,
        np.where(toward, t_c + gain / (bac_r - pv_c) * (duration_r - t_c), t_c),
    )
    # before, mid and last are disjoint; a report in none of them has no ES.
    return np.where(before, es_before, np.where(mid, es_mid, np.where(last, es_last, np.nan)))


_TRENDED = ("spi", "cpi", "percent_complete")
_TREND_STATS = ("slope_3", "change_3", "slope_6", "change_6", "volatility_6")


def _trends(y6: np.ndarray, x6: np.ndarray) -> np.ndarray:
    """``(stats, series, reports)``: slopes and changes over the last 3 and 6 reports, and
    volatility over 6 (`_TREND_STATS`), for lagged series ``y6 (series, 6, reports)``
    against lagged days ``x6 (6, reports)``.

    Every sum runs along the lag axis, report by report, as it would for one series alone.
    """
    out = np.empty((len(_TREND_STATS), *y6[:, 0].shape))
    for n, (slope_at, change_at) in ((3, (0, 1)), (6, (2, 3))):
        ys, xs = y6[:, :n], x6[:n]
        valid = ~np.isnan(ys).any(axis=1)
        dx = xs - xs.sum(axis=0) / n
        dy = ys - ys.sum(axis=1, keepdims=True) / n
        den = (dx * dx).sum(axis=0)
        slope = 7.0 * (dx * dy).sum(axis=1) / _positive(den)
        out[slope_at] = np.where(valid, slope, np.nan)
        out[change_at] = np.where(valid, ys[:, 0] - ys[:, n - 1], np.nan)
    steps = y6[:, :-1] - y6[:, 1:]
    mean_step = steps.sum(axis=1, keepdims=True) / (_WINDOW - 1)
    # ddof 1; NaN unless all six reports carry the index
    out[4] = np.sqrt(((steps - mean_step) ** 2).sum(axis=1) / (_WINDOW - 2))
    return out


def _weeks_since_improved(
    y: np.ndarray, report_day: np.ndarray, pos: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Weeks since each series (stacked on the first axis) last rose, at every report."""
    prev = np.where(pos > start, y.take(np.maximum(pos - 1, 0), axis=-1), np.nan)
    improved = y > prev  # NaN on either side: not an improvement
    # Segment starts only grow, so a running maximum never reaches into an earlier project.
    last = np.maximum.accumulate(np.where(improved, pos, start), axis=-1)
    return np.where(np.isnan(y), np.nan, (report_day - report_day[last]) / 7.0)


def _report_state(
    report_code: np.ndarray,
    report_day: np.ndarray,
    r: dict[str, np.ndarray],
    proj: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every report-level feature (`_AT_LATEST_REPORT`) and each report's rank in its
    project (``rank``), at every report (rows sorted by project, then date)."""
    pos, start, seg = _segments(report_code)
    pv, ev, ac = r["planned_value"], r["earned_value"], r["actual_cost"]
    pc, ff, done = r["percent_complete"], r["forecast_finish"], r["milestones_done"]
    duration_r, bac_r, pf_r = (
        proj["pd_pos"][report_code],
        proj["bac_pos"][report_code],
        proj["pf"][report_code],
    )
    t = report_day - proj["ps"][report_code]
    s: dict[str, np.ndarray] = {"rank": pos - start}
    pv_pos, ac_pos, t_pos = _positive(np.array([pv, ac, t]))
    spi = ev / pv_pos
    cpi = ev / ac_pos
    es = _earned_schedule(seg, start, (pos == start).nonzero()[0], t, pv, ev, duration_r, bac_r)
    spi_t = es / t_pos
    spi_t_pos, to_earn = _positive(spi_t), bac_r - ev
    s.update(
        percent_complete=pc,
        spi=spi,
        cpi=cpi,
        earned_schedule_days=es,
        spi_t=spi_t,
        sv_t_days=es - t,
        ieac_t_days=duration_r / spi_t_pos,
        ieac_t_fraction=1.0 / spi_t_pos,
        tcpi=to_earn / _positive(bac_r - ac),
        eac_cpi_ratio=(ac + to_earn / _positive(cpi)) / bac_r,
        eac_cpi_spi_ratio=(ac + to_earn / _positive(cpi * spi)) / bac_r,
        spent_fraction=ac / bac_r,
        forecast_overrun=(r["forecast_cost"] - bac_r) / bac_r,
        open_risks=r["open_risks"],
        open_issues=r["open_issues"],
        rag=r["rag"],
    )
    # Which inputs each report carries, in one isnan (np.array of equal-shape arrays is
    # np.stack without its checks): progress, EV, PV, AC, budget, forecast, milestones.
    given = ~np.isnan(np.array([pc, ev, pv, ac, bac_r, ff, done]))
    has_ff = given[5]
    flags = [given[0] | given[1], given[2] & given[1], given[3] & given[4], has_ff, given[6]]
    s.update(zip(_REPORT_FLAGS, np.array(flags, dtype="float64"), strict=True))

    # The lagged windows of everything windowed, in one gather: days, the trended indices,
    # and the intervals between reports (for the cadence).
    gap = np.where(pos > start, report_day - report_day[np.maximum(pos - 1, 0)], np.nan)
    lagged = _lagged(np.array([t, spi, cpi, pc, gap]), pos, start, _WINDOW)
    trends = _trends(lagged[1:4], lagged[0])
    for i, stat in enumerate(_TREND_STATS):
        for j, name in enumerate(_TRENDED):
            s[f"{name}_{stat}"] = trends[i, j]
    weeks = _weeks_since_improved(np.array([spi, cpi]), report_day, pos, start)
    s["spi_weeks_since_improved"], s["cpi_weeks_since_improved"] = weeks[0], weeks[1]

    # Reporting cadence: median of the last (up to) 6 intervals, known at each report.
    g6 = np.sort(lagged[4], axis=0)  # NaN sorts last
    count = (~np.isnan(g6)).sum(axis=0)
    median = (g6[np.maximum((count - 1) // 2, 0), pos] + g6[count // 2, pos]) / 2.0
    cadence = np.where(count > 0, median, np.nan)
    missed = np.maximum(np.rint(gap / _positive(cadence)) - 1.0, 0.0)  # rint: np.round to 0 places

    # Forecast revisions: each forecast against the previous one (planned_finish first).
    last_ff = np.maximum.accumulate(np.where(has_ff, pos, start - 1)) if len(ff) else pos
    prev_pos = np.where(pos > start, last_ff[np.maximum(pos - 1, 0)], start - 1)
    prev_ff = np.where(prev_pos >= start, ff[np.maximum(prev_pos, 0)], pf_r)
    revised = has_ff & (ff != prev_ff)
    moved = np.where(revised, np.abs(ff - prev_ff), 0.0)
    seen = last_ff >= start

    cum_missed, cum_revised, cum_moved = _segment_cumsum(
        np.array([_nan_to_num(missed), revised, moved]), start
    )
    intervals = (pos - start).astype("float64")
    s["report_cadence_days"] = cadence
    s["missing_report_rate"] = np.where(
        intervals > 0, cum_missed / (cum_missed + intervals), np.nan
    )
    s["forecast_slip"] = (ff - pf_r) / duration_r
    s["forecast_revisions"] = np.where(seen, cum_revised, np.nan)
    s["forecast_movement"] = np.where(seen, cum_moved, np.nan) / duration_r
    s["milestone_slippage"] = r["milestones_planned"] - done
    s["milestones_done"] = done
    return s


_REPORT_NUMBERS = (
    "percent_complete",
    "planned_value",
    "earned_value",
    "actual_cost",
    "forecast_cost",
    "milestones_planned",
    "milestones_done",
    "open_risks",
    "open_issues",
)

# Features of the row's project and date (not of a report, a change or the context).
_ROW_FEATURES = (
    "log_budget",
    "planned_duration_days",
    "start_month",
    "start_quarter",
    "has_budget",
    "elapsed_fraction",
    "progress_gap",
    "n_reports",
    "days_since_last_report",
)
_CHANGE_FEATURES = (
    "changes_raised",
    "changes_approved",
    "changes_pending",
    "change_rate_per_month",
    "changes_last_30d",
    "changes_last_90d",
    "approved_cost_impact",
    "approved_schedule_impact",
    "baseline_changes",
)
# Report-level quantities a feature row takes as they were at its latest report: the rest.
_AT_LATEST_REPORT = tuple(
    name
    for name in FEATURE_NAMES
    if name
    not in {"project_type", "portfolio", *_ROW_FEATURES, *_CHANGE_FEATURES, *CONTEXT_FEATURES}
)


_REPORT_FLAGS = (
    "has_progress_data",
    "has_earned_value",
    "has_cost_data",
    "has_forecast",
    "has_milestones",
)

# The catalogue puts its categorical features first; the rest form one float block.
_LEAD_CATEGORICALS = ("project_type", "portfolio")
_NUMERIC_NAMES = list(FEATURE_NAMES[len(_LEAD_CATEGORICALS) :])
if FEATURE_NAMES[: len(_LEAD_CATEGORICALS)] != _LEAD_CATEGORICALS:  # pragma: no cover
    raise RuntimeError("features.catalogue must declare project_type, portfolio first")
# The float block of the output, its rows in the order of the frame's columns: one block
# whose placement increases (what pandas' single-block shortcuts assume, and no block to
# merge when the frame is concatenated or copied).
_BLOCK_NAMES = _NUMERIC_NAMES
_ROW = {name: i for i, name in enumerate(_BLOCK_NAMES)}
_LATEST_ROWS = np.array([_ROW[name] for name in _AT_LATEST_REPORT])
_FLAG_ROWS = np.array([_ROW[name] for name in _REPORT_FLAGS])
_CONTEXT_ROWS = np.array([_ROW[name] for name in CONTEXT_FEATURES])
_CHANGE_ROWS = np.array([_ROW[name] for name in _CHANGE_FEATURES])
_ROW_FEATURE_ROWS = np.array([_ROW[name] for name in _ROW_FEATURES])
_FEW_REPORTS = 4096  # up to this many reports, `build_features` gathers them in one call


# ------------------------------------------------------------------------ portfolio context


def portfolio_context(
    portfolio: Portfolio,
    as_of_dates: Sequence[DateLike] | pd.Series | pd.DatetimeIndex | np.ndarray,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    prior_strength: float = _PRIOR_STRENGTH,
) -> pd.DataFrame:
    """Portfolio context at each date: rates of the projects closed strictly before it.

    One row per ``(as_of, project_type)`` for every type in the portfolio, plus one row per
    date with ``project_type`` None for types it has never seen (their type rate is the
    overall rate, their type count 0). Compute it once (say on the training portfolio at
    the training cutoff) and pass it to `build_features` (``context=``) to score projects
    alone: a row takes the latest context row dated ≤ its ``as_of``.
    """
    projects = portfolio.projects
    labels = label_projects(projects, delay_tolerance, overrun_tolerance)
    late = labels["late"].to_numpy("float64")
    over = labels["over_budget"].to_numpy("float64")
    finish = _days(projects["actual_finish"].to_numpy())
    types_all = projects["project_type"].to_numpy(object)
    types = np.array(sorted({t for t in types_all if isinstance(t, str)}), dtype=object)
    n_types = len(types)

    dates = np.unique(_days(pd.to_datetime(pd.Series(as_of_dates)).to_numpy()))
    dates = dates[~np.isnan(dates)]

    keep = ~np.isnan(late) & ~np.isnan(finish)
    f_day, f_late, f_over = finish[keep], late[keep], over[keep]
    type_code = (
        pd.Index(types).get_indexer(types_all[keep]) if n_types else np.full(int(keep.sum()), -1)
    )
    type_code = np.where(type_code < 0, n_types, type_code)  # missing type: its own group
    # Counts per event, cumulated in (type, finish) order and in finish order.
    events = np.column_stack(
        [np.ones_like(f_day), f_late, ~np.isnan(f_over), np.nan_to_num(f_over)]
    )
    lo = min(f_day.min(initial=0.0), dates.min(initial=0.0)) - 1.0
    span = max(f_day.max(initial=0.0), dates.max(initial=0.0)) - lo + 2.0

    order = np.argsort(f_day, kind="stable")
    cum_all = np.vstack([np.zeros((1, 4)), np.cumsum(events[order], axis=0)])
    at_all = cum_all[np.searchsorted(f_day[order], dates, side="left")]  # strictly before

    tkey = _keys(type_code.astype("float64"), f_day, lo, span)
    t_order = np.argsort(tkey, kind="stable")
    cum_t = np.vstack([np.zeros((1, 4)), np.cumsum(events[t_order], axis=0)])
    q_codes = np.repeat(np.arange(n_types + 1), len(dates))
    q_dates = np.tile(dates, n_types + 1)
    hi = np.searchsorted(tkey[t_order], _keys(q_codes, q_dates, lo, span), side="left")
    seg = np.searchsorted(tkey[t_order], q_codes * span, side="left")
    at_type = cum_t[hi] - cum_t[seg]
    at_type[q_codes == n_types] = 0.0  # the fallback row: a type never seen before
    at_overall = np.tile(at_all, (n_types + 1, 1))

    with np.errstate(all="ignore"):
        late_rate = at_overall[:, 1] / _positive(at_overall[:, 0])
        over_rate = at_overall[:, 3] / _positive(at_overall[:, 2])
        type_late = (at_type[:, 1] + prior_strength * late_rate) / (at_type[:, 0] + prior_strength)
        type_over = (at_type[:, 3] + prior_strength * over_rate) / (at_type[:, 2] + prior_strength)
    type_labels = np.array([*types, None], dtype=object)
    return pd.DataFrame(
        {
            "as_of": (q_dates * _DAY_NS).astype("int64").astype("datetime64[ns]"),
            "project_type": type_labels[q_codes],
            "closed_projects": at_overall[:, 0],
            "type_closed_projects": at_type[:, 0],
            "closed_late_rate": late_rate,
            "type_late_rate": type_late,
            "closed_overrun_rate": over_rate,
            "type_overrun_rate": type_over,
        }
    )


@dataclass(frozen=True, eq=False)
class PreparedContext:
    """A `portfolio_context` frame made ready for lookups: build it once with
    `prepare_context` and pass it to `build_features` (``context=``) on every call.

    A frame given as ``context`` is prepared on each call (~100 µs for a service call of
    ~1 ms). It is a snapshot: a change made to the frame afterwards is not seen.
    """

    types: np.ndarray  # the context's project types (no missing one); a type's code: its place
    string_types: bool  # every type a str
    keys: np.ndarray  # the dated rows' (type code, day) keys, sorted
    codes: np.ndarray  # each sorted key's type code; len(types) for the fallback rows
    values: np.ndarray  # (CONTEXT_FEATURES, rows) in key order
    lo: float  # keys are code × span + (day − lo), for days within [first_day − 1, last_day + 1]
    span: float
    first_day: float
    last_day: float


def prepare_context(context: pd.DataFrame) -> PreparedContext:
    """A `portfolio_context` frame (columns ``as_of``, ``project_type`` and
    `CONTEXT_FEATURES`) prepared for `build_features`; the features are the same as with the
    frame itself."""
    column = _Columns(context)
    codes, uniques = pd.factorize(column("project_type", _OBJECT))  # None → −1
    types = np.asarray(uniques, dtype=object)
    code = np.where(codes < 0, len(types), codes).astype("float64")  # fallback rows last
    day = _days(column("as_of", _NS))
    dated = (~np.isnan(day)).nonzero()[0]  # an undated row is never the latest ≤ a date
    first_day = float(day[dated].min()) if len(dated) else 0.0
    last_day = float(day[dated].max()) if len(dated) else 0.0
    # Query days are clipped to [first_day − 1, last_day + 1] (which changes no answer), so
    # every key and query key falls strictly inside its type's span.
    lo = first_day - 2.0
    span = last_day - lo + 2.0
    keys = _keys(code[dated], day[dated], lo, span)
    order = np.argsort(keys, kind="stable")  # equal keys: the later row is the one found
    rows = dated[order]
    prepared = PreparedContext(
        types=types,
        string_types=all(type(t) is str for t in types),  # a loop over the few types
        keys=keys[order],
        codes=code[rows],
        values=np.stack([column(name, _F8) for name in CONTEXT_FEATURES])[:, rows],
        lo=lo,
        span=span,
        first_day=first_day,
        last_day=last_day,
    )
    for array in (prepared.types, prepared.keys, prepared.codes, prepared.values):
        array.flags.writeable = False  # shared by every call: nobody may write into it
    return prepared


def _type_codes(context: PreparedContext, req_types: np.ndarray) -> np.ndarray:
    """Each row's type code in the context: the type's place in ``context.types``, or
    ``len(context.types)`` (the fallback rows) for a type it does not know or none.

    One factorize puts the context's types first, so a known type keeps its code. For a few
    rows against string types, comparing every row with every type finds the same codes
    (equal strings are the equal keys of factorize's hash table) at a tenth of the cost.
    """
    n_types = len(context.types)
    if context.string_types and n_types > 0 and len(req_types) * n_types <= 4096:
        try:
            equal = req_types[:, None] == context.types[None, :]
            return np.where(equal.any(axis=1), equal.argmax(axis=1), n_types)
        except TypeError:  # a type that does not compare (pd.NA): factorize decides
            pass
    codes, _ = pd.factorize(np.concatenate([context.types, req_types]))
    r_code = codes[n_types:]
    return np.where((r_code >= 0) & (r_code < n_types), r_code, n_types)


def _context_lookup(
    context: PreparedContext, req_types: np.ndarray, req_day: np.ndarray
) -> np.ndarray:
    """``(CONTEXT_FEATURES, rows)``: each row's context, the latest context row of its type
    (or the fallback row, type None, for a type the context does not know) dated ≤ the row's
    as_of; NaN when none."""
    r_code = _type_codes(context, req_types).astype("float64")
    day = np.minimum(np.maximum(req_day, context.first_day - 1.0), context.last_day + 1.0)
    q_key = _keys(r_code, day, context.lo, context.span)
    k = context.keys.searchsorted(q_key, side="right") - 1
    if len(context.keys) == 0:
        return np.full((len(CONTEXT_FEATURES), len(k)), np.nan)
    at = np.maximum(k, 0)
    out = context.values[:, at]
    out[:, (k < 0) | (context.codes[at] != r_code)] = np.nan  # no row of its type by then
    return out


# ---------------------------------------------------------------------------- the features


def _project_arrays(projects: _Columns) -> dict[str, np.ndarray]:
    start = projects("planned_start", _NS)
    ps, pf = _days(np.array([start, projects("planned_finish", _NS)]))
    budget = projects("budget", _F8)
    return {
        "ps": ps,
        "pf": pf,
        "pd_pos": _positive(pf - ps),
        "budget": budget,
        "bac_pos": _positive(budget),
        "start_dt": start if start.dtype == _NS else projects.converted("planned_start", _NS),
    }


def _change_features(
    changes: _Columns,
    change_code: np.ndarray,
    code: np.ndarray,
    cutoff: np.ndarray,
    proj: dict[str, np.ndarray],
) -> np.ndarray:
    """``(_CHANGE_FEATURES, rows)``: counts and approved impacts of the changes known at
    each row's cutoff.

    ``change_code`` is each change's project code (−1: not a requested project), ``code``
    each row's.
    """
    raised, decided = _days(np.array([changes("raised_date", _NS), changes("decided_date", _NS)]))
    keep = ((change_code >= 0) & ~np.isnan(raised)).nonzero()[0]
    change_code, raised, decided = change_code[keep].astype("float64"), raised[keep], decided[keep]
    approved = (changes("status", _OBJECT)[keep] == "approved") & ~np.isnan(decided)
    # A decision is known once both the request and the decision are dated by as_of.
    known_at = np.where(np.isnan(decided), np.nan, np.fmax(raised, decided))

    finite = cutoff[np.isfinite(cutoff)]
    days_all = np.concatenate([raised, known_at, finite, finite - 90.0])
    # fmin/fmax reductions are what nanmin/nanmax run, without their Python overhead.
    lo = float(np.fmin.reduce(days_all, initial=0.0)) - 2.0
    span = float(np.fmax.reduce(days_all, initial=0.0)) - lo + 4.0
    seg_lo = code * span
    # Query keys at the cutoff and 30 and 90 days before it. Rows that see no change at all
    # (at approval) query below their project's keys.
    days = np.array([cutoff, cutoff - 30.0, cutoff - 90.0])
    q = seg_lo + np.where(
        np.isfinite(days), np.minimum(np.maximum(days - lo, 0.0), span - 1.0), 0.0
    )

    def _count(c: np.ndarray, d: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Events of the row's project with a key ≤ q (one row of counts per row of q, if
        several), and where its events start."""
        keys = np.sort(_keys(c, d, lo, span))
        first = keys.searchsorted(seg_lo, side="left")
        return keys.searchsorted(q, side="right") - first, first

    (n_raised, n_30, n_90), _ = _count(change_code, raised, q)
    decided_known = ~np.isnan(known_at)
    n_decided, _ = _count(change_code[decided_known], known_at[decided_known], q[0])

    a_code, a_day = change_code[approved], known_at[approved]
    a_order = np.lexsort((a_day, a_code))
    a_code = a_code[a_order]
    a_rows = keep[approved][a_order]
    impacts = np.array([changes("cost_impact", _F8), changes("schedule_impact_days", _F8)])[
        :, a_rows
    ]
    stated, given = _nan_to_num(impacts), ~np.isnan(impacts)
    baseline = changes("kind", _OBJECT)[a_rows] == "baseline"
    # Columns: cost, has cost, schedule, has schedule, baseline (accumulated down the rows).
    values = np.array([stated[0], given[0], stated[1], given[1], baseline], dtype="float64").T
    cum = _segment_accumulate(np.add, values, a_code, 0.0)
    n_appr, first = _count(a_code, a_day[a_order], q[0])
    has = n_appr > 0
    sums = (
        np.where(has[:, None], cum[np.maximum(first + n_appr - 1, 0)], 0.0)
        if len(cum)
        else np.zeros((len(code), 5))
    )
    elapsed = np.where(np.isfinite(cutoff), cutoff - proj["ps"][code], 0.0)
    out = np.empty((len(_CHANGE_FEATURES), len(code)))
    # The counts, in one cast to float: raised, approved, pending; last 30 and 90 days.
    out[[0, 1, 2, 4, 5]] = [
        n_raised,
        n_appr,
        n_raised - n_decided,
        n_raised - n_30,
        n_raised - n_90,
    ]
    out[3] = n_raised / (np.fmax(elapsed, 30.0) / _MONTH_DAYS)
    # No approved change: a true zero impact. Approved ones none of which states an impact:
    # unknown, not zero.
    out[6] = np.where(has & (sums[:, 1] == 0), np.nan, sums[:, 0]) / proj["bac_pos"][code]
    out[7] = np.where(has & (sums[:, 3] == 0), np.nan, sums[:, 2]) / proj["pd_pos"][code]
    out[8] = sums[:, 4]
    return out


def _extra_attributes(
    projects: _Columns, names: Sequence[str], code: np.ndarray
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in projects:
            raise ValueError(f"extra attribute {name!r} is not a column of projects")
        if pd.api.types.is_numeric_dtype(projects.dtype(name)):
            out[name] = projects(name, _F8)[code]
        else:
            values = projects(name, _OBJECT)[code]  # a copy (fancy index)
            values[pd.isna(values)] = None
            out[name] = values
    return out


def _project_codes(ids: np.ndarray, *id_arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Project codes (row numbers of the projects, whose ids are ``ids``) for several id
    columns, −1 when unknown.

    One factorize over all ids: the projects come first, so when their ids are unique their
    codes are exactly 0..n−1. For one project with a string id (the service's case) an id's
    code is 0 where it equals that string: what factorize finds, at a fifth of its cost.
    """
    n = len(ids)
    if n == 1 and type(ids[0]) is str:
        try:
            return np.zeros(1, dtype=np.intp), [(arr == ids[0]) - 1 for arr in id_arrays]
        except TypeError:  # an id that does not compare (pd.NA): factorize decides
            pass
    codes, _ = pd.factorize(np.concatenate([ids, *id_arrays]))
    if not (codes[:n] == np.arange(n)).all():
        raise ValueError("projects.project_id must be unique and present")
    codes = np.where(codes < n, codes, -1)
    out, at = [], n
    for arr in id_arrays:
        out.append(codes[at : at + len(arr)])
        at += len(arr)
    return codes[:n], out


def build_features(
    portfolio: Portfolio | PortfolioColumns,
    as_of: pd.DataFrame | Mapping[str, np.ndarray],
    *,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] | None = None,
    context: pd.DataFrame | PreparedContext | None = None,
    schedule_health: bool | None = None,
) -> pd.DataFrame:
    """Feature rows for ``as_of[project_id, as_of]`` (one output row per input row, in order).

    Columns: ``project_id, as_of``, then ``feature_names(extra_attributes,
    schedule_health)``; ``schedule_health`` None means: when the portfolio's status reports
    carry any schedule-health value (contract v1.1, `forewarn import`). An optional
    boolean column ``at_approval`` marks rows that see the baseline only (no report, no
    change), as the training table's "at approval" row. ``context`` is a
    `portfolio_context` frame, or that frame made ready once by `prepare_context` (what a
    caller scoring request after request against the same context should pass); without it
    the context is computed from ``portfolio`` itself (so a portfolio of one project has no
    closed peers: pass the training context instead). ``extra_attributes`` defaults to
    ``portfolio.extra_attributes``. The portfolio may be a `PortfolioColumns` and ``as_of``
    a mapping of its two columns to arrays: the same rows, without building frames.
    """
    rows = _feature_rows(
        portfolio,
        as_of,
        delay_tolerance,
        overrun_tolerance,
        extra_attributes,
        context,
        schedule_health,
    )
    return rows.to_frame()


def build_feature_columns(
    portfolio: Portfolio | PortfolioColumns,
    as_of: pd.DataFrame | Mapping[str, np.ndarray],
    *,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] | None = None,
    context: pd.DataFrame | PreparedContext | None = None,
    schedule_health: bool | None = None,
) -> FeatureColumns:
    """`build_features` before it is a DataFrame: the same columns, as arrays.

    For a caller that reads the columns as arrays (the service scores one row): framing
    them costs ~0.15 ms. ``FeatureColumns.to_frame()`` gives `build_features`' frame.
    """
    return _feature_rows(
        portfolio,
        as_of,
        delay_tolerance,
        overrun_tolerance,
        extra_attributes,
        context,
        schedule_health,
    )


def _feature_rows(
    portfolio: Portfolio | PortfolioColumns,
    as_of: pd.DataFrame | Mapping[str, np.ndarray],
    delay_tolerance: float,
    overrun_tolerance: float,
    extra_attributes: Sequence[str] | None,
    context: pd.DataFrame | PreparedContext | None,
    schedule_health: bool | None = None,
) -> FeatureColumns:
    extras = list(portfolio.extra_attributes if extra_attributes is None else extra_attributes)
    rows, projects = _Columns(as_of), _Columns(portfolio.projects)
    reports, changes = _Columns(portfolio.status_reports), _Columns(portfolio.changes)
    health = _carries_schedule_health(reports) if schedule_health is None else schedule_health
    names = feature_names(extras, health)  # also rejects attributes named like a feature
    req_ids = rows("project_id", _OBJECT)
    _, (code, report_code_all, change_code) = _project_codes(
        projects("project_id", _OBJECT),
        req_ids,
        reports("project_id", _OBJECT),
        changes("project_id", _OBJECT),
    )
    if (code < 0).any():
        unknown = sorted({str(p) for p in req_ids[code < 0]})[:5]
        raise ValueError(f"as_of names project(s) not in the portfolio: {unknown}")
    as_of_values = np.asarray(rows("as_of", _NS), dtype="datetime64[D]").astype("datetime64[ns]")
    req_day = _days(as_of_values)
    if np.isnan(req_day).any():
        raise ValueError("as_of has missing dates")
    at_approval = (
        rows("at_approval", _BOOL) if "at_approval" in rows else np.zeros(len(req_ids), dtype=bool)
    )
    cutoff = np.where(at_approval, -np.inf, req_day)
    proj = _project_arrays(projects)

    # Status reports of the requested projects, sorted by (project, report_date).
    wanted = np.zeros(len(proj["ps"]) + 1, dtype=bool)
    wanted[code] = True
    report_day_all, ff_all = _days(
        np.array([reports("report_date", _NS), reports("forecast_finish", _NS)])
    )
    order = (wanted[report_code_all] & ~np.isnan(report_day_all)).nonzero()[
        0
    ]  # code −1 hits the False slot
    order = order[np.lexsort((report_day_all[order], report_code_all[order]))]
    report_code, report_day = report_code_all[order], report_day_all[order]
    r = {name: reports(name, _F8)[order] for name in _REPORT_NUMBERS}
    r["forecast_finish"] = ff_all[order]
    r["rag"] = (
        _rag_rank(reports("rag", _OBJECT)[order]) if "rag" in reports else _nan_like(report_day)
    )

    numeric = np.empty((len(_BLOCK_NAMES), len(code)))
    types = projects("project_type", _OBJECT)[code]
    month = proj["start_dt"][code].astype("datetime64[M]").astype("int64") % 12 + 1
    with np.errstate(all="ignore"):
        state = _report_state(report_code, report_day, r, proj)

        # Each row's latest report: one searchsorted on (project, day) keys.
        finite = cutoff[np.isfinite(cutoff)]
        lo = float(min(report_day.min(initial=0.0), finite.min(initial=0.0))) - 2.0
        span = float(max(report_day.max(initial=0.0), finite.max(initial=0.0))) - lo + 4.0
        q_off = np.where(np.isfinite(cutoff), cutoff - lo, 0.0)
        k = _keys(report_code.astype("float64"), report_day, lo, span).searchsorted(
            code * span + q_off, "right"
        )
        k -= 1
        has = (k >= 0) & (report_code[np.maximum(k, 0)] == code) if len(report_code) else k >= 0

        latest = np.maximum(k, 0)
        if 0 < len(report_code) <= _FEW_REPORTS:  # a few reports: stacked, then one gather
            numeric[_LATEST_ROWS] = np.array([state[name] for name in _AT_LATEST_REPORT])[:, latest]
        elif len(report_code):  # a (features × reports) block would be big: one gather per feature
            for name in _AT_LATEST_REPORT:
                numeric[_ROW[name]] = state[name][latest]
        else:
            numeric[_LATEST_ROWS] = np.nan
        if not has.all():  # (the service's row has a report: then nothing to blank)
            numeric[np.ix_(_LATEST_ROWS, ~has)] = np.nan
            numeric[np.ix_(_FLAG_ROWS, ~has)] = 0.0  # no report: the data is absent, not unknown

        ps, pd_pos = proj["ps"][code], proj["pd_pos"][code]
        no_start = np.isnan(ps)
        elapsed = (req_day - ps) / pd_pos
        numeric[_ROW_FEATURE_ROWS] = [  # in _ROW_FEATURES order
            np.log1p(proj["budget"][code]),
            proj["pf"][code] - ps,
            np.where(no_start, np.nan, month),
            np.where(no_start, np.nan, (month - 1) // 3 + 1),
            ~np.isnan(proj["bac_pos"][code]),
            elapsed,
            numeric[_ROW["percent_complete"]] / 100.0 - elapsed,
            np.where(has, _take(state["rank"], k, has) + 1.0, 0.0),
            req_day - _take(report_day, k, has),
        ]
        numeric[_CHANGE_ROWS] = _change_features(changes, change_code, code, cutoff, proj)
        if context is None:
            framed = portfolio if isinstance(portfolio, Portfolio) else portfolio.to_portfolio()
            context = portfolio_context(
                framed, np.unique(as_of_values), delay_tolerance, overrun_tolerance
            )
        if not isinstance(context, PreparedContext):
            context = prepare_context(context)
        numeric[_CONTEXT_ROWS] = _context_lookup(context, types, req_day)

    block_names = tuple(_BLOCK_NAMES)
    if health:
        numeric = np.vstack([numeric, _schedule_health_rows(reports, order, k, has)])
        block_names += SCHEDULE_HEALTH_NAMES
    singles = {
        "project_id": req_ids,
        "as_of": as_of_values,
        "project_type": types,
        "portfolio": projects("portfolio", _OBJECT)[code],
        **_extra_attributes(projects, extras, code),
    }
    return FeatureColumns(("project_id", "as_of", *names), block_names, numeric, singles)


def _carries_schedule_health(reports: _Columns) -> bool:
    """Whether any status report has a schedule-health value (contract v1.1)."""
    return any(
        name in reports and bool(np.isfinite(reports(name, _F8)).any())
        for name in SCHEDULE_HEALTH_INPUTS
    )


def _schedule_health_rows(
    reports: _Columns, order: np.ndarray, k: np.ndarray, has: np.ndarray
) -> np.ndarray:
    """The schedule-health family (`SCHEDULE_HEALTH_NAMES` × rows): each column at the row's
    latest report (``k``, its index among the reports sorted by ``order``; ``has``: there
    is one), NaN without one; then the flag, 0 without a report."""
    out = np.full((len(SCHEDULE_HEALTH_NAMES), len(k)), np.nan)
    for i, name in enumerate(SCHEDULE_HEALTH_INPUTS):
        if name in reports:
            out[i] = _take(reports(name, _F8)[order], k, has)
    out[-1] = np.isfinite(out[:-1]).any(axis=0)
    return out


# ------------------------------------------------------------------ snapshot and training


def snapshot(
    portfolio: Portfolio,
    as_of: DateLike,
    running_only: bool = True,
    *,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] | None = None,
    context: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One feature row per project started by ``as_of``, as known at ``as_of``.

    Started: ``actual_start ≤ as_of``, or ``planned_start ≤ as_of`` when there is no
    actual start. With ``running_only``, projects finished by ``as_of`` (``actual_finish ≤
    as_of``) and cancelled projects are left out; a cancellation is undated in contract v1,
    so a cancelled project without an ``actual_finish`` is taken as cancelled already.
    """
    day = pd.Timestamp(as_of).normalize()
    projects = portfolio.projects
    started_on = projects["actual_start"].fillna(projects["planned_start"])
    keep = started_on <= day
    if running_only:
        finished = projects["actual_finish"] <= day
        cancelled = (projects["status"] == "cancelled") & (
            projects["actual_finish"].isna() | finished
        )
        keep &= ~finished & ~cancelled
    rows = pd.DataFrame(
        {"project_id": projects.loc[keep, "project_id"].to_numpy(object), "as_of": day}
    )
    return build_features(
        portfolio,
        rows,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        extra_attributes=extra_attributes,
        context=context,
    )


def training_rows(portfolio: Portfolio, as_of: DateLike | None = None) -> tuple[pd.DataFrame, int]:
    """The ``as_of`` frame of the training table, and the count of reports left out.

    For each project closed (by ``as_of`` when given): an "at approval" row at
    ``planned_start`` seeing nothing but the baseline, then one row per status report dated
    before ``actual_finish``. Reports dated on or after ``actual_finish`` are left out (they
    would show the outcome) and counted.
    """
    projects = portfolio.projects
    closed = closed_mask(projects, as_of)
    ids = projects["project_id"].to_numpy(object)[closed.to_numpy()]
    finish = projects["actual_finish"].to_numpy("datetime64[ns]")[closed.to_numpy()]
    approval = pd.DataFrame(
        {
            "project_id": ids,
            "as_of": projects["planned_start"].to_numpy("datetime64[ns]")[closed.to_numpy()],
            "at_approval": True,
            "_order": np.arange(len(ids)),
        }
    )
    reports = portfolio.status_reports
    finish_of = pd.Series(finish, index=pd.Index(ids, dtype=object))
    r_finish = finish_of.reindex(reports["project_id"].to_numpy(object)).to_numpy()
    in_table = ~np.isnat(r_finish)
    before = in_table & (reports["report_date"].to_numpy("datetime64[ns]") < r_finish)
    excluded = int((in_table & ~before).sum())
    position = pd.Index(ids, dtype=object).get_indexer(
        reports["project_id"].to_numpy(object)[before]
    )
    report_rows = pd.DataFrame(
        {
            "project_id": reports["project_id"].to_numpy(object)[before],
            "as_of": reports["report_date"].to_numpy("datetime64[ns]")[before],
            "at_approval": False,
            "_order": position,
        }
    )
    rows = pd.concat([approval, report_rows], ignore_index=True)
    # Project order of the portfolio; within a project the approval row first, then by date.
    rows = rows.sort_values(
        ["_order", "at_approval", "as_of"], ascending=[True, False, True], kind="stable"
    )
    return rows.drop(columns="_order").reset_index(drop=True), excluded


def training_table(
    portfolio: Portfolio,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    as_of: DateLike | None = None,
    extra_attributes: Sequence[str] | None = None,
) -> TrainingTable:
    """The training table: ``project_id, as_of, weight, late, over_budget, actual_finish``,
    then the features; one row per status report of each closed project before its actual
    finish plus one "at approval" row; ``weight = 1 / rows of the project``. With ``as_of``
    only projects closed by then (``actual_finish ≤ as_of``)."""
    rows, excluded = training_rows(portfolio, as_of)
    features = build_features(
        portfolio,
        rows,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        extra_attributes=extra_attributes,
    )
    projects = portfolio.projects
    labels = label_projects(projects, delay_tolerance, overrun_tolerance, as_of=as_of)
    index = pd.Index(projects["project_id"].to_numpy(object))
    at = index.get_indexer(rows["project_id"].to_numpy(object))
    per_project = np.bincount(at, minlength=len(projects)) if len(at) else np.zeros(0)
    head = pd.DataFrame(
        {
            "weight": 1.0 / per_project[at] if len(at) else np.zeros(0),
            "late": labels["late"].to_numpy("float64")[at],
            "over_budget": labels["over_budget"].to_numpy("float64")[at],
            "actual_finish": projects["actual_finish"].to_numpy("datetime64[ns]")[at],
        }
    )
    frame = pd.concat(
        [features[["project_id", "as_of"]], head, features.drop(columns=["project_id", "as_of"])],
        axis=1,
    )
    return TrainingTable(frame, excluded, label_counts(labels, projects, as_of=as_of))


def write_features(frame: pd.DataFrame, path: Path) -> Path:
    """Write a feature table as Parquet or CSV, chosen by the file's suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: write features to a .parquet or .csv file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path
