"""The stack: the rule, the logistic regression and the trees weighted stage by stage. Where
one part reads the outcome in some stages and another in others, the stack ranks about as
the better one in every stage; the fitted model is served, stored and explained like any
other."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from training.evaluate import weighted_auc
from training.models import RiskModel, categorical_columns, feature_columns
from training.recipes import fit_champion, fit_stack, select_recipe
from training.staged import stage_index


def _auc(y: np.ndarray, m: np.ndarray, w: np.ndarray) -> float:
    auc = weighted_auc(y, m, w)
    assert auc is not None
    return auc


def test_the_stack_ranks_about_as_the_better_of_its_parts_in_every_stage() -> None:
    rng = np.random.default_rng(0)
    n_projects = 300
    pid = np.repeat(np.arange(n_projects), 10)
    elapsed = np.tile(np.linspace(0.05, 0.95, 10), n_projects)
    stages = stage_index(elapsed)
    y = rng.integers(0, 2, n_projects).astype(float)[pid]
    w = np.full(len(y), 0.1)
    signal = 2 * y - 1
    noise = rng.normal(0, 1, (2, len(y)))
    # The rule reads the outcome from 40 % on and is pure noise before; the logistic
    # regression reads it early and barely late. An average of the two would lose to the
    # better one by far in every stage (0.85 against 0.98 at 0-20 %).
    rule = np.where(stages <= 1, 3 * noise[0], 1.5 * signal + noise[0])
    logistic = np.where(stages <= 1, 1.5 * signal + noise[1], 0.2 * signal + noise[1])
    Z = np.column_stack([rule, logistic])
    fitted = fit_stack(Z, y, w, stages, ["rule", "logistic"])
    stack = fitted.margin(Z, stages)
    for s in range(5):
        rows = stages == s
        auc = {
            name: _auc(y[rows], m[rows], w[rows])
            for name, m in (("rule", rule), ("lr", logistic), ("stack", stack))
        }
        better, worse = max(auc["rule"], auc["lr"]), min(auc["rule"], auc["lr"])
        assert auc["stack"] > worse + 0.1, (s, auc)
        assert auc["stack"] > better - 0.01, (s, auc)
        assert all(b >= 0 for b in fitted.weights[s])  # monotone directions kept
    # Early the logistic regression carries the stage, late the rule.
    assert fitted.weights[0][1] > fitted.weights[0][0]
    assert fitted.weights[4][0] > fitted.weights[4][1]


def test_a_small_stage_stays_near_the_pooled_weights() -> None:
    rng = np.random.default_rng(1)
    n = 400
    stages = np.r_[np.zeros(n - 6, dtype=int), np.full(6, 2)]  # stage 40-60 %: 6 rows
    y = rng.integers(0, 2, n).astype(float)
    rule = (2 * y - 1) + rng.normal(0, 1, n)
    logistic = rng.normal(0, 1, n)
    logistic[stages == 2] = 3 * (2 * y[stages == 2] - 1)  # six rows that favour it by chance
    fitted = fit_stack(np.column_stack([rule, logistic]), y, np.ones(n), stages, ["r", "l"])
    pooled = np.asarray(fitted.pooled)
    small = np.asarray(fitted.weights[2])
    assert pooled[0] > 5 * pooled[1]
    # Six rows' worth of weight against the shrinkage of three projects: it moves, not flips.
    assert small[0] > 0.3 * pooled[0]


def test_a_stack_champion_round_trips_explains_exactly_and_keeps_directions(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    table = synthetic_table(80, seed=6)
    features = feature_columns(table)
    categorical = categorical_columns(table, features)
    model = fit_champion(
        table, "delay", features, categorical, seed=1, threads=1, recipes=("stack",)
    )
    assert model.recipe == "stack"
    selection = model.metadata["selection"]
    assert selection["candidate"]["recipe"] == "stack"
    components = selection["stack"]["components"]
    assert components[0] == f"rule:{model.metadata['rule']}" and "logistic" in components
    booster_text, meta_json = model.to_strings()
    assert booster_text.startswith("tree")
    again = RiskModel.from_strings(booster_text, meta_json)
    rows = table.sample(200, random_state=0)
    np.testing.assert_allclose(again.predict(rows), model.predict(rows), rtol=0, atol=1e-12)
    contributions = again.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), again.raw_margin(rows), atol=1e-9)
    assert np.ptp(contributions[:, -1]) == 0  # one base value for every row
    # The stage weights are fitted on out-of-fold margins, so the probabilities are
    # calibrated stage by stage: the mean predicted risk is near each stage's late share.
    stage = stage_index(table["elapsed_fraction"].to_numpy())
    p = again.predict(table)
    late = table["late"].to_numpy(dtype=float)
    for s in range(5):
        rows_s = stage == s
        assert (
            abs(
                np.average(p[rows_s], weights=table["weight"][rows_s])
                - np.average(late[rows_s], weights=table["weight"][rows_s])
            )
            < 0.1
        ), s
    # A lower SPI never lowers the risk, whichever stage the row is in.
    worse = rows.assign(spi=rows["spi"] - 0.3)
    assert np.all(again.predict(worse) >= again.predict(rows) - 1e-12)


def test_the_stack_is_a_candidate_beside_its_parts_and_its_parts_need_not_be(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    table = synthetic_table(60, seed=3)
    features = feature_columns(table)
    categorical = categorical_columns(table, features)
    every = select_recipe(table, "delay", features, categorical, seed=0, threads=1)
    labels = [c["candidate"] for c in every.candidates]
    assert labels[0].startswith("rule") and labels[1].startswith("logistic")
    assert labels[2].startswith("stack by stage")
    alone = select_recipe(table, "delay", features, categorical, 0, 1, recipes=("stack",))
    assert [c["recipe"] for c in alone.candidates] == ["stack"]
    assert alone.chosen.recipe == "stack" and alone.stack is not None
    assert len(alone.stack.weights) == 5
