"""Point-in-time features on tiny hand-built projects, with the expected values worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from portfolio_builders import day, make_portfolio

from features.contract import Portfolio
from features.pointintime import (
    build_features,
    portfolio_context,
    snapshot,
    training_table,
)

# A 10-week project, PD = 70 days, BAC = 1000, reporting weekly. The baseline PV curve
# (cumulative, at the end of each week):
PV = [50, 150, 300, 450, 600, 750, 850, 920, 970, 1000]
EV = [40, 120, 250, 380, 480]  # first five weeks
AC = [45, 135, 280, 410, 520]
PERCENT = [4, 12, 25, 38, 48]


def _evm_portfolio(weeks: int = 5) -> Portfolio:
    project = {
        "project_id": "W",
        "project_type": "it",
        "portfolio": "north",
        "planned_start": day(0),
        "planned_finish": day(70),
        "budget": 1000.0,
    }
    reports = [
        {
            "project_id": "W",
            "report_date": day(7 * (i + 1)),
            "planned_value": float(PV[i]),
            "earned_value": float(EV[i]),
            "actual_cost": float(AC[i]),
            "percent_complete": float(PERCENT[i]),
        }
        for i in range(weeks)
    ]
    return make_portfolio([project], reports)


def _row(portfolio: Portfolio, as_of: float, project_id: str = "W") -> pd.Series:
    frame = build_features(
        portfolio, pd.DataFrame({"project_id": [project_id], "as_of": [day(as_of)]})
    )
    return frame.iloc[0]


def test_evm_indices_at_week_5_match_the_hand_computation() -> None:
    row = _row(_evm_portfolio(), as_of=35)
    # SPI = EV/PV = 480/600; CPI = EV/AC = 480/520.
    assert row["spi"] == pytest.approx(0.8)
    assert row["cpi"] == pytest.approx(480 / 520)  # 0.923077
    # Earned schedule (Lipke): PV ≤ EV = 480 for C = 4 whole weeks (PV_4 = 450 < 480 <
    # PV_5 = 600), ES = 4 + (480 − 450)/(600 − 450) = 4.2 weeks = 29.4 days.
    assert row["earned_schedule_days"] == pytest.approx(29.4)
    # AT = 5 weeks = 35 days: SPI(t) = 4.2/5 = 0.84, SV(t) = 4.2 − 5 = −0.8 weeks = −5.6 d.
    assert row["spi_t"] == pytest.approx(0.84)
    assert row["sv_t_days"] == pytest.approx(-5.6)
    # IEAC(t) = PD / SPI(t) = 70 / 0.84 = 83.33 days, 1.1905 of PD.
    assert row["ieac_t_days"] == pytest.approx(70 / 0.84)
    assert row["ieac_t_fraction"] == pytest.approx(1 / 0.84)
    # TCPI = (BAC − EV)/(BAC − AC) = 520/480 = 1.0833.
    assert row["tcpi"] == pytest.approx(520 / 480)
    # EAC by CPI = BAC/CPI = 1083.33 → 1.0833 of BAC; by CPI×SPI: AC + (BAC − EV)/(CPI·SPI)
    # = 520 + 520/(0.923077 × 0.8) = 520 + 704.17 = 1224.17 → 1.2242 of BAC.
    assert row["eac_cpi_ratio"] == pytest.approx(1000 / (480 / 520) / 1000)
    assert row["eac_cpi_spi_ratio"] == pytest.approx(1.2241667, rel=1e-6)
    assert row["spent_fraction"] == pytest.approx(0.52)
    assert row["percent_complete"] == 48
    assert row["elapsed_fraction"] == pytest.approx(0.5)
    assert row["progress_gap"] == pytest.approx(0.48 - 0.5)
    assert row["n_reports"] == 5
    assert (row["has_earned_value"], row["has_cost_data"], row["has_progress_data"]) == (1, 1, 1)


def test_earned_schedule_in_every_week_equals_lipke_in_periods() -> None:
    # ES_weeks = C + (EV − PV_C)/(PV_{C+1} − PV_C), counted from PV_0 = 0 at the start.
    expected_weeks = [
        0 + 40 / 50,  # week 1: EV 40 < PV_1 50
        1 + (120 - 50) / (150 - 50),  # week 2: 1.7
        2 + (250 - 150) / (300 - 150),  # week 3: 2.667
        3 + (380 - 300) / (450 - 300),  # week 4: 3.533
        4 + (480 - 450) / (600 - 450),  # week 5: 4.2
    ]
    portfolio = _evm_portfolio()
    rows = build_features(
        portfolio, pd.DataFrame({"project_id": "W", "as_of": [day(7 * w) for w in range(1, 6)]})
    )
    assert rows["earned_schedule_days"].to_numpy() == pytest.approx([7 * w for w in expected_weeks])
    assert rows["spi_t"].to_numpy() == pytest.approx(
        [e / w for e, w in zip(expected_weeks, range(1, 6), strict=True)]
    )


def test_trends_over_the_last_reports() -> None:
    row = _row(_evm_portfolio(), as_of=35)
    spi = [e / p for e, p in zip(EV, PV, strict=False)]  # 0.8, 0.8, 0.8333, 0.8444, 0.8
    # Equally spaced weekly reports: the slope over 3 is (last − first) / 2 weeks.
    assert row["spi_change_3"] == pytest.approx(spi[4] - spi[2])
    assert row["spi_slope_3"] == pytest.approx((spi[4] - spi[2]) / 2)
    assert math.isnan(row["spi_slope_6"])  # five reports only: no 6-report window
    assert math.isnan(row["spi_volatility_6"])
    # SPI rose at week 3 and week 4, fell at week 5: improved 1 week ago.
    assert row["spi_weeks_since_improved"] == pytest.approx(1.0)
    assert row["percent_complete_slope_3"] == pytest.approx((48 - 25) / 2)


def test_six_report_window_slope_and_volatility() -> None:
    # Six weekly reports whose percent complete grows 5 points a week but for one jump.
    values = [10.0, 15.0, 20.0, 30.0, 35.0, 40.0]
    reports = [
        {"project_id": "P", "report_date": day(7 * (i + 1)), "percent_complete": v}
        for i, v in enumerate(values)
    ]
    portfolio = make_portfolio(
        [{"project_id": "P", "planned_start": day(0), "planned_finish": day(100)}], reports
    )
    row = _row(portfolio, 42, "P")
    # x = 1..6 weeks, x̄ = 3.5, ȳ = 25; Σ(x − x̄)² = 17.5;
    # Σ(x − x̄)(y − ȳ) = 2.5·15 + 1.5·10 + 0.5·5 (twice) = 110 → 110/17.5 = 6.2857 per week.
    assert row["percent_complete_slope_6"] == pytest.approx(110 / 17.5)
    assert row["percent_complete_change_6"] == pytest.approx(30.0)
    # Steps 5, 5, 10, 5, 5: mean 6, sample sd = sqrt((4 × 1 + 16) / 4) = sqrt(5).
    assert row["percent_complete_volatility_6"] == pytest.approx(math.sqrt(5.0))


def test_earned_schedule_ahead_of_the_reported_curve_uses_the_baseline_end() -> None:
    reports = [
        {"project_id": "A", "report_date": day(7), "planned_value": 50.0, "earned_value": 60.0},
        {"project_id": "A", "report_date": day(14), "planned_value": 150.0, "earned_value": 200.0},
        {"project_id": "A", "report_date": day(21), "planned_value": 300.0, "earned_value": 1000.0},
    ]
    portfolio = make_portfolio(
        [{"project_id": "A", "planned_start": day(0), "planned_finish": day(70), "budget": 1000.0}],
        reports,
    )
    rows = build_features(portfolio, pd.DataFrame({"project_id": "A", "as_of": [day(14), day(21)]}))
    # Week 2: EV 200 above the last reported PV 150; toward (PD 70, BAC 1000):
    # ES = 14 + (200 − 150)/(1000 − 150) × (70 − 14) = 17.294 days.
    assert rows["earned_schedule_days"][0] == pytest.approx(14 + 50 / 850 * 56)
    assert rows["spi_t"][0] == pytest.approx((14 + 50 / 850 * 56) / 14)
    # Week 3: everything earned: ES = PD.
    assert rows["earned_schedule_days"][1] == pytest.approx(70.0)


def test_portfolio_without_cost_data_gives_nan_and_flags_not_zeros() -> None:
    reports = [
        {
            "project_id": "N",
            "report_date": day(7 * i),
            "forecast_finish": day(70),
            "milestones_done": float(i),
        }
        for i in range(1, 4)
    ]
    portfolio = make_portfolio(
        [{"project_id": "N", "planned_start": day(0), "planned_finish": day(70)}], reports
    )
    row = _row(portfolio, 21, "N")
    for name in (
        "log_budget",
        "spi",
        "cpi",
        "spi_t",
        "sv_t_days",
        "tcpi",
        "eac_cpi_ratio",
        "eac_cpi_spi_ratio",
        "spent_fraction",
        "forecast_overrun",
        "percent_complete",
        "approved_cost_impact",
        "spi_slope_3",
    ):
        assert math.isnan(row[name]), name
    for flag in ("has_budget", "has_cost_data", "has_earned_value", "has_progress_data"):
        assert row[flag] == 0.0, flag
    assert (row["has_forecast"], row["has_milestones"], row["milestones_done"]) == (1, 1, 3)


def test_changes_count_only_what_was_known_at_as_of() -> None:
    changes = [
        # raised, decided, status, kind, cost, schedule days
        ("c0", 2, 3, "withdrawn", "scope", 50.0, 3.0),
        ("c1", 10, 20, "approved", "scope", 100.0, 7.0),
        ("c2", 15, 40, "rejected", "cost", 999.0, 99.0),
        ("c3", 25, None, "pending", "scope", 10.0, 1.0),
        ("c4", 30, 32, "approved", "baseline", None, 14.0),
        ("c5", 50, 51, "approved", "cost", 500.0, 0.0),
    ]
    portfolio = make_portfolio(
        [{"project_id": "C", "planned_start": day(0), "planned_finish": day(70), "budget": 1000.0}],
        changes=[
            {
                "project_id": "C",
                "change_id": cid,
                "raised_date": day(r),
                "decided_date": None if d is None else day(d),
                "status": s,
                "kind": k,
                "cost_impact": c,
                "schedule_impact_days": sd,
            }
            for cid, r, d, s, k, c, sd in changes
        ],
    )
    at35 = _row(portfolio, 35, "C")
    assert at35["changes_raised"] == 5  # c0..c4
    assert at35["changes_approved"] == 2  # c1, c4
    assert at35["changes_pending"] == 2  # c2 (decided only at day 40), c3
    assert at35["changes_last_30d"] == 4  # raised in (5, 35]
    assert at35["changes_last_90d"] == 5
    assert at35["change_rate_per_month"] == pytest.approx(5 / (35 / 30.44))
    assert at35["approved_cost_impact"] == pytest.approx(100 / 1000)  # c4 states no cost
    assert at35["approved_schedule_impact"] == pytest.approx((7 + 14) / 70)
    assert at35["baseline_changes"] == 1
    at45 = _row(portfolio, 45, "C")
    assert at45["changes_pending"] == 1  # c2 now decided (rejected)
    assert at45["changes_approved"] == 2
    at60 = _row(portfolio, 60, "C")
    assert at60["approved_cost_impact"] == pytest.approx((100 + 500) / 1000)
    assert at60["changes_last_30d"] == 1  # c5 alone in (30, 60]
    # Early on, the rate is per month of at least one month.
    assert _row(portfolio, 12, "C")["change_rate_per_month"] == pytest.approx(2 / (30 / 30.44))


def test_approved_changes_without_any_stated_impact_give_nan_not_zero() -> None:
    portfolio = make_portfolio(
        [{"project_id": "C", "planned_start": day(0), "planned_finish": day(70), "budget": 1000.0}],
        changes=[
            {
                "project_id": "C",
                "raised_date": day(5),
                "decided_date": day(6),
                "status": "approved",
                "kind": "scope",
            }
        ],
    )
    assert math.isnan(_row(portfolio, 10, "C")["approved_cost_impact"])
    assert _row(portfolio, 4, "C")["approved_cost_impact"] == 0.0  # nothing approved yet


def test_forecast_revisions_movement_and_slip() -> None:
    forecasts = [70, 70, 77, 77, None, 84]
    reports = [
        {
            "project_id": "F",
            "report_date": day(7 * (i + 1)),
            "forecast_finish": None if f is None else day(f),
        }
        for i, f in enumerate(forecasts)
    ]
    portfolio = make_portfolio(
        [{"project_id": "F", "planned_start": day(0), "planned_finish": day(70)}], reports
    )
    rows = build_features(portfolio, pd.DataFrame({"project_id": "F", "as_of": [day(35), day(42)]}))
    assert math.isnan(rows["forecast_slip"][0])  # the latest report has no forecast
    assert rows["has_forecast"][0] == 0.0
    assert rows["forecast_revisions"][0] == 1  # 70 → 77
    assert rows["forecast_revisions"][1] == 2  # 77 → 84
    assert rows["forecast_movement"][1] == pytest.approx((7 + 7) / 70)
    assert rows["forecast_slip"][1] == pytest.approx(14 / 70)


def test_reporting_cadence_and_missing_reports() -> None:
    days = [7, 14, 21, 35, 42]  # the report of day 28 is missing
    portfolio = make_portfolio(
        [{"project_id": "G", "planned_start": day(0), "planned_finish": day(100)}],
        [{"project_id": "G", "report_date": day(d)} for d in days],
    )
    row = _row(portfolio, 45, "G")
    assert row["report_cadence_days"] == 7  # median of 7, 7, 14, 7
    assert row["missing_report_rate"] == pytest.approx(1 / (1 + 4))  # 1 missed, 4 intervals
    assert row["days_since_last_report"] == 3
    assert row["n_reports"] == 5


def test_at_approval_row_sees_no_report_and_no_change() -> None:
    portfolio = make_portfolio(
        [
            {
                "project_id": "W",
                "planned_start": day(0),
                "planned_finish": day(70),
                "budget": 1000.0,
                "project_type": "it",
            }
        ],
        [{"project_id": "W", "report_date": day(0), "earned_value": 1.0, "planned_value": 1.0}],
        [{"project_id": "W", "raised_date": day(0)}],
    )
    rows = build_features(
        portfolio,
        pd.DataFrame(
            {"project_id": ["W", "W"], "as_of": [day(0), day(0)], "at_approval": [True, False]}
        ),
    )
    approval, same_day = rows.iloc[0], rows.iloc[1]
    assert approval["n_reports"] == 0 and same_day["n_reports"] == 1
    assert approval["changes_raised"] == 0 and same_day["changes_raised"] == 1
    assert math.isnan(approval["spi"]) and approval["has_earned_value"] == 0
    assert approval["elapsed_fraction"] == 0.0
    assert approval["log_budget"] == pytest.approx(math.log1p(1000.0))


def _context_portfolio() -> Portfolio:
    def closed(pid: str, kind: str, planned_finish: int, finish: int, over: bool | None):
        return {
            "project_id": pid,
            "project_type": kind,
            "planned_start": day(0),
            "planned_finish": day(planned_finish),
            "actual_finish": day(finish),
            "budget": None if over is None else 100.0,
            "final_cost": None if over is None else (150.0 if over else 100.0),
        }

    return make_portfolio(
        [
            closed("A", "it", 50, 100, True),  # late, over
            closed("B", "it", 200, 200, False),  # on time, within
            closed("C", "rail", 100, 150, None),  # late, no cost data
            closed("D", "rail", 100, 300, True),  # late, over
            {
                "project_id": "Q",
                "project_type": "it",
                "planned_start": day(0),
                "planned_finish": day(900),
            },
            {
                "project_id": "S",
                "project_type": "space",
                "planned_start": day(0),
                "planned_finish": day(900),
            },
        ]
    )


def test_portfolio_context_uses_only_projects_closed_before_as_of() -> None:
    portfolio = _context_portfolio()
    rows = build_features(
        portfolio,
        pd.DataFrame(
            {"project_id": ["Q", "Q", "S", "Q"], "as_of": [day(250), day(200), day(250), day(50)]}
        ),
    )
    q250, q200, s250, q50 = (rows.iloc[i] for i in range(4))
    # Closed before day 250: A (it, late), B (it, on time), C (rail, late).
    assert (q250["closed_projects"], q250["type_closed_projects"]) == (3, 2)
    assert q250["closed_late_rate"] == pytest.approx(2 / 3)
    # Smoothed with m = 5: (late_it + 5 × overall) / (n_it + 5) = (1 + 10/3) / 7.
    assert q250["type_late_rate"] == pytest.approx((1 + 5 * 2 / 3) / 7)
    # Overrun labels only for A (over) and B (within): 0.5 overall and for it.
    assert q250["closed_overrun_rate"] == pytest.approx(0.5)
    assert q250["type_overrun_rate"] == pytest.approx(0.5)
    # Strictly before day 200: B (closing that very day) is not yet counted.
    assert (q200["closed_projects"], q200["type_closed_projects"]) == (2, 1)
    assert q200["type_late_rate"] == pytest.approx(1.0)
    # An unseen type gets the overall rate and a type count of 0.
    assert s250["type_closed_projects"] == 0
    assert s250["type_late_rate"] == pytest.approx(2 / 3)
    # Nothing closed yet: counts 0, rates unknown.
    assert q50["closed_projects"] == 0 and math.isnan(q50["closed_late_rate"])


def test_context_tolerances_are_passed_through() -> None:
    rows = build_features(
        _context_portfolio(),
        pd.DataFrame({"project_id": ["Q"], "as_of": [day(400)]}),
        delay_tolerance=1.5,  # only D (slip 2.0) is late at 150 % tolerance
    )
    assert rows["closed_late_rate"][0] == pytest.approx(1 / 4)


def test_precomputed_context_is_used_and_matches_the_default() -> None:
    portfolio = _context_portfolio()
    request = pd.DataFrame({"project_id": ["Q", "S"], "as_of": [day(250), day(260)]})
    default = build_features(portfolio, request)
    context = portfolio_context(portfolio, [day(250), day(260)])
    pd.testing.assert_frame_equal(build_features(portfolio, request, context=context), default)
    # An older context applies to later dates: the latest context row dated ≤ as_of.
    older = portfolio_context(portfolio, [day(160)])
    later = build_features(portfolio, request, context=older)
    assert later["closed_projects"].tolist() == [2, 2]  # A and C, as at day 160


def test_training_table_rows_weights_labels_and_excluded_reports() -> None:
    reports = [{"project_id": "T", "report_date": day(d)} for d in (10, 20, 30, 40, 45)]
    reports += [{"project_id": "U", "report_date": day(d)} for d in (10, 20)]
    portfolio = make_portfolio(
        [
            {
                "project_id": "T",
                "planned_start": day(0),
                "planned_finish": day(40),
                "actual_finish": day(40),
                "budget": 10.0,
                "final_cost": 12.0,
            },
            {"project_id": "U", "planned_start": day(0), "planned_finish": day(40)},  # active
            {
                "project_id": "V",
                "planned_start": day(0),
                "planned_finish": day(40),
                "actual_finish": day(20),
                "status": "cancelled",
            },
        ],
        reports,
    )
    table = training_table(portfolio, 0.05, 0.05)
    frame = table.frame
    assert list(frame.columns[:6]) == [
        "project_id",
        "as_of",
        "weight",
        "late",
        "over_budget",
        "actual_finish",
    ]
    # T only (U running, V cancelled): approval row + reports of days 10, 20, 30; the reports
    # of days 40 (the finish) and 45 are excluded and counted.
    assert frame["project_id"].tolist() == ["T"] * 4
    assert frame["as_of"].tolist() == [day(0), day(10), day(20), day(30)]
    assert frame["n_reports"].tolist() == [0, 1, 2, 3]
    assert table.excluded_reports == 2
    assert frame["weight"].sum() == pytest.approx(1.0)
    assert frame["late"].unique().tolist() == [0.0]  # slip 0
    assert frame["over_budget"].unique().tolist() == [1.0]  # overrun 0.2
    assert table.label_counts["delay"]["cancelled"] == 1
    assert table.label_counts["delay"]["unlabelled"] == 1


def test_training_table_as_of_keeps_projects_closed_by_then() -> None:
    portfolio = make_portfolio(
        [
            {
                "project_id": "early",
                "planned_start": day(0),
                "planned_finish": day(40),
                "actual_finish": day(50),
            },
            {
                "project_id": "late",
                "planned_start": day(0),
                "planned_finish": day(40),
                "actual_finish": day(90),
            },
        ],
    )
    table = training_table(portfolio, 0.05, 0.05, as_of=day(50))
    assert table.frame["project_id"].tolist() == ["early"]
    assert table.label_counts["delay"]["unlabelled"] == 1


def test_snapshot_running_only_and_started_projects() -> None:
    base = {"planned_start": day(0), "planned_finish": day(100)}
    portfolio = make_portfolio(
        [
            {"project_id": "running", **base},
            {"project_id": "on-hold", **base, "status": "on_hold"},
            {"project_id": "not-started", "planned_start": day(60), "planned_finish": day(100)},
            {"project_id": "started-late", **base, "actual_start": day(70)},
            {"project_id": "finished", **base, "actual_finish": day(40)},
            {"project_id": "finishes-later", **base, "actual_finish": day(80)},
            {"project_id": "cancelled", **base, "status": "cancelled"},
        ]
    )
    running = snapshot(portfolio, day(50))
    assert running["project_id"].tolist() == ["running", "on-hold", "finishes-later"]
    assert (running["as_of"] == day(50)).all()
    everything = snapshot(portfolio, day(50), running_only=False)
    assert everything["project_id"].tolist() == [
        "running",
        "on-hold",
        "finished",
        "finishes-later",
        "cancelled",
    ]


def test_extra_attributes_numeric_and_categorical() -> None:
    portfolio = make_portfolio(
        [
            {
                "project_id": "X",
                "planned_start": day(0),
                "planned_finish": day(10),
                "team_size": 7,
                "vendor": "acme",
            },
            {
                "project_id": "Y",
                "planned_start": day(0),
                "planned_finish": day(10),
                "team_size": None,
                "vendor": None,
            },
        ],
        extra_attributes=["team_size", "vendor"],
    )
    rows = build_features(portfolio, pd.DataFrame({"project_id": ["X", "Y"], "as_of": day(5)}))
    assert rows.columns[-2:].tolist() == ["team_size", "vendor"]
    assert rows["team_size"].dtype == np.float64
    assert rows["vendor"].dtype == object
    assert rows["team_size"][0] == 7 and math.isnan(rows["team_size"][1])
    assert rows["vendor"].tolist() == ["acme", None]


def test_unknown_project_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in the portfolio"):
        build_features(_evm_portfolio(), pd.DataFrame({"project_id": ["nope"], "as_of": [day(1)]}))
