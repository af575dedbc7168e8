"""Snapshots of schedules → the three tables of data contract v1 (`docs/import.md`).

Pure pandas: no Java here, so every rule is testable on hand-built snapshots. One project's
snapshots, in data-date order, become its status reports; its projects row comes from its
earliest snapshot's baseline and its latest snapshot's actuals; consecutive snapshots are
compared for changes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import conform
from features.schedules.health import schedule_health
from features.schedules.options import ImportOptions
from features.schedules.reader import Snapshot, date_in_name

IMPORT_QUARANTINE_COLUMNS = ["file", "project_id", "activity_id", "activity_name", "reason"]
_DAY = pd.Timedelta(days=1)


@dataclass
class DatedSnapshot:
    """A snapshot with the project it belongs to and the date it reports on."""

    snapshot: Snapshot
    project_id: str
    data_date: date
    date_source: str  # "file", "--status-date" or "file name"


@dataclass
class ProjectNote:
    """What the import had to decide for one project (printed, and in import.json)."""

    project_id: str
    snapshots: int
    files: list[str]
    first: date
    last: date
    baseline: str  # "file", "planned dates" (P6's, no baseline) or "earliest snapshot"
    percent_complete: str  # "cost-weighted" or "duration-weighted"
    cost_loaded: bool


@dataclass
class Mapped:
    """The contract tables an import produced, what it could not map, and its decisions."""

    projects: pd.DataFrame
    status_reports: pd.DataFrame
    changes: pd.DataFrame
    quarantine: pd.DataFrame
    notes: list[ProjectNote]


class IdentityError(ValueError):
    """A snapshot that cannot be dated or keyed; the message names the file."""


def project_identity(snapshot: Snapshot, options: ImportOptions) -> str:
    """The project a snapshot belongs to: --project-map, then --project-key, then the file's
    own P6 project code, MS Project GUID or title, then the file name."""
    path = Path(snapshot.file)
    for key in (path.name, str(path), path.stem, snapshot.project_code):
        if key is not None and key in options.project_map:
            return options.project_map[key]
    if options.project_key:
        pattern = re.compile(options.project_key)
        for text in (snapshot.project_code, path.name):
            if text:
                match = pattern.search(text)
                if match:
                    return match.group(1) if match.groups() else match.group(0)
        raise IdentityError(
            f"{snapshot.file}: --project-key {options.project_key!r} matches neither the "
            f"project code {snapshot.project_code!r} nor the file name"
        )
    for key in (snapshot.project_code, snapshot.guid, snapshot.title):
        if key:
            return str(key)
    return path.stem


def data_date(snapshot: Snapshot, options: ImportOptions) -> tuple[date, str]:
    """The date a snapshot reports on, and where it came from; never the file's mtime."""
    if snapshot.data_date is not None:
        return snapshot.data_date, "file"
    if options.status_date is not None:
        return options.status_date, "--status-date"
    named = date_in_name(Path(snapshot.file))
    if named is not None:
        return named, "file name"
    raise IdentityError(
        f"{snapshot.file}: the file has no data date (P6) or status date (MS Project): "
        "pass --status-date YYYY-MM-DD or put the date in the file name (UP-54069-20251121.xer)"
    )


def _stamp(value: Any) -> pd.Timestamp:
    return pd.Timestamp("NaT") if value is None else pd.Timestamp(value)


def _days(delta: pd.Series) -> pd.Series:
    """Timedeltas as (fractional) days."""
    return delta.dt.total_seconds() / 86400.0


def _day(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m-%d").fillna("")


def _mapped_activities(dated: DatedSnapshot, quarantine: list[dict[str, object]]) -> pd.DataFrame:
    """The snapshot's activities that can be used, with ``done``, ``budget`` and baseline
    dates filled; the others go to the quarantine with a reason."""
    a = dated.snapshot.activities.copy()

    def hold(mask: pd.Series, reason: str | pd.Series) -> None:
        if not mask.any():  # the usual case: framing nothing costs more than the checks
            return
        reasons = reason if isinstance(reason, pd.Series) else pd.Series(reason, index=a.index)
        for act, why in zip(a.loc[mask].itertuples(), reasons[mask], strict=True):
            quarantine.append(
                {
                    "file": dated.snapshot.file,
                    "project_id": dated.project_id,
                    "activity_id": act.activity_id if act.activity_id else act.uid,
                    "activity_name": act.name,
                    "reason": why,
                }
            )

    no_dates = a["start"].isna() | a["finish"].isna()
    hold(no_dates, "activity has no start or finish date")
    bad_pc = ~a["percent_complete"].between(0, 100) & a["percent_complete"].notna()
    hold(bad_pc & ~no_dates, "percent complete outside 0–100")
    costs = a[["cost", "baseline_cost", "actual_cost"]]
    negative = (costs < 0).any(axis=1) & ~no_dates & ~bad_pc
    hold(negative, "negative cost")
    a = a[~(no_dates | bad_pc | negative)].copy()
    a["percent_complete"] = a["percent_complete"].fillna(0.0)

    # An actual date on an activity with no progress that is not its own start / finish is a
    # placeholder (MS Project files carry 2000-01-01 ones), not progress: ignored, said so.
    idle = a["percent_complete"] <= 0
    for col, own in (("actual_start", "start"), ("actual_finish", "finish")):
        phantom = idle & a[col].notna() & (a[col] != a[own])
        if not phantom.any():
            continue
        label = col.replace("_", " ")
        why = label + " " + _day(a[col]) + f" on an activity with no progress whose {own} is "
        hold(phantom, why + _day(a[own]) + ": ignored")
        a.loc[phantom, col] = pd.NaT
    a["done"] = a["actual_finish"].notna() | (a["percent_complete"] >= 100)
    # Actuals after the data date are kept (the health check counts them as invalid dates).
    a["has_baseline"] = a["baseline_start"].notna() & a["baseline_finish"].notna()
    # No baseline: P6's planned dates (the plan before progress), else the snapshot's own.
    a["baseline_start"] = a["baseline_start"].fillna(a["planned_start"]).fillna(a["start"])
    a["baseline_finish"] = a["baseline_finish"].fillna(a["planned_finish"]).fillna(a["finish"])
    baseline_cost = a["baseline_cost"].fillna(0.0)
    a["budget"] = baseline_cost if baseline_cost.sum() > 0 else a["cost"].fillna(0.0)
    return a


def _report(dated: DatedSnapshot, a: pd.DataFrame, options: ImportOptions) -> dict[str, object]:
    """One status report from one snapshot's mapped activities."""
    dd = pd.Timestamp(dated.data_date)
    s = dated.snapshot
    bac = float(a["budget"].sum())
    cost_loaded = bac > 0
    span = _days(a["baseline_finish"] - a["baseline_start"])
    elapsed = (_days(dd - a["baseline_start"]) / span.where(span > 0)).clip(0, 1)
    elapsed = elapsed.fillna((a["baseline_finish"] <= dd).astype(float))  # milestones
    pc = a["percent_complete"] / 100.0
    if cost_loaded:
        percent = float((a["budget"] * pc).sum() / bac * 100)
    else:
        weight = a["baseline_duration_days"].fillna(a["duration_days"]).fillna(0.0)
        weight = weight if weight.sum() > 0 else pd.Series(1.0, index=a.index)
        percent = float((weight * pc).sum() / weight.sum() * 100) if len(a) else np.nan
    forecast_cost = a["cost"].fillna(a["actual_cost"].fillna(0) + a["remaining_cost"].fillna(0))
    finish = a["finish"].max() if len(a) else s.finish
    milestones = a["milestone"]
    report: dict[str, object] = {
        "project_id": dated.project_id,
        "report_date": dd,
        "percent_complete": percent,
        "planned_value": float((a["budget"] * elapsed).sum()) if cost_loaded else np.nan,
        "earned_value": float((a["budget"] * pc).sum()) if cost_loaded else np.nan,
        "actual_cost": float(a["actual_cost"].fillna(0).sum()) if cost_loaded else np.nan,
        "forecast_finish": finish,
        "forecast_cost": float(forecast_cost.sum()) if cost_loaded else np.nan,
        "milestones_planned": int((milestones & (a["baseline_finish"] <= dd)).sum()),
        "milestones_done": int((milestones & a["done"]).sum()),
        "open_risks": _count_field(s, options.risks_field),
        "open_issues": _count_field(s, options.issues_field),
    }
    baseline_finish = a["baseline_finish"].max() if len(a) else None
    report |= schedule_health(
        a,
        s.relations,
        dd,
        baseline_finish,
        finish,
        options.high_float_days,
        options.high_duration_days,
    )
    return report


def _count_field(s: Snapshot, name: str | None) -> float:
    if not name or name not in s.fields:
        return np.nan
    try:
        value = float(str(s.fields[name]).strip())
    except ValueError:
        return np.nan
    return value if value >= 0 and value == int(value) else np.nan


def _key(a: pd.DataFrame) -> pd.Series:
    # P6 copies renumber unique ids but keep activity ids; MS Project keeps unique ids.
    return a["activity_id"].where(a["activity_id"].notna(), a["uid"].astype(str)).astype(str)


def _changes(
    pid: str,
    prev: pd.DataFrame,
    cur: pd.DataFrame,
    r_prev: Mapping[str, object],
    r_cur: Mapping[str, object],
    threshold: float,
) -> list[dict[str, object]]:
    """The changes one snapshot shows against the one before it."""
    raised = r_cur["report_date"]
    tag = pd.Timestamp(raised).date().isoformat()  # type: ignore[arg-type]
    kp, kc = _key(prev), _key(cur)
    cost_loaded = prev["budget"].sum() > 0 or cur["budget"].sum() > 0
    out: list[dict[str, object]] = []

    def change(kind: str, cost: float, days: float) -> None:
        out.append(
            {
                "project_id": pid,
                "raised_date": raised,
                "change_id": f"{pid}:{tag}:{kind}",
                "kind": kind,
                "decided_date": raised,
                "status": "approved",
                "cost_impact": cost if cost_loaded else np.nan,
                "schedule_impact_days": days,
            }
        )

    added, removed = ~kc.isin(kp), ~kp.isin(kc)
    if added.any() or removed.any():
        delta = float(cur.loc[added.to_numpy(), "budget"].sum())
        delta -= float(prev.loc[removed.to_numpy(), "budget"].sum())
        change("scope", delta, np.nan)

    both = pd.merge(
        prev.assign(key=kp.to_numpy())[
            ["key", "baseline_start", "baseline_finish", "has_baseline"]
        ],
        cur.assign(key=kc.to_numpy())[["key", "baseline_start", "baseline_finish", "has_baseline"]],
        on="key",
        suffixes=("_p", "_c"),
    )
    both = both[both["has_baseline_p"] & both["has_baseline_c"]]
    moved = (both["baseline_start_p"] != both["baseline_start_c"]) | (
        both["baseline_finish_p"] != both["baseline_finish_c"]
    )
    if moved.any():
        days = (cur["baseline_finish"].max() - prev["baseline_finish"].max()) / _DAY
        change("baseline", float(cur["budget"].sum() - prev["budget"].sum()), float(days))

    start_p, start_c = prev["start"].min(), cur["start"].min()
    dur_p = (r_prev["forecast_finish"] - start_p) / _DAY  # type: ignore[operator,unused-ignore]
    dur_c = (r_cur["forecast_finish"] - start_c) / _DAY  # type: ignore[operator,unused-ignore]
    if dur_p > 0 and abs(dur_c - dur_p) / dur_p > threshold:
        shift = (r_cur["forecast_finish"] - r_prev["forecast_finish"]) / _DAY  # type: ignore[operator]
        change("schedule", np.nan, float(shift))
    fc_p, fc_c = r_prev["forecast_cost"], r_cur["forecast_cost"]
    costed = isinstance(fc_p, float) and isinstance(fc_c, float) and fc_p > 0
    if costed and abs(fc_c - fc_p) / fc_p > threshold:  # type: ignore[operator]
        change("cost", fc_c - fc_p, np.nan)  # type: ignore[operator]
    return out


def map_snapshots(dated: list[DatedSnapshot], options: ImportOptions) -> Mapped:
    """Contract tables from dated snapshots (any order, any number of projects)."""
    quarantine: list[dict[str, object]] = []
    projects: list[dict[str, object]] = []
    reports: list[dict[str, object]] = []
    changes: list[dict[str, object]] = []
    notes: list[ProjectNote] = []
    by_project: dict[str, list[DatedSnapshot]] = {}
    for d in dated:
        by_project.setdefault(d.project_id, []).append(d)
    for pid, series in by_project.items():
        series.sort(key=lambda d: d.data_date)
        kept: list[DatedSnapshot] = []
        for d in series:
            if kept and kept[-1].data_date == d.data_date:
                quarantine.append(
                    {
                        "file": d.snapshot.file,
                        "project_id": pid,
                        "activity_id": None,
                        "activity_name": None,
                        "reason": f"a second snapshot of {pid} at {d.data_date} "
                        f"(the first is {kept[-1].snapshot.file}): not imported",
                    }
                )
            else:
                kept.append(d)
        acts = [_mapped_activities(d, quarantine) for d in kept]
        first, last = acts[0], acts[-1]
        s0, sl = kept[0].snapshot, kept[-1].snapshot
        if bool(first["has_baseline"].any()) or s0.baseline_start is not None:
            baseline_source = "file"
        elif bool(first["planned_start"].notna().any()):
            baseline_source = "planned dates"
        else:
            baseline_source = "earliest snapshot"
        planned_start = _stamp(first["baseline_start"].min() if len(first) else s0.start)
        planned_finish = _stamp(first["baseline_finish"].max() if len(first) else s0.finish)
        if not bool(first["has_baseline"].any()) and s0.baseline_start is not None:
            planned_start, planned_finish = _stamp(s0.baseline_start), _stamp(s0.baseline_finish)
        budget = float(first["budget"].sum())
        actual_start = min(
            (a["actual_start"].min() for a in acts if a["actual_start"].notna().any()),
            default=pd.NaT,
        )
        complete = bool(len(last)) and bool(last["done"].all())
        actual_finish = last["actual_finish"].max() if complete else pd.NaT
        if complete and pd.isna(actual_finish):
            actual_finish = last["finish"].max()
        start_day = min(
            planned_start.normalize(),
            pd.Timestamp(actual_start).normalize() if pd.notna(actual_start) else pd.Timestamp.max,
        )
        row: dict[str, object] = {
            "project_id": pid,
            "name": sl.title,
            "portfolio": sl.fields.get(options.portfolio_field or "", None),
            "project_type": sl.fields.get(options.type_field or "", None),
            "planned_start": planned_start,
            "planned_finish": planned_finish,
            "budget": budget if budget > 0 else np.nan,
            "actual_start": actual_start,
            "actual_finish": actual_finish,
            "final_cost": np.nan,
        }
        if pd.isna(planned_start) or pd.isna(planned_finish):
            quarantine.append(
                {
                    "file": s0.file,
                    "project_id": pid,
                    "activity_id": None,
                    "activity_name": None,
                    "reason": "no activity with dates: project not imported",
                }
            )
            continue
        if planned_finish.normalize() <= planned_start.normalize():
            quarantine.append(
                {
                    "file": s0.file,
                    "project_id": pid,
                    "activity_id": None,
                    "activity_name": None,
                    "reason": f"baseline finish {planned_finish.date()} is not "
                    f"after its start {planned_start.date()} (contract v1 needs "
                    "a project of at least two days): project not imported",
                }
            )
            continue
        project_reports = []
        for d, a in zip(kept, acts, strict=True):
            if pd.Timestamp(d.data_date) < start_day:
                quarantine.append(
                    {
                        "file": d.snapshot.file,
                        "project_id": pid,
                        "activity_id": None,
                        "activity_name": None,
                        "reason": f"data date {d.data_date} is before the project's start "
                        f"{start_day.date()}: no status report",
                    }
                )
                continue
            project_reports.append((a, _report(d, a, options)))
        if complete and budget > 0 and project_reports:
            row["final_cost"] = project_reports[-1][1]["actual_cost"]
        projects.append(row)
        reports.extend(r for _, r in project_reports)
        for (ap, rp), (ac, rc) in itertools.pairwise(project_reports):
            changes.extend(_changes(pid, ap, ac, rp, rc, options.change_threshold))
        notes.append(
            ProjectNote(
                project_id=pid,
                snapshots=len(kept),
                files=[d.snapshot.file for d in kept],
                first=kept[0].data_date,
                last=kept[-1].data_date,
                baseline=baseline_source,
                percent_complete="cost-weighted" if budget > 0 else "duration-weighted",
                cost_loaded=budget > 0,
            )
        )
    return Mapped(
        projects=conform(pd.DataFrame(projects, columns=_columns("projects")), "projects"),
        status_reports=conform(
            pd.DataFrame(reports, columns=_columns("status_reports")), "status_reports"
        ),
        changes=conform(pd.DataFrame(changes, columns=_columns("changes")), "changes"),
        quarantine=pd.DataFrame(quarantine, columns=IMPORT_QUARANTINE_COLUMNS),
        notes=notes,
    )


def _columns(table: str) -> list[str]:
    from features.contract import column_names

    return column_names(table)
