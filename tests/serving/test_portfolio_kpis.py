"""`forewarn kpi`'s wiring: the year's cohort scored by batch scoring, the sentences in both
languages, the realised KPIs beside them; real models fitted on a small simulated portfolio."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.pointintime import portfolio_context, training_table
from features.simulator import simulate_portfolio
from serving import i18n
from serving.champions import Champion, Champions
from serving.kpi import KpiOptions, fmt_chance, kpi_sentences, portfolio_kpis
from training.kpi import cohort
from training.models import fit_risk_model


@pytest.fixture(scope="module")
def forecast() -> tuple[dict, pd.DataFrame]:
    sim = simulate_portfolio(220, seed=4)
    portfolio = sim.portfolio
    day = pd.Timestamp(sim.today) - pd.Timedelta(days=365)
    table = training_table(portfolio, as_of=day).frame
    models = {
        t: fit_risk_model(table.loc[table[label].notna()], t, max_trees=60)
        for t, label in (("delay", "late"), ("overrun", "over_budget"))
    }
    champions = Champions(
        by_target={t: Champion(t, m, f"forewarn-{t}", "1", None) for t, m in models.items()},
        context=portfolio_context(portfolio, [day]),
    )
    out = portfolio_kpis(
        portfolio, champions, day.date(), KpiOptions(), red=0.6, amber=0.35,
        delay_tolerance=0.05, overrun_tolerance=0.05,
    )  # fmt: skip
    return out, portfolio.projects


def test_the_cohort_is_every_project_due_in_the_year(forecast: tuple[dict, pd.DataFrame]) -> None:
    out, projects = forecast
    due = int(cohort(projects, out["year"]).sum())
    on_time = out["on_time"]
    assert on_time["n_projects"] + on_time["left_out"] == due
    assert on_time["n_running"] > 0 and on_time["n_closed"] > 0
    low, high = on_time["interval"]
    assert 0 <= low <= on_time["expected"] <= high <= 1
    assert 0 <= on_time["p_reach_target"] <= 1
    json.dumps(out, allow_nan=False)
    years = {r["year"] for r in out["realised"]}
    assert out["year"] - 1 in years


def test_sentences_in_english_and_chinese(forecast: tuple[dict, pd.DataFrame]) -> None:
    out, _ = forecast
    english = kpi_sentences(out)
    assert english[0].startswith(f"On-time delivery {out['year']}: ")
    assert "chance of reaching 90%" in english[0]
    with i18n.use("zh-CN"):
        chinese = kpi_sentences(out)
    assert "按时交付" in chinese[0] and "chance" not in chinese[0]


def test_chance_words_at_the_ends() -> None:
    assert fmt_chance(0.001) == "< 1%" and fmt_chance(0.999) == "> 99%"
    assert fmt_chance(0.42) == "42%" and fmt_chance(None) == "—"
