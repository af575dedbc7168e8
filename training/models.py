"""The risk model: a LightGBM booster per target, calibrated, serialisable without pickle.

`fit_risk_model` trains on the point-in-time training table (one row per status report,
weighted so that each project counts once), stops early on a time-later slice of projects
and calibrates on that same slice, which the trees never saw. `RiskModel` holds the fitted
state and converts a feature frame into the float matrix the booster wants: categoricals
become stable integer codes kept with the model, so predictions do not depend on which
categories a later frame happens to contain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalogue import SCHEDULE_HEALTH_NAMES
from features.columns import FeatureColumns, Features, FrameColumns, columns_of
from training.calibration import Calibrator, Method, fit_calibrator
from training.linear import LinearScore
from training.splits import assert_disjoint, forward_cutoff, forward_split
from training.staged import StagedScore

Target = Literal["delay", "overrun"]
TARGETS: tuple[Target, ...] = ("delay", "overrun")
TARGET_LABELS: dict[str, str] = {"delay": "late", "overrun": "over_budget"}
META_COLUMNS = ("project_id", "as_of", "weight", "late", "over_budget", "actual_finish")

# Directions we are certain of, all else equal: a lower SPI (or SPI(t)) never makes a late
# finish less likely, a lower CPI never makes an overrun less likely, and a larger forecast
# slip or overrun from the project manager never lowers the risk. Features absent from the
# table are skipped. Nothing else is constrained: trends and change counts can cut both ways.
MONOTONE_DIRECTIONS: dict[str, dict[str, int]] = {
    "delay": {"spi": -1, "spi_t": -1, "forecast_slip": 1, "rag": 1},
    "overrun": {"cpi": -1, "tcpi": 1, "forecast_overrun": 1, "rag": 1},
}

# Modest trees: the signal is a few hundred to a few thousand projects, not the row count.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "min_sum_hessian_in_leaf": 1.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "min_data_per_group": 50,
    "cat_smooth": 10.0,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
MONOTONE_METHOD = "advanced"
MIN_ISOTONIC_PROJECTS = 100
VALID_SHARE = 0.2  # the latest fifth of the projects: early stopping and calibration
MIN_PROJECTS = 10
PREDICTION_COLUMNS: dict[str, str] = {"delay": "p_late", "overrun": "p_over_budget"}
MAX_TREES = 300
EARLY_STOPPING_ROUNDS = 30
LEAF_PROJECTS = 3  # min_data_in_leaf ≥ this many projects' worth of rows (median)
FORMAT = "forewarn-risk-model/1"


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a training-table frame: everything after the meta columns."""
    return [c for c in frame.columns if c not in META_COLUMNS]


def categorical_columns(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """Features held as strings (or pandas categories) in the frame."""
    return [
        c
        for c in features
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(frame[c])
        or pd.api.types.is_string_dtype(frame[c])
    ]


@dataclass
class RiskModel:
    """A fitted score, its calibrator and the category levels it was trained with.

    The score (log-odds) is ``prior + booster``: `prior` is a `LinearScore` (the rule's
    calibrated index, or the regularised logistic regression) or None; `booster` is a
    LightGBM booster, boosted from the prior when there is one. A recipe without trees
    carries `null_booster`'s single leaf of 0, so every champion has the same artefacts
    (LightGBM text + JSON) and the same explanation: contributions of the prior's inputs
    and of the trees add up, per feature, to the score.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    feature_names: list[str]
    categorical_levels: dict[str, list[str]]
    target: str
    metadata: dict[str, Any] = field(default_factory=dict)
    num_threads: int = 2
    prior: LinearScore | None = None
    staged: StagedScore | None = None  # a piece per stage (training.staged); then no prior

    # ------------------------------------------------------------------ prediction
    @property
    def label(self) -> str:
        return TARGET_LABELS[self.target]

    def encode(self, X: Features | np.ndarray) -> np.ndarray:
        """The float matrix the booster takes: features in order, categoricals as codes.

        An ndarray is taken as already encoded (the fast path for one-row scoring).
        Unseen or missing categories become NaN, which LightGBM treats as missing.
        """
        return encode_features(X, self.feature_names, self.categorical_levels)

    @property
    def recipe(self) -> str:
        return str(self.metadata.get("recipe", "lightgbm"))

    def raw_margin(self, X: Features | np.ndarray) -> np.ndarray:
        """The score's log-odds before calibration (prior plus trees)."""
        matrix = self.encode(X)
        margin = np.asarray(
            self.booster.predict(matrix, raw_score=True, num_threads=self.num_threads),
            dtype=float,
        )
        if self.staged is not None:
            columns = self._prior_columns(matrix, self.staged.features)
            return self.staged.margin(columns, len(matrix), margin)
        if self.prior is not None:
            columns = self._prior_columns(matrix, self.prior.features)
            margin = margin + self.prior.margin(columns, len(matrix))
        return margin

    def predict(self, X: Features | np.ndarray) -> np.ndarray:
        """Calibrated probability of the target's outcome (late, over budget)."""
        return self.calibrator.transform(self.raw_margin(X))

    def contributions(self, X: Features | np.ndarray) -> np.ndarray:
        """TreeSHAP contributions, shape (n, f + 1); the last column is the base value.

        In log-odds before calibration: each row sums to `raw_margin`. With a prior, each
        of its inputs' shares is added to that feature's column and its base value to the
        base: the rule's index shows as the driver it is.
        """
        matrix = self.encode(X)
        out = np.asarray(
            self.booster.predict(matrix, pred_contrib=True, num_threads=self.num_threads),
            dtype=float,
        )
        if self.staged is not None:
            columns = self._prior_columns(matrix, self.staged.features)
            return self.staged.contributions(columns, out, self.feature_names)
        if self.prior is not None:
            shares = self.prior.shares(
                self._prior_columns(matrix, self.prior.features), len(matrix)
            )
            for j, term in enumerate(self.prior.terms):
                out[:, self.feature_names.index(term.feature)] += shares[:, j]
            out[:, -1] += self.prior.base_value()
        return out

    def _prior_columns(self, matrix: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The linear inputs from the encoded matrix (category codes back to their text)."""
        columns: dict[str, np.ndarray] = {}
        for name in names:
            values = matrix[:, self.feature_names.index(name)]
            levels = self.categorical_levels.get(name)
            if levels is not None:
                lookup = np.array([*levels, None], dtype=object)
                codes = np.where(np.isnan(values), len(levels), values).astype(int)
                columns[name] = lookup[np.clip(codes, 0, len(levels))]
            else:
                columns[name] = values
        return columns

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """The inverse of `encode`, for plots and reference samples."""
        frame = pd.DataFrame(matrix, columns=self.feature_names)
        for name, levels in self.categorical_levels.items():
            codes = frame[name]
            lookup = np.array([*levels, None], dtype=object)
            idx = codes.fillna(len(levels)).astype(int).clip(0, len(levels)).to_numpy()
            frame[name] = lookup[idx]
        return frame

    # ------------------------------------------------------------------ persistence
    def to_strings(self) -> tuple[str, str]:
        """(LightGBM model text, JSON of everything else)."""
        meta = {
            "format": FORMAT,
            "target": self.target,
            "label": self.label,
            "feature_names": self.feature_names,
            "categorical_levels": self.categorical_levels,
            "calibrator": self.calibrator.to_dict(),
            "prior": None if self.prior is None else self.prior.to_dict(),
            "staged": None if self.staged is None else self.staged.to_dict(),
            "metadata": self.metadata,
        }
        return self.booster.model_to_string(), json.dumps(meta, indent=2, default=str)

    @classmethod
    def from_strings(cls, booster_text: str, meta_json: str, num_threads: int = 2) -> RiskModel:
        meta = json.loads(meta_json)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format={meta.get('format')!r})")
        return cls(
            booster=lgb.Booster(model_str=booster_text),
            calibrator=Calibrator.from_dict(meta["calibrator"]),
            feature_names=list(meta["feature_names"]),
            categorical_levels={k: list(v) for k, v in meta["categorical_levels"].items()},
            target=meta["target"],
            metadata=dict(meta.get("metadata", {})),
            num_threads=num_threads,
            prior=None if meta.get("prior") is None else LinearScore.from_dict(meta["prior"]),
            staged=None if meta.get("staged") is None else StagedScore.from_dict(meta["staged"]),
        )

    def to_files(self, directory: Path) -> dict[str, Path]:
        """Write ``booster.txt`` (LightGBM text) and ``risk_model.json``; returns the paths."""
        directory.mkdir(parents=True, exist_ok=True)
        booster_text, meta_json = self.to_strings()
        paths = {"booster": directory / "booster.txt", "meta": directory / "risk_model.json"}
        paths["booster"].write_text(booster_text)
        paths["meta"].write_text(meta_json)
        return paths

    @classmethod
    def from_files(cls, directory: Path, num_threads: int = 2) -> RiskModel:
        return cls.from_strings(
            (directory / "booster.txt").read_text(),
            (directory / "risk_model.json").read_text(),
            num_threads=num_threads,
        )


def encode_features(
    X: Features | np.ndarray, feature_names: list[str], levels: dict[str, list[str]]
) -> np.ndarray:
    """Features in order as floats, categoricals as their code in `levels` (NaN if unseen)."""
    if isinstance(X, np.ndarray):
        matrix = np.asarray(X, dtype=float)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape[1] != len(feature_names):
            raise ValueError(
                f"expected {len(feature_names)} feature columns, got {matrix.shape[1]}"
            )
        return matrix
    columns = columns_of(X)
    missing = [c for c in feature_names if c not in columns]
    # A model trained on imported schedules scoring reports that carry no schedule health
    # (the family is built only when they do): the values are unknown, the flag is 0.
    unknown = [c for c in missing if c not in SCHEDULE_HEALTH_NAMES]
    if unknown:
        raise KeyError(f"feature column(s) missing from the frame: {', '.join(unknown)}")
    matrix = np.empty((len(X), len(feature_names)), dtype=float)
    for c in missing:
        matrix[:, feature_names.index(c)] = 0.0 if c == "has_schedule_health" else np.nan
    numeric = [i for i, c in enumerate(feature_names) if c not in levels and c not in missing]
    if numeric:
        matrix[:, numeric] = _numeric_block(X, [feature_names[i] for i in numeric])
    for i, name in enumerate(feature_names):
        if name in levels:
            matrix[:, i] = category_codes(np.asarray(columns.column(name), object), levels[name])
    return matrix


def _numeric_block(X: Features, names: list[str]) -> np.ndarray:
    """`X[names]` as floats; from `FeatureColumns`, straight from its float block."""
    if isinstance(X, FeatureColumns):
        block = X.float_rows(names)
        if block is not None:
            return block
        return np.column_stack([np.asarray(X.column(n), dtype=float) for n in names])
    frame = X.frame if isinstance(X, FrameColumns) else X
    return frame[names].to_numpy(dtype=float, na_value=np.nan)


# Up to this many rows a dict lookup per value beats pandas' vectorised lookup, whose fixed
# cost (~0.1 ms) is larger than the service's whole booster call for one project.
_FEW_ROWS = 64


def category_codes(values: np.ndarray, levels: list[str]) -> np.ndarray:
    """Each value's code in `levels` as a float, NaN when missing or unseen (as text)."""
    if len(values) <= _FEW_ROWS:
        mapping = {level: float(code) for code, level in enumerate(levels)}
        return np.array(
            [np.nan if pd.isna(v) else mapping.get(str(v), np.nan) for v in values], dtype=float
        )
    present = ~pd.isna(values)
    codes = np.full(len(values), np.nan)
    if present.any():
        found = pd.Index(levels, dtype=object).get_indexer(pd.Index(values[present].astype(str)))
        codes[present] = np.where(found < 0, np.nan, found)
    return codes


def category_levels(frame: pd.DataFrame, categorical: list[str]) -> dict[str, list[str]]:
    """Sorted levels of each categorical feature: codes stay stable across refits."""
    return {c: sorted({str(v) for v in frame[c].dropna().unique()}) for c in categorical}


def monotone_vector(target: str, features: list[str]) -> list[int]:
    directions = MONOTONE_DIRECTIONS.get(target, {})
    return [directions.get(f, 0) for f in features]


def fit_risk_model(
    train: pd.DataFrame,
    target: str,
    seed: int = 42,
    *,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    calibration: Method | Literal["auto"] = "auto",
    valid_share: float = VALID_SHARE,
    monotone: bool = True,
    max_trees: int = MAX_TREES,
    params: dict[str, Any] | None = None,
    num_threads: int = 2,
) -> RiskModel:
    """Fit one target's booster with early stopping and a calibrator on later projects.

    `train` is a training-table frame; rows without the target's label are dropped.
    The latest `valid_share` of its projects by close date are held out for early stopping
    and calibration (the trees never see them).
    """
    label = TARGET_LABELS[target]
    labelled = train.loc[train[label].notna()]
    features = features if features is not None else feature_columns(train)
    categorical = (
        categorical if categorical is not None else categorical_columns(labelled, features)
    )
    fit_part, valid_part = validation_slice(labelled, label, valid_share, seed)
    n_calibration = valid_part["project_id"].nunique()
    method: Method
    if calibration == "auto":
        # Isotonic needs a hundred projects or more to be smoother than its steps; below
        # that the two-parameter sigmoid is the steadier choice.
        method = "isotonic" if n_calibration >= MIN_ISOTONIC_PROJECTS else "sigmoid"
    else:
        method = calibration
    levels = category_levels(fit_part, categorical)

    cat_idx = [features.index(c) for c in categorical]
    rows_per_project = float(fit_part.groupby("project_id").size().median())
    all_params = {
        **DEFAULT_PARAMS,
        # A project's rows share one outcome: a leaf must span a few projects' worth of
        # rows, or small portfolios grow leaves that memorise single projects.
        "min_data_in_leaf": max(
            int(DEFAULT_PARAMS["min_data_in_leaf"]), int(LEAF_PROJECTS * rows_per_project)
        ),
        **(params or {}),
        "seed": seed,
        "num_threads": num_threads,
    }
    constraints = monotone_vector(target, features)
    if monotone and any(constraints):
        all_params["monotone_constraints"] = constraints
        # LightGBM 4.7 crashes when a constraints method is set without any constraint.
        all_params.setdefault("monotone_constraints_method", MONOTONE_METHOD)
    d_fit = lgb.Dataset(
        encode_features(fit_part, features, levels),
        label=fit_part[label].to_numpy(dtype=float),
        weight=_unit_mean(fit_part["weight"]),
        feature_name=list(features),
        categorical_feature=cat_idx,
        free_raw_data=True,
    )
    d_valid = lgb.Dataset(
        encode_features(valid_part, features, levels),
        label=valid_part[label].to_numpy(dtype=float),
        weight=_unit_mean(valid_part["weight"]),
        reference=d_fit,
    )
    # Keep only the trees up to the best iteration, so the text file is the model served.
    model = RiskModel(
        booster=(booster := train_early_stopped(all_params, d_fit, d_valid, max_trees)),
        calibrator=Calibrator(method=method),
        feature_names=list(features),
        categorical_levels=levels,
        target=target,
        num_threads=num_threads,
    )
    valid_margin = model.raw_margin(valid_part)
    model.calibrator = fit_calibrator(
        valid_margin,
        valid_part[label].to_numpy(dtype=float),
        valid_part["weight"].to_numpy(dtype=float),
        method,
    )
    model.metadata = {
        "label": label,
        "params": {k: v for k, v in all_params.items() if k != "monotone_constraints"},
        "monotone": {
            f: d
            for f, d in zip(features, monotone_vector(target, features), strict=True)
            if d and monotone
        },
        "best_iteration": booster.current_iteration(),
        "min_data_in_leaf": all_params["min_data_in_leaf"],
        "max_trees": max_trees,
        "calibration": method,
        "n_rows": len(labelled),
        "n_projects": int(labelled["project_id"].nunique()),
        "n_fit_projects": int(fit_part["project_id"].nunique()),
        "n_calibration_projects": int(valid_part["project_id"].nunique()),
        "closed_through": str(pd.to_datetime(labelled["actual_finish"]).max().date()),
    }
    return model


def train_early_stopped(
    params: dict[str, Any], d_fit: lgb.Dataset, d_valid: lgb.Dataset, max_trees: int
) -> lgb.Booster:
    """Boost until the later projects stop improving; the booster cut at its best tree."""
    booster = lgb.train(
        params,
        d_fit,
        num_boost_round=max_trees,
        valid_sets=[d_valid],
        valid_names=["later_projects"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best = int(booster.best_iteration) or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def _unit_mean(weight: pd.Series) -> np.ndarray:
    # LightGBM's min_sum_hessian and min_data limits are tuned for weights near 1; the
    # per-project weights (1 / rows of the project) are far smaller, so rescale to mean 1.
    w = weight.to_numpy(dtype=float)
    return w * (len(w) / w.sum())


def validation_slice(
    labelled: pd.DataFrame, label: str, valid_share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Later projects for early stopping and calibration; random projects as a fallback.

    Deterministic for given inputs, so callers can recover which projects the trees saw.
    The fallback applies only when the later slice lacks one of the outcomes (a tiny or
    very one-sided portfolio): calibration cannot be fitted on a single class.
    """
    n_projects = labelled["project_id"].nunique()
    if n_projects < MIN_PROJECTS:
        raise ValueError(
            f"only {n_projects} labelled project(s): at least {MIN_PROJECTS} are needed "
            "to train a model"
        )
    if labelled[label].nunique() < 2:
        raise ValueError(f"every labelled project has {label} = {labelled[label].iloc[0]:g}")
    cutoff = forward_cutoff(labelled, valid_share)
    fit_part, valid_part = forward_split(labelled, cutoff)
    if fit_part[label].nunique() == 2 and valid_part[label].nunique() == 2:
        return fit_part, valid_part
    projects = labelled.groupby("project_id", sort=True)[label].first()
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for outcome in (0.0, 1.0):
        ids = projects.index[projects == outcome].to_numpy()
        n_take = max(1, round(len(ids) * valid_share))
        chosen.update(rng.choice(ids, size=min(n_take, len(ids) - 1), replace=False))
    in_valid = labelled["project_id"].isin(chosen)
    fit_part, valid_part = labelled.loc[~in_valid], labelled.loc[in_valid]
    assert_disjoint(fit_part, valid_part)
    return fit_part, valid_part
