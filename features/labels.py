"""Labels: which closed projects finished late and which overran their budget.

DESIGN.md, "Labels": only closed projects have labels.
``slip = (actual_finish − planned_finish) / (planned_finish − planned_start)``, late when
``slip > delay_tolerance``; ``overrun = final_cost / budget − 1``, over budget when
``overrun > overrun_tolerance``. Cancelled projects get no label and are counted.
A closed project without ``final_cost`` or ``budget`` has no overrun label (NaN), never a
false one.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

LABEL_COLUMNS = ["project_id", "slip", "overrun", "late", "over_budget"]


def _as_timestamp(as_of: date | pd.Timestamp | str | None) -> pd.Timestamp | None:
    return None if as_of is None else pd.Timestamp(as_of).normalize()


def closed_mask(
    projects: pd.DataFrame, as_of: date | pd.Timestamp | str | None = None
) -> pd.Series:
    """Projects that are closed with a known actual finish (by ``as_of`` when given).

    A project whose status says closed but whose ``actual_finish`` is missing cannot be
    placed in time, so it is not treated as closed here (and so gets no label).
    """
    mask = (projects["status"] == "closed") & projects["actual_finish"].notna()
    cutoff = _as_timestamp(as_of)
    if cutoff is not None:
        mask &= projects["actual_finish"] <= cutoff
    return mask


def label_projects(
    projects: pd.DataFrame,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    as_of: date | pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """One row per project: ``project_id, slip, overrun, late, over_budget``.

    ``late``/``over_budget`` are float 1.0/0.0, NaN when the project has no such label:
    not closed (or, with ``as_of``, not closed by then), cancelled, a planned duration that
    is not positive, or — for the overrun — no ``final_cost`` or no positive ``budget``.
    ``slip``/``overrun`` are NaN exactly where the label is.
    """
    closed = closed_mask(projects, as_of).to_numpy()
    start = projects["planned_start"].to_numpy("datetime64[ns]")
    finish = projects["planned_finish"].to_numpy("datetime64[ns]")
    actual = projects["actual_finish"].to_numpy("datetime64[ns]")
    day = np.timedelta64(1, "D")
    duration = (finish - start) / day
    with np.errstate(divide="ignore", invalid="ignore"):
        slip = np.where(closed & (duration > 0), ((actual - finish) / day) / duration, np.nan)
        budget = projects["budget"].to_numpy("float64")
        final_cost = projects["final_cost"].to_numpy("float64")
        # (final − budget) / budget is final / budget − 1 with one rounding less, so that a
        # cost exactly at the tolerance is not pushed over it by floating point.
        overrun = np.where(closed & (budget > 0), (final_cost - budget) / budget, np.nan)
    late = np.where(np.isnan(slip), np.nan, (slip > delay_tolerance).astype("float64"))
    over = np.where(np.isnan(overrun), np.nan, (overrun > overrun_tolerance).astype("float64"))
    return pd.DataFrame(
        {
            "project_id": projects["project_id"].to_numpy(),
            "slip": slip,
            "overrun": overrun,
            "late": late,
            "over_budget": over,
        }
    )


def label_counts(
    labels: pd.DataFrame,
    projects: pd.DataFrame,
    as_of: date | pd.Timestamp | str | None = None,
) -> dict[str, Any]:
    """How many projects got each label, and why the others got none.

    ``labels`` is `label_projects`' frame for ``projects`` (same rows, same order, same
    ``as_of``: a project closing after ``as_of`` counts as running).
    Returns ``{"projects", "closed", "cancelled", "running", "delay": {late, on_time,
    unlabelled, cancelled}, "overrun": {over_budget, within_budget, no_cost_data,
    unlabelled, cancelled}}``. ``no_cost_data`` counts closed projects without
    ``final_cost`` or a positive ``budget``; ``unlabelled`` counts the rest without a label
    (still running, or closed without a usable finish date / planned duration).
    """
    if len(labels) != len(projects):
        raise ValueError("labels and projects must have the same rows")
    cancelled = (projects["status"] == "cancelled").to_numpy()
    closed = closed_mask(projects, as_of).to_numpy()
    late = labels["late"].to_numpy("float64")
    over = labels["over_budget"].to_numpy("float64")
    has_slip = ~np.isnan(late)
    has_overrun = ~np.isnan(over)
    # A closed project whose delay label exists but whose cost data does not: "no cost data".
    no_cost = has_slip & ~has_overrun & ~cancelled
    return {
        "projects": len(projects),
        "closed": int(closed.sum()),
        "cancelled": int(cancelled.sum()),
        "running": int((~closed & ~cancelled).sum()),
        "delay": {
            "late": int((late == 1).sum()),
            "on_time": int((late == 0).sum()),
            "unlabelled": int((~has_slip & ~cancelled).sum()),
            "cancelled": int(cancelled.sum()),
        },
        "overrun": {
            "over_budget": int((over == 1).sum()),
            "within_budget": int((over == 0).sum()),
            "no_cost_data": int(no_cost.sum()),
            "unlabelled": int((~has_overrun & ~cancelled & ~no_cost).sum()),
            "cancelled": int(cancelled.sum()),
        },
    }
