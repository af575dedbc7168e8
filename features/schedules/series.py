"""Write schedules with MPXJ's own writer: an update series from a portfolio, or one large
cost-loaded schedule.

What `forewarn demo`, the round-trip test and `bench/bench_import.py` feed the importer: real
MSPDI files (the XML MS Project saves), written by MPXJ, so that an import is tested against
the format rather than against our own reading of it.

Each status report of a project becomes one snapshot file ``<project_id>_<YYYY-MM-DD>.xml``
with the report date as its status date. The snapshot's activities are laid out so that the
importer's formulas (docs/import.md) give back the report: the baseline is cut at every
report date into one activity per interval, costed with the increase of PV over it (so PV at
each report date is exact); work is earned interval by interval (EV exact but for MSPDI's
whole-number percent complete); AC and the forecast cost are spread over the activities;
the last activity finishes at the forecast finish; milestone *m* is due on the first report
date at which ``milestones_planned ≥ m`` and done from the first at which
``milestones_done ≥ m``. A closed project gets one more snapshot at its actual finish, every
activity complete and AC = final cost.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from features.contract import Portfolio
from features.schedules.reader import start_jvm

PLAN_COLUMNS = (
    "name",
    "milestone",
    "baseline_start",
    "baseline_finish",
    "start",
    "finish",
    "baseline_cost",
    "percent_complete",
    "actual_cost",
    "cost",
    "actual_start",
    "actual_finish",
)


def snapshot_plan(
    project: pd.Series, reports: pd.DataFrame, upto: int, closing: bool = False
) -> pd.DataFrame:
    """The activities of one snapshot: the project's state at its report number `upto`
    (0-based, in date order), or its closing state at actual finish when `closing`."""
    reports = reports.sort_values("report_date").reset_index(drop=True)
    ps, pf = project["planned_start"], project["planned_finish"]
    bac = float(project["budget"])
    dates = reports["report_date"]
    inner = dates[(dates > ps) & (dates < pf)]
    cuts = [ps, *inner.tolist(), pf]
    pv_at = reports.set_index("report_date")["planned_value"]
    pv = [0.0, *[float(pv_at[d]) for d in inner], bac]
    budgets = np.maximum(np.diff(np.maximum.accumulate(np.minimum(pv, bac))), 0.0)
    n = len(budgets)
    # Milestones done ahead of plan may outnumber those ever due by a report: the extra
    # ones are due at the planned finish.
    k = int(reports[["milestones_planned", "milestones_done"]].max().max()) if len(reports) else 0
    if closing:
        dd = project["actual_finish"]
        ev, ac, fc, ff = bac, float(project["final_cost"]), float(project["final_cost"]), dd
        done_m = k
    else:
        r = reports.iloc[upto]
        dd = r["report_date"]
        ev, ac = float(r["earned_value"]), float(r["actual_cost"])
        fc, ff = float(r["forecast_cost"]), r["forecast_finish"]
        done_m = int(r["milestones_done"])
    # Earn interval by interval: done ones at 100 %, the next one partly.
    before = np.concatenate([[0.0], np.cumsum(budgets)[:-1]])
    earned = np.clip(ev - before, 0.0, budgets)
    percent = np.where(budgets > 0, np.round(100 * earned / np.where(budgets > 0, budgets, 1)), 0)
    if ev >= bac or closing:
        percent = np.full(n, 100.0)
    elif ev > 0:
        # An interval with no budget before the earned work is done too.
        percent = np.where((budgets == 0) & (before < ev), 100.0, percent)
    share = budgets * percent / 100
    actual = ac * share / share.sum() if share.sum() > 0 else np.r_[ac, np.zeros(n - 1)]
    cost = budgets * (fc / bac) if bac > 0 else budgets
    bs = pd.Series(cuts[:-1])
    bf = pd.Series(cuts[1:])
    start, finish = bs.where(bs < ff, ff), bf.where(bf < ff, ff)
    finish.iloc[-1] = ff
    astart = bs.where(percent > 0)
    afinish = bf.where(percent >= 100).where(lambda x: x <= dd, dd)
    afinish = afinish.where(percent >= 100)
    if closing:  # the last activity finishes the project
        afinish.iloc[-1] = dd
    if pd.notna(project["actual_start"]) and percent[0] > 0:
        astart.iloc[0] = project["actual_start"]
    work = pd.DataFrame(
        {
            "name": [f"Work {i + 1}" for i in range(n)],
            "milestone": False,
            "baseline_start": bs,
            "baseline_finish": bf,
            "start": start,
            "finish": finish,
            "baseline_cost": budgets,
            "percent_complete": percent,
            "actual_cost": actual,
            "cost": cost,
            "actual_start": astart,
            "actual_finish": afinish,
        }
    )
    due = [dates[reports["milestones_planned"] >= m].min() for m in range(1, k + 1)]
    due = [pf if pd.isna(d) else min(max(d, ps), pf) for d in due]
    m_rows = pd.DataFrame(
        {
            "name": [f"Milestone {m}" for m in range(1, k + 1)],
            "milestone": True,
            "baseline_start": due,
            "baseline_finish": due,
            "start": [min(d, ff) for d in due],
            "finish": [min(d, ff) for d in due],
            "baseline_cost": 0.0,
            "percent_complete": [100.0 if m <= done_m else 0.0 for m in range(1, k + 1)],
            "actual_cost": 0.0,
            "cost": 0.0,
            "actual_start": [min(d, dd) if m <= done_m else pd.NaT for m, d in enumerate(due, 1)],
            "actual_finish": [min(d, dd) if m <= done_m else pd.NaT for m, d in enumerate(due, 1)],
        }
    )
    if m_rows.empty:
        return work[list(PLAN_COLUMNS)]
    for col in ("actual_start", "actual_finish", "baseline_start", "baseline_finish"):
        m_rows[col] = pd.to_datetime(m_rows[col])
    return pd.concat([work, m_rows], ignore_index=True)[list(PLAN_COLUMNS)]


def _local(value: Any) -> Any:
    from java.time import LocalDateTime

    t = pd.Timestamp(value)
    return LocalDateTime.of(t.year, t.month, t.day, t.hour, t.minute)


def write_mspdi(
    path: Path,
    plan: pd.DataFrame,
    status_date: Any,
    title: str,
    guid: str,
    predecessors: list[int] | None = None,
) -> None:
    """One MSPDI file of `plan`'s activities (`PLAN_COLUMNS`), written by MPXJ."""
    start_jvm()
    from java.lang import Double
    from java.util import UUID
    from org.mpxj import Duration, ProjectFile, Relation, RelationType, TimeUnit
    from org.mpxj.writer import FileFormat, UniversalProjectWriter

    pf = ProjectFile()
    props = pf.getProjectProperties()
    props.setProjectTitle(title)
    props.setName(title)
    props.setGUID(UUID.fromString(guid))
    props.setStatusDate(_local(status_date))
    tasks = []
    for row in cast(list[dict[str, Any]], plan.to_dict("records")):
        task = pf.addTask()
        task.setName(row["name"])
        task.setMilestone(bool(row["milestone"]))
        task.setBaselineStart(_local(row["baseline_start"]))
        task.setBaselineFinish(_local(row["baseline_finish"]))
        task.setStart(_local(row["start"]))
        task.setFinish(_local(row["finish"]))
        days = max((pd.Timestamp(row["finish"]) - pd.Timestamp(row["start"])).days, 0)
        task.setDuration(Duration.getInstance(days, TimeUnit.DAYS))
        base_days = (
            pd.Timestamp(row["baseline_finish"]) - pd.Timestamp(row["baseline_start"])
        ).days
        task.setBaselineDuration(Duration.getInstance(max(base_days, 0), TimeUnit.DAYS))
        task.setBaselineCost(Double(float(row["baseline_cost"])))
        task.setCost(Double(float(row["cost"])))
        task.setActualCost(Double(float(row["actual_cost"])))
        task.setRemainingCost(Double(float(row["cost"]) - float(row["actual_cost"])))
        task.setPercentageComplete(Double(float(row["percent_complete"])))
        if pd.notna(row["actual_start"]):
            task.setActualStart(_local(row["actual_start"]))
        if pd.notna(row["actual_finish"]):
            task.setActualFinish(_local(row["actual_finish"]))
        tasks.append(task)
    for i, pred in enumerate(predecessors or []):
        if pred >= 0:  # finish-to-start from activity `pred`
            builder = Relation.Builder().predecessorTask(tasks[pred]).successorTask(tasks[i])
            tasks[i].addPredecessor(builder.type(RelationType.FINISH_START))
    UniversalProjectWriter(FileFormat.MSPDI).write(pf, str(path))


def project_guid(project_id: str) -> str:
    """A stable GUID per project, as MS Project keeps one across saves."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"forewarn:{project_id}"))


def write_update_series(
    portfolio: Portfolio,
    out_dir: Path,
    project_ids: list[str] | None = None,
    snapshots: int | None = None,
) -> list[Path]:
    """One MSPDI snapshot per status report (and one at actual finish for closed projects)
    of each costed project; returns the files written.

    With `snapshots`, at most that many per project (besides the one at actual finish),
    spread evenly over its reports from the first to the last: a monthly update of a
    project reported on weekly, and far fewer files for a portfolio-sized series (each
    written snapshot still cuts its baseline at every report date, so its PV is exact).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    projects = portfolio.projects.set_index("project_id", drop=False)
    ids = project_ids if project_ids is not None else list(projects.index)
    reports = portfolio.status_reports
    written: list[Path] = []
    for pid in ids:
        project = cast(pd.Series, projects.loc[pid])
        mine = reports[reports["project_id"] == pid].sort_values("report_date")
        if mine.empty or not project["budget"] > 0:
            continue
        guid = project_guid(pid)
        dates = mine["report_date"].tolist()
        picked = list(range(len(dates)))
        if snapshots is not None and len(dates) > snapshots:
            spread = np.linspace(0, len(dates) - 1, max(snapshots, 1)).round()
            picked = [int(j) for j in np.unique(spread)]
        for i in picked:
            day = dates[i]
            path = out_dir / f"{pid}_{day:%Y-%m-%d}.xml"
            write_mspdi(path, snapshot_plan(project, mine, i), day, str(project["name"]), guid)
            written.append(path)
        closed = pd.notna(project["actual_finish"]) and pd.notna(project["final_cost"])
        if closed and project["actual_finish"] > mine["report_date"].max():
            day = project["actual_finish"]
            path = out_dir / f"{pid}_{day:%Y-%m-%d}.xml"
            plan = snapshot_plan(project, mine, len(mine) - 1, closing=True)
            write_mspdi(path, plan, day, str(project["name"]), guid)
            written.append(path)
    return written


def short_series(portfolio: Portfolio, n: int = 2) -> list[str]:
    """`n` costed projects with the fewest reports, a closed one first when there is one:
    a small update series for the demo."""
    counts = portfolio.status_reports.groupby("project_id").size()
    projects = portfolio.projects.set_index("project_id").loc[counts.index]
    costed = counts[(projects["budget"] > 0).to_numpy()]
    closed = projects.loc[costed.index, "status"].eq("closed").to_numpy()
    order = pd.DataFrame({"closed": ~closed, "reports": costed.to_numpy()}, index=costed.index)
    return [str(pid) for pid in order.sort_values(["closed", "reports"]).index[:n]]
