"""Golden tests: the little06 feature table, the /score answer for the documented example
request and the report's text stay what they were, so that a refactor shows it changed
nothing. How to regenerate after an intended change: tests/golden/golden.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from golden import (
    CHAMPIONS,
    HERE,
    PORTFOLIO_PROJECTS,
    PORTFOLIO_SEED,
    REGENERATE,
    frame_digest,
    page_text,
    read_json,
    write_json,
)
from portfolio_builders import random_portfolio, read_little06

from features.pointintime import training_table
from serving.champions import Champions, read_champions
from serving.endpoints import ScoringOptions, score_projects
from serving.report import DriftStatus, build_report, model_cards
from serving.request_models import ScoreRequest

ROOT = HERE.parents[1]
REPORT_AS_OF, REPORT_SINCE = date(2024, 3, 1), date(2024, 2, 1)


def _check(path: Path, got: Any, compare: Callable[[Any], None]) -> None:
    """``compare(got)`` with the golden at ``path``; in regenerate mode, write it instead."""
    if REGENERATE:
        if isinstance(got, str):
            path.write_text(got, encoding="utf-8")
        else:
            write_json(path, got)
        pytest.skip(f"regenerated {path.name}: review `git diff tests/golden`")
    compare(got)


@pytest.fixture(scope="module")
def champions() -> Champions:
    return read_champions(CHAMPIONS, read_json(CHAMPIONS / "identities.json"), source="mlflow")


def test_little06_feature_table_is_the_golden_one() -> None:
    path = HERE / "little06_features.json"
    got = frame_digest(training_table(read_little06(), 0.05, 0.05).frame)

    def compare(got: dict[str, Any]) -> None:
        expected = read_json(path)
        assert got["rows"] == expected["rows"]
        assert got["columns"] == expected["columns"]
        changed = [n for n in expected["digests"] if got["digests"][n] != expected["digests"][n]]
        assert not changed, {n: (got["digests"][n], expected["digests"][n]) for n in changed}

    _check(path, got, compare)


def _approx(value: Any) -> Any:
    """Floats to 1e-12 (LightGBM's sums may round differently on another CPU); the rest as is."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=1e-15)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return value


def test_score_answer_for_the_documented_request_is_the_golden_one(
    champions: Champions,
) -> None:
    path = HERE / "score_answer.json"
    body = (ROOT / "docs/examples/score-request.json").read_text()
    request = ScoreRequest.model_validate_json(body)
    answer = score_projects(champions, request.projects, request.as_of, ScoringOptions())
    got = json.loads(answer.model_dump_json())

    def compare(got: Any) -> None:
        assert got == _approx(read_json(path))

    _check(path, got, compare)


def test_report_text_is_the_golden_one(champions: Champions) -> None:
    path = HERE / "report.txt"
    portfolio = random_portfolio(PORTFOLIO_PROJECTS, seed=PORTFOLIO_SEED)
    result = build_report(
        portfolio,
        champions.models(),
        model_cards(champions.by_target),
        as_of=REPORT_AS_OF,
        since=REPORT_SINCE,
        red=0.60,
        amber=0.35,
        top_drivers=3,
        delay_tolerance=0.05,
        overrun_tolerance=0.05,
        drift=DriftStatus("ok", "2 of 70 features drifted (3%; the check fails at 30%)"),
        context=champions.context,
        watch_list_size=10,
        lang="en",  # the golden is the English page
    )
    assert len(result.scores) >= 5  # running projects to rank and explain

    def compare(got: str) -> None:
        assert got == path.read_text(encoding="utf-8")

    _check(path, page_text(result.html), compare)
