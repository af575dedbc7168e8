"""Schedule health per snapshot: the DCMA 14-point assessment, as numbers.

Each check is a share (0–1) of the activities or relationships it looks at, except CPLI and
BEI, which are indices; `docs/import.md` gives each definition and its usual threshold. A
check with nothing to look at (no relationships, no activity due yet) is NaN, not 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import SCHEDULE_HEALTH_COLUMNS
from features.schedules.reader import HARD_CONSTRAINTS

# The contract's schedule-health columns, in contract order (their meanings live there).
CHECKS: tuple[str, ...] = tuple(c.name for c in SCHEDULE_HEALTH_COLUMNS)


def _share(flags: pd.Series, among: pd.Series | None = None) -> float:
    if among is not None:
        flags = flags[among]
    return float(flags.mean()) if len(flags) else np.nan


def schedule_health(
    activities: pd.DataFrame,
    relations: pd.DataFrame,
    data_date: pd.Timestamp,
    baseline_finish: pd.Timestamp | None,
    forecast_finish: pd.Timestamp | None,
    high_float_days: float = 44.0,
    high_duration_days: float = 44.0,
) -> dict[str, float]:
    """The `CHECKS` of one snapshot. `activities` are the mapped ones (with ``done``)."""
    a = activities
    done = a["done"]
    open_ = ~done
    work = open_ & ~a["milestone"]
    has_pred = a["uid"].isin(relations["successor"])
    has_succ = a["uid"].isin(relations["predecessor"])
    lag = relations["lag_days"].fillna(0.0)
    total_float = a["total_float_days"]
    baseline_days = a["baseline_duration_days"].fillna(a["duration_days"])
    # Not started: its start is a forecast; started: its finish is.
    forecast = a["start"].where(a["actual_start"].isna(), a["finish"])
    invalid = (a["actual_start"] > data_date) | (a["actual_finish"] > data_date)
    invalid |= open_ & (forecast < data_date.normalize())
    no_resource = (a["resources"] == 0) & ~(a["cost"].fillna(0) > 0)
    due = a["baseline_finish"] <= data_date
    late = a["actual_finish"].fillna(a["finish"]) > a["baseline_finish"]

    out = {
        "dcma_logic": _share(~(has_pred & has_succ), open_),
        "dcma_leads": _share(lag < 0),
        "dcma_lags": _share(lag > 0),
        "dcma_fs_share": _share(relations["type"] == "FINISH_START"),
        "dcma_hard_constraints": _share(a["constraint"].isin(HARD_CONSTRAINTS), open_),
        "dcma_high_float": _share(total_float > high_float_days, open_ & total_float.notna()),
        "dcma_negative_float": _share(total_float < 0, open_ & total_float.notna()),
        "dcma_high_duration": _share(baseline_days > high_duration_days, work),
        "dcma_invalid_dates": _share(invalid),
        "dcma_resources": _share(no_resource, work & (a["duration_days"] > 0)),
        "dcma_missed": _share(late, due),
        "dcma_critical_path_test": _critical_path_test(a, relations, forecast_finish),
        "cpli": np.nan,
        "bei": float(done[due].sum() / due.sum()) if due.any() else np.nan,
    }
    if forecast_finish is not None and baseline_finish is not None:
        cpl = (forecast_finish - data_date) / pd.Timedelta(days=1)
        total = (baseline_finish - forecast_finish) / pd.Timedelta(days=1)
        out["cpli"] = float((cpl + total) / cpl) if cpl > 0 else np.nan
    return out


def _critical_path_test(
    a: pd.DataFrame, relations: pd.DataFrame, forecast_finish: pd.Timestamp | None
) -> float:
    critical = a.loc[a["critical"] & ~a["done"], ["uid", "finish"]]
    if critical.empty or forecast_finish is None:
        return np.nan
    ends = critical["finish"] >= forecast_finish.normalize()
    crit_ids = set(critical["uid"])
    links = relations[relations["successor"].isin(crit_ids)]
    feeding = set(links["predecessor"])
    broken = ~critical["uid"].isin(feeding) & ~ends
    return 0.0 if bool(broken.any()) else 1.0
