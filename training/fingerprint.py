"""Fingerprints of what a model was trained on, so that a rerun on the same inputs is a no-op.

The input hashes cover the three contract tables as loaded; the training fingerprint covers
the training table itself (what was known at as_of, after labelling and feature building),
the target, as_of and the recipe. Feature code that changes the table changes the
fingerprint too, which is what retraining should see.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from features.contract import Portfolio


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's column names and values, independent of its index."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    if len(frame):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _date(value: Any) -> str | None:
    stamp = pd.to_datetime(value)
    return None if pd.isna(stamp) else str(pd.Timestamp(stamp).date())


def data_fingerprint(
    portfolio: Portfolio, table: pd.DataFrame, as_of: pd.Timestamp | None
) -> dict[str, Any]:
    """Input hashes, row counts and date ranges of a training run's data."""
    reports = portfolio.status_reports
    return {
        "source": portfolio.source,
        "as_of": _date(as_of) if as_of is not None else None,
        "inputs": {
            "projects": frame_hash(portfolio.projects),
            "status_reports": frame_hash(portfolio.status_reports),
            "changes": frame_hash(portfolio.changes),
        },
        "rows": {**portfolio.counts(), "training_rows": len(table)},
        "training_projects": int(table["project_id"].nunique()) if len(table) else 0,
        "dates": {
            "first_planned_start": _date(portfolio.projects["planned_start"].min()),
            "last_report": _date(reports["report_date"].max()) if len(reports) else None,
            "first_close": _date(table["actual_finish"].min()) if len(table) else None,
            "last_close": _date(table["actual_finish"].max()) if len(table) else None,
        },
        "table": frame_hash(table),
    }


def training_fingerprint(
    table: pd.DataFrame, target: str, as_of: pd.Timestamp | None, recipe: dict[str, Any]
) -> str:
    """Short hash of (training table, target, as_of, recipe): equal means nothing changed."""
    payload = {
        "table": frame_hash(table),
        "target": target,
        "as_of": _date(as_of) if as_of is not None else None,
        "recipe": recipe,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]
