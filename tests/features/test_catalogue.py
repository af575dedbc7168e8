"""The feature catalogue: declarations, the contract with other stages, the generated page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from portfolio_builders import random_portfolio

from features.catalogue import (
    FAMILIES,
    FEATURES,
    SCHEDULE_HEALTH_FEATURES,
    categorical_names,
    feature_names,
    flag_names,
    render_markdown,
)
from features.contract import COLUMNS
from features.pointintime import build_features, training_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"

# The names docs/internals.md promises the training, serving and monitoring stages.
FIXED = [
    "elapsed_fraction",
    "percent_complete",
    "spi",
    "cpi",
    "spi_t",
    "sv_t_days",
    "forecast_slip",
    "forecast_overrun",
    "has_cost_data",
    "has_progress_data",
    "n_reports",
    "project_type",
    "portfolio",
    "planned_duration_days",
    "log_budget",
]


def test_every_feature_is_declared_once_and_completely() -> None:
    declared = (*FEATURES, *SCHEDULE_HEALTH_FEATURES)
    names = [f.name for f in declared]
    assert len(names) == len(set(names))
    contract = {f"{table}.{c.name}" for table, cols in COLUMNS.items() for c in cols}
    for f in declared:
        assert f.family in FAMILIES, f.name
        assert f.kind in ("numeric", "categorical", "flag"), f.name
        assert f.definition and f.unit, f.name
        assert f.inputs and set(f.inputs) <= contract, (f.name, set(f.inputs) - contract)
    assert {f.family for f in declared} == set(FAMILIES)
    assert {f.family for f in SCHEDULE_HEALTH_FEATURES} == {"schedule"}


def test_fixed_names_of_the_internals_contract_exist() -> None:
    assert set(FIXED) <= set(feature_names())


def test_flags_are_named_has_and_listed() -> None:
    assert all(name.startswith("has_") for name in flag_names())
    assert {"has_cost_data", "has_progress_data", "has_budget"} <= set(flag_names())


def test_the_built_frame_has_exactly_the_declared_columns_in_order() -> None:
    portfolio = random_portfolio(10, seed=2)
    table = training_table(portfolio, 0.05, 0.05).frame
    expected = [
        "project_id",
        "as_of",
        "weight",
        "late",
        "over_budget",
        "actual_finish",
        *feature_names(portfolio.extra_attributes),
    ]
    assert list(table.columns) == expected
    numeric = [f.name for f in FEATURES if f.kind != "categorical"]
    assert (table[numeric].dtypes == "float64").all()
    assert all(table[c].dtype == "object" for c in ("project_type", "portfolio"))
    flags = table[flag_names()].to_numpy()
    assert set(pd.unique(flags.ravel())) <= {0.0, 1.0}


def test_categorical_names_tell_extra_attributes_apart_by_their_data() -> None:
    assert categorical_names() == ["project_type", "portfolio"]
    portfolio = random_portfolio(5, seed=0)
    frame = build_features(
        portfolio,
        pd.DataFrame(
            {"project_id": portfolio.projects["project_id"], "as_of": pd.Timestamp("2023-01-01")}
        ),
    )
    assert categorical_names(["team_size", "vendor"], frame) == [
        "project_type",
        "portfolio",
        "vendor",
    ]
    with pytest.raises(ValueError, match="frame"):
        categorical_names(["vendor"])


def test_an_extra_attribute_may_not_shadow_a_feature() -> None:
    with pytest.raises(ValueError, match="built-in feature"):
        feature_names(["spi"])


def test_docs_features_md_is_up_to_date() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), (
        "docs/features.md is stale: run `python -m features.catalogue > docs/features.md`"
    )


def test_rendered_page_lists_every_feature() -> None:
    page = render_markdown()
    for f in FEATURES:
        assert f"| `{f.name}` |" in page
