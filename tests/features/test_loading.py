"""Contract v1 loading: the real example loads whole, bad rows land in the quarantine with
their rule, whole-file problems are one clear error, and no row is ever lost."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import TABLES, column_names
from features.loading import (
    QUARANTINE_COLUMNS,
    ContractError,
    LoadResult,
    load_portfolio,
    quarantined_rows,
    summarise_quarantine,
    validate_frames,
    write_portfolio,
    write_quarantine,
)
from forewarn.cli import app

LITTLE06 = Path(__file__).resolve().parents[2] / "data" / "examples" / "little06"
COUNTS = {"projects": 121, "status_reports": 6245, "changes": 800}


@pytest.fixture(scope="module")
def little06() -> LoadResult:
    return load_portfolio(LITTLE06)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A private copy of little06 to damage."""
    return Path(shutil.copytree(LITTLE06, tmp_path / "little06"))


def _read(path: Path) -> pd.DataFrame:
    """A table exactly as written: every cell text, empty cells empty."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _problems(result: LoadResult, table: str) -> set[tuple[int, str, str]]:
    q = result.quarantine
    q = q[q["table"] == table]
    return set(zip(q["row"], q["column"], q["rule"], strict=True))


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _unwrapped(text: str) -> str:
    """Console text without whitespace: rich wraps long lines, even inside a long path."""
    return "".join(text.split())


# ------------------------------------------------------------------------- the real data


def test_little06_loads_whole_with_contract_dtypes(little06: LoadResult) -> None:
    assert little06.portfolio.counts() == COUNTS
    assert little06.quarantine.empty
    assert list(little06.quarantine.columns) == QUARANTINE_COLUMNS
    assert little06.files == {t: f"{t}.csv" for t in TABLES}
    projects = little06.portfolio.projects
    assert list(projects.columns) == column_names("projects")
    assert projects["planned_start"].dtype == "datetime64[ns]"
    assert projects["budget"].dtype == "float64" and projects["budget"].isna().all()
    assert projects["project_id"].dtype == object and projects["project_id"].is_unique
    assert set(projects["status"]) == {"closed"}
    reports = little06.portfolio.status_reports
    assert reports["milestones_done"].dtype == "float64"
    assert reports["milestones_done"].notna().all()
    first = reports.iloc[0]
    assert (first["project_id"], first["report_date"]) == ("LG-001", pd.Timestamp("2000-12-01"))


def test_cli_validate_little06_prints_the_summary_and_json(tmp_path: Path) -> None:
    code, out, _ = _cli("validate", str(LITTLE06), "--out", str(tmp_path))
    assert code == 0
    assert "6,245" in out and "status_reports" in out
    assert "7,166 rows loaded, 0 quarantined" in out
    assert not (tmp_path / "quarantine.csv").exists()

    code, out, _ = _cli("validate", str(LITTLE06), "--out", str(tmp_path), "--json", "--strict")
    assert code == 0
    import json

    report = json.loads(out)
    assert report["loaded"] == COUNTS
    assert report["quarantined"] == 0 and report["by_rule"] == []


# ------------------------------------------------------------------------------ damage


def test_damaged_rows_land_in_quarantine_and_every_good_row_loads(folder: Path) -> None:
    projects = _read(folder / "projects.csv")
    reports = _read(folder / "status_reports.csv")
    changes = _read(folder / "changes.csv")
    row = {i: i + 2 for i in range(len(reports) + 1)}  # file line of a 0-based position

    # A negative budget quarantines the project, and with it its reports and changes.
    projects["budget"] = ""
    projects.loc[0, "budget"] = "-5"
    bad_project = projects.loc[0, "project_id"]
    # Reports of other projects, each with one problem.
    by_project = reports.groupby("project_id").groups
    p1, p2, p3, p4, p5 = (pid for pid in projects["project_id"][1:6])
    reports["actual_cost"] = ""
    negative = by_project[p1][3]
    reports.loc[negative, "actual_cost"] = "-3"
    early = by_project[p2][0]
    start = pd.Timestamp(projects.set_index("project_id").loc[p2, "planned_start"])
    reports.loc[early, "report_date"] = "1999-01-04"
    unknown = by_project[p3][2]
    reports.loc[unknown, "project_id"] = "XX-999"
    unparseable = by_project[p4][1]
    reports.loc[unparseable, "report_date"] = "12/03/2001"
    twin = by_project[p5][4]
    reports.loc[len(reports)] = reports.loc[twin]  # the same report again, at the end
    reports["comment"] = "ignored: not in the contract"
    late_decision = changes.index[changes["project_id"] == p1][0]
    changes.loc[late_decision, "decided_date"] = "1999-01-01"
    projects.to_csv(folder / "projects.csv", index=False)
    reports.to_csv(folder / "status_reports.csv", index=False)
    changes.to_csv(folder / "changes.csv", index=False)

    result = load_portfolio(folder)

    assert _problems(result, "projects") == {(2, "budget", "budget must be ≥ 0")}
    twin_date = reports.loc[twin, "report_date"]
    twin_rule = (
        f"report_date {twin_date} appears more than once for project {p5} "
        f"(rows {row[twin]} and {row[len(reports) - 1]})"
    )
    cascade = {
        (row[i], "project_id", f"project {bad_project} was quarantined")
        for i in by_project[bad_project]
    }
    assert _problems(result, "status_reports") == cascade | {
        (row[negative], "actual_cost", "actual_cost must be ≥ 0"),
        (row[early], "report_date", f"report_date before the project's start {start:%Y-%m-%d}"),
        (row[unknown], "project_id", "unknown project_id: not in projects"),
        (
            row[unparseable],
            "report_date",
            "report_date must be a date written YYYY-MM-DD, in years 1678–2261",
        ),
        (row[twin], "report_date", twin_rule),
        (row[len(reports) - 1], "report_date", twin_rule),
    }
    q = result.quarantine.set_index(["table", "row", "column"])["value"]
    assert q[("projects", 2, "budget")] == "-5"
    assert q[("status_reports", row[unparseable], "report_date")] == "12/03/2001"
    assert q[("status_reports", row[unknown], "project_id")] == "XX-999"
    bad_changes = _problems(result, "changes")
    assert (late_decision + 2, "decided_date", "decided_date must not be before raised_date") in (
        bad_changes
    )
    assert len(bad_changes) == 1 + (changes["project_id"] == bad_project).sum()

    # Every row is loaded or quarantined, and exactly the damaged ones are quarantined.
    held = quarantined_rows(result.quarantine)
    assert held == {
        "projects": 1,
        "status_reports": len(cascade) + 6,
        "changes": len(bad_changes),
    }
    loaded = result.portfolio.counts()
    assert loaded == {
        "projects": len(projects) - 1,
        "status_reports": len(reports) - held["status_reports"],
        "changes": len(changes) - held["changes"],
    }
    good = reports.drop(
        index=[
            *by_project[bad_project],
            negative,
            early,
            unknown,
            unparseable,
            twin,
            len(reports) - 1,
        ]
    )
    got = result.portfolio.status_reports
    assert list(got["project_id"]) == list(good["project_id"])
    assert list(got["report_date"].dt.strftime("%Y-%m-%d")) == list(good["report_date"])
    assert "comment" not in got.columns

    summary = summarise_quarantine(result.quarantine)
    top = summary.iloc[0]
    assert (top["file"], top["rule"]) == ("status_reports.csv", "its project was quarantined")
    assert top["rows"] == len(cascade)


def test_cli_strict_exits_1_and_writes_quarantine_outside_the_data(
    folder: Path, tmp_path: Path
) -> None:
    reports = _read(folder / "status_reports.csv")
    reports.loc[5, "report_date"] = "yesterday"
    reports.to_csv(folder / "status_reports.csv", index=False)
    out = tmp_path / "out" / "nested"

    code, stdout, stderr = _cli("validate", str(folder), "--out", str(out))
    assert code == 0
    assert "1 quarantined" in stdout and "report_date must be a date" in stdout
    assert "1 row(s) quarantined" in stderr

    code, _, _ = _cli("validate", str(folder), "--out", str(out), "--strict")
    assert code == 1
    written = pd.read_csv(out / "quarantine.csv", dtype=str, encoding="utf-8-sig")
    assert list(written.columns) == QUARANTINE_COLUMNS
    assert written.loc[0].to_dict() == {
        "table": "status_reports",
        "file": "status_reports.csv",
        "row": "7",
        "column": "report_date",
        "value": "yesterday",
        "rule": "report_date must be a date written YYYY-MM-DD, in years 1678–2261",
    }
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in LITTLE06.iterdir())


def test_missing_required_column_is_a_whole_file_error(folder: Path) -> None:
    reports = _read(folder / "status_reports.csv").drop(columns="report_date")
    reports.to_csv(folder / "status_reports.csv", index=False)
    with pytest.raises(
        ContractError,
        match=r"status_reports\.csv: missing required column "
        r"'report_date'",
    ):
        load_portfolio(folder)

    code, stdout, stderr = _cli("validate", str(folder))
    assert code == 2
    assert _unwrapped("status_reports.csv: missing required column 'report_date'") in (
        _unwrapped(stderr)
    )
    assert "Traceback" not in stdout + stderr


def test_cli_exits_2_for_a_missing_folder(tmp_path: Path) -> None:
    code, stdout, stderr = _cli("validate", str(tmp_path / "nowhere"))
    assert code == 2
    assert _unwrapped("no such file or folder") in _unwrapped(stderr)
    assert "Traceback" not in stdout + stderr


def _drop_projects(folder: Path) -> None:
    (folder / "projects.csv").unlink()


def _bad_parquet(folder: Path) -> None:
    (folder / "status_reports.csv").unlink()
    (folder / "status_reports.parquet").write_bytes(b"PAR1 this is not parquet")


def _duplicate_column(folder: Path) -> None:
    lines = (folder / "changes.csv").read_text().splitlines()
    lines = [lines[0] + ",kind"] + [line + ",scope" for line in lines[1:]]
    (folder / "changes.csv").write_text("\n".join(lines) + "\n")


def _latin1(folder: Path) -> None:
    (folder / "projects.csv").write_bytes(
        (folder / "projects.csv").read_bytes().replace(b"Landmark", b"Caf\xe9", 1)
    )


def _semicolons(folder: Path) -> None:
    projects = _read(folder / "projects.csv")
    projects.to_csv(folder / "projects.csv", index=False, sep=";")


def _spaced_name(folder: Path) -> None:
    projects = _read(folder / "projects.csv").rename(columns={"project_id": "Project ID"})
    projects.to_csv(folder / "projects.csv", index=False)


def _unnamed_values(folder: Path) -> None:
    reports = _read(folder / "status_reports.csv")
    reports[""] = "note"
    reports.to_csv(folder / "status_reports.csv", index=False)


def _both_formats(folder: Path) -> None:
    _read(folder / "changes.csv").to_parquet(folder / "changes.parquet")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop_projects, r"no projects table: expected projects\.csv or projects\.parquet"),
        (_bad_parquet, r"status_reports\.parquet: cannot be read as Parquet"),
        (_duplicate_column, r"changes\.csv: column 'kind' appears twice in the header"),
        (_latin1, r"projects\.csv: not UTF-8 text .*save it as 'CSV UTF-8'"),
        (
            _semicolons,
            r"projects\.csv: missing required column 'project_id' \(the file looks "
            r"semicolon-separated",
        ),
        (_both_formats, r"both changes\.csv and changes\.parquet exist"),
        (_spaced_name, r"missing required column 'project_id' \(found 'Project ID'"),
        (_unnamed_values, r"status_reports\.csv: \(column 5\) has values but no name"),
    ],
)
def test_whole_file_problems_name_the_file_and_rule(folder: Path, damage, message: str) -> None:
    damage(folder)
    with pytest.raises(ContractError, match=message):
        load_portfolio(folder)


def test_extra_attribute_listed_but_absent_is_a_whole_file_error() -> None:
    with pytest.raises(ContractError, match=r"no column 'region', which FOREWARN_EXTRA"):
        load_portfolio(LITTLE06, extra_attributes=["region"])


def test_a_single_csv_file_is_not_a_portfolio() -> None:
    with pytest.raises(ContractError, match=r"expected a folder .* or an Excel workbook"):
        load_portfolio(LITTLE06 / "projects.csv")


# ------------------------------------------------------------------- formats and layout


def test_changes_may_be_absent(folder: Path) -> None:
    (folder / "changes.csv").unlink()
    result = load_portfolio(folder)
    assert result.portfolio.counts() == {**COUNTS, "changes": 0}
    assert list(result.portfolio.changes.columns) == column_names("changes")
    assert result.portfolio.changes["raised_date"].dtype == "datetime64[ns]"


def test_parquet_round_trip(little06: LoadResult, tmp_path: Path) -> None:
    write_portfolio(little06.portfolio, tmp_path, fmt="parquet")
    again = load_portfolio(tmp_path)
    assert again.quarantine.empty
    for table in TABLES:
        pd.testing.assert_frame_equal(
            getattr(again.portfolio, table), getattr(little06.portfolio, table)
        )


def test_excel_workbook_round_trip_and_sheet_rows(little06: LoadResult, tmp_path: Path) -> None:
    # A slice keeps the test fast: openpyxl writes and reads about 2k rows a second.
    keep = little06.portfolio.projects["project_id"].iloc[:6]
    tables = {
        t: getattr(little06.portfolio, t).loc[lambda f: f["project_id"].isin(keep)] for t in TABLES
    }
    bad = tables["projects"].iloc[[0]].assign(project_id="ZZ-1", status="finished")
    book = tmp_path / "portfolio.xlsx"
    with pd.ExcelWriter(book) as writer:
        pd.concat([tables["projects"], bad]).to_excel(writer, sheet_name="projects", index=False)
        tables["status_reports"].to_excel(writer, sheet_name="status_reports", index=False)
        tables["changes"].to_excel(writer, sheet_name="Changes", index=False)  # any case

    result = load_portfolio(book)

    assert result.files["projects"] == "portfolio.xlsx (sheet projects)"
    assert result.files["changes"] == "portfolio.xlsx (sheet Changes)"
    for table, frame in tables.items():
        pd.testing.assert_frame_equal(
            getattr(result.portfolio, table), frame.reset_index(drop=True)
        )
    # The bad project is on sheet row 8: the header is row 1, six good projects follow.
    assert result.quarantine[["file", "row", "column", "value"]].values.tolist() == [
        ["portfolio.xlsx (sheet projects)", 8, "status", "finished"]
    ]


def test_workbook_without_the_right_sheets(tmp_path: Path) -> None:
    book = tmp_path / "book.xlsx"
    with pd.ExcelWriter(book) as writer:
        pd.DataFrame({"project_id": ["A"]}).to_excel(writer, sheet_name="Sheet1", index=False)
    with pytest.raises(ContractError, match=r"book\.xlsx: no sheet named projects .*Sheet1"):
        load_portfolio(book)


def test_csv_rows_are_file_lines_across_blank_lines_and_multiline_values(
    tmp_path: Path,
) -> None:
    (tmp_path / "projects.csv").write_text(
        "project_id,name,planned_start,planned_finish,status,team\n"
        'P1,"two\nlines",2021-03-01,2021-09-01,active,alpha\n'
        "\n"
        "P2,NA,2021-03-01,2021-02-01,Active,\n"
        ", ,,,,\n"
        "P3,NA,2021-03-01T08:00:00,2021-09-01,N/A,beta\n"
    )
    (tmp_path / "status_reports.csv").write_text(
        "project_id,report_date,percent_complete\n"
        "P1,2021-04-01,N/A\n"
        "P1,2021-05-01,150\n"
        "P2,2021-04-01,10\n"
    )
    result = load_portfolio(tmp_path)
    assert _problems(result, "projects") == {
        (5, "planned_finish", "planned_finish must be after planned_start")
    }
    assert _problems(result, "status_reports") == {
        (3, "percent_complete", "percent_complete must be between 0 and 100"),
        (4, "project_id", "project P2 was quarantined"),
    }
    projects = result.portfolio.projects
    assert list(projects["project_id"]) == ["P1", "P3"]
    assert projects["name"].tolist() == ["two\nlines", "NA"]  # 'NA' may be a name
    assert projects["status"].tolist() == ["active", "active"]  # N/A: derived
    assert projects["team"].tolist() == ["alpha", "beta"]  # an extra column is kept
    assert projects["planned_start"].tolist() == [pd.Timestamp("2021-03-01")] * 2
    assert np.isnan(result.portfolio.status_reports["percent_complete"].iloc[0])


def test_short_csv_rows_are_padded_and_long_ones_are_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "projects.csv").write_text(
        "project_id,planned_start,planned_finish,budget\n"
        "P1,2021-03-01,2021-09-01\n"  # an exporter that drops trailing empty cells
        "P2,2021-03-01,2021-09-01,100,\n"  # a trailing comma: an empty extra cell
        "P3,2021-03-01\n"
    )
    (tmp_path / "status_reports.csv").write_text("project_id,report_date\nP1,2021-04-01\n")
    result = load_portfolio(tmp_path)
    assert result.portfolio.projects["project_id"].tolist() == ["P1", "P2"]
    assert _problems(result, "projects") == {(4, "planned_finish", "planned_finish is required")}

    with (tmp_path / "projects.csv").open("a") as fh:
        fh.write("P4,2021-03-01,2021-09-01,100,surplus\n")
    with pytest.raises(
        ContractError,
        match=r"projects\.csv: line 5 has 5 values but the header "
        r"names 4 columns",
    ):
        load_portfolio(tmp_path)


# ------------------------------------------------------------------- in-memory frames


def _frames(**changes: dict) -> dict[str, pd.DataFrame]:
    projects = pd.DataFrame(
        {
            "project_id": [101, 102, 103],
            "planned_start": [pd.Timestamp("2021-01-04"), "2021-02-01", "2021-03-01"],
            "planned_finish": ["2021-06-30", "2021-08-31", "2021-09-30"],
            "budget": [1e6, 5e5, "lots"],
            "actual_start": ["2021-01-04", None, None],
            "actual_finish": ["2021-07-15", None, None],
            "status": ["closed", None, "on_hold"],
            "team_size": [5, 7, 3],
        }
    )
    reports = pd.DataFrame(
        {
            "project_id": ["101", "101", "102", "104"],
            "report_date": ["2021-02-01", "2021-01-01", "2021-03-01", "2021-03-01"],
            "earned_value": [1000.0, 10.0, -1.0, 5.0],
            "open_risks": [1, 2, True, 4],
        }
    )
    return {"projects": projects, "status_reports": reports, **changes}


def test_validate_frames_takes_typed_values_and_counts_rows_from_2() -> None:
    result = validate_frames(_frames(), {"projects": "request.projects"})
    assert _problems(result, "projects") == {(4, "budget", "budget must be a number")}
    assert _problems(result, "status_reports") == {
        (3, "report_date", "report_date before the project's start 2021-01-04"),
        (4, "earned_value", "earned_value must be ≥ 0"),
        (4, "open_risks", "open_risks must be a whole number"),
        (5, "project_id", "unknown project_id: not in projects"),
    }
    assert set(result.quarantine["file"]) == {"request.projects", "status_reports"}
    projects = result.portfolio.projects
    assert projects["project_id"].tolist() == ["101", "102"]
    assert projects["team_size"].tolist() == [5.0, 7.0]
    assert projects["status"].tolist() == ["closed", "active"]
    assert result.portfolio.changes.empty
    assert result.portfolio.status_reports["report_date"].tolist() == [pd.Timestamp("2021-02-01")]


def test_closed_project_without_finish_and_unknown_status() -> None:
    frames = _frames()
    frames["projects"].loc[0, "actual_finish"] = None
    frames["projects"].loc[1, "status"] = "Done"
    frames["projects"].loc[2, ["budget", "status"]] = [1.0, None]  # no status: derived
    result = validate_frames(frames, {})
    assert _problems(result, "projects") == {
        (2, "actual_finish", "status is closed but actual_finish is empty"),
        (3, "status", "status must be one of active, closed, cancelled, on_hold"),
    }
    # A quarantined project takes its reports with it; nothing else disappears.
    assert quarantined_rows(result.quarantine)["status_reports"] == 4
    assert result.portfolio.counts() == {"projects": 1, "status_reports": 0, "changes": 0}


def test_duplicate_project_ids_quarantine_both_rows() -> None:
    frames = _frames()
    frames["projects"]["project_id"] = 101
    frames["projects"].loc[2, "budget"] = 1.0
    result = validate_frames(frames, {})
    rule = "project_id 101 appears more than once (3 rows, from row 2 to 4)"
    assert _problems(result, "projects") == {(r, "project_id", rule) for r in (2, 3, 4)}
    summary = summarise_quarantine(result.quarantine).set_index("rule")["rows"].to_dict()
    assert summary == {
        "project_id appears more than once": 3,
        "its project was quarantined": 2,
        "unknown project_id: not in projects": 2,  # 102 and 104 are gone
        "report_date before the project's start": 1,
        "earned_value must be ≥ 0": 1,
        "open_risks must be a whole number": 1,
    }


def test_odd_typed_values_are_quarantined_not_crashed_on() -> None:
    projects = pd.DataFrame(
        {
            "project_id": ["A", "B", "C", "D", "E", "F"],
            "planned_start": [
                date(2021, 1, 4),
                datetime(1, 1, 1),  # datetime64[ns] cannot hold it
                pd.Timestamp("2021-01-04", tz="Europe/Paris"),  # the date as written
                44200,  # an Excel serial day: ambiguous
                "2021-01-04",
                np.array([1, 2]),
            ],
            "planned_finish": ["2021-06-30"] * 4 + ["9999-12-31", "2021-06-30"],
            "status": ["Closed", 5, None, "ACTIVE", np.nan, pd.NA],
            "actual_finish": [pd.Timestamp("2021-06-01"), *[None] * 5],
        }
    )
    reports = pd.DataFrame({"project_id": ["A"], "report_date": [np.datetime64("2021-02-01")]})
    result = validate_frames({"projects": projects, "status_reports": reports}, {})
    bad_date = "must be a date written YYYY-MM-DD, in years 1678–2261"
    assert _problems(result, "projects") == {
        (3, "planned_start", f"planned_start {bad_date}"),
        (3, "status", "status must be one of active, closed, cancelled, on_hold"),
        (5, "planned_start", f"planned_start {bad_date}"),
        (6, "planned_finish", f"planned_finish {bad_date}"),
        (7, "planned_start", f"planned_start {bad_date}"),
    }
    loaded = result.portfolio.projects
    assert loaded["project_id"].tolist() == ["A", "C"]
    assert loaded["planned_start"].tolist() == [pd.Timestamp("2021-01-04")] * 2
    assert loaded["status"].tolist() == ["closed", "active"]
    assert result.portfolio.counts()["status_reports"] == 1


def test_missing_status_reports_table_is_an_error() -> None:
    with pytest.raises(ContractError, match="no status_reports table"):
        validate_frames({"projects": _frames()["projects"]}, {})


# ----------------------------------------------------------------------------- writing


def test_write_quarantine_creates_the_folder(tmp_path: Path) -> None:
    quarantine = pd.DataFrame(
        [["projects", "projects.csv", 2, "budget", "-5", "budget must be ≥ 0"]],
        columns=QUARANTINE_COLUMNS,
    )
    path = write_quarantine(quarantine, tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b" / "quarantine.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbftable,file,row,column,value,rule")
    assert "budget must be ≥ 0" in path.read_text(encoding="utf-8-sig")


def test_docs_describe_every_contract_column() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    for table in TABLES:
        assert f"### {table}" in docs
        for name in column_names(table):
            assert f"| {name} |" in docs, f"docs/contract.md lacks {table}.{name}"
