"""`forewarn import` on real schedule files (tests/data/schedules/, PROVENANCE.md there).

Each test imports one file as the command does (`import_folder`: read through MPXJ, map,
write, load the written folder as any portfolio is loaded) and pins what a scheduler reads
off the file. Where a value is checked by hand the comment says where in the file it is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.loading import load_portfolio
from features.schedules import ImportOptions, import_folder
from features.schedules.reader import (
    ReadAhead,
    ScheduleError,
    java_available,
    read_file,
    start_jvm,
)

pytestmark = pytest.mark.skipif(not java_available(), reason="no Java: make setup installs it")

DATA = Path(__file__).resolve().parents[1] / "data" / "schedules"
_UNDATED = date(2018, 10, 19)  # MS Project 2019 saved these without a status date


def _import(
    tmp_path: Path, name: str, charset: str | None = None, **options: Any
) -> tuple[dict[str, Any], Any]:
    out = tmp_path / "portfolio"
    summary = import_folder([DATA / name], out, ImportOptions(**options), charset)
    loaded = load_portfolio(out)
    # What `forewarn validate --strict` asks: nothing quarantined by the contract.
    assert loaded.quarantine.empty, loaded.quarantine.to_string()
    assert summary["status_reports"] == len(loaded.portfolio.status_reports)
    return summary, loaded.portfolio


def _quarantine(tmp_path: Path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "portfolio" / "import_quarantine.csv", encoding="utf-8-sig")


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


def test_p6_5_xer_data_date_before_start(tmp_path: Path) -> None:
    summary, p = _import(tmp_path, "aspose/test.xer")
    project = p.projects.iloc[0]
    assert project["project_id"] == "NEWPROJ"  # PROJECT.proj_short_name
    # TASK.target_start_date / target_end_date: A1010 2016-06-14, A1020 ends 2016-06-19.
    assert _day(project["planned_start"]) == date(2016, 6, 14)
    assert _day(project["planned_finish"]) == date(2016, 6, 19)
    # No baseline costs: the budget is the snapshot's own cost at completion, the TASKRSRC
    # target_cost: A1010 12,040 + 12,040, A1020 4,040 × 3 = 36,200.
    assert project["budget"] == pytest.approx(36_200)
    # PROJECT.last_recalc_date (the data date) 2016-06-09 is before the first activity:
    # the contract allows no report before the start; the snapshot is quarantined, said why.
    assert p.status_reports.empty
    reasons = _quarantine(tmp_path)["reason"].tolist()
    assert reasons == [
        "data date 2016-06-09 is before the project's start 2016-06-14: no status report"
    ]
    assert summary["projects"][0]["percent_complete"] == "cost-weighted"


def test_p6_8_4_xer_three_percent_complete_types(tmp_path: Path) -> None:
    _, p = _import(tmp_path, "mpxj/percent-complete-8.4.xer")
    report = p.status_reports.iloc[0]
    assert p.projects.iloc[0]["project_id"] == "EC00640"
    assert _day(report["report_date"]) == date(2015, 2, 24)  # last_recalc_date
    assert _day(p.projects.iloc[0]["planned_finish"]) == date(2015, 7, 13)
    # Twelve activities of 800 h each (target_drtn_hr_cnt) at 0/25/75/100 % by duration
    # (remain_drtn_hr_cnt 800/600/200/0), physical (phys_complete_pct) and units: each
    # counted by its own complete_pct_type, duration-weighted (no costs) → 50 %.
    assert report["percent_complete"] == pytest.approx(50.0)
    assert pd.isna(report["planned_value"]) and pd.isna(p.projects.iloc[0]["budget"])


def test_p6_xml_reads_the_same_as_its_xer(tmp_path: Path) -> None:
    _, xer = _import(tmp_path / "a", "mpxj/percent-complete-8.4.xer")
    _, xml = _import(tmp_path / "b", "mpxj/percent-complete-8.4.pmxml")
    cols = ["project_id", "report_date", "percent_complete", "forecast_finish"]
    pd.testing.assert_frame_equal(xer.status_reports[cols], xml.status_reports[cols])


def test_two_projects_in_one_xer(tmp_path: Path) -> None:
    summary, p = _import(tmp_path, "aspose/MultiprojectWithExternal.xer", "windows-1251")
    assert sorted(p.projects["project_id"]) == ["TestProject", "TestProject2"]
    assert summary["files"] == [str(DATA / "aspose/MultiprojectWithExternal.xer")]
    projects = p.projects.set_index("project_id")
    # TestProject: A1000 target 2023-03-08 → 2023-03-17 (no baseline: P6's planned dates),
    # data date 2023-10-06; TestProject2: 2024-05-28 → 2024-06-03, data date 2024-05-28.
    assert _day(projects.loc["TestProject", "planned_start"]) == date(2023, 3, 8)
    assert _day(projects.loc["TestProject", "planned_finish"]) == date(2023, 3, 17)
    assert _day(projects.loc["TestProject2", "planned_finish"]) == date(2024, 6, 3)
    dates = dict(zip(p.status_reports["project_id"], p.status_reports["report_date"], strict=True))
    assert _day(dates["TestProject"]) == date(2023, 10, 6)
    assert _day(dates["TestProject2"]) == date(2024, 5, 28)
    notes = {n["project_id"]: n["baseline"] for n in summary["projects"]}
    assert notes["TestProject"] == "planned dates"


def test_windows_1251_xer_names_in_cyrillic(tmp_path: Path) -> None:
    start_jvm()
    path = DATA / "aspose/encoding1251.xer"
    right = read_file(path, "windows-1251")[0].activities["name"].tolist()
    wrong = read_file(path)[0].activities["name"].tolist()
    assert right == ["Задача 1", "Тест2"]  # TASK.task_name, bytes 0xC7 0xE0 ... in cp1251
    assert wrong != right  # read as if UTF-8/Latin-1: mojibake
    _, p = _import(tmp_path, "aspose/encoding1251.xer", "windows-1251")
    report = p.status_reports.iloc[0]
    assert _day(report["report_date"]) == date(2023, 3, 6)
    # AC: TASKRSRC act_reg_cost 230 + 10 + 10 and PROJCOST act_cost 100 + 54 on A1000 (404),
    # 1,320 on A1010 → 1,724. Cost at completion: actual + remaining (770 + 224 + 154,124
    # + 103 on A1000; 10,680 on A1010) = 167,625.
    assert report["actual_cost"] == pytest.approx(1_724)
    assert report["forecast_cost"] == pytest.approx(167_625)
    assert p.projects.iloc[0]["budget"] == pytest.approx(167_625)
    assert report["planned_value"] == 0  # data date 00:00, activities start at 08:00
    assert report["percent_complete"] == 0


def test_p6_xml_with_baseline_projects(tmp_path: Path) -> None:
    summary, p = _import(tmp_path, "aspose/BaselineProjects.xml")
    project, report = p.projects.iloc[0], p.status_reports.iloc[0]
    # <DataDate>2023-10-06; the project baseline is "B2" (BaselineProjectObjectId), whose
    # planned dates MPXJ links: A1000 2023-03-08 → 03-17, A1010 2023-03-06 → 03-11.
    assert _day(report["report_date"]) == date(2023, 10, 6)
    assert _day(project["planned_start"]) == date(2023, 3, 6)
    assert _day(project["planned_finish"]) == date(2023, 3, 17)
    assert summary["projects"][0]["baseline"] == "file"
    assert project["budget"] == pytest.approx(7_503)  # B2's planned cost of A1000
    # Everything in the baseline was due by the data date: PV = BAC.
    assert report["planned_value"] == pytest.approx(7_503)
    assert report["actual_cost"] == pytest.approx(698)
    assert _day(report["forecast_finish"]) == date(2023, 10, 18)  # A1000 finishes 10:00
    assert report["bei"] == pytest.approx(0.5)  # A1010 done, A1000 not, both due


def test_mpp_and_mspdi_with_baselines_agree(tmp_path: Path) -> None:
    _, mpp = _import(
        tmp_path / "a", "mpxj/task-baselines-project2019-mpp14.mpp", status_date=_UNDATED
    )
    _, xml = _import(
        tmp_path / "b", "mpxj/task-baselines-project2019-mspdi.xml", status_date=_UNDATED
    )
    # The same project saved twice by MS Project 2019: one GUID, no status date in either.
    assert mpp.projects["project_id"].tolist() == ["caae491b-dad2-e811-ac3f-4cedde6e5b57"]
    assert xml.projects["project_id"].tolist() == mpp.projects["project_id"].tolist()
    cols = ["planned_start", "planned_finish", "budget"]
    pd.testing.assert_frame_equal(mpp.projects[cols], xml.projects[cols])
    health = ["dcma_missed", "bei", "percent_complete", "planned_value"]
    pd.testing.assert_frame_equal(mpp.status_reports[health], xml.status_reports[health])
    # "Baseline Cost - Task" carries a baseline cost of 1 (£1.00): the only one.
    assert mpp.projects.iloc[0]["budget"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name", ["mpxj/task-costs-project2019-mspdi.xml", "mpxj/task-costs-project2019-mpp14.mpp"]
)
def test_one_day_schedule_is_quarantined_not_lost(tmp_path: Path, name: str) -> None:
    # The same MS Project 2019 project saved as MSPDI and as MPP.
    _, p = _import(tmp_path, name, status_date=_UNDATED)
    assert p.projects.empty
    (reason,) = _quarantine(tmp_path)["reason"]
    assert "baseline finish 2018-10-18 is not after its start 2018-10-18" in reason


def test_mpp_with_time_phased_budget(tmp_path: Path) -> None:
    _, p = _import(tmp_path, "mpxj/timephased-budget-baseline.mpp", status_date=date(2026, 4, 10))
    project, report = p.projects.iloc[0], p.status_reports.iloc[0]
    # Task 1: baseline 2026-03-26 08:00 → 2026-04-24 17:00, baseline cost £16,000.
    assert _day(project["planned_start"]) == date(2026, 3, 26)
    assert _day(project["planned_finish"]) == date(2026, 4, 24)
    assert project["budget"] == pytest.approx(16_000)
    # PV spread evenly in calendar time: 14 d 16 h of 29 d 9 h elapsed by 2026-04-10 00:00.
    assert report["planned_value"] == pytest.approx(16_000 * (14 + 16 / 24) / (29 + 9 / 24))
    assert report["earned_value"] == 0 and report["actual_cost"] == 0


def test_mspdi_with_time_phased_actuals(tmp_path: Path) -> None:
    summary, p = _import(tmp_path, "mpxj/mspditimephased.xml", status_date=date(2008, 12, 1))
    project, report = p.projects.iloc[0], p.status_reports.iloc[0]
    assert _day(project["planned_start"]) == date(2008, 11, 20)
    assert _day(project["planned_finish"]) == date(2009, 1, 2)
    assert summary["projects"][0]["baseline"] == "earliest snapshot"
    assert summary["projects"][0]["percent_complete"] == "duration-weighted"
    # MS Project's own roll-up on the project summary task (UID 0) is <PercentComplete>33:
    # the duration-weighted mean of the 40 tasks, which the import recomputes.
    assert report["percent_complete"] == pytest.approx(33, abs=0.5)
    assert summary["data_date_from"] == {str(DATA / "mpxj/mspditimephased.xml"): "--status-date"}


def test_placeholder_actual_dates_are_quarantined(tmp_path: Path) -> None:
    _, p = _import(tmp_path, "aspose/not updated.xml", status_date=date(2000, 1, 28))
    # Tasks 2–10 carry <ActualStart>/<ActualFinish> 2000-01-01 at 0 % complete, before their
    # own start 2000-01-27: placeholders, not progress.
    held = _quarantine(tmp_path)
    assert len(held) == 20 and held["reason"].str.endswith(": ignored").all()
    assert pd.isna(p.projects.iloc[0]["actual_start"])
    assert _day(p.projects.iloc[0]["planned_finish"]) == date(2000, 1, 31)
    report = p.status_reports.iloc[0]
    assert report["dcma_fs_share"] == 1.0  # every <PredecessorLink> is <Type>1 (FS)


def test_resource_rates_xer_budget(tmp_path: Path) -> None:
    _, p = _import(tmp_path, "mpxj/resource-rates-test.xer")
    # Five TASKRSRC rows on A1000: 240 + 480 + 1,440 + 1,680 + 23,760 = 27,600.
    assert p.projects.iloc[0]["budget"] == pytest.approx(27_600)
    assert _day(p.projects.iloc[0]["planned_finish"]) == date(2022, 9, 30)


def test_a_file_without_a_date_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match=r"mspditimephased\.xml: the file has no data date"):
        import_folder([DATA / "mpxj/mspditimephased.xml"], tmp_path, ImportOptions())


def _forewarn(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process: its own JVM, its own stdout."""
    return subprocess.run(
        [sys.executable, "-m", "forewarn.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_cli_json_is_all_that_stdout_holds_after_an_mpp(tmp_path: Path) -> None:
    # MPP goes through Apache POI, which logs through Log4j's API; MPXJ ships no Log4j back
    # end, and the JVM printed "Log4j API could not find a logging provider" on stdout.
    proc = _forewarn(
        "import",
        str(DATA / "mpxj/task-baselines-project2019-mpp14.mpp"),
        "--status-date",
        "2018-10-19",
        "--out",
        str(tmp_path / "portfolio"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["snapshots"], summary["status_reports"]) == (1, 1)
    assert "Log4j" not in proc.stderr


def _edit_xer(xer: bytes, table: str, where: tuple[str, str], **values: str) -> bytes:
    """`xer` with fields `values` set on the rows of `table` whose field where[0] is where[1]
    (XER: tab-separated; %T names a table, %F its fields, %R a row)."""
    out, fields, in_table, hits = [], [], False, 0
    for line in xer.split(b"\r\n"):
        cells = line.split(b"\t")
        if cells[0] == b"%T":
            in_table = cells[1] == table.encode()
        elif cells[0] == b"%F" and in_table:
            fields = [c.decode() for c in cells]
        elif cells[0] == b"%R" and in_table and cells[fields.index(where[0])] == where[1].encode():
            for name, value in values.items():
                cells[fields.index(name)] = value.encode("cp1251")
            line, hits = b"\t".join(cells), hits + 1
        out.append(line)
    assert hits == 1, (table, where, hits)
    return b"\r\n".join(out)


def test_p6_update_copies_in_windows_1251_are_one_project_by_project_key(tmp_path: Path) -> None:
    # A Russian P6 saves each update as a copy with its own code (docs/import.md, "Snapshots,
    # dates and projects"): three copies of encoding1251.xer, its project renamed in Cyrillic,
    # the last one exported without a data date (PROJECT.last_recalc_date empty).
    exports = tmp_path / "exports"
    exports.mkdir()
    source = (DATA / "aspose/encoding1251.xer").read_bytes()
    copies = {
        "BL-54069-B2-20230306": "2023-03-06 00:00",
        "UP-54069-20230308": "2023-03-08 00:00",
        "UP-54069-20230309": "",
    }
    for code, data_date in copies.items():
        xer = _edit_xer(
            source, "PROJECT", ("proj_id", "5442"), proj_short_name=code, last_recalc_date=data_date
        )
        xer = _edit_xer(xer, "PROJWBS", ("proj_node_flag", "Y"), wbs_name="Реконструкция ПС")
        (exports / f"{code}.xer").write_bytes(xer)
    out = tmp_path / "portfolio"
    proc = _forewarn(
        "import", str(exports), "--out", str(out), "--charset", "windows-1251",
        "--project-key", r"(\d{5})", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    (project,) = summary["projects"]
    assert (project["project_id"], project["snapshots"]) == ("54069", 3)
    assert list(summary["data_date_from"].values()) == ["file", "file", "file name"]
    loaded = load_portfolio(out)
    assert loaded.quarantine.empty, loaded.quarantine.to_string()
    assert loaded.portfolio.projects["name"].tolist() == ["Реконструкция ПС"]
    dates = [_day(d) for d in loaded.portfolio.status_reports["report_date"]]
    assert dates == [date(2023, 3, 6), date(2023, 3, 8), date(2023, 3, 9)]
    # Without --project-key each copy is its own project, named by its P6 code.
    alone = import_folder([exports], tmp_path / "apart", ImportOptions(), "windows-1251")
    assert [n["project_id"] for n in alone["projects"]] == list(copies)


def test_files_read_ahead_come_in_order_and_a_bad_one_fails_in_its_turn(tmp_path: Path) -> None:
    start_jvm()
    broken = tmp_path / "broken.xer"
    broken.write_text("ERMHDR\t8.4\nnot a schedule\n")
    names = ["mpxj/percent-complete-8.4.xer", "aspose/test.xer", "mpxj/resource-rates-test.xer"]
    paths = [DATA / n for n in names]
    with ReadAhead([*paths, broken, paths[0]]) as reading:
        got = iter(reading)
        for path in paths:  # MPXJ reads the next file while this one is mapped
            ahead, alone = next(got), read_file(path)
            assert {s.file for s in ahead} == {str(path)}
            assert [s.project_code for s in ahead] == [s.project_code for s in alone]
            for a, b in zip(ahead, alone, strict=True):
                pd.testing.assert_frame_equal(a.activities, b.activities)
        with pytest.raises(ScheduleError, match=r"broken\.xer"):
            next(got)
