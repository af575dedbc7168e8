"""Evaluation metrics on tiny hand-made arrays, stages, early warning, project bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.baselines import BaselineScores
from training.evaluate import (
    ProjectBootstrap,
    brier,
    calibration_error,
    early_warning,
    evaluate_target,
    pr_auc,
    render_markdown,
    stage_labels,
    threshold_for_false_alarms,
    verdict,
    weighted_auc,
)


def test_auc_by_hand_with_a_tie() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.5, 0.9])
    # Pairs (pos, neg): (0.5 vs 0.1) win, (0.5 vs 0.5) tie, (0.9 vs both) win: 3.5 / 4.
    assert weighted_auc(y, s, np.ones(4)) == pytest.approx(0.875)


def test_weighted_auc_equals_repeating_rows() -> None:
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.2, 0.3, 0.6, 0.7, 0.1])
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0])
    repeated = np.repeat(np.arange(5), w.astype(int))
    assert weighted_auc(y, s, w) == pytest.approx(
        weighted_auc(y[repeated], s[repeated], np.ones(len(repeated)))
    )
    assert weighted_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w))


def test_auc_is_none_with_one_outcome() -> None:
    assert weighted_auc(np.ones(3), np.array([0.1, 0.2, 0.3]), np.ones(3)) is None


def test_pr_auc_brier_and_ece_by_hand() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.1, 0.6, 0.4])
    w = np.array([1.0, 1.0, 2.0, 2.0])
    assert pr_auc(y, p, w) == pytest.approx(average_precision_score(y, p, sample_weight=w))
    # Brier: (0.01*1 + 0.01*1 + 0.16*2 + 0.16*2) / 6
    assert brier(y, p, w) == pytest.approx(0.66 / 6)
    # ECE over 10 bins: 0.1 bin |0-0.1| w1, 0.4 bin |0-0.4| w2, 0.6 bin |1-0.6| w2,
    # 0.9 bin |1-0.9| w1 → (0.1 + 0.8 + 0.8 + 0.1) / 6
    assert calibration_error(y, p, w) == pytest.approx(1.8 / 6)


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert calibration_error(y, p, np.ones(8)) == pytest.approx(0.0)


def test_stage_labels_cover_the_bands() -> None:
    elapsed = np.array([-0.1, 0.0, 0.19, 0.2, 0.45, 0.6, 0.79, 0.8, 1.7, np.nan])
    assert list(stage_labels(elapsed)) == [
        "0-20", "0-20", "0-20", "20-40", "40-60", "60-80", "60-80", "80+", "80+", "0-20",
    ]  # fmt: skip


def test_early_warning_by_hand() -> None:
    # L1 late, first red at 0.3; L2 late, never red; L3 late, red at 0.1; N1 on time, red
    # once; N2 on time, never red.
    frame = pd.DataFrame(
        {
            "project_id": ["L1"] * 3 + ["L2"] * 2 + ["L3"] * 2 + ["N1"] * 2 + ["N2"] * 2,
            "elapsed": [0.1, 0.3, 0.6, 0.2, 0.7, 0.1, 0.4, 0.5, 0.9, 0.2, 0.8],
            "y": [1] * 7 + [0] * 4,
            "red": [0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0],
        }
    )
    ew = early_warning(
        frame["project_id"].to_numpy(),
        frame["elapsed"].to_numpy(),
        frame["y"].to_numpy(),
        frame["red"].to_numpy().astype(bool),
    )
    assert ew["n_positive_projects"] == 3
    assert ew["detected_share"] == pytest.approx(2 / 3)
    assert ew["median_first_red"] == pytest.approx(0.3)  # of 0.1, 0.3, never
    assert ew["median_first_red_detected"] == pytest.approx(0.2)
    assert ew["detected_by_50_share"] == pytest.approx(2 / 3)
    assert ew["false_alarm_share"] == pytest.approx(0.5)


def test_bootstrap_resamples_projects_not_rows() -> None:
    rng = np.random.default_rng(0)
    n = 80
    y = rng.integers(0, 2, n).astype(float)
    s = y + rng.normal(0, 1.2, n)
    ids = np.array([f"P{i}" for i in range(n)])
    one_row = ProjectBootstrap(ids, 200, seed=1).auc_samples(y, s, np.ones(n), np.ones(n, bool))
    # The same projects with each row copied 10 times: resampling rows would shrink the
    # interval by about sqrt(10); resampling projects leaves it as it was.
    k = 10
    ids10, y10, s10 = np.repeat(ids, k), np.repeat(y, k), np.repeat(s, k)
    ten_rows = ProjectBootstrap(ids10, 200, seed=1).auc_samples(
        y10, s10, np.full(n * k, 1 / k), np.ones(n * k, bool)
    )
    assert np.std(ten_rows) == pytest.approx(np.std(one_row), rel=1e-9)


def _rows(n_projects: int = 40, per: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"P{i}" for i in range(n_projects)], per)
    y = np.repeat(rng.integers(0, 2, n_projects), per).astype(float)
    return pd.DataFrame(
        {
            "project_id": ids,
            "elapsed_fraction": np.tile(np.linspace(0, 1, per), n_projects),
            "weight": 1.0 / per,
            "y": y,
            "p": np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, len(ids)), 0.01, 0.99),
        }
    )


def test_evaluate_target_reports_null_for_baselines_not_applicable() -> None:
    rows = _rows()
    no_input = BaselineScores(
        name="evm_rule",
        score=np.full(len(rows), np.nan),
        probability=np.full(len(rows), np.nan),
        red=np.zeros(len(rows), bool),
        is_rule=True,
        description="",
    )
    report = evaluate_target(
        rows, rows["y"].to_numpy(), rows["p"].to_numpy(),
        {"evm_rule": no_input, "pm_forecast": None}, red_threshold=0.6, n_bootstrap=20,
    )  # fmt: skip
    assert report["baselines"]["evm_rule"] is None
    assert report["baselines"]["pm_forecast"] is None
    assert report["verdict"] is None and report["comparison"]["all"]["best_rule"] is None
    assert set(report["by_stage"]) == {"0-20", "20-40", "40-60", "60-80", "80+"}
    assert report["n_projects"] == 40 and report["n_rows"] == 200
    assert "not applicable" in render_markdown({"delay": report})


def test_evaluate_target_compares_on_the_rules_rows() -> None:
    rows = _rows(seed=1)
    score = rows["p"].to_numpy() * 0 + np.random.default_rng(2).random(len(rows))
    score[::2] = np.nan  # the rule has inputs on half the rows
    rule = BaselineScores(
        name="pm_forecast",
        score=score,
        probability=np.where(np.isnan(score), np.nan, (score > 0.5).astype(float)),
        red=score > 0.5,
        is_rule=True,
        description="",
    )
    report = evaluate_target(
        rows, rows["y"].to_numpy(), rows["p"].to_numpy(), {"pm_forecast": rule},
        red_threshold=0.6, n_bootstrap=50,
    )  # fmt: skip
    entry = report["baselines"]["pm_forecast"]
    half = ~np.isnan(score)
    expected = weighted_auc(
        rows["y"].to_numpy()[half], rows["p"].to_numpy()[half], rows["weight"].to_numpy()[half]
    )
    assert entry["coverage"] == pytest.approx(0.5)
    assert entry["model_auc_same_rows"] == pytest.approx(expected)
    assert entry["auc_diff"] == pytest.approx(expected - entry["auc"])
    assert report["comparison"]["all"]["best_rule"] == "pm_forecast"
    assert report["verdict"] == "better"  # a random rule loses, and the interval says so


def test_threshold_for_false_alarms_flags_at_most_that_share() -> None:
    # Negative projects' highest p: 0.9, 0.7, 0.5, 0.3; one positive at 0.8.
    ids = np.array(["N1", "N1", "N2", "N3", "N4", "P1"])
    y = np.array([0, 0, 0, 0, 0, 1.0])
    p = np.array([0.2, 0.9, 0.7, 0.5, 0.3, 0.8])
    half = threshold_for_false_alarms(ids, y, p, 0.5)
    assert 0.5 < half <= 0.7  # flags N1 and N2 only
    assert threshold_for_false_alarms(ids, y, p, 0.0) > 0.9
    assert threshold_for_false_alarms(ids, y, p, 1.0) == 0.0


def test_the_verdict_has_three_values_and_never_says_better_across_zero() -> None:
    assert verdict([0.01, 0.2]) == "better"
    assert verdict([-0.2, -0.01]) == "worse"
    assert verdict([-0.043, 0.285]) == "cant_tell"  # the interval the issue quoted
    assert verdict(None) == "cant_tell"


def test_a_model_that_is_the_rule_itself_ties_it_and_the_verdict_cannot_tell() -> None:
    rows = _rows(seed=3)
    y = rows["y"].to_numpy()
    index = y + np.random.default_rng(4).normal(0, 0.8, len(rows))
    rule = BaselineScores("spi", index, (index > 0.5).astype(float), index > 0.5, True, "")
    # The model is a monotone map of the rule's index: same ranking, same AUC.
    model_p = 1 / (1 + np.exp(-2 * index))
    report = evaluate_target(rows, y, model_p, {"spi": rule}, red_threshold=0.6, n_bootstrap=50)
    assert report["comparison"]["all"]["auc_diff"] == pytest.approx(0.0, abs=1e-12)
    assert report["verdict"] == "cant_tell"
    for stage in report["comparison"]["by_stage"].values():
        assert stage["best_rule"] == "spi" and stage["verdict"] == "cant_tell"


def test_auc_within_folds_ignores_a_shift_between_folds_models() -> None:
    # Two folds whose models rank their own projects perfectly, but the second fold's
    # model scores everything 10 higher: pooled, the ranking mixes folds; within folds, 1.
    y = np.array([0, 1, 0, 1.0])
    score = np.array([0.1, 0.2, 10.1, 10.2])
    w = np.ones(4)
    assert weighted_auc(y, score, w) == pytest.approx(0.75)
    assert weighted_auc(y, score, w, strata=np.array([0, 0, 1, 1])) == pytest.approx(1.0)
