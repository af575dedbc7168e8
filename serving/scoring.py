"""Scoring: feature rows in, probabilities, RAG and drivers out.

`score_frame` is the one function that turns features into scores: the service, batch
scoring and the HTML report all go through it, so a project gets the same numbers
whichever way it is scored. Its output frame is described in docs/internals.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.columns import FeatureColumns, Features, FrameColumns, columns_of
from features.contract import Portfolio, PortfolioColumns
from features.pointintime import PreparedContext, build_feature_columns
from serving.explain import Contributions, Value, drivers, python_value, tree_shap

# target → (probability, rag, reason, drivers) columns of the score frame
TARGET_COLUMNS: dict[str, tuple[str, str, str, str]] = {
    "delay": ("p_late", "rag_late", "late_reason", "drivers_late"),
    "overrun": ("p_over_budget", "rag_over_budget", "over_budget_reason", "drivers_over_budget"),
}
# target → raw margin column: the log-odds before calibration. Calibration is isotonic, so
# many projects share one probability at the ends (">99%"); the margin still orders them.
MARGIN_COLUMNS: dict[str, str] = {"delay": "margin_late", "overrun": "margin_over_budget"}
# What the project is and where it stands, shown beside its scores (not the portfolio
# context features of features.pointintime.CONTEXT_FEATURES).
PROJECT_STATE_COLUMNS = ("portfolio", "project_type", "elapsed_fraction", "spi", "cpi")
# What a score says about a project (the service answers exactly these); SCORE_COLUMNS adds
# the project's state shown beside it and the raw margins used to order ties.
RISK_COLUMNS = (
    "project_id",
    "as_of",
    "p_late",
    "p_over_budget",
    "rag_late",
    "rag_over_budget",
    "rag",
    "late_reason",
    "over_budget_reason",
    "drivers_late",
    "drivers_over_budget",
)
SCORE_COLUMNS = (*RISK_COLUMNS, *PROJECT_STATE_COLUMNS, *MARGIN_COLUMNS.values())
RAG_ORDER = {"n/a": 0, "green": 1, "amber": 2, "red": 3}

NO_BUDGET = (
    "no budget (BAC) in the baseline: the overrun risk is measured against it, so it is not scored"
)


class ScoringModel(Protocol):
    """What scoring needs of a model (`training.models.RiskModel` has it)."""

    feature_names: list[str]

    def encode(self, X: Features | np.ndarray) -> np.ndarray: ...

    def predict(self, X: Features | np.ndarray) -> np.ndarray: ...

    def raw_margin(self, X: Features | np.ndarray) -> np.ndarray: ...

    def contributions(self, X: Features | np.ndarray) -> np.ndarray: ...


def rag(p: np.ndarray, red: float, amber: float) -> np.ndarray:
    """red at or above `red`, amber at or above `amber`, else green; NaN → n/a."""
    p = np.asarray(p, dtype=float)
    out = np.where(p >= red, "red", np.where(p >= amber, "amber", "green")).astype(object)
    out[np.isnan(p)] = "n/a"
    return out


def unscorable_reasons(target: str, features: Features) -> np.ndarray:
    """Per row, why `target` cannot be scored (None where it can), as an object array.

    Overrun is measured against the baseline budget: without one the model would score a
    number that means nothing, so the row gets a reason instead.
    """
    reasons = np.full(len(features), None, dtype=object)
    if target == "overrun":
        columns = columns_of(features)
        if "has_budget" in columns:
            has_budget = np.asarray(columns.column("has_budget"), dtype=float)
            no_budget = ~(has_budget >= 0.5)  # NaN: not known to have one
        else:
            no_budget = pd.isna(columns.column("log_budget"))
        reasons[no_budget] = NO_BUDGET
    return reasons


@dataclass
class TargetScores:
    """One target's scores for the rows of a feature frame."""

    p: np.ndarray  # calibrated probability, NaN where not scored
    reasons: np.ndarray  # why not scored, else None (object array)
    contributions: Contributions | None  # TreeSHAP of every row (None when not asked for)
    margin: np.ndarray  # raw log-odds before calibration, NaN where not scored


class _Encoded:
    """Feature matrices by encoding: models that share features and categories share one.

    Encoding a frame costs far more than a booster call on one row (pandas, per column),
    and the two champions are usually trained on the same columns and levels.
    """

    def __init__(self, features: Features) -> None:
        self.features = features
        self.matrices: list[tuple[list[str], Any, np.ndarray]] = []

    def matrix(self, model: ScoringModel) -> np.ndarray:
        levels = getattr(model, "categorical_levels", None)
        for names, known_levels, matrix in self.matrices:
            if levels is not None and names == model.feature_names and known_levels == levels:
                return matrix
        matrix = model.encode(self.features)
        self.matrices.append((list(model.feature_names), levels, matrix))
        return matrix


def score_target(
    model: ScoringModel | None,
    target: str,
    features: Features,
    explain: bool,
    encoded: _Encoded | None = None,
) -> TargetScores:
    """Probabilities, raw margins (and, when `explain`, TreeSHAP) of one target for every row."""
    reasons = unscorable_reasons(target, features)
    p = np.full(len(features), np.nan)
    margin = np.full(len(features), np.nan)
    if model is None:
        reasons[:] = f"no {target} model is loaded"
        return TargetScores(p, reasons, None, margin)
    scorable = np.array([r is None for r in reasons], dtype=bool)
    # Encode once: the booster then reads a float matrix (the fast path) each time.
    matrix = (encoded or _Encoded(features)).matrix(model)
    contributions = tree_shap(model, matrix) if explain and len(features) else None
    if scorable.any():
        rows = matrix if scorable.all() else matrix[scorable]
        margin[scorable] = model.raw_margin(rows)
        # RiskModel.predict is its calibrator on this very margin: one tree walk, not two.
        calibrator = getattr(model, "calibrator", None)
        if calibrator is not None:
            p[scorable] = calibrator.transform(margin[scorable])
        else:
            p[scorable] = model.predict(rows)
    return TargetScores(p, reasons, contributions, margin)


def score_frame(
    models: Mapping[str, ScoringModel | None],
    features: Features,
    red: float,
    amber: float,
    top_drivers: int,
) -> pd.DataFrame:
    """Score feature rows: p_late, p_over_budget, RAG each and overall, reasons, drivers.

    Also the raw margins `margin_late`/`margin_over_budget` (the models' log-odds before
    calibration, NaN where not scored): they order projects the calibration ties.
    `models` maps target (`delay`, `overrun`) to its model; a missing one gives reasons.
    `features` is a `features.pointintime.build_features` frame. `top_drivers` = 0 skips
    the TreeSHAP work and leaves the driver lists empty (batch scoring without --explain).
    Columns as in docs/internals.md, rows in the order of `features`.
    """
    columns = score_columns(models, features, red, amber, top_drivers)
    return pd.DataFrame(columns, copy=False)


def score_columns(
    models: Mapping[str, ScoringModel | None],
    features: Features,
    red: float,
    amber: float,
    top_drivers: int,
) -> dict[str, np.ndarray]:
    """`score_frame`'s columns as arrays, in its column order, before they become a frame.

    The service reads these directly: framing one project costs as much as scoring it.
    """
    n = len(features)
    given = columns_of(features)
    columns: dict[str, Any] = {
        "project_id": given.column("project_id"),
        "as_of": given.column("as_of"),
    }
    encoded = _Encoded(given)
    for target, (p_col, rag_col, reason_col, drivers_col) in TARGET_COLUMNS.items():
        scores = score_target(
            models.get(target), target, given, explain=top_drivers > 0, encoded=encoded
        )
        columns[p_col] = scores.p
        columns[rag_col] = rag(scores.p, red, amber)
        columns[reason_col] = scores.reasons
        columns[MARGIN_COLUMNS[target]] = scores.margin
        found: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        if scores.contributions is not None:
            scored_rows = np.flatnonzero(~np.isnan(scores.p))
            found = drivers(scores.contributions, given, top_drivers, scored_rows.tolist())
        as_objects = np.empty(n, dtype=object)
        for i, row in enumerate(found):  # one list per cell: numpy must not broadcast them
            as_objects[i] = row
        columns[drivers_col] = as_objects
    columns["rag"] = overall_rag(columns["rag_late"], columns["rag_over_budget"])
    for col in PROJECT_STATE_COLUMNS:
        columns[col] = given.column(col) if col in given else np.full(n, None)
    return {name: columns[name] for name in SCORE_COLUMNS}


def overall_rag(*rags: np.ndarray) -> np.ndarray:
    """The worse of the RAGs, row by row; n/a only when every one is n/a."""
    names = np.array(sorted(RAG_ORDER, key=RAG_ORDER.__getitem__), dtype=object)
    ranks = np.zeros(len(rags[0]), dtype=int)
    for r in rags:
        for name, rank in RAG_ORDER.items():
            ranks = np.where(np.asarray(r, dtype=object) == name, np.maximum(ranks, rank), ranks)
    return names[ranks]


def explain_row(
    models: Mapping[str, ScoringModel | None],
    features: Features,
    red: float,
    amber: float,
    top_drivers: int,
) -> list[dict[str, Any]]:
    """The full SHAP vector of each target for a one-row feature frame.

    One dict per target: target, probability, rag, reason, base_value, raw_margin and
    contributions (every feature with its value, largest |contribution| first), drivers.
    A target without a model is left out.
    """
    if len(features) != 1:
        raise ValueError(f"explain_row takes one feature row, got {len(features)}")
    given = columns_of(features)
    explained: list[dict[str, Any]] = []
    for target in TARGET_COLUMNS:
        model = models.get(target)
        if model is None:
            continue
        scores = score_target(model, target, given, explain=True)
        assert scores.contributions is not None
        shap = scores.contributions
        p = float(scores.p[0])
        order = np.argsort(-np.abs(shap.values[0]), kind="stable")
        explained.append(
            {
                "target": target,
                "probability": None if np.isnan(p) else p,
                "rag": str(rag(scores.p, red, amber)[0]),
                "reason": scores.reasons[0],
                "base_value": float(shap.base[0]),
                "raw_margin": float(shap.raw_margin[0]),
                "contributions": [
                    {
                        "feature": shap.feature_names[j],
                        "value": _value(given, shap.feature_names[j]),
                        "contribution": float(shap.values[0, j]),
                    }
                    for j in order
                ],
                "drivers": drivers(shap, given, top_drivers, [] if np.isnan(p) else [0])[0],
            }
        )
    return explained


def _value(columns: FeatureColumns | FrameColumns, name: str) -> Value:
    return python_value(columns.column(name)[0]) if name in columns else None


def portfolio_features(
    portfolio: Portfolio | PortfolioColumns,
    as_of: pd.DataFrame | Mapping[str, np.ndarray],
    context: pd.DataFrame | PreparedContext | None,
    delay_tolerance: float,
    overrun_tolerance: float,
) -> FeatureColumns:
    """Feature rows for `as_of[project_id, as_of]`, with the models' portfolio context.

    One code path for one project (the service) and for thousands (batch):
    `features.pointintime.build_features`, here before it is framed (the service reads the
    columns as arrays, and passes its request as arrays too: `PortfolioColumns`).
    `context` is the champions' (see `serving.champions`); None computes it from the
    portfolio itself.
    """
    return build_feature_columns(
        portfolio,
        as_of,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        context=context,
    )
