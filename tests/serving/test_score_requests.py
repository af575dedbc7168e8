"""Several requests scored together by `serving.endpoints.score_requests` are answered as
each is alone (nothing in the service gathers requests now; the function keeps the ability,
and this holds it to the answers `score_projects` gives)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from features.loading import load_portfolio, write_portfolio
from features.pointintime import portfolio_context
from features.simulator import simulate_portfolio
from serving.champions import Champion, Champions
from serving.client import projects_from_portfolio
from serving.endpoints import ScoreCall, ScoringOptions, score_projects, score_requests
from training.models import RiskModel


@pytest.fixture(scope="module")
def scoring(
    models: dict[str, RiskModel], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Champions, list[ScoreCall]]:
    """Champions (the conftest's models) with a context, and requests drawn from a
    simulated portfolio: one that breaks a rule, ids that recur across requests."""
    sim = simulate_portfolio(80, seed=21)
    root = tmp_path_factory.mktemp("batching")
    write_portfolio(sim.portfolio, root)
    portfolio = load_portfolio(root).portfolio
    champions = Champions(
        by_target={t: Champion(t, m, f"forewarn-{t}", "1", None) for t, m in models.items()},
        context=portfolio_context(portfolio, [sim.today]),
    )
    projects = projects_from_portfolio(portfolio)
    running = [p for p in projects if p.status == "active" and p.status_reports][:6]
    late_report = (
        running[4]
        .status_reports[0]
        .model_copy(update={"report_date": running[4].planned_start - timedelta(days=30)})
    )
    broken = running[4].model_copy(
        update={"status_reports": [late_report, *running[4].status_reports[1:]]}
    )
    calls: list[ScoreCall] = [
        ([running[0]], sim.today),
        ([running[1], running[0]], sim.today),  # running[0] again, in another request
        ([broken], sim.today),  # a report before the start: 400 for this one only
        ([running[2]], sim.today - timedelta(days=120)),  # another as_of
        ([running[3], running[5]], None),  # today's date
    ]
    return champions, calls


def test_requests_together_get_the_answers_they_get_alone(
    scoring: tuple[Champions, list[ScoreCall]],
) -> None:
    champions, calls = scoring
    options = ScoringOptions()
    together = score_requests(champions, calls, options)
    assert isinstance(together[2], ValidationError)
    assert "before the project's start" in str(together[2])
    for k, (projects, as_of) in enumerate(calls):
        if k == 2:
            with pytest.raises(ValidationError):
                score_projects(champions, projects, as_of, options)
            continue
        alone = score_projects(champions, projects, as_of, options)
        assert together[k] == alone  # every probability, driver and sentence, exactly
        assert [p.project_id for p in alone.projects] == [p.project_id for p in projects]


def test_without_a_context_requests_are_scored_apart(
    scoring: tuple[Champions, list[ScoreCall]],
) -> None:
    champions, calls = scoring
    alone = Champions(by_target=champions.by_target, context=None)
    options = ScoringOptions()
    together = score_requests(alone, calls, options)
    for k in (0, 1, 3):
        assert together[k] == score_projects(alone, calls[k][0], calls[k][1], options)
