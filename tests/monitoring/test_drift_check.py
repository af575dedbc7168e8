"""Unit tests of the drift core on small hand-built frames (no model, no MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    DriftInputError,
    check_drift,
    match_stages,
    render_html,
    snapshot_reference,
    stage_of,
)

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
    assert by_name["log_budget"].method == "ks_statistic"
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


def test_small_samples_raise_the_threshold_to_the_noise_floor() -> None:
    # 40 current rows: chance alone gives KS distances near 0.25, above the 0.15 setting.
    result = check_drift(_frame(3000, 1), _frame(40, 2), COLUMNS, CATEGORICAL)
    spi = next(c for c in result.columns if c.column == "spi")
    assert spi.noise_floor > spi.base_threshold and spi.threshold == spi.noise_floor
    assert result.passed


def test_noise_floor_keeps_chance_drifts_rare() -> None:
    # Same distribution, many small draws: columns flagged by chance stay near alpha.
    ref = _frame(2000, 1)
    flagged = [
        c.drifted
        for seed in range(30)
        for c in check_drift(ref, _frame(60, 100 + seed), COLUMNS, CATEGORICAL).columns
    ]
    assert np.mean(flagged) < 0.03


def test_excluded_columns_are_listed_with_their_reason() -> None:
    ref, cur = _frame(500, 1), _frame(200, 2)
    cur["log_budget"] += 5  # would drift, but is excluded on purpose
    result = check_drift(ref, cur, COLUMNS, CATEGORICAL, exclude={"log_budget": "why not"})
    assert result.excluded["log_budget"] == "why not"
    assert "log_budget" not in [c.column for c in result.columns]


def test_snapshot_reference_keeps_the_fully_closed_cohort_and_weights_by_duration() -> None:
    rng = np.random.default_rng(5)
    n_projects, per = 400, 12
    start = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.uniform(0, 1800, n_projects), "D")
    planned = rng.choice([180.0, 540.0], n_projects)
    rows = pd.DataFrame(
        {
            "project_id": np.repeat(np.arange(n_projects), per),
            "elapsed_fraction": np.tile(np.linspace(0, 0.95, per), n_projects),
            "planned_duration_days": np.repeat(planned, per),
        }
    )
    rows["as_of"] = np.repeat(start, per) + pd.to_timedelta(
        rows["elapsed_fraction"] * rows["planned_duration_days"], unit="D"
    )
    cur = rows.sample(300, random_state=1)[["elapsed_fraction", "planned_duration_days"]]
    matched, info = snapshot_reference(rows, cur, horizon_days=600, min_rows=100, size_column=None)
    assert info["cohort"]["applied"]
    age = pd.to_timedelta(matched["elapsed_fraction"] * matched["planned_duration_days"], "D")
    assert (matched["as_of"] - age).max() <= pd.Timestamp(info["cohort"]["started_by"])
    # A snapshot catches a 540-day project three times as often as a 180-day one.
    assert (matched["planned_duration_days"] == 540.0).mean() == pytest.approx(0.75, abs=0.05)
    assert not matched.duplicated().any()


def test_unseen_categories_fail_their_own_test(tmp_path: Path) -> None:
    ref, cur = _frame(1000, 1), _frame(300, 2)
    cur.loc[cur.index[:45], "project_type"] = "nuclear"  # 15% of a type never trained on
    known = {"project_type": ["it", "construction", "rail"]}
    result = check_drift(ref, cur, COLUMNS, CATEGORICAL, known_categories=known)
    test = next(t for t in result.tests if t.name == "unseen categories: project_type")
    assert not test.passed and test.value == pytest.approx(0.15)
    assert result.context["unseen_categories"]["project_type"]["values"] == {"nuclear": 45}
    report = render_html(ref, cur, result, tmp_path / "r.html", known_categories=known)
    assert any(status == "FAIL" and "project_type" in name for name, status in report.tests.items())


def test_snapshot_reference_falls_back_to_stages_when_a_size_cell_is_empty() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame(
        {
            "project_id": np.arange(600),
            "as_of": pd.Timestamp("2020-01-01"),
            "elapsed_fraction": rng.uniform(0, 1.2, 600),
            "planned_duration_days": rng.uniform(100, 400, 600),  # no long projects at all
        }
    )
    cur = pd.DataFrame(
        {
            "elapsed_fraction": rng.uniform(0, 1.2, 90),
            "planned_duration_days": rng.uniform(100, 1200, 90),
        }
    )
    matched, info = snapshot_reference(ref, cur, min_rows=10_000)
    assert info["stages"]["size_matching"].startswith("skipped")
    assert len(matched) > 100


def test_distances_are_the_ones_evidently_reports() -> None:
    # check_drift computes KS D and Jensen-Shannon itself; the HTML report gets them from
    # Evidently's stattests: both must give one figure.
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    from monitoring.drift import NUMERIC_METHOD, js_distance, ks_distance, register_stattests

    register_stattests()
    rng = np.random.default_rng(5)
    for n_ref, n_cur, levels in [(300, 40, 3), (50, 500, 5), (20, 20, 2)]:
        names = np.array(["it", "rail", "1.0", "nan", "building"][:levels])
        ref = pd.Series(rng.choice(names, n_ref))
        cur = pd.Series(rng.choice(names[: max(1, levels - 1)], n_cur))
        js = get_stattest(ref, cur, ColumnType.Categorical, "jensenshannon")
        expected = js(ref, cur, ColumnType.Categorical, 0.1).drift_score
        assert js_distance(ref, cur) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        r, c = pd.Series(rng.normal(0, 1, n_ref)), pd.Series(rng.normal(0.3, 1.2, n_cur))
        ks = get_stattest(r, c, ColumnType.Numerical, NUMERIC_METHOD)
        assert ks(r, c, ColumnType.Numerical, 0.15).drift_score == ks_distance(
            r.to_numpy(), c.to_numpy()
        )
