"""The walkthrough notebooks run, top to bottom, on the package as it is.

Each one runs in a kernel of this very interpreter (a kernelspec made in tmp_path, so the
machine's own kernels do not matter) with its working folder, its MLflow store and its
outputs in tmp_path: a notebook never writes into the repository. The notebooks are
committed without outputs, and that is checked too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
KERNEL = "forewarn-test"
TIME_LIMIT_S = 60  # per notebook, as the walkthroughs promise (CI may be slower: 3x)


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernelspec for sys.executable, and an environment pointing every output at tmp."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "forewarn test kernel",
                "language": "python",
            }
        )
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("FOREWARN_NOTEBOOK_DIR", str(work))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    monkeypatch.setenv("FOREWARN_MODELS_DIR", str(work / "models"))
    monkeypatch.setenv("FOREWARN_OUT_DIR", str(work / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return work


def test_there_are_three_walkthroughs() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01-explore-portfolio.ipynb",
        "02-train-and-evaluate.ipynb",
        "03-explain-a-project.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_env: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=3 * TIME_LIMIT_S,
        resources={"metadata": {"path": str(kernel_env)}},  # the kernel's working folder
    )
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started
    errors = [
        o
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "error"
    ]
    assert errors == []
    assert elapsed < 3 * TIME_LIMIT_S, f"{path.name} took {elapsed:.0f} s"
    print(f"{path.name}: {elapsed:.1f} s")
