"""The shortcuts `features.pointintime` takes for the service's one-project call give exactly
what the general way gives: the column reader, the one-project codes, the few-row type
codes, the prepared context, the unframed feature columns and a portfolio given as arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from portfolio_builders import day, one_project, random_portfolio

from features.contract import Portfolio, PortfolioColumns
from features.pointintime import (
    _AT_LATEST_REPORT,
    _BOOL,
    _F8,
    _NS,
    _OBJECT,
    _Columns,
    _nan_to_num,
    _project_codes,
    _report_state,
    _type_codes,
    build_feature_columns,
    build_features,
    portfolio_context,
    prepare_context,
    snapshot,
)


def _same_array(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if expected.dtype == object:
        for a, b in zip(got, expected, strict=True):
            assert type(a) is type(b) and (a is b or a == b or (a != a and b != b))
    elif expected.dtype.kind in "fM":  # bit for bit: NaN, NaT and −0.0 included
        assert np.array_equal(got.view(np.int64), expected.view(np.int64))
    else:
        assert np.array_equal(got, expected)


def test_column_reader_gives_what_to_numpy_gives() -> None:
    n = 4
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, -0.0, 3.0],
            "o": np.array(["a", None, "c", np.nan], dtype=object),
            "ns": pd.to_datetime(["2020-01-01", None, "2021-05-06", "1969-12-31"]),
            "s": pd.to_datetime(["2020-01-01", "2020-01-02", None, "2020-01-04"]).astype(
                "datetime64[s]"
            ),
            "tz": pd.date_range("2020-01-01", periods=n, tz="Europe/London"),
            "b": [True, False, True, False],
            "i": pd.array([1, None, 3, 4], dtype="Int64"),
            "cat": pd.Categorical(["x", "y", None, "x"]),
            "str": pd.array(["p", None, "q", "r"], dtype="string"),
            "int": [1, 2, 3, 4],
        }
    )
    frame["f2"] = frame["f"] * 2  # a second float block
    reader = _Columns(frame)
    for name in frame.columns:
        for dtype in (_F8, _OBJECT, _NS, _BOOL):
            public = None if dtype == _NS else dtype
            try:
                expected = frame[name].to_numpy(public)
            except (TypeError, ValueError):
                with pytest.raises((TypeError, ValueError)):
                    reader(name, dtype)
                continue
            _same_array(reader(name, dtype), expected)
    with pytest.raises(KeyError):
        reader("absent", _F8)
    assert "f" in reader and "absent" not in reader


def test_column_reader_over_arrays_gives_what_the_frame_gives() -> None:
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, -0.0],
            "o": np.array(["a", None, np.nan], dtype=object),
            "ns": pd.to_datetime(["2020-01-01", None, "1969-12-31"]),
            "b": [True, False, True],
            "int": [1, 2, 3],
        }
    )
    arrays = {name: frame[name].to_numpy() for name in frame.columns}
    arrays["s"] = arrays["ns"].astype("datetime64[s]")  # not stored as read: converted
    frame["s"] = pd.Series(arrays["s"])
    reader, from_frame = _Columns(arrays), _Columns(frame)
    assert set(reader.stored) == {"f", "o", "ns", "b"}  # int64, datetime64[s]: converted
    for name in frame.columns:
        assert reader.dtype(name) == from_frame.dtype(name)
        # Dates are read as dates; the rest as numbers, text or flags.
        dates = reader.dtype(name).kind == "M"
        for dtype in (_NS,) if dates else (_F8, _OBJECT, _BOOL):
            try:
                expected = from_frame(name, dtype)
            except (TypeError, ValueError):
                continue
            _same_array(reader(name, dtype), expected)
    with pytest.raises(KeyError):
        reader("absent", _F8)
    assert "f" in reader and "absent" not in reader


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


def test_column_reader_with_repeated_names_goes_the_public_way() -> None:
    frame = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "a", "b"])
    reader = _Columns(frame)
    assert reader.stored == {}
    _same_array(reader("b", _F8), frame["b"].to_numpy("float64"))


def test_nan_to_num_is_numpys_bit_for_bit() -> None:
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e308, -5.5, 2.0**-1074])
    _same_array(_nan_to_num(values), np.nan_to_num(values))
    _same_array(_nan_to_num(values.reshape(2, 4)), np.nan_to_num(values.reshape(2, 4)))


def _factorized_codes(ids: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    codes, _ = pd.factorize(np.concatenate([ids, *arrays]))
    codes = np.where(codes < len(ids), codes, -1)
    out, at = [], len(ids)
    for arr in arrays:
        out.append(codes[at : at + len(arr)])
        at += len(arr)
    return out


def test_one_project_codes_equal_factorize() -> None:
    ids = np.array(["P-1"], dtype=object)
    others = [
        np.array(["P-1", "P-2", None, np.nan, np.str_("P-1"), 1, "", "p-1"], dtype=object),
        np.array([], dtype=object),
        np.array(["P-1", pd.NA], dtype=object),  # does not compare: factorize decides
    ]
    _, codes = _project_codes(ids, *others)
    for got, expected in zip(codes, _factorized_codes(ids, *others), strict=True):
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)
    with pytest.raises(ValueError, match="unique and present"):
        _project_codes(np.array([None], dtype=object), others[0])


def test_few_row_type_codes_equal_factorize() -> None:
    context = prepare_context(portfolio_context(random_portfolio(40, seed=2), [day(1500)]))
    assert context.string_types
    types = np.array(
        ["it", "rail", "building", None, np.nan, "unknown", np.str_("rail"), 3], dtype=object
    )
    few = _type_codes(context, types)
    many = _type_codes(context, np.tile(types, 1000))  # past the few-row limit: factorize
    assert np.array_equal(few, many[: len(types)])
    assert few.tolist()[3:6] == [len(context.types)] * 3  # None, NaN, unknown: the fallback
    with_na = np.array(["it", pd.NA], dtype=object)
    assert (
        _type_codes(context, with_na).tolist()
        == _type_codes(context, np.tile(with_na, 3000)).tolist()[:2]
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


def test_feature_columns_are_the_frame_unframed() -> None:
    portfolio = random_portfolio(30, seed=6)
    rows = pd.DataFrame({"project_id": portfolio.projects["project_id"], "as_of": day(1000)})
    context = prepare_context(portfolio_context(portfolio, [day(1000)]))
    columns = build_feature_columns(portfolio, rows, context=context)
    frame = build_features(portfolio, rows, context=context)
    assert list(columns.names) == list(frame.columns)
    pd.testing.assert_frame_equal(columns.to_frame(), frame, check_exact=True)


def test_built_frames_do_not_share_a_column_index_name() -> None:
    portfolio = random_portfolio(5, seed=1)
    rows = pd.DataFrame({"project_id": portfolio.projects["project_id"], "as_of": day(700)})
    first = build_features(portfolio, rows)
    first.columns.name = "renamed"
    assert build_features(portfolio, rows).columns.name is None


def test_report_state_builds_every_report_feature() -> None:
    empty = np.zeros(0)
    reports = {name: empty for name in ("planned_value", "earned_value", "actual_cost")}
    reports |= {
        name: empty
        for name in (
            "percent_complete",
            "forecast_finish",
            "forecast_cost",
            "milestones_planned",
            "milestones_done",
            "open_risks",
            "open_issues",
            "rag",
        )
    }
    projects = {name: empty for name in ("ps", "pf", "pd_pos", "bac_pos")}
    state = _report_state(np.zeros(0, dtype=np.intp), empty, reports, projects)
    assert set(state) == {*_AT_LATEST_REPORT, "rank"}
