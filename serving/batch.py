"""Batch scoring: every running project of a portfolio, through the service's own code.

Features come from `features.pointintime.snapshot` with the champions' portfolio context
and scores from `serving.scoring.score_frame`, exactly as `POST /score` computes them, so a
project gets the same probabilities from either. Scoring runs in chunks so a caller can
show progress; features are built once, vectorised over the whole portfolio.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.atomic import replaced_whole
from features.contract import Portfolio
from features.pointintime import snapshot
from serving.champions import Champions
from serving.ranges import range_columns
from serving.scoring import score_frame

OUTPUT_SUFFIXES = (".csv", ".parquet")
CHUNK_ROWS = 2_000

Progress = Callable[[int, int], None]


@dataclass
class BatchScores:
    """Scores of every project running at `as_of`, and what produced them."""

    frame: pd.DataFrame
    as_of: date
    models: dict[str, str]  # target → "forewarn-delay v3"


def default_as_of(portfolio: Portfolio) -> date:
    """The portfolio's own "now": its latest status report, else today (UTC)."""
    latest = portfolio.status_reports["report_date"].max()
    return datetime.now(UTC).date() if pd.isna(latest) else pd.Timestamp(latest).date()


def check_output(path: Path) -> None:
    """Raise ValueError unless `path` ends in .csv or .parquet."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: the output must end in .csv or .parquet")


def score_portfolio(
    portfolio: Portfolio,
    champions: Champions,
    as_of: date,
    *,
    red: float,
    amber: float,
    top_drivers: int,
    explain: bool,
    delay_tolerance: float,
    overrun_tolerance: float,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> BatchScores:
    """Score every project running at `as_of` (started, not finished, not cancelled).

    With `explain`, each risk's `top_drivers` drivers (SHAP value and sentence) are kept;
    without, the TreeSHAP work is skipped. `progress(done, total)` is called per chunk.
    """
    features = snapshot(
        portfolio,
        as_of,
        running_only=True,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        context=champions.context,
    )
    total = len(features)
    k = top_drivers if explain else 0
    parts: list[pd.DataFrame] = []
    if progress:
        progress(0, total)
    for start in range(0, total, chunk_rows):
        chunk = features.iloc[start : start + chunk_rows].reset_index(drop=True)
        parts.append(score_frame(champions.models(), chunk, red, amber, k))
        if progress:
            progress(min(start + chunk_rows, total), total)
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else score_frame(champions.models(), features, red, amber, k)
    )
    models = {t: f"{c.name} v{c.version}" for t, c in champions.by_target.items()}
    if champions.quantiles:
        ranges = range_columns(champions.quantiles, features, portfolio.projects, delay_tolerance)
        frame = frame.assign(**ranges)
        models.update(champions.quantile_versions)
    return BatchScores(frame=frame, as_of=as_of, models=models)


def output_frame(scores: BatchScores, explain: bool) -> pd.DataFrame:
    """The file's columns: the score frame, drivers as JSON text (with `explain`), models."""
    out = scores.frame.copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    driver_columns = ["drivers_late", "drivers_over_budget"]
    if explain:
        for col in driver_columns:
            out[col] = [json.dumps(d, allow_nan=False) for d in out[col]]
    else:
        out = out.drop(columns=driver_columns)
    for target in ("delay", "overrun"):
        out[f"{target}_model"] = scores.models.get(target)
    for target in ("finish", "cost"):
        if target in scores.models:
            out[f"{target}_model"] = scores.models[target]
    return out


def write_scores(scores: BatchScores, path: Path, explain: bool) -> Path:
    """Write the scores as CSV or Parquet (by suffix); returns the path."""
    check_output(path)
    out = output_frame(scores, explain)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_whole(path) as partial:  # a full disk or SIGTERM leaves no partial file
        if path.suffix.lower() == ".parquet":
            out.to_parquet(partial, index=False)
        else:
            out.to_csv(partial, index=False)
    return path


def rag_counts(frame: pd.DataFrame) -> dict[str, Any]:
    """Projects per overall RAG and per risk, for the CLI's summary."""
    counts: dict[str, Any] = {}
    for col in ("rag", "rag_late", "rag_over_budget"):
        values = frame[col].value_counts()
        counts[col] = {rag: int(values.get(rag, 0)) for rag in ("red", "amber", "green", "n/a")}
    return counts
