"""Unit tests of the drift core on small hand-built frames (no model, no MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import DriftInputError, check_drift, match_stages, render_html
from monitoring.stages import stage_of

COLUMNS = ["spi", "cpi", "log_budget", "project_type", "has_cost_data", "elapsed_fraction"]
CATEGORICAL = ["project_type", "has_cost_data"]


def _frame(n: int, seed: int, budget_shift: float = 0.0, it_share: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rest = 1.0 - it_share
    kinds = rng.choice(["it", "construction", "rail"], n, p=[it_share, 0.6 * rest, 0.4 * rest])
    return pd.DataFrame(
        {
            "spi": rng.normal(0.95, 0.1, n),
            "cpi": rng.normal(0.97, 0.08, n),
            "log_budget": rng.normal(14 + budget_shift, 1.0, n),
            "project_type": kinds,
            "has_cost_data": (rng.uniform(size=n) < 0.9).astype(float),
            "elapsed_fraction": rng.uniform(0, 1.3, n),
            "p_late": rng.beta(2, 2, n),
        }
    )


def test_same_distribution_passes() -> None:
    result = check_drift(
        _frame(3000, 1), _frame(400, 2), COLUMNS, CATEGORICAL, prediction_columns=["p_late"]
    )
    assert result.passed, result.to_json()
    assert result.drifted_columns == []
    assert len(result.columns) == len(COLUMNS)


def test_moved_features_fail_and_are_named() -> None:
    cur = _frame(400, 2, budget_shift=0.6, it_share=0.7)
    result = check_drift(_frame(3000, 1), cur, COLUMNS, CATEGORICAL, share_threshold=0.3)
    assert not result.passed
    assert set(result.drifted_columns) == {"log_budget", "project_type"}
    share = next(t for t in result.tests if t.name == "share of drifted features")
    assert not share.passed and share.value == pytest.approx(2 / 6)
    by_name = {c.column: c for c in result.columns}
    assert by_name["project_type"].method == "jensenshannon"
    assert by_name["log_budget"].method == "wasserstein"
    assert by_name["log_budget"].statistic > by_name["log_budget"].threshold


def test_prediction_drift_is_its_own_test() -> None:
    ref, cur = _frame(3000, 1), _frame(400, 2)
    cur["p_late"] = np.clip(cur["p_late"] + 0.2, 0, 1)
    result = check_drift(ref, cur, COLUMNS, CATEGORICAL, prediction_columns=["p_late"])
    failed = [t.name for t in result.tests if not t.passed]
    assert failed == ["prediction drift: p_late"]
    assert result.predictions[0].drifted


def test_all_missing_in_both_is_excluded_not_an_error() -> None:
    ref, cur = _frame(500, 1), _frame(200, 2)
    ref["forecast_overrun"] = np.nan
    cur["forecast_overrun"] = np.nan
    result = check_drift(ref, cur, [*COLUMNS, "forecast_overrun"], CATEGORICAL)
    assert "forecast_overrun" in result.excluded
    assert "forecast_overrun" not in [c.column for c in result.columns]


@pytest.mark.parametrize("how", ["all_nan", "absent"])
def test_column_missing_in_current_is_a_clear_error(how: str) -> None:
    ref, cur = _frame(500, 1), _frame(200, 2)
    if how == "all_nan":
        cur["cpi"] = np.nan
    else:
        cur = cur.drop(columns=["cpi"])
    with pytest.raises(DriftInputError, match="cpi"):
        check_drift(ref, cur, COLUMNS, CATEGORICAL)


def test_summary_is_strict_json() -> None:
    ref, cur = _frame(500, 1), _frame(200, 2, budget_shift=1.0)
    ref.loc[0, "spi"] = np.inf  # infinities are not values; they must not leak as NaN/inf
    summary = json.loads(check_drift(ref, cur, COLUMNS, CATEGORICAL).to_json())
    assert summary["drifted_columns"][0]["column"] == "log_budget"
    assert {"statistic", "threshold", "drifted"} <= set(summary["drifted_columns"][0])
    assert summary["tests"][0]["name"] == "share of drifted features"


def test_match_stages_reproduces_the_current_mix() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"elapsed_fraction": rng.uniform(0, 1.3, 5000)})
    cur = pd.DataFrame({"elapsed_fraction": rng.beta(1, 4, 300)})  # mostly early projects
    matched, mix = match_stages(ref, cur)
    got = stage_of(matched["elapsed_fraction"]).value_counts(normalize=True)
    want = stage_of(cur["elapsed_fraction"]).value_counts(normalize=True)
    for stage, share in want.items():
        assert got.get(stage, 0.0) == pytest.approx(share, abs=0.01)
    assert matched.index.is_unique and len(matched) <= len(ref)
    assert mix["reference_rows_matched"] == len(matched)


def test_match_stages_without_reference_rows_at_a_stage_is_an_error() -> None:
    ref = pd.DataFrame({"elapsed_fraction": np.linspace(0, 0.5, 100)})
    cur = pd.DataFrame({"elapsed_fraction": [0.1, 0.9]})
    with pytest.raises(DriftInputError, match="80-100%"):
        match_stages(ref, cur)


def test_html_report_agrees_with_the_summary(tmp_path: Path) -> None:
    ref, cur = _frame(1500, 1), _frame(300, 2, budget_shift=0.6, it_share=0.7)
    result = check_drift(ref, cur, COLUMNS, CATEGORICAL, prediction_columns=["p_late"])
    report = render_html(ref, cur, result, tmp_path / "drift.html")
    assert report.path.stat().st_size > 10_000
    assert report.share_drifted == pytest.approx(result.share_drifted)
    html = report.path.read_text()
    assert "log_budget" in html and "project_type" in html
