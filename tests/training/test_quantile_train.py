"""The quantile step of `forewarn train`: registered as forewarn-finish / forewarn-cost in a
sqlite store in tmp_path, champion by alias, loaded back as text + JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from features.pointintime import training_table
from features.simulator import simulate_portfolio
from training import tracking
from training.pipeline import Store, TargetResult, TrainingOptions
from training.quantile_train import attach_quantiles
from training.quantiles import with_outcomes

pytestmark = pytest.mark.slow

OPTIONS = TrainingOptions(n_bootstrap=30, max_trees=60, cv_folds=3, quantiles=True)


def test_quantile_models_are_registered_beside_the_classifiers(
    mlflow_store: dict[str, str],
) -> None:
    portfolio = simulate_portfolio(140, seed=7).portfolio
    table = training_table(portfolio).frame
    store = Store(mlflow_store["tracking_uri"], mlflow_store["artifact_root"], "test")
    results = {t: TargetResult(t, report={}) for t in ("delay", "overrun")}
    attach_quantiles(results, table, portfolio, OPTIONS, store, None)

    frame = with_outcomes(table, portfolio.projects)
    for classifier, target in (("delay", "finish"), ("overrun", "cost")):
        report = results[classifier].report
        assert report is not None
        quantiles = report["quantiles"]
        json.dumps(quantiles, allow_nan=False)  # the CLI prints it strictly
        assert quantiles["model_version"] == "1"
        assert set(quantiles["methods"]) == {"quantile_lgbm", "conformal"}
        champion = tracking.alias_version(target, tracking.CHAMPION)
        assert champion is not None and champion.name == f"forewarn-{target}"
        loaded = tracking.load_quantiles(target)
        expected = (
            "reference_class" if quantiles["verdict_served"] == "worse" else quantiles["method"]
        )
        assert loaded.model.method == expected
        q = loaded.model.predict(frame)
        assert np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()
        assert any("quantiles" in note for note in results[classifier].notes)

    # A second training registers new versions and leaves the champions alone.
    champion_before = tracking.alias_version("finish", tracking.CHAMPION)
    again = {"delay": TargetResult("delay", report={})}
    attach_quantiles(again, table, portfolio, OPTIONS, store, None)
    assert again["delay"].report is not None
    assert int(again["delay"].report["quantiles"]["model_version"]) > 1
    after = tracking.alias_version("finish", tracking.CHAMPION)
    assert champion_before is not None and after is not None
    assert after.version == champion_before.version


def test_off_unless_asked(mlflow_store: dict[str, str]) -> None:
    portfolio = simulate_portfolio(60, seed=2).portfolio
    results = {"delay": TargetResult("delay", report={})}
    store = Store(mlflow_store["tracking_uri"], mlflow_store["artifact_root"], "test")
    attach_quantiles(
        results, training_table(portfolio).frame, portfolio, TrainingOptions(), store, None
    )
    assert results["delay"].report == {}
