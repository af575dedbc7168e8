"""Schedule files → plain tables, through MPXJ (Java, via JPype).

The only module of Forewarn that touches Java. The JVM is started once per process, on the
first read (`start_jvm`); nothing here runs at import time, and `mpxj`/`jpype` are imported
inside the functions so that importing `features.schedules` costs nothing.

A file holds one or more projects (a P6 XER may hold several); each becomes a `Snapshot`:
the project's identity and dates as the file states them, and its activities and
relationships as two DataFrames of plain Python values (no Java objects escape this module).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Files MPXJ reads that a PMO exports; anything else in a folder is ignored.
SCHEDULE_SUFFIXES = (".xer", ".xml", ".pmxml", ".mpp", ".mpx", ".mpt")

HARD_CONSTRAINTS = frozenset(
    {
        "MUST_START_ON",
        "MUST_FINISH_ON",
        "START_NO_LATER_THAN",
        "FINISH_NO_LATER_THAN",
        "MANDATORY_START",
        "MANDATORY_FINISH",
        "START_ON",
        "FINISH_ON",
    }
)

ACTIVITY_COLUMNS = (
    "uid",
    "activity_id",
    "name",
    "milestone",
    "start",
    "finish",
    "baseline_start",
    "baseline_finish",
    "planned_start",
    "planned_finish",
    "actual_start",
    "actual_finish",
    "percent_complete",
    "duration_days",
    "baseline_duration_days",
    "total_float_days",
    "cost",
    "baseline_cost",
    "actual_cost",
    "remaining_cost",
    "constraint",
    "resources",
    "critical",
)
RELATION_COLUMNS = ("predecessor", "successor", "type", "lag_days")


class JavaNotFoundError(RuntimeError):
    """No Java runtime to run MPXJ on."""


class ScheduleError(ValueError):
    """A schedule file that cannot be read or dated; the message names the file."""


@dataclass
class Snapshot:
    """One project as one schedule file states it at its data date."""

    file: str
    project_code: str | None  # P6 project id/code; None for MS Project
    guid: str | None
    title: str | None
    application: str  # "Primavera", "Microsoft", ...
    file_type: str  # "XER", "PMXML", "MPP", "MSPDI", ...
    data_date: date | None  # P6 data date / MS Project status date, as the file says
    start: pd.Timestamp | None
    finish: pd.Timestamp | None
    baseline_start: pd.Timestamp | None
    baseline_finish: pd.Timestamp | None
    baseline_cost: float | None
    activities: pd.DataFrame
    relations: pd.DataFrame
    fields: dict[str, str] = field(default_factory=dict)  # project codes / custom properties


def java_available() -> bool:
    """Whether a `java` executable is on PATH (what JPype's JVM lookup falls back to)."""
    return shutil.which("java") is not None


def start_jvm() -> None:
    """Start the JVM with MPXJ's jars once per process (`JavaNotFoundError` without Java)."""
    if not java_available():
        raise JavaNotFoundError(
            "forewarn import needs a Java runtime for MPXJ: install one "
            "(Debian/Ubuntu: apt-get install default-jre-headless; or run make setup)"
        )
    import jpype
    import mpxj  # noqa: F401  # puts MPXJ's jars on the class path

    if not jpype.isJVMStarted():
        try:
            jpype.startJVM("-Xss8m", convertStrings=True)
        except Exception as exc:  # a broken or too-old runtime
            raise JavaNotFoundError(
                f"forewarn import could not start Java for MPXJ: {exc}"
            ) from exc


def schedule_files(sources: Iterable[Path]) -> list[Path]:
    """The schedule files named, folders expanded (sorted, schedule suffixes only)."""
    out: list[Path] = []
    for source in sources:
        if source.is_dir():
            out.extend(
                sorted(p for p in source.rglob("*") if p.suffix.lower() in SCHEDULE_SUFFIXES)
            )
        elif source.exists():
            out.append(source)
        else:
            raise ScheduleError(f"{source}: no such file or folder")
    return out


_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def date_in_name(path: Path) -> date | None:
    """A date written in the file name (``UP-54069-20251121.xer``, ``x_2025-11-21.mpp``)."""
    for match in _DATE_IN_NAME.finditer(path.stem):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
    return None


def read_file(path: Path, charset: str | None = None) -> list[Snapshot]:
    """Every project in one schedule file (the JVM must be started)."""
    import java
    from org.mpxj.reader import UniversalProjectReader

    jfile = java.io.File(str(path))
    try:
        if charset:
            reader = UniversalProjectReader()
            proxy = reader.getProjectReaderProxy(jfile)
            if proxy is None:
                raise ScheduleError(f"{path}: not a schedule file MPXJ can read")
            try:
                inner = proxy.getProjectReader()
                # XER and MPX are plain text in the exporter's code page; XML files declare
                # their encoding and binary MPP has none: the charset applies to the former.
                if hasattr(inner, "setCharset"):
                    inner.setCharset(java.nio.charset.Charset.forName(charset))
                files = list(inner.readAll(jfile))
            finally:
                proxy.close()
        else:
            files = list(UniversalProjectReader().readAll(jfile))
    except ScheduleError:
        raise
    except Exception as exc:  # MPXJException, IOException, unsupported charset
        raise ScheduleError(f"{path}: MPXJ could not read it: {exc}") from exc
    if not files:
        raise ScheduleError(f"{path}: not a schedule file MPXJ can read")
    return [_snapshot(path, pf) for pf in files]


def _ts(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(str(value))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _f(value: Any) -> float:
    return np.nan if value is None else float(value)


def _days(duration: Any, convert: Callable[[Any], Any]) -> float:
    """A Java Duration in working days (the file's own hours per day)."""
    if duration is None:
        return np.nan
    return float(convert(duration).getDuration())


def _snapshot(path: Path, pf: Any) -> Snapshot:
    from org.mpxj import TimeUnit

    props = pf.getProjectProperties()
    to_days = lambda d: d.convertUnits(TimeUnit.DAYS, props)  # noqa: E731
    rows: list[tuple[Any, ...]] = []
    relations: list[tuple[Any, ...]] = []
    for task in pf.getTasks():
        # Summary tasks (MS Project's outline, P6's WBS and the project task) carry rolled-up
        # values: counting them would count the work twice.
        if task.getSummary() or task.getNull():
            continue
        uid = int(task.getUniqueID())
        # P6 keeps three percents and says per activity which one counts; MS Project has one.
        kind = task.getPercentCompleteType()
        kind = None if kind is None else str(kind.name())
        if kind == "PHYSICAL":
            percent = task.getPhysicalPercentComplete()
        elif kind == "UNITS":
            percent = task.getPercentageWorkComplete()
        else:
            percent = task.getPercentageComplete()
        constraint = task.getConstraintType()
        rows.append(
            (
                uid,
                task.getActivityID(),
                task.getName(),
                bool(task.getMilestone()),
                _text(task.getStart()),
                _text(task.getFinish()),
                _text(task.getBaselineStart()),
                _text(task.getBaselineFinish()),
                _text(task.getPlannedStart()),
                _text(task.getPlannedFinish()),
                _text(task.getActualStart()),
                _text(task.getActualFinish()),
                _f(percent),
                _days(task.getDuration(), to_days),
                _days(task.getBaselineDuration(), to_days),
                _days(task.getTotalSlack(), to_days),
                _f(task.getCost()),
                _f(task.getBaselineCost()),
                _f(task.getActualCost()),
                _f(task.getRemainingCost()),
                None if constraint is None else str(constraint.name()),
                int(task.getResourceAssignments().size()),
                bool(task.getCritical()),
            )
        )
        for rel in task.getPredecessors():
            pred = rel.getPredecessorTask()
            relations.append(
                (
                    int(pred.getUniqueID()),
                    uid,
                    str(rel.getType().name()),
                    _days(rel.getLag(), to_days),
                )
            )
    activities = pd.DataFrame(rows, columns=list(ACTIVITY_COLUMNS))
    for col in ("start", "finish", "baseline_start", "baseline_finish"):
        activities[col] = pd.to_datetime(activities[col], format="ISO8601")
    for col in ("planned_start", "planned_finish"):
        activities[col] = pd.to_datetime(activities[col], format="ISO8601")
    for col in ("actual_start", "actual_finish"):
        activities[col] = pd.to_datetime(activities[col], format="ISO8601")
    links = pd.DataFrame(relations, columns=list(RELATION_COLUMNS))
    status = props.getStatusDate()
    guid = props.getGUID()
    return Snapshot(
        file=str(path),
        project_code=props.getProjectID(),
        guid=None if guid is None else str(guid),
        title=props.getProjectTitle() or props.getName(),
        application=str(props.getFileApplication() or ""),
        file_type=str(props.getFileType() or ""),
        data_date=None if status is None else date.fromisoformat(str(status)[:10]),
        start=_ts(props.getStartDate()),
        finish=_ts(props.getFinishDate()),
        baseline_start=_ts(props.getBaselineStart()),
        baseline_finish=_ts(props.getBaselineFinish()),
        baseline_cost=None if props.getBaselineCost() is None else float(props.getBaselineCost()),
        activities=activities,
        relations=links,
        fields=_project_fields(pf),
    )


def _project_fields(pf: Any) -> dict[str, str]:
    """Project-level fields a PMO may file a portfolio, type or risk count under: P6 project
    codes (by code name) and MS Project custom document properties."""
    out: dict[str, str] = {}
    props = pf.getProjectProperties()
    custom = props.getCustomProperties()
    if custom is not None:
        for key in custom.keySet():
            value = custom.get(key)
            if value is not None:
                out[str(key)] = str(value)
    codes = props.getProjectCodeValues()
    if codes is not None:
        for code in codes.keySet():
            value = codes.get(code)
            if value is not None:
                out[str(code.getName())] = str(value.getName())
    return out
