"""A round trip through the real format: simulated projects written as MSPDI update series
by MPXJ's own writer, imported by `forewarn import`, compared with what was written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import Portfolio
from features.loading import load_portfolio
from features.schedules import ImportOptions, import_schedules
from features.schedules.reader import java_available
from features.schedules.series import snapshot_plan, write_update_series
from features.simulator import simulate_portfolio
from forewarn.cli import app

needs_java = pytest.mark.skipif(not java_available(), reason="no Java: make setup installs it")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Portfolio, Path, list[str]]:
    sim = simulate_portfolio(30, seed=11).portfolio
    counts = sim.status_reports.groupby("project_id").size()
    projects = sim.projects.set_index("project_id")
    # One closed and one running project with short series: the suite stays quick.
    closed = counts[projects.loc[counts.index, "status"] == "closed"].sort_values()
    active = counts[projects.loc[counts.index, "status"] == "active"].sort_values()
    ids = [str(closed.index[0]), str(active.index[0])]
    folder = tmp_path_factory.mktemp("series")
    if java_available():
        write_update_series(sim, folder, ids)
    return sim, folder, ids


@needs_java
def test_update_series_round_trips(written: tuple[Portfolio, Path, list[str]]) -> None:
    portfolio, folder, ids = written
    result = import_schedules([folder], ImportOptions(project_key=r"(P-\d{5})"))
    m = result.mapped
    assert sorted(m.projects["project_id"]) == sorted(ids)
    assert m.quarantine.empty, m.quarantine.to_string()
    truth = portfolio.projects.set_index("project_id").loc[sorted(ids)]
    got = m.projects.set_index("project_id").loc[sorted(ids)]
    for col in ("planned_start", "planned_finish", "actual_finish"):
        pd.testing.assert_series_equal(got[col], truth[col], check_names=False)
    np.testing.assert_allclose(got["budget"], truth["budget"], rtol=1e-9)
    np.testing.assert_allclose(got["final_cost"], truth["final_cost"], rtol=1e-9)

    reports = portfolio.status_reports
    truth_r = reports[reports["project_id"].isin(ids)]
    joined = truth_r.merge(m.status_reports, on=["project_id", "report_date"], suffixes=("", "_in"))
    assert len(joined) == len(truth_r)  # every written report came back, on its date
    for col in ("planned_value", "actual_cost", "forecast_cost"):  # exact to the cent
        np.testing.assert_allclose(joined[col + "_in"], joined[col], rtol=1e-9, atol=0.01)
    for col in ("milestones_planned", "milestones_done"):
        np.testing.assert_array_equal(joined[col + "_in"], joined[col])
    pd.testing.assert_series_equal(
        joined["forecast_finish_in"], joined["forecast_finish"], check_names=False
    )
    # EV: MSPDI keeps percent complete as a whole number, so the one activity in progress
    # may be off by half a percent of its budget.
    bac = joined["project_id"].map(truth["budget"])
    slack = 0.005 * _largest_interval(portfolio, ids).reindex(joined["project_id"]).to_numpy()
    assert ((joined["earned_value_in"] - joined["earned_value"]).abs() <= slack + 0.01).all()
    # Cost-loaded: percent complete is EV / BAC.
    np.testing.assert_allclose(
        joined["percent_complete_in"], 100 * joined["earned_value_in"] / bac, rtol=1e-9
    )


def _largest_interval(portfolio: Portfolio, ids: list[str]) -> pd.Series:
    """Each project's largest activity budget in the written snapshots."""
    out = {}
    projects = portfolio.projects.set_index("project_id")
    reports = portfolio.status_reports
    for pid in ids:
        mine = reports[reports["project_id"] == pid]
        plan = snapshot_plan(cast(pd.Series, projects.loc[pid]), mine, 0)
        out[pid] = float(plan["baseline_cost"].max())
    return pd.Series(out)


@needs_java
def test_import_command_writes_a_portfolio_validate_accepts(
    written: tuple[Portfolio, Path, list[str]], tmp_path: Path
) -> None:
    _, folder, _ = written
    out = tmp_path / "imported"
    result = CliRunner().invoke(
        app, ["import", str(folder), "--out", str(out), "--project-key", r"(P-\d{5})"]
    )
    assert result.exit_code == 0, result.output
    n_files = len(list(folder.glob("*.xml")))
    assert f"{n_files} file(s), {n_files} snapshot(s) → 2 project(s)" in result.output
    check = CliRunner().invoke(app, ["validate", str(out), "--strict", "--out", str(tmp_path)])
    assert check.exit_code == 0, check.output
    assert len(load_portfolio(out).portfolio.projects) == 2


@needs_java
def test_without_a_key_each_file_is_its_own_project_unless_mapped(
    written: tuple[Portfolio, Path, list[str]], tmp_path: Path
) -> None:
    _, folder, _ = written
    files = sorted(folder.glob("*.xml"))
    # MS Project keeps one GUID across saves (the writer sets it per project): two projects.
    plain = import_schedules(files, ImportOptions())
    assert len(plain.mapped.projects) == 2
    mapping = {f.name: "ONE" for f in files}
    mapped = import_schedules(files, ImportOptions(project_map=mapping))
    # Two projects' snapshots made one: a date both report on is quarantined, not lost.
    assert mapped.mapped.projects["project_id"].tolist() == ["ONE"]
    held = mapped.mapped.quarantine["reason"].str.startswith("a second snapshot of ONE")
    assert held.all()
    assert len(mapped.mapped.status_reports) + int(held.sum()) == len(files)


def test_no_java_exits_2_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME",)}
    env["PATH"] = str(empty)
    schedule = Path(__file__).resolve().parents[1] / "data" / "schedules" / "aspose" / "test.xer"
    proc = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "import", str(schedule), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()  # one line: no blank one left by the progress display
    assert len(lines) == 1, proc.stderr
    assert "Java" in lines[0] and "default-jre-headless" in lines[0]
    assert not (tmp_path / "projects.csv").exists()
