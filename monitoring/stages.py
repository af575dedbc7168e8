"""Stages of a project's life: the elapsed fraction of its planned duration, in fifths.

Drift and performance both look at projects stage by stage, because nearly every feature
(and the model's accuracy) moves with how far into its plan a project is.
"""

from __future__ import annotations

import math

import pandas as pd

# Fifths of the planned duration, plus "past planned finish" for projects still running.
STAGE_EDGES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, math.inf)
STAGE_LABELS: tuple[str, ...] = ("0-20%", "20-40%", "40-60%", "60-80%", "80-100%", ">100%")


def stage_of(elapsed_fraction: pd.Series) -> pd.Series:
    """Stage label per row (object dtype; NaN where the elapsed fraction is unknown)."""
    values = elapsed_fraction.astype("float64").clip(lower=0.0)
    stages = pd.cut(values, bins=list(STAGE_EDGES), labels=list(STAGE_LABELS), right=False)
    return stages.astype("object")
