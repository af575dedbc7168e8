"""Finish and cost ranges of running projects: P50 / P80 / P90 in dates and currency.

The champions ``forewarn-finish`` and ``forewarn-cost`` (training/quantiles.py) give
quantiles of slip and overrun; here they become dates (planned finish + slip x planned
duration) and amounts (budget x (1 + overrun)). A project without a budget gets no cost
range and says why; without a quantile champion, neither range is given, with the reason.
Batch scoring, the service and the report all call `range_columns`, so one project on one
date gets the same range from each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.columns import Features, columns_of
from serving.i18n import N_
from training.quantiles import LEVELS, QuantileModel, cost_amounts, exceedance, finish_dates

SHOWN = (0.5, 0.8, 0.9)  # the levels a PMO plans on; P10 stays in the model
FINISH_COLUMNS = tuple(f"finish_p{round(100 * q)}" for q in SHOWN)
COST_COLUMNS = tuple(f"cost_p{round(100 * q)}" for q in SHOWN)
RANGE_COLUMNS = (*FINISH_COLUMNS, *COST_COLUMNS, "finish_range_reason", "cost_range_reason")
# English here (like scoring's reasons); i18n.reason says them in the language in force.
NO_FINISH_MODEL = N_("no forewarn-finish champion: train one (forewarn train DATA)")
NO_COST_MODEL = N_("no forewarn-cost champion: train one (forewarn train DATA with cost data)")
NO_BUDGET = N_("no budget: a cost range needs the approved budget (BAC)")


def _baseline(features: Features, projects: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
    """planned_start, planned_finish and budget of each feature row's project, in row order."""
    table = pd.DataFrame(
        {k: projects[k] for k in ("project_id", "planned_start", "planned_finish", "budget")}
    )
    ids = np.asarray(columns_of(features).column("project_id"), dtype=object)
    at = pd.Index(table["project_id"].astype(object)).get_indexer(pd.Index(ids))
    if (at < 0).any():
        raise KeyError("a scored project is missing from the projects table")
    return table.iloc[at].reset_index(drop=True)


def range_columns(
    models: Mapping[str, QuantileModel],
    features: Features,
    projects: Mapping[str, Any] | pd.DataFrame,
    delay_tolerance: float = 0.05,
) -> dict[str, np.ndarray]:
    """The range columns of each feature row: finish dates, cost amounts, reasons where
    absent, and ``p_late_from_range`` (P(slip > tolerance) read off the finish quantiles:
    the classifier's p_late is the other answer to the same question)."""
    n = len(columns_of(features))
    base = _baseline(features, projects)
    out: dict[str, np.ndarray] = {}
    shown = [LEVELS.index(q) for q in SHOWN]
    finish = models.get("finish")
    if finish is not None and n:
        slip = finish.predict(features)
        dates = finish_dates(base, slip)
        for name, i in zip(FINISH_COLUMNS, shown, strict=True):
            out[name] = dates[:, i]
        out["finish_range_reason"] = np.full(n, None, dtype=object)
        out["p_late_from_range"] = exceedance(slip, delay_tolerance, finish.levels)
    else:
        for name in FINISH_COLUMNS:
            out[name] = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        out["finish_range_reason"] = np.full(n, NO_FINISH_MODEL if n else None, dtype=object)
        out["p_late_from_range"] = np.full(n, np.nan)
    cost = models.get("cost")
    budget = base["budget"].to_numpy(dtype=float)
    has_budget = np.isfinite(budget) & (budget > 0)
    if cost is not None and n:
        amounts = cost_amounts(budget, cost.predict(features))
        for name, i in zip(COST_COLUMNS, shown, strict=True):
            out[name] = amounts[:, i]
        reasons = np.full(n, None, dtype=object)
        reasons[~has_budget] = NO_BUDGET
        out["cost_range_reason"] = reasons
    else:
        for name in COST_COLUMNS:
            out[name] = np.full(n, np.nan)
        reason = np.where(has_budget, NO_COST_MODEL, NO_BUDGET) if n else np.zeros(0)
        out["cost_range_reason"] = reason.astype(object)
    return out
