"""Contract v1.1: the PMO's own status colour (`rag`) in status reports, loaded and as a feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.loading import load_portfolio
from features.pointintime import build_features


def _write(folder: Path, colours: list[str | None]) -> None:
    folder.mkdir()
    pd.DataFrame(
        {
            "project_id": ["P1"],
            "planned_start": ["2024-01-01"],
            "planned_finish": ["2024-12-31"],
            "budget": [100.0],
        }
    ).to_csv(folder / "projects.csv", index=False)
    pd.DataFrame(
        {
            "project_id": ["P1"] * len(colours),
            "report_date": [f"2024-{m + 2:02d}-01" for m in range(len(colours))],
            "rag": colours,
        }
    ).to_csv(folder / "status_reports.csv", index=False)
    pd.DataFrame({"project_id": [], "raised_date": []}).to_csv(folder / "changes.csv", index=False)


def test_rag_is_read_case_insensitively_and_a_bad_colour_is_quarantined(tmp_path: Path) -> None:
    _write(tmp_path / "p", ["Green", "AMBER", None, "purple", "red"])
    result = load_portfolio(tmp_path / "p")
    reports = result.portfolio.status_reports
    assert reports["rag"].tolist()[:2] == ["green", "amber"]
    assert reports["rag"].tolist()[-1] == "red" and len(reports) == 4
    bad = result.quarantine
    assert len(bad) == 1
    row = bad.iloc[0]
    assert (row["column"], row["value"]) == ("rag", "purple")
    assert "one of green, amber, red" in row["rule"]


def test_rag_feature_is_the_latest_reports_colour_as_a_rank(tmp_path: Path) -> None:
    _write(tmp_path / "p", ["green", "amber", None, "red"])
    portfolio = load_portfolio(tmp_path / "p").portfolio
    dates = ["2024-02-15", "2024-03-15", "2024-04-15", "2024-05-15", "2024-01-15"]
    as_of = pd.DataFrame({"project_id": ["P1"] * 5, "as_of": pd.to_datetime(dates)})
    got = build_features(portfolio, as_of)["rag"].to_numpy()
    # green, amber, a report without a colour (NaN: not carried forward), red, no report yet.
    np.testing.assert_array_equal(got, [0.0, 1.0, np.nan, 2.0, np.nan])
