"""Quantiles of a running project's outcome: P10 / P50 / P80 / P90 of slip and of overrun.

Two ways of making them, both trained on the classifiers' training table (same features,
same per-project weights, point in time) and chosen between by the coverage they reach
out of sample (`training.intervals`):

- ``quantile_lgbm``: one LightGBM booster per level with the pinball (quantile) objective.
- ``conformal``: one LightGBM booster for the median (L1 objective), made into quantiles by
  the empirical quantiles of its residuals on projects it was not fitted on — out of
  project-grouped folds (cross-conformal) or, where the portfolio is large enough to be
  judged forward in time, on its latest closures — per stage of the project, since the
  spread shrinks as it advances.

Whatever the method, quantiles never cross: each row's values are sorted (the monotone
rearrangement, which can only lower the pinball loss). Artefacts are LightGBM text and
JSON, never pickle. `finish` is the slip (fraction of the planned duration), `cost` the
overrun (fraction of the budget); `finish_dates` and `cost_amounts` turn them into dates
and currency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.columns import Features, columns_of
from features.labels import label_projects
from training.evaluate import STAGE_LABELS, stage_labels
from training.models import (
    DEFAULT_PARAMS,
    LEAF_PROJECTS,
    MAX_TREES,
    MIN_PROJECTS,
    categorical_columns,
    category_levels,
    encode_features,
    feature_columns,
    train_early_stopped,
)
from training.splits import forward_cutoff, forward_split, grouped_folds

Method = Literal["quantile_lgbm", "conformal", "reference_class"]
# The learnt methods; "reference_class" is the anchor, served when both lose to it.
METHODS: tuple[Method, ...] = ("quantile_lgbm", "conformal")
LEVELS: tuple[float, ...] = (0.1, 0.5, 0.8, 0.9)
QUANTILE_TARGETS: tuple[str, ...] = ("finish", "cost")
OUTCOMES: dict[str, str] = {"finish": "slip", "cost": "overrun"}
# The classifier whose label, monotone directions and protocol each quantile target shares.
CLASSIFIER_TARGETS: dict[str, str] = {"finish": "delay", "cost": "overrun"}
OUTCOME_COLUMNS = tuple(OUTCOMES.values())
VALID_SHARE = 0.2  # the latest fifth of the projects stops the boosting early
CONFORMAL_FOLDS = 5
FORWARD_CALIBRATION_SHARE = 0.3  # "forward" conformal: the latest 30 % of closures
Calibration = Literal["folds", "forward"]
MIN_STAGE_PROJECTS = 20  # fewer projects in a stage and its residuals pool with all stages
FORMAT = "forewarn-quantile-model/1"
MODEL_FILE = "quantile_model.json"


# The PM's own forecast of each outcome, as a feature of the training table.
FORECAST_COLUMNS = {"finish": "forecast_slip", "cost": "forecast_overrun"}


def pm_forecast(frame: Features, target: str) -> np.ndarray:
    """The PM's forecast slip / overrun at each row; 0 (the baseline) where there is none."""
    columns = columns_of(frame)
    column = FORECAST_COLUMNS[target]
    if column not in columns:
        return np.zeros(len(columns))
    values = np.asarray(columns.column(column), dtype=float)
    return np.where(np.isfinite(values), values, 0.0)


def elapsed_of(frame: Features) -> np.ndarray:
    """Each row's elapsed fraction of the planned duration (a frame or feature columns)."""
    return np.asarray(columns_of(frame).column("elapsed_fraction"), dtype=float)


def level_names(levels: tuple[float, ...] = LEVELS) -> list[str]:
    """``p10``, ``p50``, ... for the levels."""
    return [f"p{round(100 * q)}" for q in levels]


def with_outcomes(
    table: pd.DataFrame,
    projects: pd.DataFrame,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The training table with each row's project outcome: ``slip`` and ``overrun``.

    The outcome is what the model learns, never a feature (`quantile_features` drops it);
    NaN where the project has no such outcome (no cost data, say).
    """
    labels = label_projects(projects, as_of=as_of).set_index("project_id")
    out = table.copy()
    for column in OUTCOME_COLUMNS:
        out[column] = labels[column].reindex(table["project_id"].to_numpy()).to_numpy(float)
    return out


def quantile_features(frame: pd.DataFrame) -> list[str]:
    """The feature columns: the classifiers' ones, without the outcomes or fold markers."""
    skip = {*OUTCOME_COLUMNS, "cv_fold", "cv_repeat"}
    return [c for c in feature_columns(frame) if c not in skip]


def non_crossing(values: np.ndarray) -> np.ndarray:
    """Each row's quantiles in increasing order (NaN stays last), so P10 ≤ P50 ≤ P80 ≤ P90."""
    return np.sort(np.asarray(values, dtype=float), axis=1)


def weighted_quantiles(
    values: np.ndarray, weight: np.ndarray, levels: tuple[float, ...]
) -> list[float]:
    """The smallest value whose weighted share at or below it reaches each level."""
    values, weight = np.asarray(values, dtype=float), np.asarray(weight, dtype=float)
    keep = ~(np.isnan(values) | np.isnan(weight))
    values, weight = values[keep], weight[keep]
    if len(values) == 0 or weight.sum() <= 0:
        return [float("nan")] * len(levels)
    order = np.argsort(values, kind="mergesort")
    v, cum = values[order], np.cumsum(weight[order])
    cum /= cum[-1]
    at = np.searchsorted(cum, np.asarray(levels) - 1e-12, side="left")
    return [float(v[min(i, len(v) - 1)]) for i in at]


@dataclass
class QuantileModel:
    """Fitted quantiles of one target's outcome, serialisable as LightGBM text + JSON.

    ``quantile_lgbm`` holds one booster per level; ``conformal`` one median booster and
    `offsets`: per stage (and ``all``), the residual quantile added for each level;
    ``reference_class`` no booster, only the reference class's table (`reference`, JSON).
    """

    target: str
    method: Method
    boosters: list[lgb.Booster]
    feature_names: list[str]
    categorical_levels: dict[str, list[str]]
    levels: tuple[float, ...] = LEVELS
    offsets: dict[str, list[float]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    num_threads: int = 2
    reference: str | None = None  # ReferenceClass.to_json() for the reference_class method
    anchored: bool = True  # the boosters learn the miss of the PM's forecast, not the outcome

    @property
    def outcome(self) -> str:
        return OUTCOMES[self.target]

    def encode(self, X: Features) -> np.ndarray:
        return encode_features(X, self.feature_names, self.categorical_levels)

    def predict(self, X: Features) -> np.ndarray:
        """(rows, levels) quantiles of the outcome, never crossing."""
        if self.method == "reference_class":
            # Imported here: reference_class builds on this module.
            from training.reference_class import ReferenceClass

            return ReferenceClass.from_json(str(self.reference)).predict(X)
        matrix = self.encode(X)
        if self.method == "quantile_lgbm":
            raw = np.column_stack(
                [b.predict(matrix, num_threads=self.num_threads) for b in self.boosters]
            )
        else:
            point = np.asarray(self.boosters[0].predict(matrix, num_threads=self.num_threads))
            raw = point[:, None] + self._stage_offsets(X)
        if self.anchored:
            raw = raw + pm_forecast(X, self.target)[:, None]
        return non_crossing(raw)

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The quantiles as columns ``p10, p50, p80, p90`` beside project_id and as_of."""
        q = self.predict(X)
        out = X[[c for c in ("project_id", "as_of") if c in X.columns]].reset_index(drop=True)
        for i, name in enumerate(level_names(self.levels)):
            out[name] = q[:, i]
        return out

    def _stage_offsets(self, X: Features) -> np.ndarray:
        stages = stage_labels(elapsed_of(X))
        table = np.array([self.offsets.get(s, self.offsets["all"]) for s in STAGE_LABELS])
        index = pd.Index(STAGE_LABELS).get_indexer(pd.Index(stages))
        return table[index]

    # -------------------------------------------------------------- serialisation
    def to_strings(self) -> tuple[list[str], str]:
        """The boosters as LightGBM text and everything else as JSON."""
        meta = {
            "format": FORMAT,
            "target": self.target,
            "method": self.method,
            "n_boosters": len(self.boosters),
            "levels": list(self.levels),
            "feature_names": self.feature_names,
            "categorical_levels": self.categorical_levels,
            "offsets": self.offsets,
            "reference": self.reference,
            "anchored": self.anchored,
            "metadata": self.metadata,
        }
        return [b.model_to_string() for b in self.boosters], json.dumps(meta, indent=1)

    @classmethod
    def from_strings(
        cls, boosters: list[str], meta_json: str, num_threads: int = 2
    ) -> QuantileModel:
        meta = json.loads(meta_json)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a Forewarn quantile model (format {meta.get('format')!r})")
        return cls(
            target=meta["target"],
            method=meta["method"],
            boosters=[lgb.Booster(model_str=text) for text in boosters],
            feature_names=list(meta["feature_names"]),
            categorical_levels={k: list(v) for k, v in meta["categorical_levels"].items()},
            levels=tuple(float(q) for q in meta["levels"]),
            offsets={k: [float(x) for x in v] for k, v in meta["offsets"].items()},
            metadata=meta.get("metadata", {}),
            num_threads=num_threads,
            reference=meta.get("reference"),
            anchored=bool(meta.get("anchored", False)),
        )

    def save(self, directory: Path) -> Path:
        """Write ``booster_0.txt`` ... and ``quantile_model.json`` into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        texts, meta = self.to_strings()
        for i, text in enumerate(texts):
            (directory / f"booster_{i}.txt").write_text(text)
        (directory / MODEL_FILE).write_text(meta)
        return directory

    @classmethod
    def load(cls, directory: Path, num_threads: int = 2) -> QuantileModel:
        meta = (directory / MODEL_FILE).read_text()
        n = int(json.loads(meta)["n_boosters"])
        files = [directory / f"booster_{i}.txt" for i in range(n)]
        missing = [p.name for p in files if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{directory}: missing {', '.join(missing)}")
        return cls.from_strings([p.read_text() for p in files], meta, num_threads=num_threads)


# ----------------------------------------------------------------------- fitting


def _labelled(train: pd.DataFrame, target: str) -> pd.DataFrame:
    outcome = OUTCOMES[target]
    if outcome not in train.columns:
        raise KeyError(f"the table has no {outcome} column: add it with with_outcomes()")
    labelled = train.loc[train[outcome].notna()]
    n = labelled["project_id"].nunique()
    if n < MIN_PROJECTS:
        raise ValueError(
            f"{target}: only {n} project(s) with a known {outcome}; {MIN_PROJECTS} are needed"
        )
    return labelled


def _unit_mean(weight: pd.Series) -> np.ndarray:
    w = weight.to_numpy(dtype=float)
    return w * (len(w) / w.sum())


def _fit_booster(
    labelled: pd.DataFrame,
    target: str,
    features: list[str],
    levels: dict[str, list[str]],
    objective: dict[str, Any],
    seed: int,
    num_threads: int,
    max_trees: int,
    anchored: bool = True,
) -> lgb.Booster:
    """One booster on the outcome (less the PM's forecast when `anchored`), stopped early
    on the latest fifth of the projects."""

    def label(part: pd.DataFrame) -> np.ndarray:
        y = part[OUTCOMES[target]].to_numpy(dtype=float)
        return y - pm_forecast(part, target) if anchored else y

    cutoff = forward_cutoff(labelled, VALID_SHARE)
    fit_part, valid_part = forward_split(labelled, cutoff)
    categorical = list(levels)
    rows_per_project = float(fit_part.groupby("project_id").size().median())
    params = {
        **{k: v for k, v in DEFAULT_PARAMS.items() if k not in ("objective", "metric")},
        **objective,
        "min_data_in_leaf": max(
            int(DEFAULT_PARAMS["min_data_in_leaf"]), int(LEAF_PROJECTS * rows_per_project)
        ),
        "seed": seed,
        "num_threads": num_threads,
    }
    # No monotone constraints: LightGBM refuses them with the quantile and L1 objectives.
    d_fit = lgb.Dataset(
        encode_features(fit_part, features, levels),
        label=label(fit_part),
        weight=_unit_mean(fit_part["weight"]),
        feature_name=list(features),
        categorical_feature=[features.index(c) for c in categorical],
        free_raw_data=True,
    )
    d_valid = lgb.Dataset(
        encode_features(valid_part, features, levels),
        label=label(valid_part),
        weight=_unit_mean(valid_part["weight"]),
        reference=d_fit,
    )
    return train_early_stopped(params, d_fit, d_valid, max_trees)


def fit_quantiles(
    train: pd.DataFrame,
    target: str,
    method: Method,
    *,
    levels: tuple[float, ...] = LEVELS,
    seed: int = 42,
    num_threads: int = 2,
    max_trees: int = MAX_TREES,
    anchored: bool = True,
    calibration: Calibration = "folds",
) -> QuantileModel:
    """Fit one target's quantiles with `method` on the rows of `train` with a known outcome.

    `calibration` (conformal only): the residuals of 5 project-grouped folds, or those of
    the latest closures from a model fitted on the earlier ones (``forward``).
    """
    if method not in (*METHODS, "reference_class"):
        raise ValueError(f"unknown quantile method {method!r}; one of {', '.join(METHODS)}")
    labelled = _labelled(train, target)
    if method == "reference_class":
        from training.reference_class import fit_reference_class

        reference = fit_reference_class(labelled, target, levels)
        return QuantileModel(
            target=target,
            method=method,
            boosters=[],
            feature_names=[],
            categorical_levels={},
            levels=levels,
            reference=reference.to_json(),
            metadata={
                "outcome": OUTCOMES[target],
                "n_projects": int(labelled["project_id"].nunique()),
            },
        )
    features = quantile_features(labelled)
    levels_of = category_levels(labelled, categorical_columns(labelled, features))
    common = dict(seed=seed, num_threads=num_threads, max_trees=max_trees, anchored=anchored)
    offsets: dict[str, list[float]] = {}
    if method == "quantile_lgbm":
        boosters = [
            _fit_booster(
                labelled,
                target,
                features,
                levels_of,
                {"objective": "quantile", "alpha": q, "metric": "quantile"},
                **common,  # type: ignore[arg-type]
            )
            for q in levels
        ]
    else:
        median = {"objective": "regression_l1", "metric": "l1"}
        boosters = [_fit_booster(labelled, target, features, levels_of, median, **common)]  # type: ignore[arg-type]
        offsets = _conformal_offsets(
            labelled, target, features, levels_of, median, levels, common, calibration
        )
    model = QuantileModel(
        target=target,
        method=method,
        boosters=boosters,
        feature_names=features,
        categorical_levels=levels_of,
        levels=levels,
        offsets=offsets,
        num_threads=num_threads,
        anchored=anchored,
    )
    model.metadata = {
        "outcome": OUTCOMES[target],
        "n_rows": len(labelled),
        "n_projects": int(labelled["project_id"].nunique()),
        "closed_through": str(pd.to_datetime(labelled["actual_finish"]).max().date()),
        "trees": [b.current_iteration() for b in boosters],
        "calibration": calibration if method == "conformal" else None,
    }
    return model


def _conformal_offsets(
    labelled: pd.DataFrame,
    target: str,
    features: list[str],
    levels_of: dict[str, list[str]],
    objective: dict[str, Any],
    levels: tuple[float, ...],
    common: dict[str, Any],
    calibration: Calibration = "folds",
) -> dict[str, list[float]]:
    """Per stage, the weighted residual quantiles of the median model on projects it was
    not fitted on: each fold's, or (``forward``) the latest closures'."""
    outcome = OUTCOMES[target]
    if calibration == "forward":
        # The latest closures' residuals, from a model fitted on the earlier ones: how the
        # served model meets running projects (those that close later than its data).
        closed = pd.to_datetime(labelled["actual_finish"])
        cutoff = forward_cutoff(labelled, FORWARD_CALIBRATION_SHARE)
        folds = [
            (
                np.flatnonzero((closed < cutoff).to_numpy()),
                np.flatnonzero((closed >= cutoff).to_numpy()),
            )
        ]
    else:
        k = min(CONFORMAL_FOLDS, labelled["project_id"].nunique())
        folds = grouped_folds(labelled, k, int(common["seed"]))
    point = np.full(len(labelled), np.nan)
    for train_idx, test_idx in folds:
        part = labelled.iloc[train_idx]
        booster = _fit_booster(part, target, features, levels_of, objective, **common)
        point[test_idx] = booster.predict(
            encode_features(labelled.iloc[test_idx], features, levels_of),
            num_threads=int(common["num_threads"]),
        )
    if common["anchored"]:
        point = point + pm_forecast(labelled, target)
    residual = labelled[outcome].to_numpy(dtype=float) - point
    weight = labelled["weight"].to_numpy(dtype=float)
    stages = stage_labels(labelled["elapsed_fraction"].to_numpy(dtype=float, na_value=np.nan))
    pids = labelled["project_id"].to_numpy()
    offsets = {"all": weighted_quantiles(residual, weight, levels)}
    for stage in STAGE_LABELS:
        m = stages == stage
        if pd.unique(pids[m]).size >= MIN_STAGE_PROJECTS:
            offsets[stage] = weighted_quantiles(residual[m], weight[m], levels)
    return offsets


# ------------------------------------------------------------------- in user units


def finish_dates(frame: pd.DataFrame, slip_quantiles: np.ndarray) -> np.ndarray:
    """Slip quantiles as finish dates: planned_finish + slip x planned duration (days)."""
    start = pd.to_datetime(frame["planned_start"]).to_numpy("datetime64[ns]")
    finish = pd.to_datetime(frame["planned_finish"]).to_numpy("datetime64[ns]")
    days = (finish - start) / np.timedelta64(1, "D")
    offset = np.round(np.asarray(slip_quantiles, dtype=float) * days[:, None])
    return finish[:, None] + offset.astype("timedelta64[D]")


def cost_amounts(budget: np.ndarray, overrun_quantiles: np.ndarray) -> np.ndarray:
    """Overrun quantiles as final costs: budget x (1 + overrun); NaN without a budget."""
    budget = np.asarray(budget, dtype=float)
    budget = np.where(budget > 0, budget, np.nan)
    return budget[:, None] * (1.0 + np.asarray(overrun_quantiles, dtype=float))


def exceedance(
    quantiles: np.ndarray, threshold: float, levels: tuple[float, ...] = LEVELS
) -> np.ndarray:
    """P(outcome > threshold) read off each row's quantiles: the CDF interpolated linearly
    between the levels and held at the outer levels beyond them (so it lies within
    [1 − P90's level, 1 − P10's]); NaN where a quantile is missing."""
    q = np.asarray(quantiles, dtype=float)
    lv = np.asarray(levels, dtype=float)
    cdf = np.where(threshold >= q[:, -1], lv[-1], lv[0])
    for j in range(len(lv) - 1):  # over the levels, not the rows
        lo, hi = q[:, j], q[:, j + 1]
        inside = (threshold >= lo) & (threshold < hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(hi > lo, (threshold - lo) / (hi - lo), 0.0)
        cdf = np.where(inside, lv[j] + share * (lv[j + 1] - lv[j]), cdf)
    out = 1.0 - cdf
    out[~np.isfinite(q).all(axis=1)] = np.nan
    return out
