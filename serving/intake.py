"""From request models to a contract-v1 portfolio, under the same rules as a file load.

Pydantic has already checked each field against contract v1 (types, bounds, allowed
values, required fields). What is left are the contract's rules across fields and rows — a
finish before the start, a report dated before the project's start, a report date given
twice — which `features.loading.validate_frames` applies to files. Here they are checked on
the request's Python objects with the same wording: running the pandas/pandera
implementation costs ~300 ms for a single project, thirty times the latency budget of
`/score`. A test feeds the same bad rows to both and requires the same verdicts.

A broken rule becomes a pydantic `ValidationError` located in the request
(``projects.0.status_reports.3.report_date``), which BentoML answers with 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from features.contract import COLUMNS, Columns, PortfolioColumns
from serving.request_models import ProjectIn

Loc = tuple[str | int, ...]

_CHILD_TABLES = ("status_reports", "changes")


# ------------------------------------------------------------------------------ the rules


def contract_errors(projects: Sequence[ProjectIn]) -> list[tuple[Loc, str]]:
    """Every cross-field and cross-row rule of contract v1 the projects break.

    Locations are relative to the list of projects, e.g. ``(0, "status_reports", 3,
    "report_date")``; the texts are `features.loading`'s.
    """
    errors: list[tuple[Loc, str]] = []
    counts: dict[str, int] = {}
    for project in projects:
        counts[project.project_id] = counts.get(project.project_id, 0) + 1
    for i, p in enumerate(projects):
        if counts[p.project_id] > 1:
            errors.append(((i, "project_id"), f"project_id {p.project_id} appears more than once"))
        if p.planned_finish <= p.planned_start:
            errors.append(((i, "planned_finish"), "planned_finish must be after planned_start"))
        if p.actual_finish and p.actual_start and p.actual_finish < p.actual_start:
            errors.append(((i, "actual_finish"), "actual_finish must not be before actual_start"))
        if p.status == "closed" and p.actual_finish is None:
            errors.append(((i, "actual_finish"), "status is closed but actual_finish is empty"))
        start = min(p.planned_start, p.actual_start or p.planned_start)
        dates: dict[date, int] = {}
        for report in p.status_reports:
            dates[report.report_date] = dates.get(report.report_date, 0) + 1
        for j, report in enumerate(p.status_reports):
            where: Loc = (i, "status_reports", j, "report_date")
            if dates[report.report_date] > 1:
                errors.append(
                    (
                        where,
                        f"report_date {report.report_date} appears more than once for project "
                        f"{p.project_id}",
                    )
                )
            if report.report_date < start:
                errors.append((where, f"report_date before the project's start {start}"))
        for j, change in enumerate(p.changes):
            if change.decided_date and change.decided_date < change.raised_date:
                errors.append(
                    (
                        (i, "changes", j, "decided_date"),
                        "decided_date must not be before raised_date",
                    )
                )
    return errors


def located_error(
    errors: Sequence[tuple[Loc, str]], title: str, loc_prefix: Loc
) -> ValidationError:
    """A pydantic ValidationError with one entry per broken rule, located in the request.

    With ``loc_prefix = ("project",)`` (the single project of /explain) the project's index
    is dropped from each location.
    """
    single = loc_prefix != ("projects",)
    details = [
        InitErrorDetails(
            # The rule goes in as context, so braces in it are never read as a template.
            type=PydanticCustomError("contract_rule", "{rule}", {"rule": rule}),
            loc=(*loc_prefix, *(where[1:] if single else where)),
            input=None,
        )
        for where, rule in errors
    ]
    return ValidationError.from_exception_data(title, details)


# ------------------------------------------------------------------------------ the tables


_EPOCH = date(1970, 1, 1).toordinal()
_NAT = np.iinfo(np.int64).min  # NaT as int64


def _column(values: list[Any], kind: str) -> np.ndarray:
    """One contract column as its declared dtype (`features.contract.conform`'s)."""
    if kind == "date":  # None becomes NaT
        # Days since 1970 from the ordinals: a tenth of NumPy's conversion of date objects
        # (~50 µs for 30 reports), and the same values (tests/serving/test_intake.py).
        days = [_NAT if v is None else v.toordinal() - _EPOCH for v in values]
        return np.array(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ns]")
    if kind in ("number", "integer"):  # None becomes NaN
        return np.array(values, dtype="float64")
    return np.array(values, dtype=object)


def _table(table: str, rows: Sequence[Any], owners: Sequence[str] | None = None) -> Columns:
    """A contract table's columns from request models, read by attribute (no per-row dicts).

    `owners` gives each child row its project's id (nested rows need not carry it).
    """
    data: Columns = {}
    for c in COLUMNS[table]:
        if c.name == "project_id" and owners is not None:
            data[c.name] = np.array(owners, dtype=object)
        else:
            data[c.name] = _column([getattr(r, c.name) for r in rows], c.kind)
    return data


def _attribute(values: list[Any]) -> np.ndarray:
    # As a file load reads them: numbers when every given value is one, text otherwise.
    given = [v for v in values if v is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def request_tables(
    projects: Sequence[ProjectIn],
    extra_attributes: Sequence[str] = (),
    *,
    title: str = "ScoreRequest",
    loc_prefix: Loc = ("projects",),
) -> PortfolioColumns:
    """The request's projects as contract-v1 columns (arrays, typed as a file load types
    them), which `features.pointintime` reads as they are (`.to_portfolio()` frames them).

    Raises `pydantic_core.ValidationError` naming each offending field and its rule.
    `loc_prefix` is where the projects sit in the request (``("project",)`` for /explain).
    """
    errors = contract_errors(projects)
    if errors:
        raise located_error(errors, title, loc_prefix)
    children: dict[str, list[Any]] = {t: [] for t in _CHILD_TABLES}
    owners: dict[str, list[str]] = {t: [] for t in _CHILD_TABLES}
    for p in projects:
        for table in _CHILD_TABLES:
            rows = getattr(p, table)
            children[table].extend(rows)
            owners[table].extend([p.project_id] * len(rows))
    baseline = _table("projects", projects)
    # As `features.contract.conform` derives it when absent.
    baseline["status"] = np.array(
        [p.status or ("closed" if p.actual_finish is not None else "active") for p in projects],
        dtype=object,
    )
    names = sorted({k for p in projects for k in p.attributes} | set(extra_attributes))
    for name in names:
        baseline[name] = _attribute([p.attributes.get(name) for p in projects])
    return PortfolioColumns(
        projects=baseline,
        status_reports=_table(
            "status_reports", children["status_reports"], owners["status_reports"]
        ),
        changes=_table("changes", children["changes"], owners["changes"]),
        source="request",
        extra_attributes=list(extra_attributes),
    )


def as_of_columns(tables: PortfolioColumns, as_of: date) -> Columns:
    """Every project of the request seen from the same date, in request order: the
    ``as_of`` table `features.pointintime.build_feature_columns` reads, as arrays."""
    ids = tables.projects["project_id"]
    return {"project_id": ids, "as_of": np.full(len(ids), np.datetime64(as_of, "ns"))}


def combine_tables(
    requests: Sequence[PortfolioColumns],
    dates: Sequence[date],
    extra_attributes: Sequence[str] = (),
) -> tuple[PortfolioColumns, Columns]:
    """Several requests' tables as one, with the ``as_of`` table of their projects (request
    k's projects seen from ``dates[k]``), rows in request order.

    One request comes back as it is. With several, a project id may recur across requests,
    so each id is prefixed with its request's position (``"3/P-001"``); callers map rows
    back by position. Attribute columns other than `extra_attributes` are dropped (the
    features read no other); the requests' extra attributes must share their types.
    """
    if len(requests) == 1:
        return requests[0], as_of_columns(requests[0], dates[0])
    keep = {c.name for c in COLUMNS["projects"]} | {"status", *extra_attributes}
    names = {
        "projects": [c for c in requests[0].projects if c in keep],
        "status_reports": list(requests[0].status_reports),
        "changes": list(requests[0].changes),
    }
    tables: dict[str, Columns] = {}
    for table, columns in names.items():
        parts = [getattr(r, table) for r in requests]
        tables[table] = {c: np.concatenate([p[c] for p in parts]) for c in columns}
        keyed = [f"{k}/{pid}" for k, p in enumerate(parts) for pid in p["project_id"].tolist()]
        tables[table]["project_id"] = np.array(keyed, dtype=object)
    counts = [len(r.projects["project_id"]) for r in requests]
    days = np.repeat(np.array([np.datetime64(d, "ns") for d in dates]), counts)
    combined = PortfolioColumns(
        projects=tables["projects"],
        status_reports=tables["status_reports"],
        changes=tables["changes"],
        source="request",
        extra_attributes=list(extra_attributes),
    )
    return combined, {"project_id": tables["projects"]["project_id"], "as_of": days}
