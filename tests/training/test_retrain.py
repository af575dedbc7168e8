"""Retraining: a worse challenger is refused with reasons, a better one promoted, a rerun
changes nothing. Every MLflow store here is sqlite in tmp_path, never the repo's models/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from training import tracking
from training.models import RiskModel
from training.pipeline import TrainingOptions, default_fit, retrain_target

OPTIONS = TrainingOptions(
    n_bootstrap=30,
    plots=False,
    max_trees=60,
    holdout_days=182,
    min_holdout_projects=20,
    reference_rows=500,
)


def _shuffled_fit(train: pd.DataFrame, target: str, options: TrainingOptions) -> RiskModel:
    """The recipe on labels shuffled across projects: a deliberately worse challenger."""
    rng = np.random.default_rng(0)
    per_project = train.groupby("project_id", sort=True)["late"].first()
    shuffled = pd.Series(rng.permutation(per_project.to_numpy()), index=per_project.index)
    return default_fit(train.assign(late=train["project_id"].map(shuffled)), target, options)


def _known_at(table: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """What `training_table(..., as_of=...)` holds: projects closed by as_of."""
    return table.loc[table["actual_finish"] <= as_of].reset_index(drop=True)


@pytest.fixture
def store(mlflow_store: dict[str, str]) -> dict[str, str]:
    tracking.configure(mlflow_store["tracking_uri"], mlflow_store["artifact_root"], "test")
    return mlflow_store


def test_gate_refuses_worse_promotes_better_and_a_rerun_changes_nothing(
    store: dict[str, str], synthetic_table: Callable[..., pd.DataFrame]
) -> None:
    # The world changes in mid-2019 (one portfolio starts slipping badly): a champion
    # trained in autumn 2019 cannot know it, a challenger trained two years later can.
    table = synthetic_table(400, seed=21, span_days=1200, shift_start="2019-06-01")
    closes = table.groupby("project_id")["actual_finish"].first().sort_values()
    early = pd.Timestamp(closes.iloc[90]).normalize()  # 91 projects known (autumn 2019)
    later = pd.Timestamp(closes.iloc[330]).normalize()  # 331 projects known (autumn 2021)

    # 1. Empty registry: the first model becomes champion. Its holdout is too small for
    #    these options, so the gate's figures come from grouped cross-validation.
    first = retrain_target(
        _known_at(table, early), "delay", early, replace(OPTIONS, min_holdout_projects=1000)
    )
    assert first.decision == "promoted"
    assert "cross-validation" in first.gate_rows
    assert any("first model" in r for r in first.reasons)
    champion = tracking.alias_version("delay", tracking.CHAMPION)
    assert champion is not None and champion.version == "1"

    # 2. A challenger trained on shuffled labels, later: refused, with reasons recorded.
    worse = retrain_target(
        _known_at(table, later), "delay", later, OPTIONS,
        fit=_shuffled_fit, recipe_name="shuffled-labels",
    )  # fmt: skip
    assert worse.decision == "refused"
    assert worse.champion is not None and worse.challenger is not None
    assert worse.challenger["auc"] < worse.champion["auc"] - OPTIONS.gate_auc_margin
    assert any(r.startswith("AUC") and "worse by" in r for r in worse.reasons)
    assert "holdout" in worse.gate_rows
    assert tracking.alias_version("delay", tracking.CHAMPION).version == "1"  # type: ignore[union-attr]
    refused = tracking.alias_version("delay", tracking.CHALLENGER)
    assert refused is not None and refused.version == "2"
    assert refused.tags["gate_decision"] == "refused"
    assert "worse by" in refused.tags["gate_reasons"]

    # 3. The proper recipe on the same data: better than the champion, promoted.
    better = retrain_target(_known_at(table, later), "delay", later, OPTIONS)
    assert better.decision == "promoted", better.reasons
    assert better.challenger is not None and better.champion is not None
    assert better.challenger["auc"] > better.champion["auc"]
    assert better.challenger["brier"] < better.champion["brier"]
    champion = tracking.alias_version("delay", tracking.CHAMPION)
    assert champion is not None and champion.version == "3"
    previous = tracking.alias_version("delay", tracking.PREVIOUS_CHAMPION)
    assert previous is not None and previous.version == "1"
    assert champion.tags["gate_decision"] == "promoted"
    assert champion.tags["fingerprint"] == better.fingerprint

    # 4. The same inputs again: no change, no new version, no second promotion.
    again = retrain_target(_known_at(table, later), "delay", later, OPTIONS)
    assert again.decision == "no change"
    versions = tracking.list_versions("delay")
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert [v.aliases for v in versions] == [["previous-champion"], [], ["challenger", "champion"]]
    assert tracking.alias_version("delay", tracking.CHAMPION).version == "3"  # type: ignore[union-attr]

    # The champion loads by alias as the model that was registered.
    loaded = tracking.load_model("delay", tracking.CHAMPION)
    assert loaded.version == "3"
    assert loaded.tags["verdict"] in ("better", "cant_tell", "worse")


def test_a_target_without_labels_is_skipped(
    store: dict[str, str], synthetic_table: Callable[..., pd.DataFrame]
) -> None:
    table = synthetic_table(60, seed=3, with_cost=False)
    result = retrain_target(table, "overrun", pd.Timestamp("2030-01-01"), OPTIONS)
    assert result.decision == "skipped"
    assert "no cost data" in result.reasons[0]
    assert tracking.alias_version("overrun", tracking.CHAMPION) is None


def test_a_recipe_change_is_promoted_only_when_the_same_folds_say_it_is_not_worse(
    store: dict[str, str], synthetic_table: Callable[..., pd.DataFrame]
) -> None:
    from training.pipeline import recipe_fit

    # Lateness that the SPI does not see (the project type): boosting can learn it.
    table = synthetic_table(160, seed=8)
    late = (table["project_type"] == "it").astype(float)
    table = table.assign(late=late.groupby(table["project_id"]).transform("first"))
    as_of = pd.Timestamp(table["actual_finish"].max()).normalize()
    options = replace(OPTIONS, min_holdout_projects=1000)  # the gate cross-validates

    first = retrain_target(
        table, "delay", as_of, options, fit=recipe_fit(("rule",)), recipe_name="rule"
    )
    assert first.decision == "promoted"
    assert tracking.load_model("delay", tracking.CHAMPION).model.recipe == "rule"

    # Same rows, richer recipes: both scored out of fold on the same folds.
    richer = retrain_target(
        table, "delay", as_of, options,
        fit=recipe_fit(("rule", "boost_from_rule", "lightgbm")), recipe_name="boosting",
    )  # fmt: skip
    assert any("same folds" in r for r in richer.reasons), richer.reasons
    assert richer.champion is not None and richer.challenger is not None
    assert richer.challenger["auc"] > richer.champion["auc"]
    assert richer.decision == "promoted", richer.reasons
    assert tracking.load_model("delay", tracking.CHAMPION).model.recipe != "rule"

    # Back to the rule alone: worse on the same folds, refused.
    back = retrain_target(
        table, "delay", as_of, options, fit=recipe_fit(("rule",)), recipe_name="rule-again"
    )
    assert back.decision == "refused", back.reasons
    assert tracking.load_model("delay", tracking.CHAMPION).model.recipe != "rule"
