"""The CLI stays quick to start: heavy libraries are imported inside commands only."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "pandas",
    "pydantic_settings",
    "lightgbm",
    "mlflow",
    "shap",
    "evidently",
    "bentoml",
    "sklearn",
    "plotly",
    "jpype",  # forewarn import only: the JVM starts inside that command
    "mpxj",
    "pyspark",
    "psycopg",
)


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from forewarn.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"forewarn --help imported heavy libraries: {out}"


def test_every_command_has_help() -> None:
    from typer.testing import CliRunner

    from forewarn.cli import app

    runner = CliRunner()
    commands = [c.name or c.callback.__name__ for c in app.registered_commands if c.callback]
    assert {"simulate", "validate", "demo"} <= set(commands)
    for name in commands:
        result = runner.invoke(app, [str(name), "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_the_import_package_loads_no_pandas_before_java_reads() -> None:
    # forewarn import has MPXJ read the first file while pandas loads (import_schedules):
    # a module-level pandas import in features.schedules would put the two back in a row.
    code = (
        "import sys\n"
        "import features.schedules\n"
        "print(','.join(m for m in ('pandas', 'numpy', 'jpype') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing features.schedules imported {out}"
