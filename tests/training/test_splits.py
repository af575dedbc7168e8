"""Splits: forward in time, by project, never one project on both sides."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from training.splits import (
    assert_disjoint,
    forward_cutoff,
    forward_split,
    grouped_folds,
    holdout_cutoff,
)


def test_forward_split_is_forward_in_time_and_disjoint(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    table = synthetic_table(200, seed=1)
    cutoff = forward_cutoff(table, 0.25)
    train, test = forward_split(table, cutoff)

    assert set(train["project_id"]).isdisjoint(test["project_id"])
    assert train["actual_finish"].max() < cutoff <= test["actual_finish"].min()
    # Every row of a test project is on the test side, early reports included.
    test_ids = set(test["project_id"])
    assert (table["project_id"].isin(test_ids) == table.index.isin(test.index)).all()
    assert (test["as_of"] < cutoff).any()
    assert len(train) + len(test) == len(table)
    share = test["project_id"].nunique() / table["project_id"].nunique()
    assert 0.2 <= share <= 0.3


def test_assert_disjoint_names_the_shared_projects() -> None:
    a = pd.DataFrame({"project_id": ["P1", "P2"]})
    b = pd.DataFrame({"project_id": ["P2", "P3"]})
    with pytest.raises(AssertionError, match="P2"):
        assert_disjoint(a, b)
    assert_disjoint(a, pd.DataFrame({"project_id": ["P3"]}))


def test_grouped_folds_keep_projects_whole_and_cover_every_row(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    table = synthetic_table(60, seed=2)
    folds = grouped_folds(table, 5, seed=0, label="late")
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(len(table)))
    for train_idx, test_idx in folds:
        train_ids = set(table.iloc[train_idx]["project_id"])
        assert train_ids.isdisjoint(table.iloc[test_idx]["project_id"])
        assert table.iloc[test_idx]["late"].nunique() == 2  # stratified: both outcomes


def test_grouped_folds_refuse_more_folds_than_projects(
    synthetic_table: Callable[..., pd.DataFrame],
) -> None:
    with pytest.raises(ValueError, match="at least 5 projects"):
        grouped_folds(synthetic_table(4, seed=3), 5, seed=0)


def test_holdout_cutoff_is_a_quarter_before_as_of() -> None:
    assert holdout_cutoff(pd.Timestamp("2024-04-01"), 91) == pd.Timestamp("2024-01-01")
