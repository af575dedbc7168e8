"""From request models to a contract-v1 portfolio, under the same rules as a file load.

Pydantic has already checked each field against contract v1 (types, bounds, allowed
values, required fields, all read from `features.contract`). What is left are the
contract's rules across fields and rows — a finish before the start, a report dated before
the project's start, a report date given twice — declared once in
`features.contract.RULES`, which `features.loading` runs over whole files. Here each kind of
rule is checked on the request's Python objects, with the same texts: running the pandas /
pandera implementation costs ~300 ms for a single project, thirty times the latency budget
of `/score`. A test feeds the same bad rows to both and requires the same verdicts.

A broken rule becomes a pydantic `ValidationError` located in the request
(``projects.0.status_reports.3.report_date``), which BentoML answers with 400.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from operator import attrgetter
from typing import Any

import numpy as np
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from features.contract import (
    COLUMNS,
    TABLES,
    Columns,
    KnownProject,
    NotBeforeStart,
    Ordered,
    PortfolioColumns,
    RequiredWhen,
    Rule,
    Unique,
    rules,
    text_fields,
)
from serving.request_models import ProjectIn

Loc = tuple[str | int, ...]

_CHILD_TABLES = ("status_reports", "changes")


# ------------------------------------------------------------------------------ the rules


def contract_errors(projects: Sequence[ProjectIn]) -> list[tuple[Loc, str]]:
    """Every rule across fields and rows of contract v1 (`features.contract.RULES`) that the
    projects break, in request order.

    Locations are relative to the list of projects, e.g. ``(0, "status_reports", 3,
    "report_date")``; the texts are the contract's, as a file load words them.
    """
    errors: list[tuple[Loc, str]] = []
    for table in TABLES:
        rows = _rows(projects, table)
        if rows:
            for rule in rules(table):
                errors += [(_loc(table, i, j, rule.column), text) for i, j, text in
                           _check(rule, rows, projects)]  # fmt: skip
    if len(errors) > 1:
        errors.sort(key=lambda error: _request_order(error[0]))  # stable: rule order per row
    return errors


# A row of the request: its project's position, its own among the project's rows of its
# table (-1 for the project's own row), the row, and its project's id.
_Row = tuple[int, int, Any, str]
# A broken rule: the row's two positions and the rule's text.
_Broken = tuple[int, int, str]


def _rows(projects: Sequence[ProjectIn], table: str) -> list[_Row]:
    if table == "projects":
        return [(i, -1, p, p.project_id) for i, p in enumerate(projects)]
    return [
        (i, j, row, p.project_id)
        for i, p in enumerate(projects)
        for j, row in enumerate(getattr(p, table))
    ]


def _loc(table: str, i: int, j: int, column: str) -> Loc:
    return (i, column) if table == "projects" else (i, table, j, column)


def _request_order(where: Loc) -> tuple[Any, ...]:
    if len(where) == 2:  # (i, column): a project's own row comes before its children
        return (where[0], 0, 0)
    return (where[0], TABLES.index(str(where[1])), where[2])


def _value(row: Any, owner: str, name: str) -> Any:
    # A nested row need not repeat its project's id (request_models checks it if it does).
    return owner if name == "project_id" else getattr(row, name)


def _key_of(keys: tuple[str, ...]) -> Callable[[Any, str], tuple[Any, ...]]:
    """A row's values of `keys` as one tuple (its project's id for project_id)."""
    if keys == ("project_id",):
        return lambda row, owner: (owner,)
    if len(keys) == 2 and keys[0] == "project_id":  # a key within each project
        column = attrgetter(keys[1])
        return lambda row, owner: (owner, column(row))
    return lambda row, owner: tuple(_value(row, owner, k) for k in keys)


def _check(rule: Rule, rows: list[_Row], projects: Sequence[ProjectIn]) -> list[_Broken]:
    """One rule over the rows of its table: where it is broken, with the rule's text."""
    if isinstance(rule, Ordered):
        later, earlier, text = attrgetter(rule.later), attrgetter(rule.earlier), rule.text
        if rule.strict:
            return [
                (i, j, text)
                for i, j, row, _ in rows
                if (a := later(row)) is not None and (b := earlier(row)) is not None and a <= b
            ]
        return [
            (i, j, text)
            for i, j, row, _ in rows
            if (a := later(row)) is not None and (b := earlier(row)) is not None and a < b
        ]
    if isinstance(rule, Unique):
        key_of = _key_of(rule.keys)
        keys = [key_of(row, owner) for _, _, row, owner in rows]
        if len(set(keys)) == len(keys):  # no key twice: the usual answer
            return []
        counts = Counter(key for key in keys if None not in key)  # unkeyed rows never repeat
        return [
            (i, j, rule.text.format(**dict(zip(rule.keys, key, strict=True))))
            for (i, j, _, _), key in zip(rows, keys, strict=True)
            if counts.get(key, 0) > 1
        ]
    if isinstance(rule, RequiredWhen):
        when, given = attrgetter(rule.when), attrgetter(rule.column)
        return [
            (i, j, rule.text)
            for i, j, row, _ in rows
            if when(row) == rule.value and given(row) is None
        ]
    if isinstance(rule, NotBeforeStart):
        starts: dict[str, date] = {}  # over every project with the id, as a file load has it
        for p in projects:
            given_starts = [d for d in (getattr(p, name) for name in rule.starts) if d is not None]
            if given_starts:
                first = min(given_starts)
                starts[p.project_id] = min(first, starts.get(p.project_id, first))
        day_of = attrgetter(rule.column)
        broken = []
        for i, j, row, owner in rows:
            day, start = day_of(row), starts.get(owner)
            if day is not None and start is not None and day < start:
                values = {n: _value(row, owner, n) for n in text_fields(rule.text) if n != "start"}
                broken.append((i, j, rule.text.format(start=start, **values)))
        return broken
    if isinstance(rule, KnownProject):
        return []  # rows sit inside their project: a request cannot name an unknown one
    raise TypeError(f"serving.intake cannot check the rule {rule!r}")  # never skip one


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
