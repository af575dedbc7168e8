"""score_frame: the probabilities are the models', RAG follows the cut-offs, reasons not zeros."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.scoring import NO_BUDGET, SCORE_COLUMNS, explain_row, overall_rag, rag, score_frame
from training.models import RiskModel

RED, AMBER = 0.6, 0.35


@pytest.fixture(scope="module")
def scored(models: dict[str, RiskModel], features: pd.DataFrame) -> pd.DataFrame:
    return score_frame(models, features, RED, AMBER, top_drivers=3)


def test_columns_and_order(scored: pd.DataFrame, features: pd.DataFrame) -> None:
    assert list(scored.columns) == list(SCORE_COLUMNS)
    assert scored["project_id"].tolist() == features["project_id"].tolist()
    assert scored["spi"].tolist() == features["spi"].tolist()


def test_probabilities_are_the_models(
    scored: pd.DataFrame, models: dict[str, RiskModel], features: pd.DataFrame
) -> None:
    np.testing.assert_array_equal(scored["p_late"], models["delay"].predict(features))
    has_budget = features["has_budget"].to_numpy() == 1
    np.testing.assert_array_equal(
        scored["p_over_budget"][has_budget], models["overrun"].predict(features)[has_budget]
    )


def test_no_budget_gives_a_reason_not_a_number(
    scored: pd.DataFrame, features: pd.DataFrame
) -> None:
    no_budget = features["has_budget"].to_numpy() == 0
    assert no_budget.sum() > 10
    rows = scored[no_budget]
    assert rows["p_over_budget"].isna().all()
    assert (rows["rag_over_budget"] == "n/a").all()
    assert (rows["over_budget_reason"] == NO_BUDGET).all()
    assert all(d == [] for d in rows["drivers_over_budget"])
    assert rows["late_reason"].isna().all() and rows["p_late"].notna().all()
    assert (rows["rag"] == rows["rag_late"]).all()
    assert scored.loc[~no_budget, "over_budget_reason"].isna().all()


def test_rag_cut_offs() -> None:
    p = np.array([0.0, 0.3499, 0.35, 0.5999, 0.6, 1.0, np.nan])
    assert rag(p, RED, AMBER).tolist() == [
        "green", "green", "amber", "amber", "red", "red", "n/a",
    ]  # fmt: skip
    late = np.array(["green", "amber", "n/a", "n/a", "red"], dtype=object)
    over = np.array(["amber", "green", "green", "n/a", "amber"], dtype=object)
    assert overall_rag(late, over).tolist() == ["amber", "amber", "green", "n/a", "red"]


def test_drivers_are_the_largest_contributions(
    scored: pd.DataFrame, models: dict[str, RiskModel], features: pd.DataFrame
) -> None:
    contributions = models["delay"].contributions(features.head(20))[:, :-1]
    for i in range(20):
        drivers = scored["drivers_late"].iloc[i]
        assert len(drivers) == 3
        expected = np.argsort(-np.abs(contributions[i]), kind="stable")[:3]
        assert [d["feature"] for d in drivers] == [
            models["delay"].feature_names[j] for j in expected
        ]
        assert set(drivers[0]) == {"feature", "value", "contribution", "sentence"}


def test_without_drivers_the_scores_do_not_change(
    scored: pd.DataFrame, models: dict[str, RiskModel], features: pd.DataFrame
) -> None:
    bare = score_frame(models, features, RED, AMBER, top_drivers=0)
    pd.testing.assert_series_equal(bare["p_late"], scored["p_late"])
    pd.testing.assert_series_equal(bare["p_over_budget"], scored["p_over_budget"])
    assert all(d == [] for d in bare["drivers_late"])


def test_a_missing_model_is_a_reason(models: dict[str, RiskModel], features: pd.DataFrame) -> None:
    only_delay = score_frame({"delay": models["delay"]}, features.head(5), RED, AMBER, 2)
    assert only_delay["p_over_budget"].isna().all()
    assert (only_delay["over_budget_reason"] == "no overrun model is loaded").all()
    assert (only_delay["rag"] == only_delay["rag_late"]).all()


def test_explain_row_sums_to_the_margin(
    models: dict[str, RiskModel], features: pd.DataFrame
) -> None:
    row = features.iloc[[int(np.flatnonzero(features["has_budget"] == 0)[0])]]
    explained = {e["target"]: e for e in explain_row(models, row, RED, AMBER, 3)}
    for target, e in explained.items():
        total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
        assert total == pytest.approx(e["raw_margin"], abs=1e-9)
        assert e["raw_margin"] == pytest.approx(models[target].raw_margin(row)[0], abs=1e-9)
        assert len(e["contributions"]) == len(models[target].feature_names)
    assert explained["overrun"]["probability"] is None
    assert explained["overrun"]["reason"] == NO_BUDGET and explained["overrun"]["drivers"] == []
    assert explained["delay"]["probability"] == pytest.approx(models["delay"].predict(row)[0])
    assert len(explained["delay"]["drivers"]) == 3
