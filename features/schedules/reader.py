"""Schedule files → plain tables, through MPXJ (Java, via JPype).

The only module of Forewarn that touches Java. The JVM is started once per process, on the
first read (`start_jvm`); nothing here runs at import time, and `mpxj`/`jpype` are imported
inside the functions so that importing `features.schedules` costs nothing. So are NumPy and
pandas: `forewarn import` has Java read its first file while Python loads them.

A file holds one or more projects (a P6 XER may hold several); each becomes a `Snapshot`:
the project's identity and dates as the file states them, and its activities and
relationships as two DataFrames of plain Python values (no Java objects escape this module).
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


# A command's JVM lives for seconds: the optimising compiler (C2) and the parallel collector's
# threads would spend the CPU the read needs (on 2 cores, half of MPXJ's reading time went to
# compiling code that never ran again); the quick compiler alone and one collector thread
# read a 4,000-activity MSPDI in half the CPU time (bench/bench_import.py). The deep stack is
# for MPXJ's recursive readers on deep outlines. MPXJ ships Log4j's API without a logging
# back end: the first MPP read printed "Log4j API could not find a logging provider" on
# stdout, ahead of `--json`'s object; naming Log4j's own simple logger keeps stdout clean
# (it writes errors, if POI ever logs one, to stderr).
JVM_OPTIONS = (
    "-Xss8m",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Dlog4j2.loggerContextFactory=org.apache.logging.log4j.simple.SimpleLoggerContextFactory",
)


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
            jpype.startJVM(*JVM_OPTIONS, convertStrings=True)
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
    return _snapshots(path, _read_projects(path, charset))


class ReadAhead:
    """`read_file` of each of `paths`, in order, iterated (the JVM must be started).

    A second thread has MPXJ read the file after the one being mapped: a Java call lets go of
    Python's lock, so on two cores the two overlap (a folder of weekly updates is half MPXJ's
    reading, half ours). The first file's read starts when this is made, so the caller can
    load what it needs meanwhile. One file is read ahead, no more: a folder of large schedules
    holds at most two in memory. A file that cannot be read raises `ScheduleError` in its
    turn, after the files before it, as `read_file` would. Use it as a context manager: on
    the way out the read ahead, if any, is awaited and the thread ended.
    """

    def __init__(self, paths: list[Path], charset: str | None = None) -> None:
        self._paths = list(paths)
        self._charset = charset
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpxj-reader")
        self._ahead: Future[list[Any]] | None = None
        if self._paths:
            self._ahead = self._pool.submit(_read_projects_on_a_thread, self._paths[0], charset)
        _java_columns()  # its lambdas are made while the first file is read

    def __iter__(self) -> Iterator[list[Snapshot]]:
        for i, path in enumerate(self._paths):
            assert self._ahead is not None
            projects = self._ahead.result()
            nxt = self._paths[i + 1] if i + 1 < len(self._paths) else None
            self._ahead = (
                None
                if nxt is None
                else self._pool.submit(_read_projects_on_a_thread, nxt, self._charset)
            )
            yield _snapshots(path, projects)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_projects_on_a_thread(path: Path, charset: str | None) -> list[Any]:
    """`_read_projects` on a pool thread, which lets go of the JVM when done (JPype attaches
    a Python thread to the JVM on its first Java call and keeps it attached until told)."""
    import java

    try:
        return _read_projects(path, charset)
    finally:
        java.lang.Thread.detach()


def _read_projects(path: Path, charset: str | None) -> list[Any]:
    """MPXJ's projects (Java `ProjectFile`s) in one schedule file."""
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
    return files


def _snapshots(path: Path, files: list[Any]) -> list[Snapshot]:
    import java

    try:
        return [_snapshot(path, pf) for pf in files]
    except java.lang.RuntimeException as exc:  # e.g. a relationship to a task not in the file
        raise ScheduleError(f"{path}: MPXJ could not read its activities: {exc}") from exc


def _ts(value: Any) -> pd.Timestamp | None:
    import pandas as pd

    return None if value is None else pd.Timestamp(str(value))


class _Columns:
    """Read one field of every item of a Java list in one call, iterating on the Java side.

    A call from Python into Java costs microseconds, and a schedule's activities need some
    thirty fields each: read one activity at a time, a 4,000-activity file took over a second
    of calls (bench/bench_import.py). Here each field is a Java lambda (`LambdaMetafactory`
    over the public getter, chained with `Function.andThen`) mapped over a Java stream and
    joined into one string, so a field costs a handful of calls whatever the file's size.
    Values come back as Java's `String.valueOf` writes them ("null" for none).
    """

    def __init__(self) -> None:
        from java.lang import Boolean, Object, String
        from java.lang.invoke import LambdaMetafactory, MethodHandles, MethodType
        from java.util.function import Function, Predicate
        from java.util.stream import Collectors

        self._factory = LambdaMetafactory
        self._method_type = MethodType
        self._function = Function
        self._predicate = Predicate
        self._object = Object
        self._boolean = Boolean.TYPE
        self._collectors = Collectors
        self._joined = Collectors.joining("\n")
        # JPype calls caller-sensitive methods from its own class: a lookup with the full
        # privileges the lambda factory asks for, over public methods only.
        self._lookup = MethodHandles.lookup()
        self._chains: dict[tuple[Any, ...], Any] = {}
        self._text = self._lambda(
            Function,
            self._lookup.findStatic(String, "valueOf", MethodType.methodType(String, Object)),
        )

    def _lambda(self, interface: Any, handle: Any) -> Any:
        mt = self._method_type
        if interface is self._predicate:
            sam, erased, actual = "test", mt.methodType(self._boolean, self._object), handle.type()
        else:
            sam, erased, actual = (
                "apply",
                mt.methodType(self._object, self._object),
                handle.type().wrap(),
            )
        site = self._factory.metafactory(
            self._lookup, sam, mt.methodType(interface), erased, handle, actual
        )
        return site.getTarget().invokeWithArguments()

    def _getter(self, cls: Any, name: str) -> Any:
        return self._lookup.unreflect(cls.class_.getMethod(name))

    def chain(self, cls: Any, *names: str) -> Any:
        """``x -> x.a().b()...``: getters `names`, the first on `cls`, each on the last's
        result type (a null on the way is a NullPointerException: use on non-null chains).
        Made once per process: spinning a lambda class costs more than a small file's read."""
        key = (cls, *names)
        if key not in self._chains:
            handle = self._getter(cls, names[0])
            fn = self._lambda(self._function, handle)
            for name in names[1:]:
                handle = self._lookup.unreflect(handle.type().returnType().getMethod(name))
                fn = fn.andThen(self._lambda(self._function, handle))
            self._chains[key] = fn
        return self._chains[key]

    def keep(self, items: Any, cls: Any, *without: str) -> Any:
        """The items of Java list `items` for which none of the boolean getters `without`
        holds, as a Java list."""
        stream = items.stream()
        for name in without:
            key = ("not", cls, name)
            if key not in self._chains:
                test = self._lambda(self._predicate, self._getter(cls, name))
                self._chains[key] = test.negate()
            stream = stream.filter(self._chains[key])
        return stream.collect(self._collectors.toList())

    def flat(self, items: Any, cls: Any, name: str) -> Any:
        """Every element of the Java lists getter `name` returns on each of `items`."""
        key = ("flat", cls, name)
        if key not in self._chains:
            from java.util import Collection

            stream_of = self._lambda(self._function, self._getter(Collection, "stream"))
            lists = self._lambda(self._function, self._getter(cls, name))
            self._chains[key] = lists.andThen(stream_of)
        return items.stream().flatMap(self._chains[key]).collect(self._collectors.toList())

    def texts(self, items: Any, cls: Any, *names: str) -> list[str]:
        """``String.valueOf(x.a().b()...)`` for every item of `items` (`chain`'s getters;
        for values whose text has no newline: numbers, dates, enums, booleans)."""
        if items.isEmpty():
            return []
        key = ("text", cls, *names)
        if key not in self._chains:
            self._chains[key] = self.chain(cls, *names).andThen(self._text)
        joined = items.stream().map(self._chains[key]).collect(self._joined)
        return str(joined).split("\n")

    def strings(self, items: Any, cls: Any, *names: str) -> list[str | None]:
        """``x.a().b()...`` for every item, for free text (names may hold any character)."""
        values = items.stream().map(self.chain(cls, *names)).toArray()
        return [None if v is None else str(v) for v in values]


@functools.cache
def _java_columns() -> _Columns:
    """The process's `_Columns` (the JVM lives as long as the process; so do its lambdas)."""
    return _Columns()


def _numbers(texts: list[str]) -> np.ndarray:
    """Java's text of numbers (or "null") as floats, NaN for null."""
    import numpy as np

    return np.array([np.nan if t == "null" else float(t) for t in texts], dtype=float)


def _ids(texts: list[str]) -> np.ndarray:
    """Java's text of integers as int64 (never null where this is used)."""
    import numpy as np

    return np.array([int(t) for t in texts], dtype=np.int64)


def _stamps(texts: list[str]) -> np.ndarray:
    """Java's text of LocalDateTimes (ISO 8601, or "null") as datetime64[ns], NaT for null."""
    import numpy as np

    return np.array(["NaT" if t == "null" else t for t in texts], dtype="datetime64[ns]")


def _enum_names(texts: list[str], enum: Any) -> list[str | None]:
    """Enum constants' text (their toString, which MPXJ overrides for some) as their names."""
    names = _enum_table(enum)
    return [names.get(t) for t in texts]


@functools.cache
def _enum_table(enum: Any) -> dict[str, str]:
    return {str(v.toString()): str(v.name()) for v in enum.values()}


_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?(?:E-?\d+)?)(\D+)$")


def _days_per_unit(props: Any) -> dict[str, float]:
    """Working days in one of each MPXJ time unit (by its text: "h", "ed", ...), as MPXJ
    converts them with the file's own hours per day, per week and days per month."""
    from org.mpxj import Duration, TimeUnit

    return {
        str(unit.toString()): float(
            Duration.getInstance(1.0, unit).convertUnits(TimeUnit.DAYS, props).getDuration()
        )
        for unit in TimeUnit.values()
    }


def _durations_in_days(texts: list[str], factor: dict[str, float]) -> np.ndarray:
    """Java's text of MPXJ Durations ("8.0h", "1.5ed", "null") in working days (`factor`:
    `_days_per_unit`; MPXJ's conversion is a ratio per unit)."""
    import numpy as np

    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        match = _DURATION.match(text)
        if match is not None and match[2] in factor:
            out[i] = float(match[1]) * factor[match[2]]
    return out


def _snapshot(path: Path, pf: Any) -> Snapshot:
    import numpy as np
    import pandas as pd
    from org.mpxj import ConstraintType, PercentCompleteType, Relation, RelationType, Task

    props = pf.getProjectProperties()
    cols = _java_columns()
    per_unit = _days_per_unit(props)
    # Summary tasks (MS Project's outline, P6's WBS and the project task) carry rolled-up
    # values: counting them would count the work twice.
    tasks = cols.keep(pf.getTasks(), Task, "getSummary", "getNull")

    def text(*getters: str) -> list[str]:
        return cols.texts(tasks, Task, *getters)

    # P6 keeps three percents and says per activity which one counts; MS Project has one.
    kind = np.array(_enum_names(text("getPercentCompleteType"), PercentCompleteType), dtype=object)
    percent = np.where(
        kind == "PHYSICAL",
        _numbers(text("getPhysicalPercentComplete")),
        np.where(
            kind == "UNITS",
            _numbers(text("getPercentageWorkComplete")),
            _numbers(text("getPercentageComplete")),
        ),
    )
    data: dict[str, Any] = {
        "uid": _ids(text("getUniqueID")),
        "activity_id": cols.strings(tasks, Task, "getActivityID"),
        "name": cols.strings(tasks, Task, "getName"),
        "milestone": np.array(text("getMilestone")) == "true",
    }
    for col, getter in (
        ("start", "getStart"),
        ("finish", "getFinish"),
        ("baseline_start", "getBaselineStart"),
        ("baseline_finish", "getBaselineFinish"),
        ("planned_start", "getPlannedStart"),
        ("planned_finish", "getPlannedFinish"),
        ("actual_start", "getActualStart"),
        ("actual_finish", "getActualFinish"),
    ):
        data[col] = _stamps(text(getter))
    data["percent_complete"] = percent
    data["duration_days"] = _durations_in_days(text("getDuration"), per_unit)
    data["baseline_duration_days"] = _durations_in_days(text("getBaselineDuration"), per_unit)
    data["total_float_days"] = _durations_in_days(text("getTotalSlack"), per_unit)
    for col, getter in (
        ("cost", "getCost"),
        ("baseline_cost", "getBaselineCost"),
        ("actual_cost", "getActualCost"),
        ("remaining_cost", "getRemainingCost"),
    ):
        data[col] = _numbers(text(getter))
    data["constraint"] = _enum_names(text("getConstraintType"), ConstraintType)
    data["resources"] = _ids(text("getResourceAssignments", "size"))
    data["critical"] = np.array(text("getCritical")) == "true"
    activities = pd.DataFrame(data, columns=list(ACTIVITY_COLUMNS))

    relations = cols.flat(tasks, Task, "getPredecessors")

    def link(*getters: str) -> list[str]:
        return cols.texts(relations, Relation, *getters)

    links = pd.DataFrame(
        {
            "predecessor": _ids(link("getPredecessorTask", "getUniqueID")),
            "successor": _ids(link("getSuccessorTask", "getUniqueID")),
            "type": _enum_names(link("getType"), RelationType),
            "lag_days": _durations_in_days(link("getLag"), per_unit),
        },
        columns=list(RELATION_COLUMNS),
    )
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
