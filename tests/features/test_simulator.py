"""The demo simulator: deterministic, inside the contract, hard the way DESIGN.md asks
(base rates in band, hidden drivers never exported, outcomes only partly foreseeable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from portfolio_builders import day, make_portfolio

from features.contract import COLUMNS, RAG_COLOURS, TABLES, column_names
from features.labels import label_projects
from features.loading import load_portfolio, write_portfolio
from features.pointintime import build_features, training_rows
from features.simulator import DEFAULT_TODAY, Simulation, base_rates, simulate_portfolio

HIDDEN_DRIVERS = ("capability", "scope_volatility", "vendor_reliability", "complexity")


@pytest.fixture(scope="module")
def small() -> Simulation:
    return simulate_portfolio(300, seed=3)


@pytest.fixture(scope="module")
def standard() -> Simulation:
    """The portfolio the docs and the demo talk about: 2000 projects, seed 7."""
    return simulate_portfolio(2000, seed=7)


def _tables(sim: Simulation) -> dict[str, pd.DataFrame]:
    p = sim.portfolio
    return {"projects": p.projects, "status_reports": p.status_reports, "changes": p.changes}


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula (ties get average ranks)."""
    ranks = pd.Series(score).rank().to_numpy()
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames_and_files(small: Simulation, tmp_path: Path) -> None:
    again = simulate_portfolio(300, seed=3)
    for name, frame in _tables(small).items():
        pd.testing.assert_frame_equal(frame, _tables(again)[name], check_exact=True)
    pd.testing.assert_frame_equal(small.hidden, again.hidden, check_exact=True)
    first = write_portfolio(small.portfolio, tmp_path / "a")
    second = write_portfolio(again.portfolio, tmp_path / "b")
    for table in TABLES:
        assert first[table].read_bytes() == second[table].read_bytes(), table


def test_another_seed_gives_another_portfolio(small: Simulation) -> None:
    other = simulate_portfolio(300, seed=4)
    assert not small.portfolio.projects["budget"].equals(other.portfolio.projects["budget"])
    assert len(small.portfolio.status_reports) != len(other.portfolio.status_reports)


def test_today_is_fixed_not_the_wall_clock(small: Simulation) -> None:
    assert small.today == DEFAULT_TODAY
    earlier = simulate_portfolio(50, seed=3, today=DEFAULT_TODAY.replace(year=2020))
    assert earlier.portfolio.status_reports["report_date"].max() <= pd.Timestamp("2020-06-30")


# ------------------------------------------------------------------------------- contract


def test_tables_have_the_contract_columns_and_dtypes(small: Simulation) -> None:
    for name, frame in _tables(small).items():
        assert list(frame.columns) == column_names(name)
        for col in COLUMNS[name]:
            dtype = frame[col.name].dtype
            if col.kind == "date":
                assert dtype == "datetime64[ns]", (name, col.name)
            elif col.kind in ("number", "integer"):
                assert dtype == "float64", (name, col.name)
            else:
                assert dtype == np.dtype("O"), (name, col.name)


def test_values_obey_the_contract(small: Simulation) -> None:
    projects, reports, changes = _tables(small).values()
    today = pd.Timestamp(small.today)
    assert projects["project_id"].is_unique
    assert projects["project_id"].str.fullmatch(r"P-\d{5}").all()
    for name, frame in _tables(small).items():
        for col in COLUMNS[name]:
            values = frame[col.name].dropna()
            if col.minimum is not None:
                assert (values >= col.minimum).all(), (name, col.name)
            if col.maximum is not None:
                assert (values <= col.maximum).all(), (name, col.name)
            if col.allowed:
                assert values.isin(col.allowed).all(), (name, col.name)
            if col.kind == "integer":
                assert (values == values.round()).all(), (name, col.name)
    assert (projects["planned_finish"] > projects["planned_start"]).all()
    started = projects["actual_start"].notna()
    assert (projects.loc[started, "actual_start"] >= projects.loc[started, "planned_start"]).all()
    finished = projects["actual_finish"].notna()
    assert (projects.loc[finished, "actual_finish"] >= projects.loc[finished, "actual_start"]).all()
    assert (projects.loc[finished, "actual_finish"] <= today).all()

    assert not reports.duplicated(["project_id", "report_date"]).any()
    assert reports["project_id"].isin(projects["project_id"]).all()
    joined = reports.merge(projects, on="project_id", suffixes=("", "_project"))
    assert (joined["report_date"] >= joined["actual_start"]).all()  # NaT start: no reports
    assert (joined["report_date"] <= today).all()
    # Reports stop at the finish: none on or after it (the features layer would drop them).
    assert not (joined["report_date"] >= joined["actual_finish"]).any()
    assert (joined["milestones_done"] >= 0).all()

    assert changes["project_id"].isin(projects["project_id"]).all()
    assert changes["change_id"].is_unique
    decided = changes["decided_date"].notna()
    assert (changes.loc[decided, "decided_date"] >= changes.loc[decided, "raised_date"]).all()
    assert (changes.loc[decided, "decided_date"] <= today).all()
    assert (changes["raised_date"] <= today).all()
    assert ((changes["status"] == "pending") == ~decided).all()
    raised = changes.merge(projects, on="project_id", suffixes=("", "_project"))
    assert (raised["raised_date"] >= raised["actual_start"]).all()


def test_statuses_mix_closed_running_on_hold_and_cancelled(standard: Simulation) -> None:
    projects = standard.portfolio.projects
    counts = projects["status"].value_counts()
    assert counts["closed"] > 0.5 * len(projects)
    assert counts["active"] > 0.15 * len(projects)
    assert counts["on_hold"] > 0
    assert counts["cancelled"] > 0
    closed = projects["status"] == "closed"
    assert projects.loc[closed, ["actual_finish", "final_cost"]].notna().all().all()
    assert projects.loc[~closed, ["actual_finish", "final_cost"]].isna().all().all()
    # Running projects report up to today (a cadence plus a missed report or two).
    reports = standard.portfolio.status_reports
    last = reports.groupby("project_id")["report_date"].max()
    active = projects.loc[projects["status"] == "active", "project_id"]
    recent = last.reindex(active) >= pd.Timestamp(standard.today) - pd.Timedelta(days=90)
    assert recent.mean() > 0.9


def test_a_simulated_portfolio_loads_with_nothing_quarantined(
    small: Simulation, tmp_path: Path
) -> None:
    write_portfolio(small.portfolio, tmp_path)
    result = load_portfolio(tmp_path)
    assert len(result.quarantine) == 0, result.quarantine.head()
    assert result.portfolio.counts() == small.portfolio.counts()


def test_the_drifted_portfolio_is_valid_too(tmp_path: Path) -> None:
    write_portfolio(simulate_portfolio(300, seed=3, drift=True).portfolio, tmp_path)
    assert len(load_portfolio(tmp_path).quarantine) == 0


def test_hidden_drivers_are_never_exported(small: Simulation, tmp_path: Path) -> None:
    hidden = [c for c in small.hidden.columns if c != "project_id"]
    assert set(HIDDEN_DRIVERS) <= set(hidden)
    assert small.hidden["project_id"].tolist() == small.portfolio.projects["project_id"].tolist()
    for name, frame in _tables(small).items():
        assert not set(hidden) & set(frame.columns), name
    for path in write_portfolio(small.portfolio, tmp_path).values():
        header = path.read_text().splitlines()[0].split(",")
        assert not set(hidden) & set(header), path.name


# ----------------------------------------------------------------------------- base rates


def test_base_rates_follow_the_label_definitions_on_hand_built_projects() -> None:
    def project(
        pid: str, kind: str, finish: float | None, cost: float | None, status: str
    ) -> dict[str, object]:
        return {
            "project_id": pid,
            "project_type": kind,
            "planned_start": day(0),
            "planned_finish": day(100),
            "budget": 1000.0,
            "actual_start": day(0),
            "actual_finish": None if finish is None else day(finish),
            "final_cost": cost,
            "status": status,
        }

    portfolio = make_portfolio(
        [
            project("at-tolerance", "it", 105, 1050.0, "closed"),  # slip, overrun 0.05: not
            project("late-over", "it", 120, 1300.0, "closed"),  # slip 0.2, overrun 0.3
            project("running", "it", None, None, "active"),
            project("cancelled", "rail", None, None, "cancelled"),
            project("early-under", "rail", 90, 900.0, "closed"),  # slip −0.1, overrun −0.1
        ]
    )
    rates = base_rates(portfolio, delay_tolerance=0.05, overrun_tolerance=0.05)
    assert rates["project_type"].tolist() == ["it", "rail", "all"]
    it, rail, everything = (row for _, row in rates.iterrows())
    assert (it["projects"], it["closed"], it["running"], it["cancelled"]) == (3, 2, 1, 0)
    assert it["share_late"] == 0.5 and it["share_over_budget"] == 0.5
    assert it["median_slip"] == pytest.approx(0.125)
    assert it["median_overrun"] == pytest.approx(0.175)
    assert (rail["closed"], rail["cancelled"], rail["share_late"]) == (1, 1, 0.0)
    assert everything["projects"] == 5
    assert everything["share_late"] == pytest.approx(1 / 3)
    assert everything["mean_overrun"] == pytest.approx((0.05 + 0.3 - 0.1) / 3)


def test_base_rates_agree_with_features_labels(standard: Simulation) -> None:
    projects = standard.portfolio.projects
    labels = label_projects(projects, 0.05, 0.05)
    rates = base_rates(standard.portfolio, 0.05, 0.05).set_index("project_type")
    assert rates.loc["all", "share_late"] == pytest.approx(labels["late"].mean())
    assert rates.loc["all", "share_over_budget"] == pytest.approx(labels["over_budget"].mean())
    assert rates.loc["all", "closed"] == labels["late"].notna().sum()
    assert rates.drop(index="all")["projects"].sum() == len(projects)


def test_base_rates_for_2000_projects_seed_7_are_in_the_design_band(
    standard: Simulation,
) -> None:
    all_row = base_rates(standard.portfolio, 0.05, 0.05).set_index("project_type").loc["all"]
    assert 0.45 <= all_row["share_late"] <= 0.60
    assert 0.30 <= all_row["share_over_budget"] <= 0.45


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_base_rates_stay_in_band_for_other_seeds(seed: int) -> None:
    sim = simulate_portfolio(2000, seed=seed)
    all_row = base_rates(sim.portfolio, 0.05, 0.05).set_index("project_type").loc["all"]
    assert 0.45 <= all_row["share_late"] <= 0.60
    assert 0.30 <= all_row["share_over_budget"] <= 0.45


def test_overruns_by_type_rail_worst_on_average_it_with_the_fattest_tail() -> None:
    projects = simulate_portfolio(8000, seed=7).portfolio.projects
    closed = projects[projects["status"] == "closed"]
    overrun = (closed["final_cost"] - closed["budget"]) / closed["budget"]
    by_type = overrun.groupby(closed["project_type"])
    mean = by_type.mean()
    assert mean.idxmax() == "rail"
    assert 0.30 <= mean["rail"] <= 0.60  # Flyvbjerg: rail about +45%
    assert 0.10 <= mean["roads"] <= 0.30  # roads about +20%
    tail = by_type.quantile(0.99)
    assert tail.idxmax() == "it"
    assert tail["it"] > 2 * tail.drop("it").max()  # a black swan now and then
    assert by_type.median()["it"] < 0.05  # while the typical IT project is near budget


# -------------------------------------------------------------------- the hard parts


def test_late_shocks_hit_a_minority_after_most_of_the_plan(standard: Simulation) -> None:
    hidden = standard.hidden
    projects = standard.portfolio.projects
    planned = (projects["planned_finish"] - projects["planned_start"]).dt.days
    assert 0.1 < hidden["shocked"].mean() < 0.4
    when = (hidden["shock_day"] / planned)[hidden["shocked"]]
    assert when.median() > 0.6
    assert when.max() <= 0.85


def test_change_requests_follow_scope_volatility(standard: Simulation) -> None:
    projects = standard.portfolio.projects
    end = projects["actual_finish"].fillna(pd.Timestamp(standard.today))
    years = (end - projects["actual_start"]).dt.days / 365.25
    count = standard.portfolio.changes.groupby("project_id").size()
    rate = count.reindex(projects["project_id"]).fillna(0).to_numpy() / years.to_numpy()
    volatility = standard.hidden["scope_volatility"].to_numpy()
    assert np.nanmean(rate[volatility > 1]) > 2 * np.nanmean(rate[volatility < -1])


def test_forecasts_are_anchored_on_the_baseline_and_never_revised_back(
    standard: Simulation,
) -> None:
    projects = standard.portfolio.projects
    reports = standard.portfolio.status_reports.merge(
        projects[["project_id", "planned_start", "planned_finish"]], on="project_id"
    )
    elapsed = (reports["report_date"] - reports["planned_start"]) / (
        reports["planned_finish"] - reports["planned_start"]
    )
    labels = label_projects(projects).set_index("project_id")
    late = reports["project_id"].map(labels["late"]) == 1.0
    early_on = reports[late & (elapsed <= 0.25)]
    # Most early reports of projects that will end late still forecast the planned finish.
    assert (early_on["forecast_finish"] == early_on["planned_finish"]).mean() > 0.5
    assert (reports.groupby("project_id")["forecast_finish"].diff().dt.days.dropna() >= 0).all()


def test_reports_go_missing_more_often_on_projects_that_end_late(standard: Simulation) -> None:
    reports = standard.portfolio.status_reports
    gaps = reports.groupby("project_id")["report_date"].diff().dt.days
    cadence = gaps.groupby(reports["project_id"]).transform("min")
    missed = (gaps > 1.5 * cadence).groupby(reports["project_id"]).mean()
    labels = label_projects(standard.portfolio.projects).set_index("project_id")
    late = labels["late"].reindex(missed.index)
    assert missed[late == 1.0].mean() > 1.3 * missed[late == 0.0].mean()


_STAGES = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8))


@pytest.fixture(scope="module")
def stage_rows(standard: Simulation) -> pd.DataFrame:
    """What the models see (build_features on the training rows), one row per closed project
    per stage of the planned duration: its last report in the stage, with its labels and the
    report's status colour as a rank (green 0, amber 1, red 2)."""
    portfolio = standard.portfolio
    rows, _ = training_rows(portfolio)
    rows = rows[~rows["at_approval"]].reset_index(drop=True)
    features = build_features(portfolio, rows)
    frame = features[["project_id", "as_of", "elapsed_fraction", "spi", "cpi"]].copy()
    reports = portfolio.status_reports.rename(columns={"report_date": "as_of"})
    frame = frame.merge(reports[["project_id", "as_of", "rag"]], on=["project_id", "as_of"])
    frame["rag"] = frame["rag"].map({"green": 0.0, "amber": 1.0, "red": 2.0})
    frame["stage"] = np.digitize(frame["elapsed_fraction"], [lo for lo, _ in _STAGES]) - 1
    frame = frame[(frame["elapsed_fraction"] >= 0) & (frame["elapsed_fraction"] < 0.8)]
    last = frame.groupby(["project_id", "stage"]).tail(1)
    labels = label_projects(portfolio.projects).set_index("project_id")
    return last.join(labels[["late", "over_budget"]], on="project_id")


def _stage_auc(rows: pd.DataFrame, stage: int, score: str, target: str) -> float:
    at = rows[(rows["stage"] == stage) & rows[score].notna() & rows[target].notna()]
    sign = -1.0 if score in ("spi", "cpi") else 1.0  # low SPI / CPI, a red colour: at risk
    return _auc(sign * at[score].to_numpy(), at[target].to_numpy() == 1.0)


# The real EVM portfolio of issue 12 (29 closed projects, monthly EVM): SPI alone for late,
# CPI alone for over budget, by stage 0–20 / 20–40 / 40–60 / 60–80 %.
_REAL_SPI = (0.74, 0.74, 0.90, 0.85)
_REAL_CPI = (0.72, 0.78, 0.89, 0.84)


@pytest.mark.parametrize("stage", range(4))
def test_spi_and_cpi_alone_tell_what_they_tell_on_a_real_evm_portfolio(
    stage_rows: pd.DataFrame, stage: int
) -> None:
    spi = _stage_auc(stage_rows, stage, "spi", "late")
    cpi = _stage_auc(stage_rows, stage, "cpi", "over_budget")
    # Within 0.10 of the real portfolio's figures: one seed here (bench/bench_rules.py gives
    # the median over seeds, within 0.07), and the real figures' own standard error is ~0.09
    # with 29 projects. DESIGN: above 0.95 early would mean the simulator leaks.
    assert abs(spi - _REAL_SPI[stage]) <= 0.10, spi
    assert abs(cpi - _REAL_CPI[stage]) <= 0.10, cpi
    assert max(spi, cpi) < 0.95


def test_outcomes_grow_clearer_as_the_work_proceeds(stage_rows: pd.DataFrame) -> None:
    for score, target in (("spi", "late"), ("cpi", "over_budget")):
        first, last = (_stage_auc(stage_rows, s, score, target) for s in (0, 3))
        assert last > first + 0.08, (score, first, last)


def test_the_status_colour_tells_less_than_spi_and_cpi(stage_rows: pd.DataFrame) -> None:
    """The PM's colour lags and flatters: informative, but weaker than the indices it is
    read from, at every stage."""
    for stage in range(4):
        rag_late = _stage_auc(stage_rows, stage, "rag", "late")
        rag_over = _stage_auc(stage_rows, stage, "rag", "over_budget")
        assert 0.52 < rag_late < _stage_auc(stage_rows, stage, "spi", "late")
        assert 0.50 < rag_over < _stage_auc(stage_rows, stage, "cpi", "over_budget")


def test_status_colours_are_valid_mostly_green_and_absent_only_now_and_then(
    standard: Simulation,
) -> None:
    rag = standard.portfolio.status_reports["rag"]
    assert rag.dropna().isin(RAG_COLOURS).all()
    shares = rag.value_counts(normalize=True, dropna=False)
    assert 0.01 < rag.isna().mean() < 0.06
    assert 0.5 < shares["green"] < 0.75
    assert 0.1 < shares["amber"] < 0.35
    assert 0.05 < shares["red"] < shares["amber"]


def test_watermelons_projects_that_end_late_report_green_until_trouble_is_obvious(
    standard: Simulation,
) -> None:
    """Many projects that end late were green in the first fifth of the plan, some even
    with SPI already below 0.85; and a colour worsens only after trouble showed twice."""
    p = standard.portfolio
    reports = p.status_reports.merge(
        p.projects[["project_id", "planned_start", "planned_finish"]], on="project_id"
    )
    elapsed = (reports["report_date"] - reports["planned_start"]) / (
        reports["planned_finish"] - reports["planned_start"]
    )
    late = reports["project_id"].map(label_projects(p.projects).set_index("project_id")["late"])
    spi = reports["earned_value"] / reports["planned_value"]
    early_late = reports[(late == 1.0) & (elapsed.between(0.15, 0.4))]
    assert (early_late["rag"] == "green").mean() > 0.4
    behind = (late == 1.0) & elapsed.between(0.15, 0.4) & (spi < 0.85)
    assert 0.1 < (reports.loc[behind, "rag"] == "green").mean() < 0.7
    # Red straight after a green report is rare (the colour follows the smaller of this and
    # the last report's concern; a missed report in between can still make it jump).
    previous = reports.groupby("project_id")["rag"].shift()
    assert ((previous == "green") & (reports["rag"] == "red")).sum() < 0.02 * len(reports)


def test_the_last_stretch_drags_on_a_minority_and_nothing_announces_it(
    standard: Simulation, stage_rows: pd.DataFrame
) -> None:
    hidden = standard.hidden.set_index("project_id")
    dragged = hidden["tail_delay_days"] > 0
    assert 0.25 < dragged.mean() < 0.6
    # At 60–80 % of the plan, SPI barely tells which projects' last stretch will drag: only
    # through the drivers both share (complex work, weak teams), never through the drag.
    at = stage_rows[stage_rows["stage"] == 3].join(dragged.rename("dragged"), on="project_id")
    at = at[at["spi"].notna()]
    assert 0.5 < _auc(-at["spi"].to_numpy(), at["dragged"].to_numpy()) < 0.62


# ---------------------------------------------------------------------------------- drift


def test_drift_moves_the_mix_and_the_cost_level(standard: Simulation) -> None:
    drifted = simulate_portfolio(2000, seed=7, drift=True)
    before, after = standard.portfolio.projects, drifted.portfolio.projects
    it_share = (after["project_type"] == "it").mean(), (before["project_type"] == "it").mean()
    assert it_share[0] > it_share[1] + 0.05
    assert set(after["portfolio"]) - set(before["portfolio"])  # a new programme appears
    median_budget = [f.groupby("project_type")["budget"].median() for f in (before, after)]
    assert (median_budget[1] / median_budget[0]).min() > 1.4
    rates = [
        base_rates(sim.portfolio, 0.05, 0.05).set_index("project_type").loc["all"]
        for sim in (standard, drifted)
    ]
    assert rates[1]["share_over_budget"] > rates[0]["share_over_budget"] + 0.1


def test_n_projects_must_be_positive() -> None:
    with pytest.raises(ValueError, match="n_projects"):
        simulate_portfolio(0, seed=1)
