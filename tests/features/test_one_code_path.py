"""One code path: a project built alone (as the service does) gives exactly its rows of the
whole training table, when it is given the same portfolio context."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from portfolio_builders import one_project, random_portfolio, read_little06

from features.contract import Portfolio
from features.pointintime import (
    build_features,
    portfolio_context,
    snapshot,
    training_rows,
    training_table,
)


def _assert_alone_equals_table(portfolio: Portfolio, sample: list[str]) -> None:
    table = training_table(portfolio, 0.05, 0.05).frame
    rows, _ = training_rows(portfolio)
    features = table.drop(columns=["weight", "late", "over_budget", "actual_finish"])
    for project_id in sample:
        mine = (rows["project_id"] == project_id).to_numpy()
        request = rows[mine].reset_index(drop=True)
        # The context the whole table used, computed from the whole portfolio, given to the
        # single project as the service would give it the training portfolio's.
        context = portfolio_context(portfolio, request["as_of"], 0.05, 0.05)
        alone = build_features(one_project(portfolio, project_id), request, context=context)
        expected = features[mine].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, expected, check_exact=True)


def test_single_projects_equal_their_rows_of_the_whole_table() -> None:
    portfolio = random_portfolio(80, seed=3)
    table = training_table(portfolio, 0.05, 0.05).frame
    ids = table["project_id"].unique()
    rng = np.random.default_rng(0)
    sample = list(rng.choice(ids, size=12, replace=False))
    no_budget = portfolio.projects.loc[portfolio.projects["budget"].isna(), "project_id"]
    sample += [p for p in no_budget if p in set(ids)][:2]  # cost-less projects too
    _assert_alone_equals_table(portfolio, sample)


def test_single_projects_of_little06_equal_their_rows() -> None:
    portfolio = read_little06()
    _assert_alone_equals_table(portfolio, ["LG-001", "LG-007", "LG-051", "LG-120"])


def test_snapshot_row_alone_equals_the_portfolio_snapshot() -> None:
    portfolio = random_portfolio(60, seed=5)
    as_of = pd.Timestamp("2024-03-01")
    everyone = snapshot(portfolio, as_of)
    context = portfolio_context(portfolio, [as_of])
    for project_id in everyone["project_id"].iloc[:5]:
        alone = snapshot(one_project(portfolio, project_id), as_of, context=context)
        expected = everyone[everyone["project_id"] == project_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, expected, check_exact=True)


def test_without_a_context_a_lone_project_has_no_peers() -> None:
    # The reason the service must pass the training context in.
    portfolio = random_portfolio(30, seed=1)
    as_of = pd.Timestamp("2024-03-01")
    project_id = snapshot(portfolio, as_of)["project_id"].iloc[0]
    alone = snapshot(one_project(portfolio, project_id), as_of)
    assert alone["closed_projects"].tolist() == [0.0]
    assert np.isnan(alone["closed_late_rate"]).all()


@pytest.mark.parametrize("seed", [11])
def test_table_is_deterministic(seed: int) -> None:
    portfolio = random_portfolio(20, seed)
    first = training_table(portfolio, 0.05, 0.05).frame
    pd.testing.assert_frame_equal(first, training_table(portfolio, 0.05, 0.05).frame)
