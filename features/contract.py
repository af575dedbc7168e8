"""Data contract v1.1: the three tables of a portfolio, their columns and the rules they obey.

This module only declares; `features.loading` reads files and enforces the rules, and every
other stage receives a `Portfolio` whose columns have the dtypes declared here:
dates are ``datetime64[ns]`` (midnight), numbers ``float64`` (NaN when absent), strings
``object`` (None/NaN when absent). Optional columns that a file lacks are added, all missing,
so that downstream code never has to ask whether a column exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["string", "date", "number", "integer", "category"]

TABLES = ("projects", "status_reports", "changes")

PROJECT_STATUSES = ("active", "closed", "cancelled", "on_hold")
CHANGE_KINDS = ("scope", "schedule", "cost", "baseline", "other")
CHANGE_STATUSES = ("pending", "approved", "rejected", "withdrawn")
RAG_COLOURS = ("green", "amber", "red")  # v1.1: the PMO's own status colour, mildest first


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
    "status_reports": STATUS_REPORT_COLUMNS,
    "changes": CHANGE_COLUMNS,
}


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
