"""CLI date options refuse the dates pandas cannot hold (years outside 1678–2261) with
exit 2 and the rule, as a file load quarantines them, instead of wrapping them round."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.loading import write_portfolio
from features.simulator import simulate_portfolio
from forewarn.cli import app


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-dates") / "portfolio"
    write_portfolio(simulate_portfolio(20, seed=2).portfolio, folder)
    return folder


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("features", "--as-of", "9999-12-31"),
        ("score", "--as-of", "0001-01-01"),
        ("report", "--since", "1600-01-01"),
        ("report", "--as-of", "2262-06-01"),
        ("explain", "--as-of", "9999-12-31"),
        ("retrain", "--as-of", "0001-01-01"),
    ],
)
def test_a_date_option_outside_1678_2261_exits_2(
    data: Path, tmp_path: Path, command: str, option: str, value: str
) -> None:
    args = [command, str(data)]
    if command == "explain":
        args.append("P0001")
    if command != "retrain":
        suffix = ".csv" if command in ("features", "score") else ".html"
        args += ["--out", str(tmp_path / f"out{suffix}")]
    result = CliRunner().invoke(app, [*args, option, value])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"{option} {value}" in text and "1678–2261" in text, text
