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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import FEATURE_NAMES, feature_names
from features.contract import Portfolio
from features.labels import closed_mask, label_counts, label_projects

_DAY_NS = 86_400 * 1_000_000_000
_NAT = np.iinfo(np.int64).min
_WINDOW = 6  # the longest "last n reports" window
_MONTH_DAYS = 30.44
_PRIOR_STRENGTH = 5.0  # projects' worth of weight pulling a type's rate toward the overall one

DateLike = date | pd.Timestamp | str

CONTEXT_COLUMNS = [
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


def _days(values: Any) -> np.ndarray:
    """Dates (datetime64 array or Series) → float days since 1970-01-01, NaN for NaT."""
    ns = np.asarray(values, dtype="datetime64[ns]").view("int64")
    out = np.floor_divide(ns, _DAY_NS).astype("float64")
    out[ns == _NAT] = np.nan
    return out


def _positive(values: np.ndarray) -> np.ndarray:
    """The values where > 0, NaN elsewhere: the denominators of ratios."""
    return np.where(values > 0, values, np.nan)


def _segments(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by project code: position, first position of the row's project, and
    a dense segment number (0, 1, ... per project)."""
    n = len(codes)
    pos = np.arange(n)
    first = np.ones(n, dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    start = np.maximum.accumulate(np.where(first, pos, 0)) if n else pos
    return pos, start, np.cumsum(first) - 1


def _segment_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum within each project segment.

    Only for integer-valued inputs (counts, whole days): their global cumulative sums are
    exact, so subtracting the sum before the segment start is too.
    """
    cs = np.cumsum(values)
    before = np.where(start > 0, cs[np.maximum(start - 1, 0)], 0.0)
    return cs - before


def _segment_accumulate(
    ufunc: np.ufunc, values: np.ndarray, seg: np.ndarray, rank: np.ndarray, fill: float
) -> np.ndarray:
    """``ufunc.accumulate`` within each project segment, bit-identical to running it on the
    segment alone (so a project built alone gets the same floats as in the whole table).

    The segments are laid out as the columns of padded grids (rank × segment) and
    accumulated down the rows, one whole row per step; ``values`` may have extra trailing
    dimensions (several columns at once). Segments are grouped by length class (up to 1, 2,
    4, 8, ... values), one grid per class, so one long segment cannot blow up the padding:
    the grids hold fewer than twice as many cells as there are values.
    """
    if len(values) == 0:
        return values.copy()
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
    """(n, rows) matrix: row s holds the value s reports earlier in the same project (NaN
    before the project's first report). Rows, not columns, so that reductions over the
    window run as whole-array operations."""
    out = np.empty((n, len(values)))
    for lag in range(n):  # a loop over the window, never over projects or reports
        idx = pos - lag
        out[lag] = values[np.maximum(idx, 0)]
        out[lag, idx < start] = np.nan
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
    rc: np.ndarray,
    seg: np.ndarray,
    start: np.ndarray,
    t: np.ndarray,
    pv: np.ndarray,
    ev: np.ndarray,
    pd_days: np.ndarray,
    bac: np.ndarray,
) -> np.ndarray:
    """Earned schedule in days after planned_start at every report (see the catalogue).

    The PV curve of report k is the project's reported PV up to k (running maximum, as PV is
    cumulative). C is found for all reports at once by one searchsorted on keys
    ``segment × 4 + PV/scale``; the scaling only places the search, and the result is then
    corrected with exact comparisons of PV and EV, so it does not depend on the scale.
    """
    es = np.full(len(rc), np.nan)
    has_pv = ~np.isnan(pv)
    if not has_pv.any():
        return es
    ccum = np.cumsum(has_pv)
    cend = ccum  # the curve points of the report's project up to it: [cstart, cend)
    cstart = np.where(start > 0, ccum[np.maximum(start - 1, 0)], 0)
    c_seg = seg[has_pv]
    c_t = t[has_pv]
    c_rank = np.arange(len(c_seg)) - cstart[has_pv]
    c_pv = _segment_accumulate(np.maximum, pv[has_pv], c_seg, c_rank, -np.inf)
    last_c = len(c_pv) - 1

    firsts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    scale = np.fmax.reduceat(np.fmax(pv, ev), firsts)[seg]
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    c_key = c_seg * 4.0 + np.clip(c_pv / scale[has_pv], 0.0, 2.0)
    ok = ~np.isnan(ev) & (cend > cstart)
    q_key = seg * 4.0 + np.clip(np.where(ok, ev, 0.0) / scale, 0.0, 2.0)
    j = np.searchsorted(c_key, q_key, side="right") - 1
    j = np.clip(j, cstart - 1, cend - 1)
    # Exact correction: C is the last point with PV_C ≤ EV (ties of the float keys aside).
    for _ in range(2):
        down = ok & (j >= cstart) & (c_pv[np.clip(j, 0, last_c)] > ev)
        j = np.where(down, j - 1, j)
    for _ in range(2):
        up = ok & (j + 1 < cend) & (c_pv[np.clip(j + 1, 0, last_c)] <= ev)
        j = np.where(up, j + 1, j)

    jj = np.clip(j, 0, last_c)
    jn = np.clip(j + 1, 0, last_c)
    cs = np.clip(cstart, 0, last_c)
    before = ok & (j < cstart)
    last = ok & ~before & (j == cend - 1)
    mid = ok & ~before & ~last
    pd_r = pd_days[rc]
    bac_r = bac[rc]
    t_c, pv_c = c_t[jj], c_pv[jj]
    # Before the first reported point the curve starts at (0, 0): planned_start, nothing earned.
    es_before = np.maximum(c_t[cs], 0.0) * ev / c_pv[cs]
    es_mid = t_c + (ev - pv_c) / (c_pv[jn] - pv_c) * (c_t[jn] - t_c)
    # At or above the last reported PV the future PV is unknown; the baseline's end point
    # (PD, BAC) is known, so interpolate toward it (or stop at t_C without a budget).
    complete = ev >= bac_r
    toward = (bac_r > pv_c) & (pd_r > t_c)
    es_last = np.where(
        complete,
        pd_r,
        np.where(toward, t_c + (ev - pv_c) / (bac_r - pv_c) * (pd_r - t_c), t_c),
    )
    es = np.where(before, es_before, es)
    es = np.where(mid, es_mid, es)
    return np.where(last, es_last, es)


def _trend_block(
    out: dict[str, np.ndarray],
    name: str,
    y: np.ndarray,
    x6: np.ndarray,
    pos: np.ndarray,
    start: np.ndarray,
) -> None:
    """Slopes and changes over the last 3 and 6 reports, and volatility over 6."""
    y6 = _lagged(y, pos, start, _WINDOW)
    for n in (3, 6):
        ys, xs = y6[:n], x6[:n]
        valid = ~np.isnan(ys).any(axis=0)
        dx = xs - xs.sum(axis=0) / n
        dy = ys - ys.sum(axis=0) / n
        den = (dx * dx).sum(axis=0)
        slope = 7.0 * (dx * dy).sum(axis=0) / _positive(den)
        out[f"{name}_slope_{n}"] = np.where(valid, slope, np.nan)
        out[f"{name}_change_{n}"] = np.where(valid, ys[0] - ys[n - 1], np.nan)
    steps = y6[:-1] - y6[1:]
    mean_step = steps.sum(axis=0) / (_WINDOW - 1)
    vol = np.sqrt(((steps - mean_step) ** 2).sum(axis=0) / (_WINDOW - 2))  # ddof 1
    out[f"{name}_volatility_6"] = vol  # NaN unless all six reports carry the index


def _weeks_since_improved(
    y: np.ndarray, rd: np.ndarray, pos: np.ndarray, start: np.ndarray
) -> np.ndarray:
    prev = np.where(pos > start, y[np.maximum(pos - 1, 0)], np.nan) if len(y) else y
    improved = y > prev  # NaN on either side: not an improvement
    # Segment starts only grow, so a running maximum never reaches into an earlier project.
    last = np.maximum.accumulate(np.where(improved, pos, start)) if len(y) else pos
    return np.where(np.isnan(y), np.nan, (rd - rd[last]) / 7.0)


def _report_state(
    rc: np.ndarray, rd: np.ndarray, r: dict[str, np.ndarray], proj: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Every report-level feature at every report (rows sorted by project, then date).

    Returns a ``(len(_AT_LATEST_REPORT), reports)`` block, so that the feature rows gather
    them all with one fancy index, and each report's rank in its project.
    """
    pos, start, seg = _segments(rc)
    pv, ev, ac = r["planned_value"], r["earned_value"], r["actual_cost"]
    pd_days, bac = proj["pd_pos"], proj["bac_pos"]
    pd_r, bac_r = pd_days[rc], bac[rc]
    t = rd - proj["ps"][rc]
    s: dict[str, np.ndarray] = {"rank": pos - start, "rd": rd}
    spi = ev / _positive(pv)
    cpi = ev / _positive(ac)
    es = _earned_schedule(rc, seg, start, t, pv, ev, pd_days, bac)
    at = _positive(t)
    spi_t = es / at
    s.update(
        percent_complete=r["percent_complete"],
        spi=spi,
        cpi=cpi,
        earned_schedule_days=es,
        spi_t=spi_t,
        sv_t_days=es - t,
        ieac_t_days=pd_r / _positive(spi_t),
        ieac_t_fraction=1.0 / _positive(spi_t),
        tcpi=(bac_r - ev) / _positive(bac_r - ac),
        eac_cpi_ratio=(ac + (bac_r - ev) / _positive(cpi)) / bac_r,
        eac_cpi_spi_ratio=(ac + (bac_r - ev) / _positive(cpi * spi)) / bac_r,
        spent_fraction=ac / bac_r,
        forecast_overrun=(r["forecast_cost"] - bac_r) / bac_r,
        open_risks=r["open_risks"],
        open_issues=r["open_issues"],
        has_progress_data=(~np.isnan(r["percent_complete"]) | ~np.isnan(ev)).astype("float64"),
        has_earned_value=(~np.isnan(pv) & ~np.isnan(ev)).astype("float64"),
        has_cost_data=(~np.isnan(ac) & ~np.isnan(bac_r)).astype("float64"),
    )

    x6 = _lagged(t.astype("float64"), pos, start, _WINDOW)
    for name in ("spi", "cpi", "percent_complete"):
        _trend_block(s, name, s[name], x6, pos, start)
    s["spi_weeks_since_improved"] = _weeks_since_improved(spi, rd, pos, start)
    s["cpi_weeks_since_improved"] = _weeks_since_improved(cpi, rd, pos, start)

    # Reporting cadence: median of the last (up to) 6 intervals, known at each report.
    gap = np.where(pos > start, rd - rd[np.maximum(pos - 1, 0)], np.nan) if len(rd) else rd
    g6 = np.sort(_lagged(gap, pos, start, _WINDOW), axis=0)  # NaN sorts last
    count = (~np.isnan(g6)).sum(axis=0)
    lo_i = np.maximum((count - 1) // 2, 0)[None, :]
    hi_i = np.maximum(count // 2, 0)[None, :]
    median = (np.take_along_axis(g6, lo_i, 0)[0] + np.take_along_axis(g6, hi_i, 0)[0]) / 2.0
    cadence = np.where(count > 0, median, np.nan)
    missed = np.maximum(np.round(gap / _positive(cadence)) - 1.0, 0.0)
    cum_missed = _segment_cumsum(np.nan_to_num(missed), start)
    intervals = (pos - start).astype("float64")
    s["report_cadence_days"] = cadence
    s["missing_report_rate"] = np.where(
        intervals > 0, cum_missed / (cum_missed + intervals), np.nan
    )

    # Forecast revisions: each forecast against the previous one (planned_finish first).
    ff = r["forecast_finish"]
    has_ff = ~np.isnan(ff)
    last_ff = np.maximum.accumulate(np.where(has_ff, pos, start - 1)) if len(ff) else pos
    prev_pos = np.where(pos > start, last_ff[np.maximum(pos - 1, 0)], start - 1)
    prev_ff = np.where(prev_pos >= start, ff[np.maximum(prev_pos, 0)], proj["pf"][rc])
    revised = has_ff & (ff != prev_ff)
    moved = np.where(revised, np.abs(ff - prev_ff), 0.0)
    seen = last_ff >= start
    s["forecast_slip"] = (ff - proj["pf"][rc]) / pd_r
    s["forecast_revisions"] = np.where(
        seen, _segment_cumsum(revised.astype("float64"), start), np.nan
    )
    s["forecast_movement"] = np.where(seen, _segment_cumsum(moved, start), np.nan) / pd_r
    s["milestone_slippage"] = r["milestones_planned"] - r["milestones_done"]
    s["milestones_done"] = r["milestones_done"]
    s["has_forecast"] = has_ff.astype("float64")
    s["has_milestones"] = (~np.isnan(r["milestones_done"])).astype("float64")
    block = np.empty((len(_AT_LATEST_REPORT), len(rc)))
    for i, name in enumerate(_AT_LATEST_REPORT):
        block[i] = s[name]
    return block, s["rank"]


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

# Report-level quantities a feature row takes as they were at its latest report.
_AT_LATEST_REPORT = tuple(
    name
    for name in FEATURE_NAMES
    if name
    not in {
        "project_type",
        "portfolio",
        "log_budget",
        "planned_duration_days",
        "start_month",
        "start_quarter",
        "has_budget",
        "elapsed_fraction",
        "progress_gap",
        "n_reports",
        "days_since_last_report",
        "changes_raised",
        "changes_approved",
        "changes_pending",
        "change_rate_per_month",
        "changes_last_30d",
        "changes_last_90d",
        "approved_cost_impact",
        "approved_schedule_impact",
        "baseline_changes",
        *CONTEXT_COLUMNS,
    }
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
# The float block of the output: first the features taken at the latest report (gathered
# straight into place), then the others. Placed by name in the frame.
_BLOCK_NAMES = [*_AT_LATEST_REPORT, *(n for n in _NUMERIC_NAMES if n not in _AT_LATEST_REPORT)]
_ROW = {name: i for i, name in enumerate(_BLOCK_NAMES)}
_FLAG_ROWS = np.array([_ROW[name] for name in _REPORT_FLAGS])


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


def _context_lookup(
    context: pd.DataFrame, req_types: np.ndarray, req_day: np.ndarray
) -> dict[str, np.ndarray]:
    """Each row's context: the latest context row of its type (or the fallback row, type
    None, for a type the context does not know) dated ≤ the row's as_of; NaN when none."""
    c_types = context["project_type"].to_numpy(object)
    codes, _ = pd.factorize(np.concatenate([c_types, req_types]))  # None → −1
    c_code, r_code = codes[: len(c_types)], codes[len(c_types) :]
    known = np.zeros(codes.max(initial=-1) + 2, dtype=bool)  # slot −1: missing type
    known[c_code] = True
    known[-1] = False
    fallback = len(known)  # rows of an unknown or missing type share one segment
    c_code = np.where(c_code < 0, fallback, c_code).astype("float64")
    r_code = np.where(known[r_code], r_code, fallback).astype("float64")
    c_day = _days(context["as_of"].to_numpy())
    lo = min(np.nanmin(c_day, initial=0.0), np.nanmin(req_day, initial=0.0)) - 1.0
    span = max(np.nanmax(c_day, initial=0.0), np.nanmax(req_day, initial=0.0)) - lo + 2.0
    c_key = _keys(c_code, c_day, lo, span)
    order = np.argsort(c_key, kind="stable")
    k = np.searchsorted(c_key[order], _keys(r_code, req_day, lo, span), side="right") - 1
    has = (k >= 0) & (c_code[order][np.maximum(k, 0)] == r_code) if len(c_key) else k >= 0
    rows = order[np.maximum(k, 0)]
    return {
        name: np.where(has, context[name].to_numpy("float64")[rows], np.nan)
        for name in CONTEXT_COLUMNS
    }


# ---------------------------------------------------------------------------- the features


def _project_arrays(projects: pd.DataFrame) -> dict[str, np.ndarray]:
    ps = _days(projects["planned_start"].to_numpy())
    pf = _days(projects["planned_finish"].to_numpy())
    return {
        "ps": ps,
        "pf": pf,
        "pd_pos": _positive(pf - ps),
        "bac_pos": _positive(projects["budget"].to_numpy("float64")),
        "start_dt": projects["planned_start"].to_numpy("datetime64[ns]"),
    }


def _change_features(
    changes: pd.DataFrame,
    cc: np.ndarray,
    code: np.ndarray,
    cutoff: np.ndarray,
    proj: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Counts and approved impacts of the changes known at each row's cutoff.

    ``cc`` is each change's project code (−1: not a requested project), ``code`` each row's.
    """
    raised = _days(changes["raised_date"].to_numpy())
    decided = _days(changes["decided_date"].to_numpy())
    keep = (cc >= 0) & ~np.isnan(raised)
    cc, raised, decided = cc[keep].astype("float64"), raised[keep], decided[keep]
    approved = (changes["status"].to_numpy(object)[keep] == "approved") & ~np.isnan(decided)
    # A decision is known once both the request and the decision are dated by as_of.
    known_at = np.where(np.isnan(decided), np.nan, np.fmax(raised, decided))

    finite = cutoff[np.isfinite(cutoff)]
    days_all = np.concatenate([raised, known_at, finite, finite - 90.0])
    lo = float(np.nanmin(days_all, initial=0.0)) - 2.0
    span = float(np.nanmax(days_all, initial=0.0)) - lo + 4.0
    seg_lo = code * span

    def _count(c: np.ndarray, d: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Events of the row's project dated ≤ days, and where its events start."""
        keys = np.sort(_keys(c, d, lo, span))
        first = np.searchsorted(keys, seg_lo, side="left")
        # Rows that see no change at all (at approval) query below their project's keys.
        off = np.where(np.isfinite(days), np.clip(days - lo, 0.0, span - 1.0), 0.0)
        return np.searchsorted(keys, seg_lo + off, side="right") - first, first

    n_raised, _ = _count(cc, raised, cutoff)
    n_30, _ = _count(cc, raised, cutoff - 30.0)
    n_90, _ = _count(cc, raised, cutoff - 90.0)
    decided_known = ~np.isnan(known_at)
    n_decided, _ = _count(cc[decided_known], known_at[decided_known], cutoff)

    a_code, a_day = cc[approved], known_at[approved]
    a_order = np.lexsort((a_day, a_code))
    a_code = a_code[a_order]
    cost = changes["cost_impact"].to_numpy("float64")[keep][approved][a_order]
    sched = changes["schedule_impact_days"].to_numpy("float64")[keep][approved][a_order]
    baseline = changes["kind"].to_numpy(object)[keep][approved][a_order] == "baseline"
    values = np.column_stack(
        [np.nan_to_num(cost), ~np.isnan(cost), np.nan_to_num(sched), ~np.isnan(sched), baseline]
    ).astype("float64")
    a_pos, a_start, a_seg = _segments(a_code)
    cum = _segment_accumulate(np.add, values, a_seg, a_pos - a_start, 0.0)
    n_appr, first = _count(a_code, a_day[a_order], cutoff)
    has = n_appr > 0
    sums = (
        np.where(has[:, None], cum[np.maximum(first + n_appr - 1, 0)], 0.0)
        if len(cum)
        else np.zeros((len(code), 5))
    )
    elapsed = np.where(np.isfinite(cutoff), cutoff - proj["ps"][code], 0.0)
    out = {
        "changes_raised": n_raised.astype("float64"),
        "changes_approved": n_appr.astype("float64"),
        "changes_pending": (n_raised - n_decided).astype("float64"),
        "change_rate_per_month": n_raised / (np.fmax(elapsed, 30.0) / _MONTH_DAYS),
        "changes_last_30d": (n_raised - n_30).astype("float64"),
        "changes_last_90d": (n_raised - n_90).astype("float64"),
        # No approved change: a true zero impact. Approved ones none of which states an
        # impact: unknown, not zero.
        "approved_cost_impact": np.where(has & (sums[:, 1] == 0), np.nan, sums[:, 0])
        / proj["bac_pos"][code],
        "approved_schedule_impact": np.where(has & (sums[:, 3] == 0), np.nan, sums[:, 2])
        / proj["pd_pos"][code],
        "baseline_changes": sums[:, 4],
    }
    return out


def _extra_attributes(
    projects: pd.DataFrame, names: Sequence[str], code: np.ndarray
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in projects.columns:
            raise ValueError(f"extra attribute {name!r} is not a column of projects")
        column = projects[name]
        if pd.api.types.is_numeric_dtype(column.dtype):
            out[name] = column.to_numpy("float64")[code]
        else:
            values = column.to_numpy(object)[code]  # a copy (fancy index)
            values[pd.isna(values)] = None
            out[name] = values
    return out


def _project_codes(
    projects: pd.DataFrame, *id_arrays: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Project codes (row numbers in ``projects``) for several id columns, −1 when unknown.

    One factorize over all ids: the projects come first, so when their ids are unique their
    codes are exactly 0..n−1.
    """
    ids = projects["project_id"].to_numpy(object)
    codes, _ = pd.factorize(np.concatenate([ids, *id_arrays]))
    n = len(ids)
    if not np.array_equal(codes[:n], np.arange(n)):
        raise ValueError("projects.project_id must be unique and present")
    codes = np.where(codes < n, codes, -1)
    out, at = [], n
    for arr in id_arrays:
        out.append(codes[at : at + len(arr)])
        at += len(arr)
    return codes[:n], out


def _frame(
    columns: list[str],
    singles: dict[str, np.ndarray],
    block_names: Sequence[str],
    block: np.ndarray,
) -> pd.DataFrame:
    """The output frame with ``columns`` in order, from single columns and one float block.

    For one project pandas' constructors would cost more than the features, so the frame is
    assembled from its blocks with pandas' pseudo-public ``internals.api.make_block`` (the
    float block keeps its own row order and is placed by name); `_frame_public` does the
    same with public calls and is the fallback (a test checks that they agree).
    """
    try:
        from pandas.core.internals import BlockManager
        from pandas.core.internals.api import make_block

        position = {name: i for i, name in enumerate(columns)}
        n_rows = block.shape[1]
        blocks = [
            make_block(values.reshape(1, n_rows), placement=[position[name]])
            for name, values in singles.items()
        ]
        blocks.append(make_block(block, placement=[position[name] for name in block_names]))
        manager = BlockManager(
            tuple(blocks), [pd.Index(columns, dtype=object), pd.RangeIndex(n_rows)]
        )
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)  # type: ignore[attr-defined]
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another pandas
        return _frame_public(columns, singles, block_names, block)


def _frame_public(
    columns: list[str],
    singles: dict[str, np.ndarray],
    block_names: Sequence[str],
    block: np.ndarray,
) -> pd.DataFrame:
    parts = [pd.DataFrame(singles), pd.DataFrame(block.T, columns=list(block_names))]
    return pd.concat(parts, axis=1)[columns]


def build_features(
    portfolio: Portfolio,
    as_of: pd.DataFrame,
    *,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] | None = None,
    context: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Feature rows for ``as_of[project_id, as_of]`` (one output row per input row, in order).

    Columns: ``project_id, as_of``, then ``feature_names(extra_attributes)``. An optional
    boolean column ``at_approval`` marks rows that see the baseline only (no report, no
    change), as the training table's "at approval" row. ``context`` is a
    `portfolio_context` frame; without it the context is computed from ``portfolio`` itself
    (so a portfolio of one project has no closed peers: pass the training context instead).
    ``extra_attributes`` defaults to ``portfolio.extra_attributes``.
    """
    extras = list(portfolio.extra_attributes if extra_attributes is None else extra_attributes)
    names = feature_names(extras)  # also rejects attributes named like a built-in feature
    projects, reports = portfolio.projects, portfolio.status_reports
    req_ids = as_of["project_id"].to_numpy(object)
    _, (code, rc_all, cc) = _project_codes(
        projects,
        req_ids,
        reports["project_id"].to_numpy(object),
        portfolio.changes["project_id"].to_numpy(object),
    )
    if (code < 0).any():
        unknown = sorted({str(p) for p in req_ids[code < 0]})[:5]
        raise ValueError(f"as_of names project(s) not in the portfolio: {unknown}")
    as_of_values = np.asarray(as_of["as_of"].to_numpy(), dtype="datetime64[D]").astype(
        "datetime64[ns]"
    )
    req_day = _days(as_of_values)
    if np.isnan(req_day).any():
        raise ValueError("as_of has missing dates")
    at_approval = (
        as_of["at_approval"].to_numpy(bool)
        if "at_approval" in as_of.columns
        else np.zeros(len(as_of), dtype=bool)
    )
    cutoff = np.where(at_approval, -np.inf, req_day)
    proj = _project_arrays(projects)

    # Status reports of the requested projects, sorted by (project, report_date).
    wanted = np.zeros(len(projects) + 1, dtype=bool)
    wanted[code] = True
    rd_all = _days(reports["report_date"].to_numpy())
    order = np.flatnonzero(wanted[rc_all] & ~np.isnan(rd_all))  # code −1 hits the False slot
    order = order[np.lexsort((rd_all[order], rc_all[order]))]
    rc, rd = rc_all[order], rd_all[order]
    r = {name: reports[name].to_numpy("float64")[order] for name in _REPORT_NUMBERS}
    r["forecast_finish"] = _days(reports["forecast_finish"].to_numpy())[order]
    with np.errstate(all="ignore"):
        state, rank = _report_state(rc, rd, r, proj)

    # Each row's latest report: one searchsorted on (project, day) keys.
    finite = cutoff[np.isfinite(cutoff)]
    lo = float(min(rd.min(initial=0.0), finite.min(initial=0.0))) - 2.0
    span = float(max(rd.max(initial=0.0), finite.max(initial=0.0))) - lo + 4.0
    q_off = np.where(np.isfinite(cutoff), cutoff - lo, 0.0)
    k = np.searchsorted(_keys(rc.astype("float64"), rd, lo, span), code * span + q_off, "right")
    k -= 1
    has = (k >= 0) & (rc[np.maximum(k, 0)] == code) if len(rc) else k >= 0

    numeric = np.empty((len(_BLOCK_NAMES), len(code)))
    latest = numeric[: len(_AT_LATEST_REPORT)]
    if len(rc):
        kk = np.maximum(k, 0)
        for i in range(len(latest)):  # one gather per feature: far faster than take(axis=1)
            latest[i] = state[i][kk]
        latest[:, ~has] = np.nan
    else:
        latest[:] = np.nan
    numeric[np.ix_(_FLAG_ROWS, ~has)] = 0.0  # no report: the data is absent, not unknown
    filled = set(_AT_LATEST_REPORT)

    def put(name: str, values: np.ndarray) -> None:
        numeric[_ROW[name]] = values
        filled.add(name)

    types = projects["project_type"].to_numpy(object)[code]
    month = proj["start_dt"][code].astype("datetime64[M]").astype("int64") % 12 + 1
    with np.errstate(all="ignore"):
        put("log_budget", np.log1p(projects["budget"].to_numpy("float64")[code]))
        put("planned_duration_days", proj["pf"][code] - proj["ps"][code])
        no_start = np.isnan(proj["ps"][code])
        put("start_month", np.where(no_start, np.nan, month))
        put("start_quarter", np.where(no_start, np.nan, (month - 1) // 3 + 1))
        put("has_budget", ~np.isnan(proj["bac_pos"][code]))
        elapsed = (req_day - proj["ps"][code]) / proj["pd_pos"][code]
        put("elapsed_fraction", elapsed)
        put("progress_gap", numeric[_ROW["percent_complete"]] / 100.0 - elapsed)
        put("n_reports", np.where(has, _take(rank, k, has) + 1.0, 0.0))
        put("days_since_last_report", req_day - _take(rd, k, has))
        for name, values in _change_features(portfolio.changes, cc, code, cutoff, proj).items():
            put(name, values)
        if context is None:
            context = portfolio_context(
                portfolio, np.unique(as_of_values), delay_tolerance, overrun_tolerance
            )
        for name, values in _context_lookup(context, types, req_day).items():
            put(name, values)

    if len(filled) != len(_BLOCK_NAMES):  # pragma: no cover - a feature without code
        raise RuntimeError(f"features not built: {sorted(set(_BLOCK_NAMES) - filled)}")
    singles = {
        "project_id": req_ids,
        "as_of": as_of_values,
        "project_type": types,
        "portfolio": projects["portfolio"].to_numpy(object)[code],
        **_extra_attributes(projects, extras, code),
    }
    return _frame(["project_id", "as_of", *names], singles, _BLOCK_NAMES, numeric)


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
