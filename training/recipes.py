"""The champion's recipe, chosen by project-grouped cross-validation inside the training rows.

Four recipes, simplest first:

- ``rule``: the best rule's index calibrated — a logistic on that index and the elapsed
  share (the rule is the one with the highest AUC on the training rows);
- ``logistic``: a regularised logistic regression on every feature (its strength chosen);
- ``boost_from_rule``: LightGBM boosted from the rule's log-odds (``init_score``): the trees
  learn what the rule misses, and with nothing to learn they stay at the rule;
- ``lightgbm``: LightGBM alone.

`select_recipe` scores every candidate (recipe × complexity: trees, leaves, regularisation)
by its out-of-fold weighted log-loss over `INNER_FOLDS` project-grouped folds, then takes
the *simplest* candidate within one standard error (paired by project) of the best: with a
few dozen projects that is usually the rule, and the more projects, the more the data can
earn a richer recipe. `fit_selected` refits the choice on every row and calibrates it on the
out-of-fold margins (Platt scaling), not on a small slice. Every recipe is a `RiskModel`
with LightGBM text and JSON artefacts, the monotone directions, and exact contributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.baselines import RULES, Rule
from training.calibration import Calibrator, Method, fit_calibrator
from training.evaluate import weighted_auc
from training.linear import LinearScore, column_values, fit_linear
from training.models import (
    DEFAULT_PARAMS,
    LEAF_PROJECTS,
    MONOTONE_DIRECTIONS,
    MONOTONE_METHOD,
    TARGET_LABELS,
    RiskModel,
    category_levels,
    encode_features,
    monotone_vector,
)
from training.splits import grouped_folds

RECIPES = ("rule", "logistic", "boost_from_rule", "lightgbm")  # simplest first
RECIPE_WORDS = {
    "rule": "the best rule's index, calibrated",
    "logistic": "regularised logistic regression",
    "boost_from_rule": "LightGBM boosted from the rule",
    "lightgbm": "LightGBM alone",
}
INNER_FOLDS = 3
LOGISTIC_C = (0.05, 1.0)  # per project's worth of weight: strong, mild
TREE_SHAPES = (4, 15)  # leaves per tree
LEARNING_RATE = 0.1
MAX_TREES = 200
PATIENCE = 20
MIN_RULE_COVERAGE = 0.5  # a rule whose index is missing on most rows cannot carry a prior
RULE_MARGIN_SE = 2.0  # standard errors by which a recipe must beat the rule to replace it
SMALL_PROJECTS = 200  # below: one tree shape, one thread (small fits are mostly overhead)
ELAPSED = "elapsed_fraction"


@dataclass(frozen=True)
class Candidate:
    """One recipe at one complexity (the number of trees is chosen with it)."""

    recipe: str
    C: float | None = None
    num_leaves: int | None = None
    n_trees: int = 0

    def label(self) -> str:
        if self.recipe in ("rule", "logistic"):
            return self.recipe + ("" if self.C is None else f" (C={self.C:g})")
        return f"{self.recipe} ({self.n_trees} trees of {self.num_leaves} leaves)"


@dataclass
class Selection:
    """What `select_recipe` chose and why, with every candidate's out-of-fold figures."""

    chosen: Candidate
    rule: str | None
    oof_margin: np.ndarray
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.chosen.recipe,
            "candidate": asdict(self.chosen),
            "rule": self.rule,
            "reason": self.reason,
            "candidates": self.candidates,
        }


# ----------------------------------------------------------------------------- pieces


def _weights(frame: pd.DataFrame) -> np.ndarray:
    return frame["weight"].to_numpy(dtype=float)


def _labels(frame: pd.DataFrame, target: str) -> np.ndarray:
    return frame[TARGET_LABELS[target]].to_numpy(dtype=float)


RULE_SWITCH_MARGIN = 0.05
# Which rule a prior prefers, when AUCs are close: earned schedule's SPI(t) before SPI for
# delay (SPI drifts back to 1 as a late project nears its end, SPI(t) does not: it keeps
# warning in the last stages), CPI before TCPI for overrun.
PRIOR_ORDER = {
    "delay": ("spi_t", "spi", "pm_forecast", "rag"),
    "overrun": ("cpi", "tcpi", "pm_forecast", "rag"),
}


def best_rule(frame: pd.DataFrame, target: str) -> Rule | None:
    """The rule the prior is built on: among those whose index is there on at least half of
    the rows, the first in `PRIOR_ORDER` (SPI(t), CPI: the canonical EVM indices first) unless
    a later one's weighted AUC is higher by `RULE_SWITCH_MARGIN` — with a few dozen
    projects, AUCs a few points apart are noise, and a rule that changes from fold to fold
    makes a recipe look worse than any one rule. None when no rule applies."""
    y, w = _labels(frame, target), _weights(frame)
    best: tuple[float, Rule] | None = None
    by_name = {r.name: r for r in RULES[target]}
    for r in (by_name[name] for name in PRIOR_ORDER[target]):
        if r.column not in frame:
            continue
        x = frame[r.column].to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(x)
        if known.mean() < MIN_RULE_COVERAGE:
            continue
        auc = weighted_auc(y[known], r.sign * x[known], w[known])
        if auc is not None and (best is None or auc > best[0] + RULE_SWITCH_MARGIN):
            best = (auc, r)
    return None if best is None else best[1]


# The elapsed share enters the rule's calibration as a step per stage, not as a slope:
# within a stage every project then gets the same step, so the calibrated rule ranks
# projects exactly as the rule does (a slope would let "later in the stage" outrank the
# index), while a stage where the rule says little still gets its own base rate.
STAGE_EDGES = (0.2, 0.4, 0.6, 0.8)


def fit_rule_prior(frame: pd.DataFrame, target: str, r: Rule) -> LinearScore:
    """The rule's index calibrated: a logistic on the index and the stage (elapsed share)."""
    features = [r.column] + ([ELAPSED] if ELAPSED in frame and r.column != ELAPSED else [])
    return fit_linear(
        frame,
        _labels(frame, target),
        _weights(frame),
        features,
        directions={r.column: r.sign},
        C=10.0,  # a few inputs and many rows: barely regularised
        bins={ELAPSED: STAGE_EDGES},
    )


def fit_logistic_score(
    frame: pd.DataFrame, target: str, features: Sequence[str], categorical: Sequence[str], C: float
) -> LinearScore:
    return fit_linear(
        frame,
        _labels(frame, target),
        _weights(frame),
        features,
        categorical,
        directions=MONOTONE_DIRECTIONS.get(target, {}),
        C=C,
    )


def _prior_margin(prior: LinearScore, frame: pd.DataFrame) -> np.ndarray:
    columns = {name: column_values(frame, name) for name in prior.features}
    return prior.margin(columns, len(frame))


def booster_params(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    num_leaves: int,
    seed: int,
    threads: int,
) -> dict[str, Any]:
    rows_per_project = float(frame.groupby("project_id").size().median())
    params = {
        **DEFAULT_PARAMS,
        "num_leaves": num_leaves,
        "learning_rate": LEARNING_RATE,
        # A project's rows share one outcome: a leaf must span a few projects' worth of rows.
        "min_data_in_leaf": max(20, int(LEAF_PROJECTS * rows_per_project)),
        "seed": seed,
        "num_threads": threads,
    }
    constraints = monotone_vector(target, list(features))
    if any(constraints):
        params["monotone_constraints"] = constraints
        params["monotone_constraints_method"] = MONOTONE_METHOD
    return params


def _dataset(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    levels: dict[str, list[str]],
    init: np.ndarray | None,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    w = _weights(frame)
    return lgb.Dataset(
        encode_features(frame, list(features), levels),
        label=_labels(frame, target),
        weight=w * (len(w) / w.sum()),  # mean 1: LightGBM's leaf limits assume weights near 1
        init_score=init,
        feature_name=list(features),
        categorical_feature=[list(features).index(c) for c in levels],
        reference=reference,
        free_raw_data=True,
    )


def null_booster(
    frame: pd.DataFrame, features: Sequence[str], levels: dict[str, list[str]]
) -> lgb.Booster:
    """A LightGBM booster whose one tree is a single leaf of 0: the artefact of a recipe
    without trees, so that every champion is served and explained the same way."""
    head = frame.head(max(2, min(len(frame), 50)))
    data = lgb.Dataset(
        encode_features(head, list(features), levels),
        label=np.zeros(len(head)),
        feature_name=list(features),
        categorical_feature=[list(features).index(c) for c in levels],
    )
    params = {
        "objective": "regression",
        "num_leaves": 2,
        "min_data_in_leaf": len(head) + 1,  # no split is possible
        "boost_from_average": False,
        "learning_rate": 1.0,
        "verbose": -1,
        "num_threads": 1,
    }
    booster = lgb.train(params, data, num_boost_round=1)
    return lgb.Booster(model_str=booster.model_to_string())


# ---------------------------------------------------------------------- inner folds


@dataclass
class _Fold:
    fit: pd.DataFrame
    valid: pd.DataFrame
    valid_idx: np.ndarray
    prior_fit: np.ndarray | None
    prior_valid: np.ndarray | None


def _log_loss_rows(y: np.ndarray, margin: np.ndarray) -> np.ndarray:
    # log(1 + e^−m) for y = 1, log(1 + e^m) for y = 0, computed stably.
    return np.logaddexp(0.0, np.where(y == 1, -margin, margin))


def _platt(margin: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The margin rescaled by Platt scaling on these rows (unchanged when it cannot fit)."""
    try:
        calibrator = fit_calibrator(margin, y, weight, "sigmoid")
    except ValueError:
        return margin
    return calibrator.a * margin + calibrator.b


def _per_project(loss: np.ndarray, weight: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(codes, weights=loss * weight, minlength=n)


def select_recipe(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    categorical: Sequence[str],
    seed: int = 42,
    threads: int = 2,
    recipes: Sequence[str] = RECIPES,
    folds: int = INNER_FOLDS,
) -> Selection:
    """Every candidate's out-of-fold log-loss; the simplest within one standard error wins."""
    y, w = _labels(frame, target), _weights(frame)
    codes, uniques = pd.factorize(frame["project_id"])
    n_projects = len(uniques)
    k = max(2, min(folds, n_projects // 2))
    split = grouped_folds(frame, k, seed, label=TARGET_LABELS[target])
    r = best_rule(frame, target)
    recipes = [x for x in recipes if r is not None or x not in ("rule", "boost_from_rule")]
    levels = category_levels(frame, list(categorical))

    inner: list[_Fold] = []
    for train_idx, valid_idx in split:
        fit, valid = frame.iloc[train_idx], frame.iloc[valid_idx]
        prior_fit = prior_valid = None
        if r is not None:
            prior = fit_rule_prior(fit, target, r)
            prior_fit, prior_valid = _prior_margin(prior, fit), _prior_margin(prior, valid)
        inner.append(_Fold(fit, valid, valid_idx, prior_fit, prior_valid))

    results: list[tuple[Candidate, np.ndarray]] = []  # candidate, out-of-fold margin
    if "rule" in recipes:
        margin = np.full(len(frame), np.nan)
        for f in inner:
            assert f.prior_valid is not None
            margin[f.valid_idx] = f.prior_valid
        results.append((Candidate("rule"), margin))
    if "logistic" in recipes:
        for C in LOGISTIC_C:
            margin = np.full(len(frame), np.nan)
            for f in inner:
                score = fit_logistic_score(f.fit, target, features, categorical, C)
                margin[f.valid_idx] = _prior_margin(score, f.valid)
            results.append((Candidate("logistic", C=C), margin))
    shapes = TREE_SHAPES[:1] if n_projects < SMALL_PROJECTS else TREE_SHAPES
    if n_projects < SMALL_PROJECTS:
        threads = 1
    for recipe in ("boost_from_rule", "lightgbm"):
        if recipe not in recipes:
            continue
        for leaves in shapes:
            results.append(
                _booster_candidate(
                    frame, target, features, levels, inner, recipe, leaves, seed, threads
                )
            )

    # Each candidate is judged as it would be served: after Platt scaling of its margins
    # (two parameters, fitted here on its out-of-fold margins). Raw log-loss would punish a
    # logistic regression that ranks well but is overconfident, which calibration fixes.
    per_project = [
        _per_project(_log_loss_rows(y, _platt(margin, y, w)), w, codes, n_projects)
        for _, margin in results
    ]
    losses = np.array([p.sum() / w.sum() for p in per_project])

    def se(i: int, j: int) -> float:
        """Standard error of the mean per-project loss difference of i and j."""
        diff = per_project[i] - per_project[j]
        return float(np.std(diff, ddof=1) / np.sqrt(n_projects)) * n_projects / w.sum()

    # With a rule, a richer candidate must beat it clearly (by two standard errors): the
    # rule is what the PMO has, and a few dozen projects rarely show more than noise.
    eligible = list(range(len(results)))
    if results and results[0][0].recipe == "rule":
        eligible = [0] + [
            i for i in range(1, len(results)) if losses[i] + RULE_MARGIN_SE * se(i, 0) < losses[0]
        ]
    best = min(eligible, key=lambda i: losses[i])
    chosen = next(i for i in eligible if losses[i] <= losses[best] + se(i, best))
    table = [
        {
            "candidate": c.label(),
            "recipe": c.recipe,
            "log_loss": float(loss),
            "auc": weighted_auc(y, m, w),
        }
        for (c, m), loss in zip(results, losses, strict=True)
    ]
    pick, margin = results[chosen]
    reason = (
        f"{pick.label()}: out-of-fold log-loss {losses[chosen]:.4f} over {k} project-grouped "
        f"folds of {n_projects} projects"
        + (
            ""
            if chosen == best
            else f", within one standard error of the best ({results[best][0].label()}, "
            f"{losses[best]:.4f}) and simpler"
        )
        + (
            "; no richer recipe beat the rule by two standard errors"
            if pick.recipe == "rule" and len(eligible) == 1 and len(results) > 1
            else ""
        )
    )
    return Selection(pick, None if r is None else r.name, margin, table, reason)


def _booster_candidate(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    levels: dict[str, list[str]],
    inner: list[_Fold],
    recipe: str,
    leaves: int,
    seed: int,
    threads: int,
) -> tuple[Candidate, np.ndarray]:
    """Out-of-fold margins of one booster shape at the number of trees that minimises the
    folds' mean validation loss (0 trees: the rule itself, for boosting from it)."""
    params = booster_params(frame, target, features, leaves, seed, threads)
    curves, boosters = [], []
    for f in inner:
        boosted = recipe == "boost_from_rule"
        d_fit = _dataset(f.fit, target, features, levels, f.prior_fit if boosted else None)
        d_valid = _dataset(
            f.valid, target, features, levels, f.prior_valid if boosted else None, d_fit
        )
        record: dict[str, Any] = {}
        booster = lgb.train(
            params,
            d_fit,
            num_boost_round=MAX_TREES,
            valid_sets=[d_valid],
            valid_names=["valid"],
            callbacks=[
                lgb.early_stopping(PATIENCE, verbose=False),
                lgb.record_evaluation(record),
            ],
        )
        curve = np.asarray(record["valid"]["binary_logloss"], dtype=float)
        if boosted:
            assert f.prior_valid is not None
            yv, wv = _labels(f.valid, target), _weights(f.valid)
            start = float(np.average(_log_loss_rows(yv, f.prior_valid), weights=wv))
            curve = np.r_[start, curve]
        else:
            curve = np.r_[np.inf, curve]
        padded = np.full(MAX_TREES + 1, curve[-1])
        padded[: len(curve)] = curve
        curves.append(padded * len(f.valid))
        boosters.append(booster)
    n_trees = int(np.argmin(np.sum(curves, axis=0)))
    if recipe == "lightgbm":
        n_trees = max(n_trees, 1)
    margin = np.full(len(frame), np.nan)
    for f, booster in zip(inner, boosters, strict=True):
        m = np.zeros(len(f.valid))
        if n_trees:
            m = np.asarray(
                booster.predict(
                    encode_features(f.valid, list(features), levels),
                    raw_score=True,
                    num_iteration=n_trees,
                ),
                dtype=float,
            )
        if recipe == "boost_from_rule":
            assert f.prior_valid is not None
            m = m + f.prior_valid
        margin[f.valid_idx] = m
    return Candidate(recipe, num_leaves=leaves, n_trees=n_trees), margin


# ----------------------------------------------------------------------------- fitting


def fit_candidate(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    categorical: Sequence[str],
    candidate: Candidate,
    rule_name: str | None,
    oof_margin: np.ndarray,
    seed: int = 42,
    threads: int = 2,
    calibration: Method = "sigmoid",
) -> RiskModel:
    """`candidate` refitted on every row of `frame`, calibrated on its out-of-fold margins."""
    features = list(features)
    levels = category_levels(frame, list(categorical))
    prior: LinearScore | None = None
    r = None if rule_name is None else next(x for x in RULES[target] if x.name == rule_name)
    if candidate.recipe in ("rule", "boost_from_rule"):
        if r is None:
            raise ValueError(f"recipe {candidate.recipe} needs a rule")
        prior = fit_rule_prior(frame, target, r)
    elif candidate.recipe == "logistic":
        prior = fit_logistic_score(frame, target, features, categorical, candidate.C or 1.0)
    if candidate.n_trees and candidate.recipe in ("boost_from_rule", "lightgbm"):
        assert candidate.num_leaves is not None
        params = booster_params(frame, target, features, candidate.num_leaves, seed, threads)
        init = None if prior is None else _prior_margin(prior, frame)
        trained = lgb.train(
            params,
            _dataset(frame, target, features, levels, init),
            num_boost_round=candidate.n_trees,
        )
        booster = lgb.Booster(model_str=trained.model_to_string())
    else:
        booster = null_booster(frame, features, levels)
    y, w = _labels(frame, target), _weights(frame)
    known = ~np.isnan(oof_margin)
    try:
        calibrator = fit_calibrator(oof_margin[known], y[known], w[known], calibration)
    except ValueError:
        calibrator = Calibrator(method="sigmoid")
    directions = MONOTONE_DIRECTIONS.get(target, {})
    model = RiskModel(
        booster=booster,
        calibrator=calibrator,
        feature_names=features,
        categorical_levels=levels,
        target=target,
        num_threads=threads,
        prior=prior,
    )
    model.metadata = {
        "label": TARGET_LABELS[target],
        "recipe": candidate.recipe,
        "candidate": asdict(candidate),
        "rule": rule_name if prior is not None and candidate.recipe != "logistic" else None,
        "monotone": {f: d for f, d in directions.items() if f in features},
        "best_iteration": candidate.n_trees,
        "calibration": calibrator.method,
        "n_rows": len(frame),
        "n_projects": int(frame["project_id"].nunique()),
        "closed_through": str(pd.to_datetime(frame["actual_finish"]).max().date()),
    }
    return model


def fit_champion(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    categorical: Sequence[str],
    seed: int = 42,
    threads: int = 2,
    recipes: Sequence[str] = RECIPES,
) -> RiskModel:
    """The whole recipe: choose by inner cross-validation, refit on everything, calibrate."""
    selection = select_recipe(frame, target, features, categorical, seed, threads, recipes)
    model = fit_candidate(
        frame,
        target,
        features,
        categorical,
        selection.chosen,
        selection.rule,
        selection.oof_margin,
        seed,
        threads,
    )
    model.metadata["selection"] = selection.to_json()
    return model
