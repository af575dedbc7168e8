"""Schedule-health features (contract v1.1 columns `forewarn import` writes): in the feature
table only when the reports carry them, each as it stood at the latest report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from portfolio_builders import day, make_portfolio

from features.catalogue import (
    FEATURE_NAMES,
    SCHEDULE_HEALTH_FEATURES,
    SCHEDULE_HEALTH_NAMES,
    feature_names,
    flag_names,
)
from features.contract import Portfolio
from features.pointintime import build_features, training_table
from training.models import encode_features


def _portfolio(health: bool) -> Portfolio:
    projects = [
        {
            "project_id": p,
            "planned_start": day(0),
            "planned_finish": day(70),
            "budget": 1000.0,
            "actual_finish": day(80) if p == "A" else None,
            "final_cost": 1100.0 if p == "A" else None,
        }
        for p in ("A", "B")
    ]
    reports = [
        {"project_id": "A", "report_date": day(7), "percent_complete": 10.0},
        {"project_id": "A", "report_date": day(14), "percent_complete": 20.0},
        {"project_id": "A", "report_date": day(21), "percent_complete": 30.0},
        {"project_id": "B", "report_date": day(7), "percent_complete": 5.0},
    ]
    if health:
        # A: BEI falls week by week; the third report has no schedule health at all.
        reports[0] |= {"bei": 1.0, "dcma_logic": 0.02, "cpli": 1.1}
        reports[1] |= {"bei": 0.8, "dcma_logic": 0.05, "cpli": 0.9}
    return make_portfolio(projects, reports)


def _rows(*pairs: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"project_id": [p for p, _ in pairs], "as_of": [day(d) for _, d in pairs]})


def test_without_schedule_health_the_table_is_the_fixed_catalogue() -> None:
    frame = build_features(_portfolio(health=False), _rows(("A", 15), ("B", 8)))
    assert list(frame.columns) == ["project_id", "as_of", *FEATURE_NAMES]
    assert not set(SCHEDULE_HEALTH_NAMES) & set(frame.columns)


def test_with_schedule_health_each_value_is_the_latest_reports() -> None:
    frame = build_features(
        _portfolio(health=True),
        _rows(("A", 6), ("A", 7), ("A", 13), ("A", 14), ("A", 30), ("B", 8)),
    )
    assert list(frame.columns) == ["project_id", "as_of", *feature_names(schedule_health=True)]
    # Day 6: no report yet. Days 7 and 13: the first report; 14: the second (never a later
    # one: no peeking). Day 30: the third report carries none — NaN, not the second's value.
    np.testing.assert_array_equal(frame["bei"], [np.nan, 1.0, 1.0, 0.8, np.nan, np.nan])
    np.testing.assert_array_equal(frame["dcma_logic"], [np.nan, 0.02, 0.02, 0.05, np.nan, np.nan])
    np.testing.assert_array_equal(frame["cpli"], [np.nan, 1.1, 1.1, 0.9, np.nan, np.nan])
    np.testing.assert_array_equal(frame["has_schedule_health"], [0, 1, 1, 1, 0, 0])
    # A check no report carries is NaN throughout, not 0.
    assert frame["dcma_leads"].isna().all()
    assert (frame[list(SCHEDULE_HEALTH_NAMES)].dtypes == "float64").all()


def test_the_family_can_be_asked_for_or_left_out() -> None:
    with_health = _portfolio(health=True)
    off = build_features(with_health, _rows(("A", 14)), schedule_health=False)
    assert list(off.columns) == ["project_id", "as_of", *FEATURE_NAMES]
    on = build_features(_portfolio(health=False), _rows(("A", 14)), schedule_health=True)
    assert on[list(SCHEDULE_HEALTH_NAMES[:-1])].isna().all(axis=None)
    assert on["has_schedule_health"].tolist() == [0.0]


def test_training_table_takes_the_family_and_at_approval_rows_see_none() -> None:
    table = training_table(_portfolio(health=True)).frame
    a = table[table["project_id"] == "A"].reset_index(drop=True)
    # The approval row, then one row per report before the actual finish (day 80).
    assert a["bei"].tolist()[:3] == pytest.approx([np.nan, 1.0, 0.8], nan_ok=True)
    assert a["has_schedule_health"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert "has_schedule_health" in flag_names(schedule_health=True)
    assert "has_schedule_health" not in flag_names()


def test_a_model_with_the_family_scores_reports_without_it() -> None:
    names = ["percent_complete", "bei", "has_schedule_health"]
    frame = build_features(_portfolio(health=False), _rows(("A", 14)))
    matrix = encode_features(frame, names, {})
    np.testing.assert_array_equal(matrix, [[20.0, np.nan, 0.0]])
    with pytest.raises(KeyError, match="spi_not_a_feature"):
        encode_features(frame, ["spi_not_a_feature"], {})


def test_the_family_is_declared_over_the_contract_columns() -> None:
    from features.contract import SCHEDULE_HEALTH_COLUMNS

    values = [f.name for f in SCHEDULE_HEALTH_FEATURES if f.kind != "flag"]
    assert values == [c.name for c in SCHEDULE_HEALTH_COLUMNS]
    with pytest.raises(ValueError, match="built-in feature"):
        feature_names(["bei"])
