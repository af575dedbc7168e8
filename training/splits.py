"""Splits of the training table that never let one project's outcome leak across sides.

A project's rows share its outcome, so every split here is by project: forward in time
by close date (`actual_finish`), or project-grouped folds for small portfolios.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold


def assert_disjoint(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Raise AssertionError when any project has rows on both sides of a split.

    An explicit raise rather than ``assert`` so that ``python -O`` cannot switch it off.
    """
    shared = set(train["project_id"]).intersection(test["project_id"])
    if shared:
        examples = ", ".join(sorted(map(str, shared))[:5])
        raise AssertionError(
            f"{len(shared)} project(s) on both sides of the split (e.g. {examples}): "
            "their outcome would leak from training into evaluation"
        )


def forward_split(table: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on projects closed before `cutoff`, test on those closed on or after it.

    Every row of a test project is in the test side, reports before the cutoff included;
    rows without a close date are on neither side.
    """
    closed = pd.to_datetime(table["actual_finish"])
    cutoff = pd.Timestamp(cutoff)
    train = table.loc[closed < cutoff]
    test = table.loc[closed >= cutoff]
    assert_disjoint(train, test)
    return train, test


def forward_cutoff(table: pd.DataFrame, test_share: float) -> pd.Timestamp:
    """The close date that leaves about `test_share` of the projects on the later side.

    Projects closing on the same day stay together, so the share is approximate.
    """
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share}")
    closes = table.groupby("project_id", sort=False)["actual_finish"].first().dropna().sort_values()
    if len(closes) < 2:
        raise ValueError("a forward split needs at least two closed projects")
    position = int(np.floor(len(closes) * (1 - test_share)))
    position = min(max(position, 1), len(closes) - 1)
    return pd.Timestamp(closes.iloc[position])


def holdout_cutoff(as_of: pd.Timestamp, holdout_days: int) -> pd.Timestamp:
    """Start of the retraining holdout: projects closed in the last `holdout_days` to as_of."""
    return pd.Timestamp(as_of).normalize() - pd.Timedelta(days=holdout_days)


def grouped_folds(
    table: pd.DataFrame, k: int, seed: int, label: str | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`k` project-grouped folds as positional (train, test) index arrays.

    With `label`, folds are stratified on the project's outcome so that each test fold
    holds both classes where the portfolio allows it.
    """
    if k < 2:
        raise ValueError(f"--cv needs at least 2 folds, got {k}")
    groups = table["project_id"].to_numpy()
    n_projects = len(pd.unique(groups))
    if n_projects < k:
        raise ValueError(f"{k} folds need at least {k} projects; the table has {n_projects}")
    positions = np.arange(len(table))
    if label is not None:
        y = table[label].to_numpy(dtype=float)
        per_project = pd.Series(y).groupby(groups).agg(["min", "max"])
        minority = int(pd.Series(y).groupby(groups).first().value_counts().min())
        if (per_project["min"] == per_project["max"]).all() and minority >= k:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            folds = list(splitter.split(positions, y.astype(int), groups))
        else:
            folds = _group_kfold(positions, groups, k, seed)
    else:
        folds = _group_kfold(positions, groups, k, seed)
    for train_idx, test_idx in folds:
        assert_disjoint(table.iloc[train_idx], table.iloc[test_idx])
    return folds


def _group_kfold(
    positions: np.ndarray, groups: np.ndarray, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(positions, groups=groups))
