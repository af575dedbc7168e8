"""Reading, validating and writing portfolios in data contract v1.

Reading keeps every cell as it was written (text for CSV and Parquet, the cell's value for a
workbook) so that a bad value ends in the quarantine instead of crashing the load.
`validate_frames` then parses each column once, runs the contract's rules as pandera checks
over whole columns, and splits every input row into loaded or quarantined: nothing is
dropped silently. Whole-file problems (no such file, a missing table or required column,
unreadable bytes) raise `ContractError` instead.
"""

from __future__ import annotations

import csv
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow_lib
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from features.atomic import replaced_whole
from features.contract import (
    COLUMNS,
    FIRST_DAY,
    LAST_DAY,
    TABLES,
    TYPE_RULES,
    Column,
    KnownProject,
    NotBeforeStart,
    Ordered,
    Portfolio,
    RequiredWhen,
    Rule,
    Unique,
    column_names,
    conform,
    required_columns,
    rules,
    text_fields,
)

QUARANTINE_COLUMNS = ["table", "file", "row", "column", "value", "rule"]

# The row number a person sees: the header is row 1, so the first data row is row 2.
FIRST_DATA_ROW = 2

DATA_SUFFIXES = (".csv", ".parquet")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")

# Spellings of "no value" in number, date and category columns (pandas' usual set, lower
# case). Identifier and name columns treat only an empty cell as missing: "NA" may be a name.
MISSING_TOKENS = frozenset(
    {"na", "n/a", "nan", "-nan", "null", "none", "<na>", "nat", "#n/a", "#na", "#n/a n/a"}
)

# A date is year-month-day, optionally followed by a time that the contract ignores.
_DATE_SHAPE = r"^\d{4}-\d{1,2}-\d{1,2}(?:[T ].*)?$"

_TEXT = pd.ArrowDtype(pyarrow_lib.string())


class ContractError(Exception):
    """A whole-file problem (unreadable file, missing table or required column).

    The message names the file, the column where there is one, and the rule; the CLI prints
    it and exits 2.
    """


@dataclass
class LoadResult:
    """A validated portfolio plus the rows that broke the contract."""

    portfolio: Portfolio
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    files: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------ reading


def load_portfolio(path: Path, extra_attributes: Sequence[str] = ()) -> LoadResult:
    """Read and validate a portfolio: a folder of CSV/Parquet tables or one .xlsx workbook.

    The folder holds ``projects``, ``status_reports`` and optionally ``changes``, each as
    ``.csv`` or ``.parquet``; a workbook holds sheets of those names. Rows that break the
    contract are in ``quarantine``; whole-file problems raise `ContractError`.
    """
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: no such file or folder")
    if path.is_dir():
        frames, files = _read_folder(path)
    elif path.suffix.lower() in WORKBOOK_SUFFIXES:
        frames, files = _read_workbook(path)
    else:
        raise ContractError(
            f"{path}: expected a folder of projects/status_reports/changes files "
            f"(.csv or .parquet) or an Excel workbook (.xlsx), not a {path.suffix or 'plain'} file"
        )
    return _validate(frames, files, list(extra_attributes), source=str(path))


def _read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    for table in TABLES:
        found = [
            folder / f"{table}{s}" for s in DATA_SUFFIXES if (folder / f"{table}{s}").is_file()
        ]
        if len(found) > 1:
            raise ContractError(
                f"{folder}: both {found[0].name} and {found[1].name} exist; keep one"
            )
        if not found:
            if table == "changes":  # optional: a portfolio may have no change requests
                continue
            present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            raise ContractError(
                f"{folder}: no {table} table: expected {table}.csv or {table}.parquet"
                + (f" (found: {', '.join(present[:10])})" if present else " (the folder is empty)")
            )
        file = found[0]
        frames[table] = _read_csv(file) if file.suffix == ".csv" else _read_parquet(file)
        files[table] = file.name
    return frames, files


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text, indexed by the line its record starts on (the header is line 1)."""
    try:
        # The header is read apart because readers silently rename duplicate columns.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise ContractError(_not_utf8(path, exc)) from exc
    except csv.Error as exc:
        raise ContractError(f"{path}: cannot be read as CSV: {exc}") from exc
    if header is None:
        raise ContractError(f"{path}: the file is empty; line 1 must name the columns")
    names = _column_names(header, str(path))
    try:
        frame = _read_csv_arrow(path, names)
    except pyarrow_lib.ArrowInvalid:
        # Rows with fewer or more values than the header, or bytes that are not UTF-8:
        # the slower reader pads short rows and says which line is wrong.
        frame = _read_csv_lines(path, names)
    return _drop_blank_rows(frame)


def _read_csv_arrow(path: Path, names: list[str]) -> pd.DataFrame:
    """Arrow's multithreaded reader, all columns text; blank lines are kept as rows."""
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pyarrow_lib.string()),
            null_values=[],
            strings_can_be_null=False,
        ),
    )
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    # A quoted value may span lines; the next record then starts that many lines later.
    newlines = np.zeros(len(frame), dtype=np.int64)
    for col in frame.columns:
        if frame[col].str.contains("\n", regex=False).any():  # cheap test, rare count
            newlines += frame[col].str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    starts = FIRST_DATA_ROW + np.concatenate([[0], np.cumsum(1 + newlines)[:-1]])
    frame.index = pd.Index(starts[: len(frame)], name="row")
    return frame


def _read_csv_lines(path: Path, names: list[str]) -> pd.DataFrame:
    """Record by record, for files Arrow refuses: short rows are padded with empty cells;
    a value beyond the header's last column is a file error, since no name says what it is."""
    width = len(names)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            next(reader)
            start = reader.line_num + 1
            for record in reader:
                if len(record) > width and any(v.strip() for v in record[width:]):
                    raise ContractError(
                        f"{path}: line {start} has {len(record)} values but the header names "
                        f"{width} columns"
                    )
                rows.append(record[:width] + [""] * (width - len(record)))
                lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise ContractError(_not_utf8(path, exc)) from exc
    except csv.Error as exc:
        raise ContractError(f"{path}: cannot be read as CSV: {exc}") from exc
    frame = pd.DataFrame(rows, columns=names, dtype=object).astype(_TEXT)
    frame.index = pd.Index(lines, dtype=np.int64, name="row")
    return frame


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    return f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as 'CSV UTF-8'"


def _read_parquet(path: Path) -> pd.DataFrame:
    """Every column cast to text where Arrow can (so ids stay '101', not '101.0')."""
    try:
        table = pq.read_table(path)
    except (OSError, pyarrow_lib.ArrowException) as exc:
        raise ContractError(f"{path}: cannot be read as Parquet: {exc}") from exc
    names = _column_names(table.column_names, str(path))
    columns: dict[str, pd.Series] = {}
    for name, array in zip(names, table.columns, strict=True):
        try:
            columns[name] = pd.Series(pc.cast(array, pyarrow_lib.string()), dtype=_TEXT)
        except pyarrow_lib.ArrowException:
            # Nested or exotic types: keep the values; validation reports what does not fit.
            columns[name] = pd.Series(array.to_pandas(), dtype=object)
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(np.arange(len(frame)) + FIRST_DATA_ROW, name="row")
    return frame


def _read_workbook(path: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """One sheet per table (names matched case-insensitively), indexed by sheet row."""
    import openpyxl  # only workbooks need it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors alike
        raise ContractError(f"{path}: cannot be read as an Excel workbook: {exc}") from exc
    try:
        sheets = {name.strip().lower(): name for name in book.sheetnames}
        frames: dict[str, pd.DataFrame] = {}
        files: dict[str, str] = {}
        for table in TABLES:
            if table not in sheets:
                if table == "changes":
                    continue
                raise ContractError(
                    f"{path}: no sheet named {table} (the workbook's sheets: "
                    f"{', '.join(book.sheetnames)}); the contract needs sheets projects, "
                    "status_reports and optionally changes"
                )
            where = f"{path.name} (sheet {sheets[table]})"
            rows = list(book[sheets[table]].iter_rows(min_row=1, values_only=True))
            if not rows:
                raise ContractError(f"{where}: the sheet is empty; row 1 must name the columns")
            names = _column_names(rows[0], where)
            body = pd.DataFrame(rows[1:], columns=names, dtype=object)
            body.index = pd.Index(np.arange(len(body)) + FIRST_DATA_ROW, name="row")
            frames[table] = _drop_blank_rows(body)
            files[table] = where
    finally:
        book.close()
    return frames, files


def _column_names(header: Iterable[Any], where: str) -> list[str]:
    """Header names stripped; blank ones named by position; duplicates are a file error."""
    names = ["" if h is None else str(h).strip() for h in header]
    names = [n if n else f"(column {i + 1})" for i, n in enumerate(names)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ContractError(f"{where}: column {name!r} appears twice in the header")
        seen.add(name)
    return names


def _drop_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with every cell empty are layout (a blank line, a formatted Excel row), not data."""
    if frame.empty:
        return frame
    # Only rows whose first cell is empty can be blank: test the rest on those alone.
    first = _clean(frame.iloc[:, 0], tokens=False)
    candidates = frame.loc[first.isna().to_numpy(dtype=bool)]
    blank = np.ones(len(candidates), dtype=bool)
    for col in candidates.columns:
        blank &= _clean(candidates[col], tokens=False).isna().to_numpy(dtype=bool)
    return frame.drop(index=candidates.index[blank]) if blank.any() else frame


# ---------------------------------------------------------------------------- validation


def validate_frames(
    frames: dict[str, pd.DataFrame],
    files: dict[str, str],
    extra_attributes: Sequence[str] = (),
) -> LoadResult:
    """Validate in-memory tables of raw values (text or already typed) against contract v1.

    ``frames`` maps table names to frames (``changes`` may be absent); ``files`` maps them to
    the label the quarantine shows. Quarantine rows count from 2 (the 0-based position + 2),
    as if each frame were a file with a header line.
    """
    indexed = {
        table: frame.set_axis(pd.Index(np.arange(len(frame)) + FIRST_DATA_ROW, name="row"))
        for table, frame in frames.items()
        if table in TABLES
    }
    return _validate(indexed, dict(files), list(extra_attributes), source="")


@dataclass(frozen=True)
class _Rule:
    """One contract rule, run by pandera as a check of ``column`` over the whole table.

    ``check`` returns True where a row obeys the rule; it gets the column's parsed values, or
    the whole parsed frame when ``on_frame`` (rules across columns or tables). ``text`` is
    what the quarantine says, fixed or built from the failing rows of the parsed frame.
    """

    key: str
    column: str
    check: Callable[[Any], pd.Series]
    text: str | Callable[[pd.DataFrame], pd.Series]
    on_frame: bool = False


def _validate(
    frames: dict[str, pd.DataFrame],
    files: dict[str, str],
    extra_attributes: list[str],
    source: str,
) -> LoadResult:
    """Frames are indexed by the row number the quarantine reports."""
    for table in ("projects", "status_reports"):
        if table not in frames:
            raise ContractError(f"{source or 'input'}: no {table} table")
    files = {t: files.get(t) or t for t in frames}
    inputs = {t: _checked_columns(frames[t], t, files[t], extra_attributes) for t in frames}
    inputs.setdefault("changes", _blank_raw("changes"))
    raw = {t: _normalise(inputs[t], t) for t in TABLES}
    typed = {t: _parse(raw[t], t) for t in TABLES}

    # Ids compare as text: a workbook or JSON may hold 101 where a CSV holds '101'.
    known_ids = pd.Index(typed["projects"]["project_id"].dropna().astype(str).unique())
    quarantine = {
        table: _apply_rules(
            typed[table],
            raw[table],
            [*_column_rules(table, raw[table]), *_row_rules(table, raw[table], typed, known_ids)],
            table,
            files.get(table, table),
        )
        for table in TABLES
    }
    # A child of a quarantined project cannot be loaded without it: quarantine it as well,
    # with the reason, so that every row is accounted for.
    bad_projects = typed["projects"].loc[_rows(quarantine["projects"]), "project_id"]
    bad_projects = bad_projects.dropna().astype(str).unique()
    for table in ("status_reports", "changes"):
        ids = typed[table]["project_id"]
        hit = ids[ids.isin(bad_projects)]
        if len(hit):
            cascade = pd.DataFrame(
                {
                    "table": table,
                    "file": files.get(table, table),
                    "row": hit.index.to_numpy(dtype=np.int64),
                    "column": "project_id",
                    "value": hit.astype(object).to_numpy(),
                    "rule": ("project " + hit.astype(str) + " was quarantined").to_numpy(),
                }
            )
            quarantine[table] = pd.concat([quarantine[table], cascade], ignore_index=True)

    loaded: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        bad = _rows(quarantine[table])
        loaded[table] = conform(typed[table].drop(index=bad), table)
        # The contract's promise: every input row is loaded or quarantined, never both.
        if len(loaded[table]) + len(bad) != len(raw[table]) or not bad.isin(raw[table].index).all():
            raise AssertionError(
                f"{table}: {len(raw[table])} rows in, {len(loaded[table])} loaded and "
                f"{len(bad)} quarantined"
            )
    portfolio = Portfolio(
        projects=loaded["projects"],
        status_reports=loaded["status_reports"],
        changes=loaded["changes"],
        source=source,
        extra_attributes=extra_attributes,
    )
    result = pd.concat([quarantine[t] for t in TABLES], ignore_index=True)
    result["table"] = pd.Categorical(result["table"], categories=list(TABLES), ordered=True)
    result = result.sort_values(["table", "row"], kind="stable").reset_index(drop=True)
    result["table"] = result["table"].astype(str)
    result["row"] = result["row"].astype(np.int64)
    return LoadResult(portfolio=portfolio, quarantine=result[QUARANTINE_COLUMNS], files=files)


def _checked_columns(
    frame: pd.DataFrame, table: str, where: str, extra_attributes: list[str]
) -> pd.DataFrame:
    """Whole-file column checks; returns the frame with clean names and no empty unnamed column."""
    frame = frame.set_axis(_column_names(frame.columns, where), axis=1)
    for name in [c for c in frame.columns if c.startswith("(column ")]:
        if frame[name].pipe(_clean, tokens=False).notna().any():
            raise ContractError(f"{where}: {name} has values but no name in the header")
        frame = frame.drop(columns=name)
    for name in required_columns(table):
        if name not in frame.columns:
            raise ContractError(f"{where}: missing required column {name!r}{_hint(frame, name)}")
    if table == "projects":
        for name in extra_attributes:
            if name not in frame.columns:
                raise ContractError(
                    f"{where}: no column {name!r}, which FOREWARN_EXTRA_ATTRIBUTES lists"
                )
    return frame


def _hint(frame: pd.DataFrame, name: str) -> str:
    """Why a required column may look missing: the usual spreadsheet-export slips."""
    if len(frame.columns) == 1 and ";" in frame.columns[0]:
        return " (the file looks semicolon-separated; the contract needs commas)"
    near = [c for c in frame.columns if c.lower().replace(" ", "_") == name]
    if near:
        return f" (found {near[0]!r}: column names are lower case with underscores)"
    return f" (columns found: {', '.join(map(str, frame.columns))})"


def _blank_raw(table: str) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series([], dtype=object) for c in column_names(table)},
        index=pd.Index([], dtype=np.int64, name="row"),
    )


def _as_text(values: pd.Series) -> pd.Series | None:
    """The column as Arrow text when every present value is text (files), else None."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype) and pyarrow_lib.types.is_string(dtype.pyarrow_dtype):
        return values
    textual = pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype)
    if textual and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype(_TEXT)
    return None


def _clean(values: pd.Series, tokens: bool) -> pd.Series:
    """Text stripped, and every spelling of "no value" made null: empty, None, NaN and, when
    ``tokens``, words such as 'N/A'. Text stays Arrow text; other values are left as given."""
    text = _as_text(values)
    if text is not None:
        stripped = text.str.strip()
        blank = stripped.eq("")
        if tokens:
            blank = blank | stripped.str.lower().isin(MISSING_TOKENS)
        return stripped.mask(blank.fillna(False).astype(bool))
    if values.dtype != object:
        return values  # numbers, dates, booleans typed by the caller; NaN/NaT are missing

    def one(v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            return None if not v or (tokens and v.lower() in MISSING_TOKENS) else v
        return None if _is_missing(v) else v

    return values.map(one).astype(object)


def _is_missing(value: Any) -> bool:
    """One cell: None, NaN, NaT or NA (a list or an array is a value, however odd)."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _normalise(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The contract's columns (absent optional ones added empty) plus, for projects, extras,
    with missing values in one spelling. Unknown columns of status_reports and changes are
    dropped: the contract ignores them."""
    contract = column_names(table)
    extras = [c for c in frame.columns if c not in contract] if table == "projects" else []
    kinds = {c.name: c.kind for c in COLUMNS[table]}
    out: dict[str, pd.Series] = {}
    for name in contract + extras:
        if name not in frame.columns:
            out[name] = pd.Series(None, index=frame.index, dtype=object)
        else:
            # Identifiers and names keep 'NA' (it may be a name); other columns read it as empty.
            out[name] = _clean(frame[name], tokens=kinds.get(name) != "string")
    return pd.DataFrame(out, index=frame.index)


def _parse(raw: pd.DataFrame, table: str) -> pd.DataFrame:
    """Each column in its contract type. A value that does not parse becomes null here; the
    type rule reports it by comparing this with what was written, so parsing happens once."""
    typed: dict[str, pd.Series] = {}
    for col in COLUMNS[table]:
        typed[col.name] = _PARSERS[col.kind](raw[col.name])
    for name in raw.columns.difference(column_names(table), sort=False):
        # Extra project attributes: numbers when every value is one, text otherwise.
        numbers = _to_number(raw[name])
        parsed_all = bool(numbers.notna().eq(raw[name].notna()).all())
        typed[name] = numbers if parsed_all else _to_text(raw[name]).astype(object)
    return pd.DataFrame(typed, index=raw.index)


def _to_text(values: pd.Series) -> pd.Series:
    if _as_text(values) is not None:
        return values

    def one(v: Any) -> Any:
        if isinstance(v, str) or _is_missing(v):
            return v if isinstance(v, str) else None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))  # an id typed as 101 in a number cell stays '101'
        return str(v)

    return values.astype(object).map(one).astype(object)


def _to_category(values: pd.Series) -> pd.Series:
    return _to_text(values).str.lower()  # 'Closed' is closed


def _to_number(values: pd.Series) -> pd.Series:
    text = _as_text(values)
    if text is not None:
        try:  # Arrow's parser is ~20x faster than to_numeric; it fails on any bad cell
            arrow = pc.cast(pyarrow_lib.array(text.array), pyarrow_lib.float64())
            numbers = pd.Series(arrow.to_numpy(zero_copy_only=False), index=values.index)
        except pyarrow_lib.ArrowInvalid:
            numbers = pd.to_numeric(text.astype(object), errors="coerce").astype("float64")
    elif pd.api.types.is_bool_dtype(values.dtype):
        numbers = pd.Series(np.nan, index=values.index)  # true/false is not an amount
    elif pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64")
    else:
        usable = values.map(lambda v: not isinstance(v, bool | np.bool_)).astype(bool)
        numbers = pd.to_numeric(values.where(usable), errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def _to_integer(values: pd.Series) -> pd.Series:
    numbers = _to_number(values)
    return numbers.where(numbers % 1 == 0)


def _to_date(values: pd.Series) -> pd.Series:
    """Year-month-day text (a time part is ignored), or date/datetime values; else null.

    A bare number in a date column (an Excel serial day, a Unix time) is ambiguous and does
    not parse; neither does day-first or month-first text.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        dates = pd.Series(values)
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_localize(None)  # the date as written, not shifted to UTC
        # Only the contract's years (which datetime64[ns] holds); a 9999-12-31 placeholder
        # is not one of them.
        dates = dates.where((dates >= _FIRST_DAY) & (dates < _AFTER_LAST_DAY))
        return dates.astype("datetime64[ns]").dt.normalize()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    text = _as_text(values)
    if text is None and values.dtype == object:
        is_text = values.map(lambda v: isinstance(v, str)).astype(bool)
        text = values.where(is_text).astype(_TEXT)
        others = values[~is_text & values.notna()]
        is_date = others.map(lambda v: hasattr(v, "year") and hasattr(v, "day")).astype(bool)
        stamps = [_timestamp(v) for v in others[is_date]]
        out[others[is_date].index] = pd.to_datetime(
            pd.Series(stamps, index=others[is_date].index, dtype=object), errors="coerce"
        )
    if text is not None:
        plain = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        out = out.where(plain.isna(), plain)
        # The rest: a date followed by a time ('2021-03-01T09:30', '2021-03-01 00:00:00').
        rest = text[plain.isna().to_numpy() & text.notna().to_numpy()]
        shaped = rest[rest.str.match(_DATE_SHAPE).fillna(False).astype(bool)]
        day = shaped.str.replace(r"[T ].*$", "", regex=True)
        out[day.index] = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce")
    days = out.dt.normalize()
    return days.where((days >= _FIRST_DAY) & (days < _AFTER_LAST_DAY))


# The contract's years, as the bounds of the days a date column may hold.
_FIRST_DAY = pd.Timestamp(FIRST_DAY)
_AFTER_LAST_DAY = pd.Timestamp(LAST_DAY) + pd.Timedelta(days=1)


def _timestamp(value: Any) -> Any:
    """A date or datetime object as a naive Timestamp; NaT outside the contract's years."""
    try:
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize(None) if stamp.tzinfo is not None else stamp
        return stamp if _FIRST_DAY <= stamp < _AFTER_LAST_DAY else pd.NaT
    except (ValueError, OverflowError):
        return pd.NaT


_PARSERS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "string": _to_text,
    "category": _to_category,
    "number": _to_number,
    "integer": _to_integer,
    "date": _to_date,
}


def _column_rules(table: str, raw: pd.DataFrame) -> list[_Rule]:
    """The rules each contract column declares: required, type, range, allowed values."""
    rules: list[_Rule] = []
    for col in COLUMNS[table]:
        written = raw[col.name].notna()
        if col.required:
            rules.append(_required_rule(col, written))
        if col.kind in TYPE_RULES:
            rules.append(_type_rule(col, written))
        if col.minimum is not None or col.maximum is not None:
            rules.append(_range_rule(col))
        if col.allowed:
            rules.append(_allowed_rule(col))
    return rules


def _required_rule(col: Column, written: pd.Series) -> _Rule:
    def check(parsed: pd.Series) -> pd.Series:
        return written  # present as written; a value that does not parse is the type rule's

    return _Rule(f"{col.name}:required", col.name, check, f"{col.name} is required")


def _type_rule(col: Column, written: pd.Series) -> _Rule:
    def check(parsed: pd.Series) -> pd.Series:
        # Parsing happened once, in _parse: here a value was written but did not parse.
        return parsed.notna() | ~written

    return _Rule(f"{col.name}:type", col.name, check, f"{col.name} {TYPE_RULES[col.kind]}")


def _allowed_rule(col: Column) -> _Rule:
    def check(parsed: pd.Series) -> pd.Series:
        return parsed.isna() | parsed.isin(col.allowed)

    return _Rule(f"{col.name}:allowed", col.name, check, col.allowed_text)


def _range_rule(col: Column) -> _Rule:
    low = -np.inf if col.minimum is None else col.minimum
    high = np.inf if col.maximum is None else col.maximum
    return _Rule(
        f"{col.name}:range",
        col.name,
        lambda s: s.isna() | ((s >= low) & (s <= high)),
        col.range_text,
    )


def _row_rules(
    table: str, raw: pd.DataFrame, typed: dict[str, pd.DataFrame], known_ids: pd.Index
) -> list[_Rule]:
    """The contract's rules across columns and rows of `table` (`features.contract.RULES`),
    as checks over the whole parsed table; `typed` holds every table, parsed."""
    out: list[_Rule] = []
    for rule in rules(table):
        if isinstance(rule, Ordered):
            out.append(_ordered_rule(rule))
        elif isinstance(rule, Unique):
            out.append(_unique_rule(rule))
        elif isinstance(rule, RequiredWhen):
            out.append(_required_when_rule(rule, raw))
        elif isinstance(rule, NotBeforeStart):
            out.append(_not_before_start_rule(rule, typed["projects"]))
        elif isinstance(rule, KnownProject):
            out.append(_known_project_rule(rule, known_ids))
        else:  # a kind of rule this loader was not taught: never skip it silently
            raise TypeError(f"features.loading cannot run the rule {rule!r}")
    return out


def _key(rule: Rule) -> str:
    return f"{rule.column}:{type(rule).__name__}"


def _ordered_rule(rule: Ordered) -> _Rule:
    def check(frame: pd.DataFrame) -> pd.Series:
        a, b = frame[rule.later], frame[rule.earlier]
        ok = a > b if rule.strict else a >= b
        return a.isna() | b.isna() | ok

    return _Rule(_key(rule), rule.column, check, rule.text, on_frame=True)


def _unique_rule(rule: Unique) -> _Rule:
    keys = list(rule.keys)

    def check(frame: pd.DataFrame) -> pd.Series:
        keyed = frame[keys].notna().all(axis=1)
        return ~keyed | ~frame.duplicated(keys, keep=False)

    def text(failing: pd.DataFrame) -> pd.Series:
        """What repeats, and on which rows."""
        rows = pd.Series(failing.index, index=failing.index)
        group = rows.groupby([failing[k] for k in keys])
        first = group.transform("min").astype(str)
        last = group.transform("max").astype(str)
        size = group.transform("size")
        where = np.where(
            size == 2,
            " (rows " + first + " and " + last + ")",
            " (" + size.astype(str) + " rows, from row " + first + " to " + last + ")",
        )
        return _fill(rule.text, failing) + where

    return _Rule(_key(rule), rule.column, check, text, on_frame=True)


def _required_when_rule(rule: RequiredWhen, raw: pd.DataFrame) -> _Rule:
    def check(frame: pd.DataFrame) -> pd.Series:
        when = frame[rule.when].eq(rule.value).fillna(False).astype(bool)
        # A value that does not parse is reported by its type rule, not here too.
        return ~when | frame[rule.column].notna() | raw[rule.column].notna()

    return _Rule(_key(rule), rule.column, check, rule.text, on_frame=True)


def _not_before_start_rule(rule: NotBeforeStart, projects: pd.DataFrame) -> _Rule:
    project_start = projects[list(rule.starts)].min(axis=1).groupby(projects["project_id"]).min()

    def start_of(frame: pd.DataFrame) -> pd.Series:
        return frame["project_id"].map(project_start)

    def check(frame: pd.DataFrame) -> pd.Series:
        start = start_of(frame)
        return frame[rule.column].isna() | start.isna() | (frame[rule.column] >= start)

    def text(failing: pd.DataFrame) -> pd.Series:
        return _fill(rule.text, failing.assign(start=start_of(failing)))

    return _Rule(_key(rule), rule.column, check, text, on_frame=True)


def _known_project_rule(rule: KnownProject, known_ids: pd.Index) -> _Rule:
    return _Rule(_key(rule), rule.column, lambda s: s.isna() | s.isin(known_ids), rule.text)


def _fill(text: str, failing: pd.DataFrame) -> pd.Series:
    """A rule's text for each failing row, its braces filled from the row's columns."""
    out = pd.Series("", index=failing.index, dtype=object)
    for literal, name, _, _ in string.Formatter().parse(text):
        out = out + literal
        if name:
            out = out + _show(failing[name])
    return out


def _show(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.strftime("%Y-%m-%d")
    return values.astype(str)


def _apply_rules(
    typed: pd.DataFrame, raw: pd.DataFrame, rules: list[_Rule], table: str, file: str
) -> pd.DataFrame:
    """Run the rules as one pandera schema (lazily: every failure, not the first) and turn
    each failure into a quarantine row naming the row, column, value as written and rule."""
    by_key = {rule.key: rule for rule in rules}

    def check(rule: _Rule) -> pa.Check:
        # A rule across columns is still run as a check of the column it reports on: pandera's
        # frame-wide checks stack every column of each failing row, which takes minutes past
        # 10^5 failures. ignore_na=False: the rules decide what a missing value means.
        def fn(column: pd.Series) -> pd.Series:
            ok = rule.check(typed) if rule.on_frame else rule.check(column)
            # Plain booleans for pandera; a row a rule could not decide is not loaded.
            return pd.Series(ok.to_numpy(dtype=bool, na_value=False), index=column.index)

        return pa.Check(fn, error=rule.key, element_wise=False, ignore_na=False)

    columns: dict[str, list[pa.Check]] = {}
    for rule in rules:
        columns.setdefault(rule.column, []).append(check(rule))
    schema = pa.DataFrameSchema(
        {name: pa.Column(checks=checks, nullable=True) for name, checks in columns.items()}
    )
    try:
        schema.validate(typed, lazy=True)
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    unexpected = failures[~failures["check"].isin(by_key) | failures["index"].isna()]
    if len(unexpected):  # a rule that crashed or a schema problem: a bug of ours, not the data
        raise RuntimeError(f"validating {table} failed: {unexpected.head().to_dict('records')}")
    failures = failures[["check", "index"]].drop_duplicates()
    parts = []
    for key, group in failures.groupby("check", sort=False):
        rule = by_key[str(key)]
        rows = pd.Index(group["index"].astype(np.int64))
        failing = typed.loc[rows]
        text = rule.text if isinstance(rule.text, str) else rule.text(failing)
        written = raw.loc[rows, rule.column]
        parts.append(
            pd.DataFrame(
                {
                    "table": table,
                    "file": file,
                    "row": rows.to_numpy(),
                    "column": rule.column,
                    "value": written.astype(object)
                    .map(lambda v: "" if _is_missing(v) else str(v))
                    .to_numpy(),
                    "rule": np.asarray(text, dtype=object) if not isinstance(text, str) else text,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _rows(quarantine: pd.DataFrame) -> pd.Index:
    """The distinct rows a quarantine frame names."""
    return pd.Index(quarantine["row"].astype(np.int64).unique())


def quarantined_rows(quarantine: pd.DataFrame) -> dict[str, int]:
    """How many distinct rows of each table are quarantined (a row may break several rules)."""
    counts = quarantine.drop_duplicates(["table", "row"]).groupby("table").size()
    return {table: int(counts.get(table, 0)) for table in TABLES}


def _detail_patterns() -> list[tuple[re.Pattern[str], str]]:
    """The rule texts that name a project, a date or rows, as patterns with those details
    taken out, so that a summary has one line per kind of problem rather than one per
    project."""
    patterns = [(re.compile(r"^project .* was quarantined$"), "its project was quarantined")]
    for rule in (rule for table in TABLES for rule in rules(table)):
        if text_fields(rule.text):
            pieces = [re.escape(lit) + (".*" if name else "") for lit, name, _, _ in
                      string.Formatter().parse(rule.text)]  # fmt: skip
            # A repeat also names its rows: "(rows 2 and 3)".
            patterns.append((re.compile("^" + "".join(pieces) + r"(?: \(.*\))?$"), rule.summary))
    return patterns


def summarise_quarantine(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows per file and kind of rule: columns ``file, rule, rows``, most first."""
    rules = quarantine["rule"].astype(str)
    for pattern, general in _detail_patterns():
        rules = rules.where(~rules.str.match(pattern), general)
    summary = (
        quarantine.assign(rule=rules)
        .groupby(["file", "rule"], sort=False)["row"]
        .nunique()
        .reset_index(name="rows")
    )
    return summary.sort_values(["rows", "file"], ascending=[False, True], kind="stable")


# ------------------------------------------------------------------------------ writing


def write_quarantine(quarantine: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``quarantine.csv`` (columns ``QUARANTINE_COLUMNS``) under out_dir; returns its path.

    The caller chooses out_dir; by design it is never the portfolio's own folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "quarantine.csv"
    # utf-8-sig: Excel, where analysts open it, then reads "≥" and accents correctly. Written
    # whole or not at all (a full disk or SIGTERM leaves no partial file).
    with replaced_whole(path) as partial:
        table = quarantine.reindex(columns=QUARANTINE_COLUMNS)
        table.to_csv(partial, index=False, encoding="utf-8-sig")
    return path


def write_portfolio(portfolio: Portfolio, out_dir: Path, fmt: str = "csv") -> dict[str, Path]:
    """Write the three tables into out_dir as CSV or Parquet; returns their paths.

    CSV dates are written as YYYY-MM-DD and the row order is kept, so one portfolio always
    gives byte-identical files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        "projects": portfolio.projects,
        "status_reports": portfolio.status_reports,
        "changes": portfolio.changes,
    }
    paths: dict[str, Path] = {}
    for table in TABLES:
        frame = frames[table]
        contract = column_names(table)
        ordered = [c for c in contract if c in frame.columns] + [
            c for c in frame.columns if c not in contract
        ]
        frame = frame[ordered]
        if fmt == "parquet":
            path = out_dir / f"{table}.parquet"
            frame.to_parquet(path, index=False)
        elif fmt == "csv":
            path = out_dir / f"{table}.csv"
            frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.12g")
        else:
            raise ValueError(f"unknown format {fmt!r}: use csv or parquet")
        paths[table] = path
    return paths
