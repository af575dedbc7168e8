"""Reading, validating and writing portfolios in data contract v1."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.contract import TABLES, Portfolio, column_names

QUARANTINE_COLUMNS = ["table", "file", "row", "column", "value", "rule"]


class ContractError(Exception):
    """A whole-file problem (unreadable file, missing table or required column).

    The message names the file, the column where there is one, and the rule; the CLI prints
    it and exits 2.
    """


@dataclass
class LoadResult:
    """A validated portfolio plus the rows that broke the contract."""

    portfolio: Portfolio
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    files: dict[str, str] = field(default_factory=dict)


def write_portfolio(portfolio: Portfolio, out_dir: Path, fmt: str = "csv") -> dict[str, Path]:
    """Write the three tables into out_dir as CSV or Parquet; returns their paths.

    CSV dates are written as YYYY-MM-DD and the row order is kept, so one portfolio always
    gives byte-identical files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        "projects": portfolio.projects,
        "status_reports": portfolio.status_reports,
        "changes": portfolio.changes,
    }
    paths: dict[str, Path] = {}
    for table in TABLES:
        frame = frames[table]
        contract = column_names(table)
        ordered = [c for c in contract if c in frame.columns] + [
            c for c in frame.columns if c not in contract
        ]
        frame = frame[ordered]
        if fmt == "parquet":
            path = out_dir / f"{table}.parquet"
            frame.to_parquet(path, index=False)
        elif fmt == "csv":
            path = out_dir / f"{table}.csv"
            frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.6g")
        else:
            raise ValueError(f"unknown format {fmt!r}: use csv or parquet")
        paths[table] = path
    return paths
