"""Unit tests of the performance check on hand-built scored frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from monitoring.performance import (
    auc_matrix,
    baseline_from_figures,
    baseline_from_report,
    brier_matrix,
    check_performance,
    ece_matrix,
    stage_figures,
)
from training.baselines import BaselineScores
from training.evaluate import STAGE_LABELS, calibration_error, evaluate_target

TARGETS = {"delay": ("late", "p_late")}


def _scored(n_projects: int, seed: int) -> pd.DataFrame:
    """Projects with 5-12 report rows each; p is informative and calibrated."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(5, 13, n_projects)
    pid = np.repeat([f"P{seed}-{i}" for i in range(n_projects)], rows)
    risk = np.repeat(rng.normal(0, 1.2, n_projects), rows)
    elapsed = np.concatenate([np.linspace(0, 1.2, r) for r in rows])
    # The outcome is per project; the score sharpens as the project advances.
    late = np.repeat(
        (rng.uniform(size=n_projects) < 1 / (1 + np.exp(-risk[np.cumsum(rows) - 1]))).astype(float),
        rows,
    )
    noise = rng.normal(0, 1.5 * (1.3 - elapsed))
    p = 1 / (1 + np.exp(-(risk + noise) * 0.8))
    return pd.DataFrame(
        {
            "project_id": pid,
            "weight": np.repeat(1.0 / rows, rows),
            "elapsed_fraction": elapsed,
            "late": late,
            "p_late": p,
        }
    )


def _baseline(seed: int = 1) -> dict:
    return baseline_from_figures({"delay": stage_figures(_scored(1500, seed), "late", "p_late")})


def test_weighted_figures_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(size=500), 2)  # ties on purpose
    y = (rng.uniform(size=500) < p).astype(float)
    w = rng.uniform(0.1, 1.0, 500)
    assert auc_matrix(y, p, w)[0] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert brier_matrix(y, p, w)[0] == pytest.approx(brier_score_loss(y, p, sample_weight=w))
    assert ece_matrix(y, p, w)[0] == pytest.approx(calibration_error(y, p, w))


def test_same_model_on_fresh_projects_passes() -> None:
    result = check_performance(_scored(300, 2), _baseline(), targets=TARGETS)
    assert result.passed, result.to_dict()["failures"]
    judged = [c for c in result.checks if not c.note]
    assert len(judged) == 3 * 6  # three figures, overall and training's five stages


def test_shuffled_labels_fail_and_name_the_stage() -> None:
    scored = _scored(300, 2)
    # Shuffle outcomes between projects, keeping each project's rows together.
    outcome = scored.groupby("project_id", sort=False)["late"].first()
    shuffled = pd.Series(
        np.random.default_rng(9).permutation(outcome.to_numpy()), index=outcome.index
    )
    scored["late"] = scored["project_id"].map(shuffled)
    result = check_performance(scored, _baseline(), targets=TARGETS)
    assert not result.passed
    failed_auc = {c.stage for c in result.failures if c.metric == "auc"}
    assert "overall" in failed_auc and "80+" in failed_auc
    summary = json.loads(result.to_json())
    assert any(f.startswith("delay at stage 80+: auc") for f in summary["failures"])


def test_small_stage_is_reported_not_judged() -> None:
    scored = _scored(300, 2)
    few = scored["project_id"].isin(scored["project_id"].unique()[:10])
    scored = scored[(scored["elapsed_fraction"] < 0.8) | few].copy()
    # Make the few late-stage rows terrible: still not judged, too few projects.
    late = scored["elapsed_fraction"] >= 0.8
    scored.loc[late, "p_late"] = 1.0 - scored.loc[late, "late"]
    result = check_performance(scored, _baseline(), targets=TARGETS, min_projects=20)
    late_stage = [c for c in result.checks if c.stage == "80+"]
    assert late_stage and all(not c.failed and c.note.startswith("not judged") for c in late_stage)


def test_baseline_from_a_training_report_with_rule_comparisons() -> None:
    """The evaluation report training logs now also holds rule baselines (spi, ...), a
    `comparison` and a `verdict`: the baseline still reads the model's own figures, overall
    and at every stage, and only them."""
    rows = _scored(300, 4).rename(columns={"late": "y"})
    rng = np.random.default_rng(4)
    spi = BaselineScores(
        name="spi",
        score=rows["p_late"].to_numpy() + rng.normal(0, 0.3, len(rows)),
        probability=(rows["p_late"].to_numpy() > 0.5).astype(float),
        red=rows["p_late"].to_numpy() > 0.5,
        is_rule=True,
        description="1 - SPI",
    )
    report = evaluate_target(
        rows, rows["y"].to_numpy(), rows["p_late"].to_numpy(), {"spi": spi},
        red_threshold=0.5, n_bootstrap=50,
    )  # fmt: skip
    assert report["comparison"]["all"]["best_rule"] == "spi" and "verdict" in report
    baseline = baseline_from_report(report)
    assert set(baseline) == {"overall", *STAGE_LABELS}
    for scope, block in [("overall", report), *report["by_stage"].items()]:
        for metric in ("auc", "brier", "ece"):
            assert baseline[scope][metric] == pytest.approx(block[metric])
        assert baseline[scope]["auc_se"] > 0
    # The model's figures, not the rule's: scoring the training rows again changes nothing.
    scored = rows.rename(columns={"y": "late"})
    same = check_performance(scored, {"delay": baseline}, targets=TARGETS)
    assert same.passed
    assert all(abs(c.change) < 1e-9 for c in same.checks if c.metric == "auc")
