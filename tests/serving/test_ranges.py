"""Finish and cost ranges: P50 ≤ P80 ≤ P90 always, the same from batch scoring and /score for
the same project and date, and no cost range (with the reason) without a budget. Real
models, fitted on a small simulated portfolio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import Portfolio
from features.pointintime import portfolio_context, training_table
from features.simulator import simulate_portfolio
from serving import i18n
from serving.batch import output_frame, score_portfolio
from serving.champions import Champion, Champions
from serving.client import projects_from_portfolio
from serving.endpoints import ScoringOptions, score_projects
from serving.ranges import NO_BUDGET, NO_FINISH_MODEL
from training.models import fit_risk_model
from training.quantiles import fit_quantiles, with_outcomes

KW = dict(red=0.6, amber=0.35, top_drivers=0, explain=False, delay_tolerance=0.05,
          overrun_tolerance=0.05)  # fmt: skip


@pytest.fixture(scope="module")
def world() -> tuple[Portfolio, Champions, pd.Timestamp]:
    sim = simulate_portfolio(160, seed=11)
    portfolio, day = sim.portfolio, pd.Timestamp(sim.today)
    table = training_table(portfolio).frame
    outcomes = with_outcomes(table, portfolio.projects)
    champions = Champions(
        by_target={
            t: Champion(
                t,
                fit_risk_model(table.loc[table[label].notna()], t, max_trees=40),
                f"forewarn-{t}",
                "1",
                None,
            )
            for t, label in (("delay", "late"), ("overrun", "over_budget"))
        },
        context=portfolio_context(portfolio, [day]),
        quantiles={
            "finish": fit_quantiles(outcomes, "finish", "conformal", max_trees=40),
            "cost": fit_quantiles(outcomes, "cost", "quantile_lgbm", max_trees=40),
        },
        quantile_versions={"finish": "forewarn-finish v1", "cost": "forewarn-cost v1"},
    )
    return portfolio, champions, day


def test_batch_ranges_are_ordered_and_in_user_units(world: tuple) -> None:
    portfolio, champions, day = world
    frame = score_portfolio(portfolio, champions, day.date(), **KW).frame
    assert len(frame) > 5
    f = frame[["finish_p50", "finish_p80", "finish_p90"]].apply(pd.to_datetime)
    assert (f["finish_p50"] <= f["finish_p80"]).all() and (f["finish_p80"] <= f["finish_p90"]).all()
    c = frame[["cost_p50", "cost_p80", "cost_p90"]].to_numpy(dtype=float)
    assert np.isfinite(c).all() and (np.diff(c, axis=1) >= 0).all()
    # P50 of the cost is the budget times (1 + a plausible overrun), never a fraction.
    budget = portfolio.projects.set_index("project_id").loc[frame["project_id"], "budget"]
    assert (c[:, 0] / budget.to_numpy() > 0.3).all()
    p = frame["p_late_from_range"].to_numpy(dtype=float)
    assert ((p >= 0.1 - 1e-9) & (p <= 0.9 + 1e-9)).all()
    out = output_frame(score_portfolio(portfolio, champions, day.date(), **KW), explain=False)
    assert {"finish_p80", "cost_p80", "finish_model", "cost_model"} <= set(out.columns)


def test_service_and_batch_give_the_same_ranges(world: tuple) -> None:
    portfolio, champions, day = world
    batch = score_portfolio(portfolio, champions, day.date(), **KW).frame.set_index("project_id")
    ids = list(batch.index[:5])
    answer = score_projects(champions, projects_from_portfolio(portfolio, ids), day.date(),
                            ScoringOptions())  # fmt: skip
    for project in answer.projects:
        row = batch.loc[project.project_id]
        assert project.finish_p50 == pd.Timestamp(row["finish_p50"]).date()
        assert project.finish_p90 == pd.Timestamp(row["finish_p90"]).date()
        assert project.cost_p80 == pytest.approx(row["cost_p80"], rel=1e-12)
        assert project.finish_p50 <= project.finish_p80 <= project.finish_p90  # type: ignore[operator]


def test_no_budget_no_cost_range_with_the_reason(world: tuple) -> None:
    portfolio, champions, day = world
    batch = score_portfolio(portfolio, champions, day.date(), **KW).frame
    [project] = projects_from_portfolio(portfolio, [batch["project_id"].iloc[0]])
    project = project.model_copy(update={"budget": None})
    answer = score_projects(champions, [project], day.date(), ScoringOptions()).projects[0]
    assert answer.cost_p50 is None and answer.cost_p90 is None
    assert answer.cost_range_reason == NO_BUDGET
    assert answer.finish_p80 is not None
    with i18n.use("zh-CN"):
        chinese = score_projects(champions, [project], day.date(), ScoringOptions(lang="zh-CN"))
    assert "预算" in (chinese.projects[0].cost_range_reason or "")


def test_without_quantile_champions_the_answer_has_no_ranges(world: tuple) -> None:
    portfolio, champions, day = world
    bare = Champions(champions.by_target, champions.context)
    frame = score_portfolio(portfolio, bare, day.date(), **KW).frame
    assert "finish_p50" not in frame.columns
    ids = [frame["project_id"].iloc[0]]
    answer = score_projects(bare, projects_from_portfolio(portfolio, ids), day.date(),
                            ScoringOptions()).projects[0]  # fmt: skip
    assert answer.finish_p50 is None and answer.finish_range_reason is None
    only_cost = Champions(
        champions.by_target, champions.context, quantiles={"cost": champions.quantiles["cost"]}
    )
    answer = score_projects(only_cost, projects_from_portfolio(portfolio, ids), day.date(),
                            ScoringOptions()).projects[0]  # fmt: skip
    assert answer.finish_p50 is None and answer.finish_range_reason == NO_FINISH_MODEL
    assert answer.cost_p50 is not None
