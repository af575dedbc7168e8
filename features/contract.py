"""Data contract v1.1: the three tables of a portfolio, their columns and the rules they obey.

This module only declares: the columns (kind, bounds, allowed values), the words for each
kind of bad value, and the rules across columns and rows (`RULES`), each with the words a
refusal uses. `features.loading` enforces them on files and `serving.intake` (with the
request models) on requests; neither words a rule itself. Every other stage receives a
`Portfolio` whose columns have the dtypes declared here:
dates are ``datetime64[ns]`` (midnight), numbers ``float64`` (NaN when absent), strings
``object`` (None/NaN when absent). Optional columns that a file lacks are added, all missing,
so that downstream code never has to ask whether a column exists.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, get_args

import numpy as np
import pandas as pd

Kind = Literal["string", "date", "number", "integer", "category"]

TABLES = ("projects", "status_reports", "changes")

# The allowed values of the category columns, as types the request models use as they are.
ProjectStatus = Literal["active", "closed", "cancelled", "on_hold"]
ChangeKind = Literal["scope", "schedule", "cost", "baseline", "other"]
ChangeStatus = Literal["pending", "approved", "rejected", "withdrawn"]
RagColour = Literal["green", "amber", "red"]  # v1.1: the PMO's own status colour, mildest first

PROJECT_STATUSES: tuple[str, ...] = get_args(ProjectStatus)
CHANGE_KINDS: tuple[str, ...] = get_args(ChangeKind)
CHANGE_STATUSES: tuple[str, ...] = get_args(ChangeStatus)
RAG_COLOURS: tuple[str, ...] = get_args(RagColour)

# The years pandas can hold (nanosecond timestamps end in 1677 and 2262): a file load
# quarantines a date outside them, and so does a request (a 400) and a CLI option (exit 2),
# instead of letting it wrap round to another century.
FIRST_DAY = date(1678, 1, 1)
LAST_DAY = date(2261, 12, 31)

# What a value of each kind must look like, as a quarantine words it after the column's
# name; the API and the CLI refuse a date with the same words (numbers in pydantic's).
TYPE_RULES: dict[str, str] = {
    "number": "must be a number",
    "integer": "must be a whole number",
    "date": f"must be a date written YYYY-MM-DD, in years {FIRST_DAY.year}–{LAST_DAY.year}",
}
DATE_RULE = TYPE_RULES["date"]


def in_contract_years(day: date) -> bool:
    """True when `day` lies in the years the contract accepts (FIRST_DAY to LAST_DAY)."""
    return FIRST_DAY <= day <= LAST_DAY


@dataclass(frozen=True)
class Column:
    """One column of the contract."""

    name: str
    kind: Kind
    required: bool = False
    meaning: str = ""
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()

    @property
    def range_text(self) -> str:
        """The words for a value outside [minimum, maximum] (a file load's quarantine)."""
        if self.maximum is None:
            return f"{self.name} must be ≥ {self.minimum:g}"
        if self.minimum is None:
            return f"{self.name} must be ≤ {self.maximum:g}"
        return f"{self.name} must be between {self.minimum:g} and {self.maximum:g}"

    @property
    def allowed_text(self) -> str:
        """The words for a value outside `allowed`."""
        return f"{self.name} must be one of {', '.join(self.allowed)}"


PROJECT_COLUMNS: tuple[Column, ...] = (
    Column("project_id", "string", True, "unique identifier"),
    Column("name", "string", meaning="display name"),
    Column("portfolio", "string", meaning="programme or department"),
    Column("project_type", "string", meaning="kind of project (it, construction, ...)"),
    Column("planned_start", "date", True, "approved baseline start"),
    Column("planned_finish", "date", True, "approved baseline finish"),
    Column("budget", "number", meaning="budget at completion (BAC) of the baseline", minimum=0),
    Column("actual_start", "date", meaning="actual start"),
    Column("actual_finish", "date", meaning="set once delivered"),
    Column("final_cost", "number", meaning="set once closed", minimum=0),
    Column(
        "status",
        "category",
        meaning="derived from actual_finish when absent",
        allowed=PROJECT_STATUSES,
    ),
)

STATUS_REPORT_COLUMNS: tuple[Column, ...] = (
    Column("project_id", "string", True, "the project reported on"),
    Column("report_date", "date", True, "reporting date; unique per project"),
    Column("percent_complete", "number", meaning="physical progress", minimum=0, maximum=100),
    Column("planned_value", "number", meaning="cumulative PV", minimum=0),
    Column("earned_value", "number", meaning="cumulative EV", minimum=0),
    Column("actual_cost", "number", meaning="cumulative AC", minimum=0),
    Column("forecast_finish", "date", meaning="the project manager's forecast finish"),
    Column("forecast_cost", "number", meaning="the project manager's forecast cost", minimum=0),
    Column("milestones_planned", "integer", meaning="milestones due by this date", minimum=0),
    Column("milestones_done", "integer", meaning="milestones done by this date", minimum=0),
    Column("open_risks", "integer", meaning="open risks", minimum=0),
    Column("open_issues", "integer", meaning="open issues", minimum=0),
    Column(
        "rag",
        "category",
        meaning="v1.1: the PMO's own status colour for this report",
        allowed=RAG_COLOURS,
    ),
)


# v1.1: schedule health per report, the DCMA 14-point checks `forewarn import` writes
# (definitions in docs/import.md; computed by features/schedules/health.py). Optional.
def _share(name: str, meaning: str) -> Column:
    return Column(name, "number", meaning=meaning, minimum=0, maximum=1)


SCHEDULE_HEALTH_COLUMNS: tuple[Column, ...] = (
    _share("dcma_logic", "share of incomplete activities missing a predecessor or successor"),
    _share("dcma_leads", "share of relationships with a lead (negative lag)"),
    _share("dcma_lags", "share of relationships with a positive lag"),
    _share("dcma_fs_share", "share of relationships that are finish-to-start"),
    _share("dcma_hard_constraints", "share of incomplete activities with a hard constraint"),
    _share("dcma_high_float", "share of incomplete activities with total float > 44 days"),
    _share("dcma_negative_float", "share of incomplete activities with negative float"),
    _share("dcma_high_duration", "share of incomplete activities longer than 44 days"),
    _share(
        "dcma_invalid_dates",
        "share of activities with actuals after / forecasts before the data date",
    ),
    _share("dcma_resources", "share of incomplete activities with neither resources nor cost"),
    _share("dcma_missed", "share of activities due by the data date that finished late"),
    _share("dcma_critical_path_test", "1 when the critical path is unbroken, else 0"),
    Column("cpli", "number", meaning="critical path length index (CPL + float) / CPL"),
    Column("bei", "number", meaning="baseline execution index: done / due", minimum=0),
)

CHANGE_COLUMNS: tuple[Column, ...] = (
    Column("project_id", "string", True, "the project changed"),
    Column("raised_date", "date", True, "when the change request was raised"),
    Column("change_id", "string", meaning="identifier"),
    Column("kind", "category", meaning="what the change touches", allowed=CHANGE_KINDS),
    Column("decided_date", "date", meaning="when it was decided"),
    Column("status", "category", meaning="decision", allowed=CHANGE_STATUSES),
    Column("cost_impact", "number", meaning="approved or requested cost impact"),
    Column("schedule_impact_days", "number", meaning="schedule impact in days"),
)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "projects": PROJECT_COLUMNS,
    "status_reports": STATUS_REPORT_COLUMNS + SCHEDULE_HEALTH_COLUMNS,
    "changes": CHANGE_COLUMNS,
}


def column(table: str, name: str) -> Column:
    """One column of the contract, by table and name."""
    for col in COLUMNS[table]:
        if col.name == name:
            return col
    raise KeyError(f"contract v1 has no column {name!r} in {table}")


# ------------------------------------------------------------ rules across columns and rows
#
# Each rule is declared once, here, with the words a refusal uses. `features.loading` runs
# them over whole tables (a file load) and `serving.intake` over a request's projects (where
# pandas would cost more than the whole answer): one implementation per kind of rule in
# each, and a kind that one of them does not know is an error there, not a skipped rule.
# In `text`, braces name values of the failing row (or, for `NotBeforeStart`, {start});
# `summary` is the same rule without them, for one count per kind of problem.


@dataclass(frozen=True)
class Ordered:
    """Date `later` must come after `earlier` (`strict`) or not before it; missing passes."""

    table: str
    later: str
    earlier: str
    strict: bool

    @property
    def column(self) -> str:
        return self.later

    @property
    def text(self) -> str:
        verb = "must be after" if self.strict else "must not be before"
        return f"{self.later} {verb} {self.earlier}"

    @property
    def summary(self) -> str:
        return self.text


@dataclass(frozen=True)
class Unique:
    """No two rows share their values of `keys`: every row of a repeat is refused, on the
    last key's column. Rows missing a key are not compared."""

    table: str
    keys: tuple[str, ...]
    text: str
    summary: str

    @property
    def column(self) -> str:
        return self.keys[-1]


@dataclass(frozen=True)
class RequiredWhen:
    """`column` must be given when `when` holds `value`."""

    table: str
    column: str
    when: str
    value: str

    @property
    def text(self) -> str:
        return f"{self.when} is {self.value} but {self.column} is empty"

    @property
    def summary(self) -> str:
        return self.text


@dataclass(frozen=True)
class NotBeforeStart:
    """A child row's date `column` must not precede its project's start: the earliest of
    the `starts` columns over the project rows with its project_id."""

    table: str
    column: str
    text: str
    summary: str
    starts: tuple[str, ...] = ("planned_start", "actual_start")


@dataclass(frozen=True)
class KnownProject:
    """A child row's project_id must name a project of the portfolio. A request nests each
    project's rows inside it, so only files can break this."""

    table: str
    column: str = "project_id"
    text: str = "unknown project_id: not in projects"

    @property
    def summary(self) -> str:
        return self.text


Rule = Ordered | Unique | RequiredWhen | NotBeforeStart | KnownProject

# In the order a quarantine lists a row's broken rules (after its columns' own rules).
RULES: tuple[Rule, ...] = (
    Unique(
        "projects",
        ("project_id",),
        text="project_id {project_id} appears more than once",
        summary="project_id appears more than once",
    ),
    Ordered("projects", "planned_finish", "planned_start", strict=True),
    Ordered("projects", "actual_finish", "actual_start", strict=False),
    RequiredWhen("projects", "actual_finish", when="status", value="closed"),
    KnownProject("status_reports"),
    Unique(
        "status_reports",
        ("project_id", "report_date"),
        text="report_date {report_date} appears more than once for project {project_id}",
        summary="report_date appears more than once for the same project",
    ),
    NotBeforeStart(
        "status_reports",
        "report_date",
        text="report_date before the project's start {start}",
        summary="report_date before the project's start",
    ),
    KnownProject("changes"),
    Ordered("changes", "decided_date", "raised_date", strict=False),
)


def rules(table: str) -> tuple[Rule, ...]:
    """The rules across columns and rows of one table, in `RULES` order."""
    return tuple(rule for rule in RULES if rule.table == table)


def text_fields(text: str) -> list[str]:
    """The names a rule's text takes in braces, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def column_names(table: str) -> list[str]:
    """The contract's column names of one table, in contract order."""
    return [c.name for c in COLUMNS[table]]


def required_columns(table: str) -> list[str]:
    return [c.name for c in COLUMNS[table] if c.required]


@dataclass
class Portfolio:
    """A portfolio in contract v1, typed as this module's docstring says.

    ``projects`` may carry extra attribute columns beyond the contract's.
    """

    projects: pd.DataFrame
    status_reports: pd.DataFrame
    changes: pd.DataFrame
    source: str = ""
    extra_attributes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "projects": len(self.projects),
            "status_reports": len(self.status_reports),
            "changes": len(self.changes),
        }


Columns = dict[str, np.ndarray]  # one table as arrays: column name → values


@dataclass
class PortfolioColumns:
    """A portfolio as arrays rather than frames: each table maps column name → NumPy array,
    typed as `Portfolio`'s columns are (``datetime64[ns]`` dates, ``float64`` numbers,
    ``object`` strings; no optional column left out).

    What the service builds from a request: framing a one-project request cost as much as
    building its features. `features.pointintime` reads either form; `to_portfolio()`
    frames it for everything else.
    """

    projects: Columns
    status_reports: Columns
    changes: Columns
    source: str = ""
    extra_attributes: list[str] = field(default_factory=list)

    def to_portfolio(self) -> Portfolio:
        return Portfolio(
            projects=pd.DataFrame(self.projects, copy=False),
            status_reports=pd.DataFrame(self.status_reports, copy=False),
            changes=pd.DataFrame(self.changes, copy=False),
            source=self.source,
            extra_attributes=list(self.extra_attributes),
        )


def empty_table(table: str) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes."""
    return conform(pd.DataFrame({c.name: [] for c in COLUMNS[table]}), table)


def conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Add missing optional columns and cast every contract column to its declared dtype.

    Assumes the values already passed validation (or were generated by us): casting errors
    here are bugs, not user errors.
    """
    out = frame.copy()
    for col in COLUMNS[table]:
        if col.name not in out.columns:
            out[col.name] = pd.Series([None] * len(out), index=out.index, dtype="object")
        if col.kind == "date":
            out[col.name] = pd.to_datetime(out[col.name]).astype("datetime64[ns]").dt.normalize()
        elif col.kind in ("number", "integer"):
            out[col.name] = pd.to_numeric(out[col.name]).astype("float64")
        else:
            values = out[col.name].astype("object")
            out[col.name] = values.where(values.notna(), None)
    if table == "projects":
        missing = out["status"].isna()
        out.loc[missing, "status"] = (
            out.loc[missing, "actual_finish"].notna().map({True: "closed", False: "active"})
        )
    ordered = column_names(table) + [c for c in out.columns if c not in column_names(table)]
    return out[ordered].reset_index(drop=True)
