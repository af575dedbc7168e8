"""The service's ways into `features.pointintime` give exactly what the general way gives:
a portfolio given as arrays, a prepared portfolio context, an empty context."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from portfolio_builders import day, one_project, random_portfolio

from features.contract import Portfolio, PortfolioColumns
from features.pointintime import (
    build_feature_columns,
    build_features,
    portfolio_context,
    prepare_context,
    snapshot,
)


def _as_arrays(portfolio: Portfolio) -> PortfolioColumns:
    def arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {name: frame[name].to_numpy() for name in frame.columns}

    return PortfolioColumns(
        projects=arrays(portfolio.projects),
        status_reports=arrays(portfolio.status_reports),
        changes=arrays(portfolio.changes),
        extra_attributes=list(portfolio.extra_attributes),
    )


def test_a_portfolio_as_arrays_gives_the_features_its_frames_give() -> None:
    portfolio = random_portfolio(40, seed=12)
    assert portfolio.extra_attributes  # a number and a text attribute ride along
    as_arrays = _as_arrays(portfolio)
    rows = pd.DataFrame({"project_id": portfolio.projects["project_id"], "as_of": day(1100)})
    row_arrays = {name: rows[name].to_numpy() for name in rows.columns}
    prepared = prepare_context(portfolio_context(portfolio, [day(1100)]))
    for context in (prepared, None):  # None: the context is computed from the portfolio
        expected = build_features(portfolio, rows, context=context)
        for given in (rows, row_arrays):
            got = build_features(as_arrays, given, context=context)
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_frame_equal(
        as_arrays.to_portfolio().projects, portfolio.projects, check_exact=True
    )
    one = portfolio.projects["project_id"].iloc[3]
    alone = one_project(portfolio, one)
    row = {"project_id": np.array([one], dtype=object), "as_of": np.array([day(900)], "M8[ns]")}
    pd.testing.assert_frame_equal(
        build_feature_columns(_as_arrays(alone), row, context=prepared).to_frame(),
        build_features(alone, pd.DataFrame(row), context=prepared),
        check_exact=True,
    )


def test_prepared_context_gives_the_features_the_frame_gives() -> None:
    portfolio = random_portfolio(60, seed=9)
    as_of = [day(400), day(1200), day(1800)]
    context = portfolio_context(portfolio, as_of)
    context = pd.concat([context, context.iloc[[3]].assign(closed_projects=-1.0)])  # a repeat
    prepared = prepare_context(context)
    for date in [*as_of, day(-50), day(3000)]:
        pd.testing.assert_frame_equal(
            snapshot(portfolio, date, context=prepared),
            snapshot(portfolio, date, context=context),
            check_exact=True,
        )
    project = portfolio.projects["project_id"].iloc[0]
    rows = pd.DataFrame({"project_id": [project] * 3, "as_of": as_of})
    alone = one_project(portfolio, project)
    pd.testing.assert_frame_equal(
        build_features(alone, rows, context=prepared),
        build_features(alone, rows, context=context),
        check_exact=True,
    )
    with pytest.raises(ValueError, match="read-only"):
        prepared.values[0, 0] = 1.0


def test_an_empty_context_gives_no_context() -> None:
    portfolio = random_portfolio(10, seed=4)
    rows = pd.DataFrame({"project_id": portfolio.projects["project_id"], "as_of": day(900)})
    empty = portfolio_context(portfolio, [])
    features = build_features(portfolio, rows, context=empty)
    assert features[["closed_projects", "type_late_rate"]].isna().all().all()


def test_built_frames_do_not_share_a_column_index_name() -> None:
    portfolio = random_portfolio(5, seed=1)
    rows = pd.DataFrame({"project_id": portfolio.projects["project_id"], "as_of": day(700)})
    first = build_features(portfolio, rows)
    first.columns.name = "renamed"
    assert build_features(portfolio, rows).columns.name is None
