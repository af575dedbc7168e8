"""`forewarn retrain` for the quantile models: a worse challenger is refused, a better one
promoted, a rerun changes nothing. Real small models on a simulated portfolio; the MLflow
store is sqlite in tmp_path, never the repository's models/."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.pointintime import training_table
from features.simulator import simulate_portfolio
from training import tracking
from training.pipeline import TrainingOptions
from training.quantile_train import default_quantile_fit, retrain_quantile_target
from training.quantiles import Calibration, Method, QuantileModel, with_outcomes

pytestmark = pytest.mark.slow

OPTIONS = TrainingOptions(
    n_bootstrap=30,
    max_trees=60,
    cv_folds=3,
    quantiles=True,
    holdout_days=365,
    min_holdout_projects=20,
)


def _shuffled_fit(
    train: pd.DataFrame,
    target: str,
    method: Method,
    calibration: Calibration,
    options: TrainingOptions,
) -> QuantileModel:
    """The method on slips shuffled across projects: a deliberately worse model."""
    rng = np.random.default_rng(0)
    per_project = train.groupby("project_id", sort=True)["slip"].first()
    shuffled = pd.Series(rng.permutation(per_project.to_numpy()), index=per_project.index)
    return default_quantile_fit(
        train.assign(slip=train["project_id"].map(shuffled)), target, method, calibration, options
    )


def test_quantile_gate_promotes_better_refuses_worse_and_a_rerun_changes_nothing(
    mlflow_store: dict[str, str],
) -> None:
    tracking.configure(mlflow_store["tracking_uri"], mlflow_store["artifact_root"], "test")
    sim = simulate_portfolio(220, seed=3)
    as_of = pd.Timestamp(sim.today).normalize()
    table = training_table(sim.portfolio, as_of=as_of).frame
    frame = with_outcomes(table, sim.portfolio.projects, as_of)

    # 1. Empty registry: the first model becomes champion, whatever it is (here, a bad one).
    first = retrain_quantile_target(
        frame, "finish", as_of, OPTIONS,
        method="conformal", fit=_shuffled_fit, recipe_name="shuffled-slips",
    )  # fmt: skip
    assert first.decision == "promoted", first.reasons
    assert any("first model" in r for r in first.reasons)
    assert "holdout" in first.gate_rows
    assert tracking.alias_version("finish", tracking.CHAMPION).version == "1"  # type: ignore[union-attr]

    # 2. The real recipe (method chosen as `forewarn train` chooses it): better on the
    #    same holdout by the interval score, so promoted; the old champion is kept aside.
    better = retrain_quantile_target(frame, "finish", as_of, OPTIONS)
    assert better.decision == "promoted", better.reasons
    assert better.champion is not None and better.challenger is not None
    assert better.champion["version"] == "1"
    assert better.challenger["interval_score"] < better.champion["interval_score"]
    assert any(r.startswith("interval score") and r.endswith("ok") for r in better.reasons)
    assert better.report is not None and better.report["quantiles"]["method"] in (
        "quantile_lgbm",
        "conformal",
    )
    champion = tracking.alias_version("finish", tracking.CHAMPION)
    assert champion is not None and champion.version == "2"
    assert champion.tags["gate_decision"] == "promoted"
    assert champion.tags["gate_champion_version"] == "1"
    recorded = json.loads(champion.tags["gate_figures"])
    assert recorded["champion"]["version"] == "1"
    assert recorded["challenger"]["interval_score"] == pytest.approx(
        better.challenger["interval_score"]
    )
    assert tracking.alias_version("finish", tracking.PREVIOUS_CHAMPION).version == "1"  # type: ignore[union-attr]

    # 3. Shuffled slips again, against the real champion: refused, with the reason.
    worse = retrain_quantile_target(
        frame, "finish", as_of, OPTIONS,
        method="conformal", fit=_shuffled_fit, recipe_name="shuffled-slips-again",
    )  # fmt: skip
    assert worse.decision == "refused", worse.reasons
    assert worse.champion is not None and worse.challenger is not None
    assert worse.challenger["interval_score"] > worse.champion["interval_score"] * (
        1 + OPTIONS.gate_interval_margin
    )
    assert any(r.startswith("interval score") and "worse by" in r for r in worse.reasons)
    assert tracking.alias_version("finish", tracking.CHAMPION).version == "2"  # type: ignore[union-attr]
    refused = tracking.alias_version("finish", tracking.CHALLENGER)
    assert refused is not None and refused.version == "3"
    assert refused.tags["gate_decision"] == "refused"
    # The served champion is the promoted model, loaded back from its text + JSON.
    loaded = tracking.load_quantiles("finish")
    assert loaded.version == "2"
    q = loaded.model.predict(frame)
    assert np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()

    # 4. The same inputs again: nothing trained, nothing moved.
    again = retrain_quantile_target(frame, "finish", as_of, OPTIONS)
    assert again.decision == "no change"
    assert "nothing to do" in again.reasons[0]
    assert len(tracking.list_versions("finish")) == 3


def test_cross_validated_gate_refits_the_champions_method_on_the_same_folds(
    mlflow_store: dict[str, str],
) -> None:
    tracking.configure(mlflow_store["tracking_uri"], mlflow_store["artifact_root"], "test")
    sim = simulate_portfolio(120, seed=4)
    as_of = pd.Timestamp(sim.today).normalize()
    frame = with_outcomes(
        training_table(sim.portfolio, as_of=as_of).frame, sim.portfolio.projects, as_of
    )
    few = TrainingOptions(n_bootstrap=30, max_trees=60, cv_folds=3, min_holdout_projects=10_000)
    first = retrain_quantile_target(frame, "finish", as_of, few, method="conformal")
    assert first.decision == "promoted"
    worse = retrain_quantile_target(
        frame, "finish", as_of, few,
        method="conformal", fit=_shuffled_fit, recipe_name="shuffled-slips",
    )  # fmt: skip
    assert "cross-validation" in worse.gate_rows
    assert any("refitted without each fold" in r for r in worse.reasons)
    assert worse.decision == "refused", worse.reasons
    assert tracking.alias_version("finish", tracking.CHAMPION).version == "1"  # type: ignore[union-attr]
