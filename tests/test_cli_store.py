"""A tracking store that cannot be reached: the commands that read the registry exit 2
saying so, and do not tell the user to train a model (that would fail the same way).

The store is a loopback port nothing listens on: no network.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from features.loading import write_portfolio
from features.simulator import simulate_portfolio
from forewarn.cli import app


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-store") / "portfolio"
    write_portfolio(simulate_portfolio(20, seed=2).portfolio, folder)
    return folder


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("FOREWARN_OUT_DIR", str(tmp_path / "out"))
    yield uri
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)


@pytest.mark.parametrize("command", ["report", "train", "drift"])
def test_an_unreachable_store_exits_2_saying_so(
    data: Path, tmp_path: Path, nowhere: str, command: str
) -> None:
    args = [command, str(data)]
    if command == "report":
        args += ["--out", str(tmp_path / "report.html")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"the tracking store {nowhere} is unreachable" in text, text
    assert "train first" not in text.lower() and "train one first" not in text.lower(), text
