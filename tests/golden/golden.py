"""What the golden tests compare: compact, readable digests of the feature table, the
/score answer and the report's text, and the fixed champions they are scored with.

Regenerate (after a change that is meant to move them; review ``git diff tests/golden``):

    FOREWARN_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/golden -q

The champions in ``champions/`` are fixed files, trained once by
``.venv/bin/python tests/golden/golden.py --champions`` on a seeded test portfolio: the
goldens move when features, scoring or the page move, not when training is retuned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CHAMPIONS = HERE / "champions"
REGENERATE = os.environ.get("FOREWARN_REGENERATE_GOLDEN", "") not in ("", "0", "false")
# The test portfolio the champions are trained on and the report is drawn from.
PORTFOLIO_PROJECTS, PORTFOLIO_SEED = 40, 13


def column_digest(values: pd.Series) -> dict[str, Any]:
    """A column in a few fields: dtype, missing count, a sum where numeric, and a hash of
    every value bit for bit (pandas' public `hash_pandas_object`)."""
    hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
    out: dict[str, Any] = {
        "dtype": str(values.dtype),
        "missing": int(values.isna().sum()),
        "sha256": hashlib.sha256(hashed.tobytes()).hexdigest()[:16],
    }
    if values.dtype.kind == "f":
        finite = values.to_numpy()[np.isfinite(values.to_numpy())]
        out["sum"] = float(finite.sum()) if len(finite) else 0.0
    return out


def frame_digest(frame: pd.DataFrame) -> dict[str, Any]:
    """Rows, column order and each column's digest."""
    return {
        "rows": len(frame),
        "columns": list(frame.columns),
        "digests": {str(name): column_digest(frame[name]) for name in frame.columns},
    }


class _Text(HTMLParser):
    """A page's visible text, one text node a line (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self.skipping:
            self.lines.append(text)


def page_text(html: str) -> str:
    """The normalised text of a page: visible text, whitespace collapsed, the generation
    time (the one thing that changes from run to run) replaced by a placeholder."""
    parser = _Text()
    parser.feed(html)
    text = "\n".join(parser.lines) + "\n"
    return re.sub(r"on \d{4}-\d{2}-\d{2} \d{2}:\d{2}", "on <generated>", text)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def train_champions(directory: Path = CHAMPIONS) -> None:
    """Small champions (few trees) trained on the seeded test portfolio, written as the
    Bento store holds them: booster text, JSON, the portfolio context as Parquet."""
    from portfolio_builders import random_portfolio

    from features.pointintime import training_table
    from serving.champions import Champion, Champions, context_from_reference, write_champions
    from training.models import fit_risk_model

    portfolio = random_portfolio(PORTFOLIO_PROJECTS * 5, seed=PORTFOLIO_SEED + 1)
    portfolio.extra_attributes = []  # the example request carries none
    table = training_table(portfolio, 0.05, 0.05).frame
    by_target = {}
    for target in ("delay", "overrun"):
        model = fit_risk_model(
            table, target, seed=7, max_trees=25, params={"num_leaves": 7}, num_threads=1
        )
        by_target[target] = Champion(target, model, f"forewarn-{target}", "1", "golden-run")
    context = context_from_reference([table])
    write_champions(Champions(by_target, context), directory)
    identities = {
        t: {"name": c.name, "version": c.version, "run_id": c.run_id, "tags": GOLDEN_TAGS}
        for t, c in by_target.items()
    }
    write_json(directory / "identities.json", identities)


GOLDEN_TAGS = {
    "verdict": "better",
    "trained_at": "2024-06-01T00:00:00",
    "data_as_of": "2024-05-31",
}


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE.parent / "features"))
    parser = argparse.ArgumentParser(description="retrain the golden champions' files")
    parser.add_argument("--champions", action="store_true", required=True)
    parser.parse_args()
    train_champions()
    print(f"wrote {CHAMPIONS}; now regenerate the goldens (see this module's docstring)")
