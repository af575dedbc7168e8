"""`forewarn train` and `forewarn report` on a folder `forewarn import` made from schedules.

A simulated portfolio is written as MS Project update series by MPXJ's own writer (four
snapshots per project, spread over its reports, plus one at actual finish for a closed
project: a monthly update of a project reported on weekly, and few enough files for the
suite), imported through the command, then trained on and reported on through the
commands, as a PMO with nothing but schedule files would. The schedule health the import
writes reaches the models as features.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.catalogue import SCHEDULE_HEALTH_NAMES
from features.loading import load_portfolio
from features.schedules.reader import java_available
from features.schedules.series import write_update_series
from features.simulator import simulate_portfolio
from forewarn.cli import app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not java_available(), reason="no Java: make setup installs it"),
]

PROJECTS = 36
SNAPSHOTS = 4


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("schedules")
    sim = simulate_portfolio(PROJECTS, seed=3).portfolio
    files = write_update_series(sim, root / "series", snapshots=SNAPSHOTS)
    assert len(files) <= PROJECTS * (SNAPSHOTS + 1)
    out = root / "imported"
    result = CliRunner().invoke(
        app, ["import", str(root / "series"), "--out", str(out), "--project-key", r"(P-\d{5})"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("FOREWARN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FOREWARN_OUT_DIR", str(tmp_path / "out"))
    return uri


def test_train_and_report_on_an_imported_folder(imported: Path, store: str, tmp_path: Path) -> None:
    from training import tracking

    portfolio = load_portfolio(imported).portfolio
    closed = portfolio.projects[portfolio.projects["actual_finish"].notna()]
    running = portfolio.projects[portfolio.projects["actual_finish"].isna()]
    assert len(closed) >= 20 and len(running) >= 5  # enough to learn from, some to report on
    assert closed["final_cost"].notna().all()  # every closed one was cost-loaded

    trained = CliRunner().invoke(app, ["train", str(imported), "--cv", "3", "--json"])
    assert trained.exit_code == 0, trained.output
    results = json.loads(trained.stdout)
    for target in ("delay", "overrun"):
        assert results[target] is not None, target
        assert results[target]["model_version"] == "1"
        assert results[target]["n_projects"] == len(closed)
    # The schedule health of each snapshot is in the training table the models learnt from.
    models = [tracking.load_model(t, "1", tracking_uri=store).model for t in ("delay", "overrun")]
    with_trees = [m for m in models if m.recipe != "rule"]
    assert with_trees, [m.recipe for m in models]
    for model in with_trees:
        assert set(SCHEDULE_HEALTH_NAMES) <= set(model.feature_names)

    page = tmp_path / "report.html"
    reported = CliRunner().invoke(
        app, ["report", str(imported), "--out", str(page), "--json", "--lang", "en"]
    )
    assert reported.exit_code == 0, reported.output
    summary = json.loads(reported.stdout)
    as_of = pd.Timestamp(summary["as_of"])
    started = portfolio.projects["actual_start"].fillna(portfolio.projects["planned_start"])
    unfinished = ~(portfolio.projects["actual_finish"] <= as_of)
    assert summary["running"] == int(((started <= as_of) & unfinished).sum()) > 0
    for risk in ("late", "over_budget"):
        assert sum(summary["counts"][risk].values()) == summary["running"]
    html = page.read_text(encoding="utf-8")
    for pid in portfolio.projects.loc[(started <= as_of) & unfinished, "project_id"]:
        assert pid in html
