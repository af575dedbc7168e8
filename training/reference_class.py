"""Reference-class forecasting: the anchor the quantile models must beat.

Flyvbjerg's method, and what the UK Treasury's optimism-bias uplifts and most PMOs'
contingency rules amount to: take the project manager's current forecast (the baseline
when there is none) and widen it by how far such forecasts missed on past closed projects
of the same type at the same stage. Here the miss is ``outcome − forecast`` (slip or
overrun, as fractions of the planned duration or the budget), its weighted empirical
quantiles are kept per (project_type, stage), and a class with fewer than
`MIN_CLASS_PROJECTS` projects falls back to the stage over all types, then to everything.
It is fitted on training rows only: evaluated out of fold, it never sees the projects it
forecasts (tests/training/test_reference_class.py checks that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.columns import Features, columns_of
from training.evaluate import STAGE_LABELS, stage_labels
from training.quantiles import (
    FORECAST_COLUMNS,
    LEVELS,
    OUTCOMES,
    elapsed_of,
    non_crossing,
    pm_forecast,
    weighted_quantiles,
)

__all__ = ["FORECAST_COLUMNS", "ReferenceClass", "fit_reference_class", "pm_forecast"]

MIN_CLASS_PROJECTS = 10
ALL = "*"


def _types(frame: Features) -> np.ndarray:
    columns = columns_of(frame)
    if "project_type" not in columns:
        return np.full(len(columns), ALL, dtype=object)
    kinds = np.asarray(columns.column("project_type"), dtype=object)
    return np.where(pd.isna(kinds), ALL, kinds).astype(object)


@dataclass
class ReferenceClass:
    """Quantiles of the forecast's miss per class ``type|stage``, ``*|stage`` and ``*|*``."""

    target: str
    levels: tuple[float, ...] = LEVELS
    classes: dict[str, list[float]] = field(default_factory=dict)
    n_projects: dict[str, int] = field(default_factory=dict)

    def predict(self, frame: Features) -> np.ndarray:
        """(rows, levels): the PM's forecast plus its class's quantiles of the miss."""
        stages = stage_labels(elapsed_of(frame))
        types = _types(frame)
        keys = pd.Series(types.astype(str)) + "|" + pd.Series(stages.astype(str))
        fallback = ALL + "|" + pd.Series(stages.astype(str))
        chosen = keys.where(keys.isin(list(self.classes)), fallback)
        chosen = chosen.where(chosen.isin(list(self.classes)), f"{ALL}|{ALL}")
        names = list(self.classes)
        table = np.array([self.classes[n] for n in names])
        offsets = table[pd.Index(names).get_indexer(pd.Index(chosen))]
        return non_crossing(pm_forecast(frame, self.target)[:, None] + offsets)

    def to_json(self) -> str:
        return json.dumps(
            {
                "target": self.target,
                "levels": list(self.levels),
                "classes": self.classes,
                "n_projects": self.n_projects,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> ReferenceClass:
        data = json.loads(text)
        return cls(
            target=data["target"],
            levels=tuple(data["levels"]),
            classes={k: [float(x) for x in v] for k, v in data["classes"].items()},
            n_projects={k: int(v) for k, v in data["n_projects"].items()},
        )


def fit_reference_class(
    train: pd.DataFrame,
    target: str,
    levels: tuple[float, ...] = LEVELS,
    min_projects: int = MIN_CLASS_PROJECTS,
) -> ReferenceClass:
    """The classes' miss quantiles from the rows of `train` with a known outcome."""
    outcome = OUTCOMES[target]
    rows = train.loc[train[outcome].notna()]
    if rows.empty:
        raise ValueError(f"{target}: no training row has a known {outcome}")
    miss = rows[outcome].to_numpy(dtype=float) - pm_forecast(rows, target)
    weight = rows["weight"].to_numpy(dtype=float)
    stages = stage_labels(rows["elapsed_fraction"].to_numpy(dtype=float, na_value=np.nan))
    types = _types(rows).astype(str)
    pids = rows["project_id"].to_numpy()
    model = ReferenceClass(target=target, levels=levels)

    def add(key: str, mask: np.ndarray) -> None:
        n = int(pd.unique(pids[mask]).size)
        if n >= min_projects or key == f"{ALL}|{ALL}":
            model.classes[key] = weighted_quantiles(miss[mask], weight[mask], levels)
            model.n_projects[key] = n

    add(f"{ALL}|{ALL}", np.ones(len(rows), dtype=bool))
    for stage in STAGE_LABELS:
        in_stage = stages == stage
        add(f"{ALL}|{stage}", in_stage)
        for kind in np.unique(types[in_stage]) if in_stage.any() else ():
            if kind != ALL:
                add(f"{kind}|{stage}", in_stage & (types == kind))
    return model
