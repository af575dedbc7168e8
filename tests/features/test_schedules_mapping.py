"""The import's mapping rules on hand-built snapshots (no Java): docs/import.md's formulas."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import SCHEDULE_HEALTH_COLUMNS
from features.schedules.health import CHECKS
from features.schedules.mapping import (
    DatedSnapshot,
    IdentityError,
    ImportOptions,
    data_date,
    map_snapshots,
    project_identity,
)
from features.schedules.reader import ACTIVITY_COLUMNS, RELATION_COLUMNS, Snapshot, date_in_name

T = pd.Timestamp


def _activity(uid: int, start: str, finish: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in ACTIVITY_COLUMNS}
    row.update(
        uid=uid,
        activity_id=f"A{uid}",
        name=f"Activity {uid}",
        milestone=False,
        start=T(start),
        finish=T(finish),
        baseline_start=T(start),
        baseline_finish=T(finish),
        percent_complete=0.0,
        duration_days=10.0,
        baseline_duration_days=10.0,
        total_float_days=0.0,
        resources=1,
        critical=False,
    )
    row.update(values)
    return row


def _snapshot(
    rows: list[dict[str, object]],
    day: date | None,
    file: str = "x.xer",
    code: str | None = "P1",
    links: list[tuple[int, int, str, float]] | None = None,
) -> Snapshot:
    frame = pd.DataFrame(rows, columns=list(ACTIVITY_COLUMNS))
    for col in ("start", "finish", "baseline_start", "baseline_finish", "planned_start",
                "planned_finish", "actual_start", "actual_finish"):  # fmt: skip
        frame[col] = pd.to_datetime(frame[col])
    for col in ("cost", "baseline_cost", "actual_cost", "remaining_cost", "percent_complete"):
        frame[col] = frame[col].astype("float64")
    return Snapshot(
        file=file,
        project_code=code,
        guid=None,
        title="Project one",
        application="Primavera",
        file_type="XER",
        data_date=day,
        start=None,
        finish=None,
        baseline_start=None,
        baseline_finish=None,
        baseline_cost=None,
        activities=frame,
        relations=pd.DataFrame(links or [], columns=list(RELATION_COLUMNS)),
    )


def _dated(s: Snapshot, pid: str = "P1") -> DatedSnapshot:
    assert s.data_date is not None
    return DatedSnapshot(s, pid, s.data_date, "file")


def test_pv_ev_ac_and_percent_by_hand() -> None:
    rows = [
        # 1,000 over 10 days, half elapsed on 2025-01-06, 40 % done.
        _activity(1, "2025-01-01", "2025-01-11", baseline_cost=1000.0, cost=1100.0,
                  actual_cost=450.0, percent_complete=40.0, actual_start=T("2025-01-01")),
        # 3,000 from 2025-01-11: nothing planned by the data date.
        _activity(2, "2025-01-11", "2025-01-21", baseline_cost=3000.0, cost=3000.0,
                  actual_cost=0.0),
    ]  # fmt: skip
    m = map_snapshots([_dated(_snapshot(rows, date(2025, 1, 6)))], ImportOptions())
    r = m.status_reports.iloc[0]
    assert r["planned_value"] == pytest.approx(500.0)
    assert r["earned_value"] == pytest.approx(400.0)
    assert r["actual_cost"] == pytest.approx(450.0)
    assert r["forecast_cost"] == pytest.approx(4100.0)
    assert r["percent_complete"] == pytest.approx(10.0)  # 400 / 4,000
    assert m.projects.iloc[0]["budget"] == pytest.approx(4000.0)
    assert m.notes[0].percent_complete == "cost-weighted"


def test_duration_weighted_without_costs() -> None:
    rows = [
        _activity(1, "2025-01-01", "2025-01-11", percent_complete=100.0,
                  actual_start=T("2025-01-01"), actual_finish=T("2025-01-11")),
        _activity(2, "2025-01-11", "2025-02-10", percent_complete=0.0,
                  baseline_duration_days=30.0),
    ]  # fmt: skip
    m = map_snapshots([_dated(_snapshot(rows, date(2025, 1, 12)))], ImportOptions())
    r = m.status_reports.iloc[0]
    assert r["percent_complete"] == pytest.approx(25.0)  # 10 of 40 days
    assert np.isnan(r["planned_value"]) and np.isnan(m.projects.iloc[0]["budget"])
    assert m.notes[0].percent_complete == "duration-weighted"


def test_changes_between_snapshots() -> None:
    first = [
        _activity(1, "2025-01-01", "2025-02-01", baseline_cost=1000.0, cost=1000.0),
        _activity(2, "2025-02-01", "2025-03-01", baseline_cost=1000.0, cost=1000.0),
    ]
    second = [
        first[0],
        # A2 re-baselined a month later, A3 added; duration 59 → 89 days, cost 2,000 → 3,500.
        _activity(2, "2025-03-01", "2025-04-01", baseline_cost=1000.0, cost=1500.0),
        _activity(3, "2025-03-01", "2025-03-15", baseline_cost=1000.0, cost=1000.0),
    ]
    snaps = [_snapshot(first, date(2025, 1, 10)), _snapshot(second, date(2025, 1, 17))]
    m = map_snapshots([_dated(s) for s in snaps], ImportOptions(change_threshold=0.05))
    c = m.changes.set_index("kind")
    assert sorted(c.index) == ["baseline", "cost", "schedule", "scope"]
    assert (m.changes["raised_date"] == T("2025-01-17")).all()
    assert c.loc["scope", "cost_impact"] == pytest.approx(1000.0)
    assert c.loc["baseline", "schedule_impact_days"] == pytest.approx(31.0)
    assert c.loc["schedule", "schedule_impact_days"] == pytest.approx(31.0)
    assert c.loc["cost", "cost_impact"] == pytest.approx(1500.0)
    # The project row keeps the earliest snapshot's baseline.
    assert m.projects.iloc[0]["planned_finish"] == T("2025-03-01")


def test_no_change_below_the_threshold() -> None:
    rows = [_activity(1, "2025-01-01", "2025-04-11", baseline_cost=100.0, cost=100.0)]
    later = [dict(rows[0], finish=T("2025-04-13"), cost=103.0)]  # +2 of 100 days, +3 %
    snaps = [_snapshot(rows, date(2025, 1, 10)), _snapshot(later, date(2025, 1, 17))]
    m = map_snapshots([_dated(s) for s in snaps], ImportOptions(change_threshold=0.05))
    assert m.changes.empty


def test_closed_once_every_activity_is_done() -> None:
    rows = [
        _activity(1, "2025-01-01", "2025-01-11", baseline_cost=100.0, cost=120.0,
                  actual_cost=120.0, percent_complete=100.0, actual_start=T("2025-01-02"),
                  actual_finish=T("2025-01-13")),
    ]  # fmt: skip
    m = map_snapshots([_dated(_snapshot(rows, date(2025, 1, 20)))], ImportOptions())
    p = m.projects.iloc[0]
    assert p["status"] == "closed" and p["actual_finish"] == T("2025-01-13")
    assert p["final_cost"] == pytest.approx(120.0)


def test_health_checks_by_hand() -> None:
    rows = [
        _activity(1, "2025-01-01", "2025-01-05", percent_complete=100.0,
                  actual_start=T("2025-01-01"), actual_finish=T("2025-01-05")),
        _activity(2, "2025-01-06", "2025-03-30", total_float_days=50.0,
                  baseline_duration_days=60.0, constraint="MUST_FINISH_ON", critical=True),
        _activity(3, "2025-01-08", "2025-02-01", total_float_days=-2.0, resources=0,
                  baseline_finish=T("2025-01-09")),
    ]  # fmt: skip
    links = [(1, 2, "FINISH_START", 0.0), (1, 3, "START_START", 2.0)]
    m = map_snapshots([_dated(_snapshot(rows, date(2025, 1, 10), links=links))], ImportOptions())
    r = m.status_reports.iloc[0]
    assert r["dcma_logic"] == 1.0  # A2 and A3 have no successor
    assert r["dcma_lags"] == 0.5 and r["dcma_leads"] == 0.0 and r["dcma_fs_share"] == 0.5
    assert r["dcma_hard_constraints"] == 0.5
    assert r["dcma_high_float"] == 0.5 and r["dcma_negative_float"] == 0.5
    assert r["dcma_high_duration"] == 0.5
    assert r["dcma_resources"] == 0.5
    # Due by 2025-01-10: A1 (done on time) and A3 (baseline 01-09, forecast 02-01: late).
    assert r["dcma_missed"] == 0.5 and r["bei"] == 0.5
    # A2 and A3 are not started, yet their starts (01-06, 01-08) are before the data date.
    assert r["dcma_invalid_dates"] == pytest.approx(2 / 3)
    assert r["dcma_critical_path_test"] == 1.0  # A2 finishes the project
    # CPL 2025-01-10 → 03-30 = 79 days; TF = baseline finish 03-30 − forecast 03-30 = 0.
    assert r["cpli"] == pytest.approx(1.0)


def test_health_columns_are_the_contracts() -> None:
    assert list(CHECKS) == [c.name for c in SCHEDULE_HEALTH_COLUMNS]


def test_identity_order() -> None:
    s = _snapshot([], None, file="/exports/UP-54069-20251121.xer", code="UP-54069-20251121")
    assert project_identity(s, ImportOptions()) == "UP-54069-20251121"
    assert project_identity(s, ImportOptions(project_key=r"(\d{5})")) == "54069"
    mapped = ImportOptions(project_key=r"(\d{5})", project_map={"UP-54069-20251121": "X"})
    assert project_identity(s, mapped) == "X"
    with pytest.raises(IdentityError, match="matches neither"):
        project_identity(s, ImportOptions(project_key=r"(ZZ\d+)"))


def test_data_date_order_and_never_mtime() -> None:
    s = _snapshot([], None, file="UP-54069-20251121.xer")
    assert data_date(s, ImportOptions()) == (date(2025, 11, 21), "file name")
    assert data_date(s, ImportOptions(status_date=date(2025, 1, 2)))[1] == "--status-date"
    undated = _snapshot([], None, file="plan.mpp")
    with pytest.raises(IdentityError, match=r"plan\.mpp: the file has no data date"):
        data_date(undated, ImportOptions())
    assert date_in_name(Path("x_2025-02-30.xml")) is None  # not a date: no date


def test_bad_activities_are_quarantined_with_a_reason() -> None:
    rows = [
        _activity(1, "2025-01-01", "2025-01-11", baseline_cost=100.0, cost=100.0),
        _activity(2, "2025-01-01", "2025-01-11", percent_complete=140.0),
        _activity(3, "2025-01-01", "2025-01-11", cost=-5.0),
        dict(_activity(4, "2025-01-01", "2025-01-11"), start=pd.NaT),
    ]
    m = map_snapshots([_dated(_snapshot(rows, date(2025, 1, 5)))], ImportOptions())
    held = m.quarantine.set_index("activity_id")["reason"].to_dict()
    assert held == {
        "A2": "percent complete outside 0–100",
        "A3": "negative cost",
        "A4": "activity has no start or finish date",
    }
    assert len(m.status_reports) == 1
