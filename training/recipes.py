"""The champion's recipe, chosen by project-grouped cross-validation inside the training rows.

Five recipes, simplest first:

- ``rule``: the best rule's index calibrated — a logistic on that index and the elapsed
  share (SPI(t) / CPI unless another rule is clearly stronger on the training rows);
- ``stack``: the rule, the logistic regression and the best booster, weighted stage by
  stage (`fit_stack`, `training.staged`): in each fifth of the planned duration it follows
  whichever part read that stage best on the inner folds — where choosing one recipe for
  every stage loses to the logistic regression early or to the rule late;
- ``logistic``: a logistic regression on every feature, at the baseline's strength;
- ``boost_from_rule``: LightGBM boosted from the rule's log-odds (``init_score``): the trees
  learn what the rule misses, and with nothing to learn they stay at the rule;
- ``lightgbm``: LightGBM alone.

`select_recipe` scores every candidate (recipe × complexity: trees, leaves) by its
out-of-fold weighted log-loss over `INNER_FOLDS` project-grouped folds (the stack's weights
cross-fitted over the same folds), then `_choose` takes the stack when it is within one
standard error (paired by project) of the best, else the simplest candidate within one; a
booster alone must first beat the rule by two. `fit_candidate` refits the choice on every
row and calibrates it on the out-of-fold margins (Platt scaling), not on a small slice.
Every recipe is a `RiskModel` with LightGBM text and JSON artefacts, the monotone
directions, and exact contributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.baselines import RULE_TITLES, RULES, Rule
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
from training.staged import ELAPSED, STAGE_EDGES, StagedScore, StagePiece, stage_index

RECIPES = ("rule", "logistic", "stack", "boost_from_rule", "lightgbm")  # simplest first
LINEAR_RECIPES = ("rule", "logistic")  # no trees
# Always eligible (`_choose`): the two anchors the verdict compares with, and the stack of them
# that follows each stage's stronger part; a booster alone must first beat the rule clearly.
ALWAYS_ELIGIBLE = ("rule", "stack", "logistic")
RECIPE_WORDS = {
    "rule": "the best rule's index, calibrated",
    "logistic": "regularised logistic regression",
    "boost_from_rule": "LightGBM boosted from the rule",
    "lightgbm": "LightGBM alone",
    "stack": "the rule, the logistic regression and LightGBM weighted stage by stage",
}
INNER_FOLDS = 3
# The logistic regression's strength: the baseline's own (`training.baselines.fit_logistic`
# weighs rows to a mean of 1 at C=1, which is C = rows per project with each project's
# weights summing to 1, as here). One strength, not a grid: with a few dozen projects,
# choosing among strengths on inner folds of two thirds of them mostly picks noise (the
# weaker ones overfit 40 projects and lose there, then serve 60 worse than the baseline).
LOGISTIC_C: tuple[float, ...] = ()  # extra strengths to try, none by default
TREE_SHAPES = (4, 15)  # leaves per tree
LEARNING_RATE = 0.1
MAX_TREES = 200
PATIENCE = 20
MIN_RULE_COVERAGE = 0.5  # a rule whose index is missing on most rows cannot carry a prior
RULE_MARGIN_SE = 2.0  # standard errors by which a recipe must beat the rule to replace it
# ... or in one stage: five stages are five chances for noise to show a gap of two (about one
# in five when nothing differs); 2.5 keeps that near one in twenty.
STAGE_MARGIN_SE = 2.5
SMALL_PROJECTS = 200  # below: one tree shape, one thread (small fits are mostly overhead)


@dataclass(frozen=True)
class Candidate:
    """One recipe at one complexity (the number of trees is chosen with it)."""

    recipe: str
    C: float | None = None
    num_leaves: int | None = None
    n_trees: int = 0
    rule: str | None = None  # the rule whose index a ``rule`` candidate calibrates
    trees_from: str | None = None  # a stack's booster: ``boost_from_rule`` or ``lightgbm``

    def label(self) -> str:
        if self.recipe == "rule":
            return "rule" + ("" if self.rule is None else f" ({RULE_TITLES[self.rule]})")
        if self.recipe == "logistic":
            return self.recipe + ("" if self.C is None else f" (C={self.C:g})")
        if self.recipe == "stack":
            parts = [] if self.rule is None else [f"{RULE_TITLES[self.rule]} rule"]
            parts.append("logistic")
            if self.trees_from is not None:
                what = "boosted from the rule" if self.trees_from == "boost_from_rule" else "alone"
                parts.append(f"LightGBM {what}, {self.n_trees} trees of {self.num_leaves} leaves")
            return "stack by stage (" + " + ".join(parts) + ")"
        return f"{self.recipe} ({self.n_trees} trees of {self.num_leaves} leaves)"


@dataclass
class Selection:
    """What `select_recipe` chose and why, with every candidate's out-of-fold figures."""

    chosen: Candidate
    rule: str | None
    oof_margin: np.ndarray
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    stack: StackFit | None = None  # the stack's weights per stage, when it is chosen

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.chosen.recipe,
            "candidate": asdict(self.chosen),
            "rule": self.rule,
            "reason": self.reason,
            "candidates": self.candidates,
            **({} if self.stack is None else {"stack": self.stack.to_json()}),
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


def applicable_rules(frame: pd.DataFrame, target: str) -> list[Rule]:
    """The target's rules whose index is there on at least half of the rows, in
    `PRIOR_ORDER`."""
    by_name = {r.name: r for r in RULES[target]}
    out = []
    for r in (by_name[name] for name in PRIOR_ORDER[target]):
        if r.column in frame:
            x = frame[r.column].to_numpy(dtype=float, na_value=np.nan)
            if np.isfinite(x).mean() >= MIN_RULE_COVERAGE:
                out.append(r)
    return out


def best_rule(frame: pd.DataFrame, target: str) -> Rule | None:
    """The rule the prior is built on: among those whose index is there on at least half of
    the rows, the first in `PRIOR_ORDER` (SPI(t), CPI: the canonical EVM indices first) unless
    a later one's weighted AUC is higher by `RULE_SWITCH_MARGIN` — with a few dozen
    projects, AUCs a few points apart are noise, and a rule that changes from fold to fold
    makes a recipe look worse than any one rule. None when no rule applies."""
    y, w = _labels(frame, target), _weights(frame)
    best: tuple[float, Rule] | None = None
    for r in applicable_rules(frame, target):
        x = frame[r.column].to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(x)
        auc = weighted_auc(y[known], r.sign * x[known], w[known])
        if auc is not None and (best is None or auc > best[0] + RULE_SWITCH_MARGIN):
            best = (auc, r)
    return None if best is None else best[1]


# The elapsed share enters the rule's calibration as a step per stage, not as a slope:
# within a stage every project then gets the same step, so the calibrated rule ranks
# projects exactly as the rule does (a slope would let "later in the stage" outrank the
# index), while a stage where the rule says little still gets its own base rate.


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
    """Every candidate's out-of-fold log-loss over all rows and over each stage's rows, and
    the choice among them (`_choose`): the anchor unless clearly beaten, else the simplest
    near the best everywhere."""
    y, w = _labels(frame, target), _weights(frame)
    codes, uniques = pd.factorize(frame["project_id"])
    n_projects = len(uniques)
    k = max(2, min(folds, n_projects // 2))
    split = grouped_folds(frame, k, seed, label=TARGET_LABELS[target])
    r = best_rule(frame, target)
    wanted = [x for x in recipes if r is not None or x not in ("rule", "boost_from_rule")]
    levels = category_levels(frame, list(categorical))

    inner: list[_Fold] = []
    for train_idx, valid_idx in split:
        fit, valid = frame.iloc[train_idx], frame.iloc[valid_idx]
        prior_fit = prior_valid = None
        if r is not None:
            prior = fit_rule_prior(fit, target, r)
            prior_fit, prior_valid = _prior_margin(prior, fit), _prior_margin(prior, valid)
        inner.append(_Fold(fit, valid, valid_idx, prior_fit, prior_valid))

    # The stack is made of the rule, the logistic regression and the best booster: all are
    # computed when it is wanted, and kept as candidates only when they are wanted themselves.
    stacked = "stack" in wanted
    results: list[tuple[Candidate, np.ndarray]] = []  # candidate, out-of-fold margin
    parts: list[tuple[Candidate, np.ndarray]] = []  # the stack's components
    if r is not None and ({"rule", "stack"} & set(wanted)):
        rule_margin = np.full(len(frame), np.nan)
        for f in inner:
            assert f.prior_valid is not None
            rule_margin[f.valid_idx] = f.prior_valid
        parts.append((Candidate("rule", rule=r.name), rule_margin))
    stages = _stages(frame)
    C = round(max(1.0, len(frame) / max(n_projects, 1)), 1)
    if {"logistic", "stack"} & set(wanted):
        logistic_margin = np.full(len(frame), np.nan)
        for f in inner:
            score = fit_logistic_score(f.fit, target, features, categorical, C)
            logistic_margin[f.valid_idx] = _prior_margin(score, f.valid)
        parts.append((Candidate("logistic", C=C), logistic_margin))
    results += [p for p in parts if p[0].recipe in wanted]
    shapes = TREE_SHAPES[:1] if n_projects < SMALL_PROJECTS else TREE_SHAPES
    if n_projects < SMALL_PROJECTS:
        threads = 1
    boosters: list[tuple[Candidate, np.ndarray]] = []
    for recipe in ("boost_from_rule", "lightgbm"):
        needed = recipe in wanted or (stacked and (recipe == "lightgbm" or r is not None))
        if not needed:
            continue
        for leaves in shapes:
            boosters.append(
                _booster_candidate(
                    frame, target, features, levels, inner, recipe, leaves, seed, threads
                )
            )
    results += [p for p in boosters if p[0].recipe in wanted]

    everywhere = np.ones(len(frame), dtype=bool)
    stack_fit = None
    if stacked:
        # The booster of the stack: the one with the lowest out-of-fold log-loss, unless it
        # has no tree (boosting from the rule that stopped at once is the rule again).
        grown = [p for p in boosters if p[0].n_trees > 0]
        if grown:
            losses_b = [_Judged(y, w, codes, n_projects, m, everywhere).loss for _, m in grown]
            parts.append(grown[int(np.argmin(losses_b))])
        if len(parts) >= 2:
            Z = _standardised(np.column_stack([m for _, m in parts]), w, inner)
            names = [_component(c) for c, _ in parts]
            stack_margin = _cross_fitted_stack(Z, y, w, stages, codes, names, inner)
            stack_fit = fit_stack(Z, y, w, stages, names, codes)
            trees = next((c for c, _ in parts if c.recipe not in LINEAR_RECIPES), None)
            candidate = Candidate(
                "stack",
                C=C,
                num_leaves=None if trees is None else trees.num_leaves,
                n_trees=0 if trees is None else trees.n_trees,
                rule=None if r is None else r.name,
                trees_from=None if trees is None else trees.recipe,
            )
            simpler = len([p for p in results if p[0].recipe in LINEAR_RECIPES])
            results.insert(simpler, (candidate, stack_margin))
    if not results:
        raise ValueError(f"no recipe among {list(recipes)} applies to {target}")

    # Each candidate is judged as it would be served: after Platt scaling of its margins
    # (two parameters, fitted here on its out-of-fold margins). Raw log-loss would punish a
    # logistic regression that ranks well but is overconfident, which calibration fixes.
    judged = [_Judged(y, w, codes, n_projects, m, everywhere) for _, m in results]
    losses = np.array([j.loss for j in judged])
    by_stage = []
    for s in STAGES:
        rows = stages == s
        if len(np.unique(codes[rows])) >= MIN_STAGE_PROJECTS and len(np.unique(y[rows])) == 2:
            by_stage.append([_Judged(y, w, codes, n_projects, m, rows) for _, m in results])
    best, chosen, eligible = _choose(judged, results, by_stage)
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
    )
    anchor_name = "the rule" if r is not None else "the logistic regression"
    if chosen != best and pick.recipe == ("rule" if r is not None else "logistic"):
        reason += (
            f"; kept as {anchor_name}: the best ({results[best][0].label()}, "
            f"{losses[best]:.4f}) did not beat it by two standard errors overall, nor by 2.5 "
            f"in any of {len(by_stage)} stages"
        )
    elif chosen != best:
        reason += (
            f", within one standard error of the best ({results[best][0].label()}, "
            f"{losses[best]:.4f}) overall and in each of {len(by_stage)} stages, and simpler"
        )
    left_out = [results[i][0].label() for i in range(len(results)) if i not in eligible]
    if left_out:
        reason += f"; left out for not beating {anchor_name} by two standard errors: "
        reason += ", ".join(left_out)
    selection = Selection(pick, None if r is None else r.name, margin, table, reason)
    if pick.recipe == "stack":
        selection.stack = stack_fit
    return selection


def _standardised(Z: np.ndarray, w: np.ndarray, inner: list[_Fold]) -> np.ndarray:
    """Each column centred and scaled within every inner fold's rows (weighted): a part's
    margins can change scale from fold to fold — a logistic regression that nearly separates
    a few dozen projects gives margins of ±5 on one fold and ±50 on the next — and weights
    fitted on some folds must mean the same on another. The served stack scales each part
    by its spread on the training rows (`fit_stack_model`)."""
    out = np.empty_like(Z)
    for f in inner:
        out[f.valid_idx] = _z_scores(Z[f.valid_idx], w[f.valid_idx])
    return out


def _moments(Z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of each column (1 where a column is constant)."""
    mean = np.average(Z, axis=0, weights=w)
    sd = np.sqrt(np.average((Z - mean) ** 2, axis=0, weights=w))
    return mean, np.where(sd > 1e-9, sd, 1.0)


def _z_scores(Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    mean, sd = _moments(Z, w)
    return (Z - mean) / sd


def _component(candidate: Candidate) -> str:
    """A stack part's name: ``rule:<name>``, ``logistic`` or ``trees``."""
    if candidate.recipe == "rule":
        return f"rule:{candidate.rule}"
    return "logistic" if candidate.recipe == "logistic" else "trees"


STAGES = range(len(STAGE_EDGES) + 1)
# The pull of the weights pooled over every stage on one stage's weights, against a log-loss
# summed over the stage's projects (each weighing one) on standardised parts: a project's
# curvature is about 0.2 per unit of weight², so ~5 projects' evidence weighs as much as the
# pull — a stage of a few dozen projects follows its own data (at 5, the stages of a
# 120-project portfolio stayed at the pooled weights where the logistic regression alone
# was far better early); the cross-fitted loss judges whether that was worth it.
STACK_SHRINK = 1.0
MIN_STAGE_PROJECTS = 10  # a stage judged on fewer projects says nothing `_choose` can use
STACK_RIDGE = 1.0  # on the pooled weights: keeps their scale steady from fold to fold
STACK_OFFSET_SHRINK = 0.5  # a stage of one outcome keeps a finite offset


def _stages(frame: pd.DataFrame) -> np.ndarray:
    return stage_index(frame[ELAPSED].to_numpy(dtype=float, na_value=np.nan))


@dataclass
class StackFit:
    """Stacking weights per stage over the component margins (columns of ``Z``), and each
    stage's offset: ``offset_s + Σ weight_sj · z_j``, every weight ≥ 0."""

    components: list[str]  # "rule", "logistic", "trees" (a booster's whole margin)
    weights: list[list[float]]  # per stage, per component
    offsets: list[float]  # per stage
    pooled: list[float]  # the weights over every stage the stages shrink toward

    def margin(self, Z: np.ndarray, stages: np.ndarray) -> np.ndarray:
        weights = np.asarray(self.weights)[stages]
        return np.asarray(self.offsets)[stages] + np.sum(weights * Z, axis=1)

    def to_json(self) -> dict[str, Any]:
        return {
            "components": self.components,
            "pooled": [round(x, 4) for x in self.pooled],
            "stages": [
                {"weights": [round(x, 4) for x in wt], "offset": round(off, 4)}
                for wt, off in zip(self.weights, self.offsets, strict=True)
            ],
        }


def _fit_weights(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    anchor: np.ndarray,
    shrink: float,
    offset_anchor: np.ndarray,
    offset_shrink: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative weights and an offset per group minimising the weighted log-loss plus
    ``shrink · |b − anchor|²`` and ``offset_shrink · |a − offset_anchor|²`` (L-BFGS-B)."""
    from scipy.optimize import minimize

    k = Z.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, a = theta[:k], theta[k:]
        m = a[groups] + Z @ b
        value = float(w @ np.logaddexp(0.0, np.where(y == 1, -m, m)))
        value += shrink * float((b - anchor) @ (b - anchor))
        value += offset_shrink * float((a - offset_anchor) @ (a - offset_anchor))
        r = w * (1.0 / (1.0 + np.exp(-m)) - y)
        grad_b = Z.T @ r + 2 * shrink * (b - anchor)
        grad_a = np.bincount(groups, weights=r, minlength=n_groups)
        grad_a += 2 * offset_shrink * (a - offset_anchor)
        return value, np.r_[grad_b, grad_a]

    start = np.r_[anchor, offset_anchor]
    bounds = [(0.0, None)] * k + [(None, None)] * n_groups
    out = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return out.x[:k], out.x[k:]


def fit_stack(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    stages: np.ndarray,
    components: list[str],
    projects: np.ndarray | None = None,
) -> StackFit:
    """Weights pooled over the stages (each stage its own offset), then each stage's weights
    and offset refitted on its rows, shrunk toward the pooled ones by `STACK_SHRINK`. Within
    a stage each project's rows weigh one in all (`projects`: a project code per row; without
    it, every row weighs one), so the shrinkage is against that many projects' evidence."""
    n_stages = len(STAGES)
    offsets0 = np.full(n_stages, _logit_share(y, w))
    pooled, pooled_offsets = _fit_weights(
        Z,
        y,
        w,
        stages,
        n_stages,
        anchor=np.full(Z.shape[1], 1.0 / Z.shape[1]),
        shrink=STACK_RIDGE,
        offset_anchor=offsets0,
        offset_shrink=1e-6,
    )
    weights, offsets = [], []
    for s in STAGES:
        rows = stages == s
        if not rows.any():
            weights.append([float(x) for x in pooled])
            offsets.append(float(pooled_offsets[s]))
            continue
        w_s = w[rows] if projects is None else _per_project_weights(w[rows], projects[rows])
        b, a = _fit_weights(
            Z[rows],
            y[rows],
            w_s,
            np.zeros(int(rows.sum()), dtype=int),
            1,
            anchor=pooled,
            shrink=STACK_SHRINK,
            offset_anchor=pooled_offsets[s : s + 1],
            offset_shrink=STACK_OFFSET_SHRINK,
        )
        weights.append([float(x) for x in b])
        offsets.append(float(a[0]))
    return StackFit(components, weights, offsets, [float(x) for x in pooled])


def _per_project_weights(w: np.ndarray, projects: np.ndarray) -> np.ndarray:
    """`w` rescaled so that each project's rows sum to one."""
    _, codes = np.unique(projects, return_inverse=True)
    totals = np.bincount(codes, weights=w)
    return w / np.where(totals[codes] > 0, totals[codes], 1.0)


def _logit_share(y: np.ndarray, w: np.ndarray) -> float:
    p = float(np.clip(np.average(y, weights=w), 1e-3, 1 - 1e-3))
    return float(np.log(p / (1 - p)))


def _cross_fitted_stack(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    stages: np.ndarray,
    projects: np.ndarray,
    components: list[str],
    inner: list[_Fold],
) -> np.ndarray:
    """The stack's out-of-fold margins: each inner fold's rows stacked by weights fitted on
    the other folds' out-of-fold margins, so the stack is judged on rows it did not see."""
    out = np.full(len(y), np.nan)
    for f in inner:
        rest = np.ones(len(y), dtype=bool)
        rest[f.valid_idx] = False
        fitted = fit_stack(Z[rest], y[rest], w[rest], stages[rest], components, projects[rest])
        out[f.valid_idx] = fitted.margin(Z[f.valid_idx], stages[f.valid_idx])
    return out


@dataclass
class _Judged:
    """One candidate's Platt-calibrated out-of-fold log-loss on some rows, per project."""

    y: np.ndarray
    w: np.ndarray
    codes: np.ndarray
    n_projects: int
    margin: np.ndarray
    rows: np.ndarray

    def __post_init__(self) -> None:
        y, w, m = self.y[self.rows], self.w[self.rows], self.margin[self.rows]
        self.per_project = _per_project(
            _log_loss_rows(y, _platt(m, y, w)), w, self.codes[self.rows], self.n_projects
        )
        self.present = np.bincount(self.codes[self.rows], minlength=self.n_projects) > 0
        self.total_weight = float(w.sum())
        self.loss = float(self.per_project.sum() / self.total_weight)

    def se(self, other: _Judged) -> float:
        """Standard error of the mean per-project loss difference with `other`."""
        diff = (self.per_project - other.per_project)[self.present]
        n = len(diff)
        if n < 2:
            return float("inf")
        return float(np.std(diff, ddof=1) / np.sqrt(n)) * n / self.total_weight


def _choose(
    judged: list[_Judged],
    results: list[tuple[Candidate, np.ndarray]],
    by_stage: list[list[_Judged]],
) -> tuple[int, int, list[int]]:
    """(best, chosen, eligible), candidates simplest first.

    The anchor is what the verdict compares with: the rule, the PMO's own, or where no rule
    applies the logistic regression. A few dozen projects rarely show more than noise, so
    the anchor stays unless another candidate beats it by `RULE_MARGIN_SE` standard errors
    (paired by project) overall, or by `STAGE_MARGIN_SE` in one stage (`by_stage`: the
    candidates judged on one stage's rows) — the verdict judges the model stage by stage,
    and an anchor as good as anything overall can still lose the early stages clearly.
    Otherwise the simplest candidate within one standard error of the best, overall and in
    every stage; the stack follows each stage's stronger part, so it usually passes where its
    parts do not; if nothing passes, the best overall. A booster alone is eligible only when
    it beats the anchor by `RULE_MARGIN_SE` standard errors overall; the logistic regression
    and the stack always."""
    recipes = [c.recipe for c, _ in results]
    anchor_i = next((recipes.index(x) for x in ("rule", "logistic") if x in recipes), None)
    eligible = list(range(len(results)))
    if anchor_i is not None:
        anchor = judged[anchor_i]
        eligible = [
            i
            for i in eligible
            if recipes[i] in ALWAYS_ELIGIBLE
            or judged[i].loss + RULE_MARGIN_SE * judged[i].se(anchor) < anchor.loss
        ]

    def near_best(scores: list[_Judged], i: int, margin: float = 1.0) -> bool:
        best_here = min(eligible, key=lambda j: scores[j].loss)
        return scores[i].loss <= scores[best_here].loss + margin * scores[i].se(scores[best_here])

    best = min(eligible, key=lambda i: judged[i].loss)
    if (
        anchor_i is not None
        and near_best(judged, anchor_i, RULE_MARGIN_SE)
        and all(near_best(scores, anchor_i, STAGE_MARGIN_SE) for scores in by_stage)
    ):
        return best, anchor_i, eligible
    passing = [
        i
        for i in eligible
        if i != anchor_i and all(near_best(scores, i) for scores in [judged, *by_stage])
    ]
    return best, (passing or [best])[0], eligible


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
    if candidate.recipe == "rule" and candidate.rule is not None:
        rule_name = candidate.rule
    prior = _linear_part(frame, target, features, categorical, candidate, rule_name)
    booster = _fit_booster(frame, target, features, levels, candidate, prior, seed, threads)
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


def _linear_part(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    categorical: Sequence[str],
    candidate: Candidate,
    rule_name: str | None,
) -> LinearScore | None:
    """The candidate's linear score refitted on `frame`: the rule's calibrated index (also
    the start of boosting from it), the logistic regression, or None (LightGBM alone)."""
    if candidate.recipe in ("rule", "boost_from_rule"):
        name = candidate.rule if candidate.recipe == "rule" and candidate.rule else rule_name
        r = None if name is None else next(x for x in RULES[target] if x.name == name)
        if r is None:
            raise ValueError(f"recipe {candidate.recipe} needs a rule")
        return fit_rule_prior(frame, target, r)
    if candidate.recipe == "logistic":
        return fit_logistic_score(frame, target, features, categorical, candidate.C or 1.0)
    return None


def _fit_booster(
    frame: pd.DataFrame,
    target: str,
    features: list[str],
    levels: dict[str, list[str]],
    candidate: Candidate | None,
    prior: LinearScore | None,
    seed: int,
    threads: int,
) -> lgb.Booster:
    """The candidate's trees on every row (boosted from `prior`), or the null booster."""
    if candidate is None or not candidate.n_trees or candidate.recipe in ALWAYS_ELIGIBLE:
        return null_booster(frame, features, levels)
    assert candidate.num_leaves is not None
    params = booster_params(frame, target, features, candidate.num_leaves, seed, threads)
    init = None if prior is None else _prior_margin(prior, frame)
    trained = lgb.train(
        params,
        _dataset(frame, target, features, levels, init),
        num_boost_round=candidate.n_trees,
    )
    return lgb.Booster(model_str=trained.model_to_string())


def fit_stack_model(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    categorical: Sequence[str],
    selection: Selection,
    seed: int = 42,
    threads: int = 2,
) -> RiskModel:
    """The stack (`training.staged`): its parts refitted on every row — the rule's calibrated
    index, the logistic regression, the booster (from the rule's log-odds when it boosts from
    it) — weighted per stage by the weights fitted on their out-of-fold margins. Those
    weights are calibrated already: the calibrator is the identity."""
    stack, chosen = selection.stack, selection.chosen
    assert stack is not None
    features = list(features)
    levels = category_levels(frame, list(categorical))
    # The linear parts in the stack's order: each rule's calibrated index, the logistic.
    linear_parts: list[tuple[str, LinearScore]] = []
    for name in stack.components:
        if name.startswith("rule:"):
            rule_ = next(x for x in RULES[target] if x.name == name.removeprefix("rule:"))
            linear_parts.append((name, fit_rule_prior(frame, target, rule_)))
        elif name == "logistic":
            score = fit_logistic_score(frame, target, features, categorical, chosen.C or 1.0)
            linear_parts.append((name, score))
    primary = f"rule:{selection.rule}"
    prior = None
    if chosen.trees_from == "boost_from_rule":
        # Boosting from the rule carries the rule's log-odds inside the booster's margin.
        prior = next(score for name, score in linear_parts if name == primary)
    trees = None
    if chosen.trees_from is not None:
        trees = Candidate(chosen.trees_from, num_leaves=chosen.num_leaves, n_trees=chosen.n_trees)
    booster = _fit_booster(frame, target, features, levels, trees, prior, seed, threads)

    # The weights apply to each part's margin standardised as on the inner folds
    # (`_standardised`), here by its spread on the training rows: folded into the weights
    # and the offsets, so the served score stays a weighted sum of the parts.
    w = _weights(frame)
    margins = {name: _prior_margin(score, frame) for name, score in linear_parts}
    if trees is not None:
        raw = np.asarray(
            booster.predict(encode_features(frame, features, levels), raw_score=True), dtype=float
        )
        margins["trees"] = raw + (_prior_margin(prior, frame) if prior is not None else 0.0)
    mean, sd = _moments(np.column_stack([margins[n] for n in stack.components]), w)
    centre, spread = (
        dict(zip(stack.components, mean, strict=True)),
        dict(zip(stack.components, sd, strict=True)),
    )
    pieces = []
    for b, offset in zip(stack.weights, stack.offsets, strict=True):
        weight = {n: bj / spread[n] for n, bj in zip(stack.components, b, strict=True)}
        tree_weight = weight.get("trees", 0.0)
        carried = {primary: tree_weight} if prior is not None else {}
        pieces.append(
            StagePiece(
                candidate=chosen.label(),
                recipe=chosen.recipe,
                rule=selection.rule,
                scores=[score for _, score in linear_parts],
                weights=[weight[name] + carried.get(name, 0.0) for name, _ in linear_parts],
                tree_weight=tree_weight,
                offset=offset - sum(weight[n] * centre[n] for n in stack.components),
            )
        )
    stages = _stages(frame)
    stage_weight = np.bincount(stages, weights=w, minlength=len(pieces))
    booster_base = float(
        np.asarray(
            booster.predict(encode_features(frame.head(1), features, levels), pred_contrib=True)
        )[0, -1]
    )
    base = (
        sum(sw * p.base(booster_base) for sw, p in zip(stage_weight, pieces, strict=True)) / w.sum()
    )
    directions = MONOTONE_DIRECTIONS.get(target, {})
    model = RiskModel(
        booster=booster,
        calibrator=Calibrator(method="sigmoid"),
        feature_names=features,
        categorical_levels=levels,
        target=target,
        num_threads=threads,
        staged=StagedScore(pieces=pieces, base=float(base)),
    )
    model.metadata = {
        "label": TARGET_LABELS[target],
        "recipe": chosen.recipe,
        "candidate": asdict(chosen),
        "rule": selection.rule,
        "monotone": {f: d for f, d in directions.items() if f in features},
        "best_iteration": chosen.n_trees,
        "calibration": "stacked by stage",
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
    if selection.stack is not None:
        model = fit_stack_model(frame, target, features, categorical, selection, seed, threads)
        model.metadata["selection"] = selection.to_json()
        return model
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
