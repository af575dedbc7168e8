"""The report's new parts: the P80 finish and cost in the watch list (the same as batch
scoring gives for the project and date) and the portfolio KPI section, in both languages.
Real models fitted on a small simulated portfolio; no browser (test_report_browser.py
covers the page in Chromium)."""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd
import pytest

from features.pointintime import portfolio_context, training_table
from features.simulator import simulate_portfolio
from serving.batch import score_portfolio
from serving.champions import Champion, Champions
from serving.kpi import KpiOptions
from serving.report import build_report
from training.models import fit_risk_model
from training.quantiles import fit_quantiles, with_outcomes

KW = dict(red=0.6, amber=0.35, top_drivers=2, delay_tolerance=0.05, overrun_tolerance=0.05)


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.table = ""
        self.project = ""
        self.ranges: dict[str, dict[str, str]] = {}
        self.kpi: dict[str, str] = {}
        self.realised: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.table = a.get("id", "")
        elif tag == "tr" and "data-project-id" in a:
            self.project = a["data-project-id"]
        elif tag == "td" and self.table == "watch-table":
            for key in ("data-finish-p80", "data-cost-p80"):
                if key in a:
                    self.ranges.setdefault(self.project, {})[key] = a[key]
        elif tag == "div" and a.get("id") == "kpi":
            self.kpi = a
        elif tag == "tr" and self.table == "kpi-realised" and "data-year" in a:
            self.realised.append(a["data-year"])


@pytest.fixture(scope="module")
def world() -> tuple:
    sim = simulate_portfolio(160, seed=13)
    portfolio, day = sim.portfolio, pd.Timestamp(sim.today)
    table = training_table(portfolio).frame
    outcomes = with_outcomes(table, portfolio.projects)
    models = {
        t: fit_risk_model(table.loc[table[label].notna()], t, max_trees=40)
        for t, label in (("delay", "late"), ("overrun", "over_budget"))
    }
    quantiles = {
        "finish": fit_quantiles(outcomes, "finish", "conformal", max_trees=40),
        "cost": fit_quantiles(outcomes, "cost", "conformal", max_trees=40),
    }
    champions = Champions(
        {t: Champion(t, m, f"forewarn-{t}", "1", None) for t, m in models.items()},
        portfolio_context(portfolio, [day]),
        quantiles=quantiles,
    )
    return portfolio, champions, day


def _report(world: tuple, lang: str = "en") -> str:
    portfolio, champions, day = world
    return build_report(
        portfolio, champions.models(), [], as_of=day.date(), since=None, drift=None,
        context=champions.context, quantiles=champions.quantiles, kpi=KpiOptions(),
        lang=lang, **KW,
    ).html  # fmt: skip


def test_watch_list_shows_the_batch_p80(world: tuple) -> None:
    portfolio, champions, day = world
    page = Cells()
    page.feed(_report(world))
    assert page.ranges, "no P80 cell in the watch list"
    batch = score_portfolio(
        portfolio, champions, day.date(), explain=False,
        **{k: v for k, v in KW.items() if k != "top_drivers"}, top_drivers=0,
    ).frame.set_index("project_id")  # fmt: skip
    for pid, cells in page.ranges.items():
        assert (
            cells["data-finish-p80"]
            == pd.Timestamp(batch.loc[pid, "finish_p80"]).date().isoformat()
        )
        assert float(cells["data-cost-p80"]) == pytest.approx(batch.loc[pid, "cost_p80"], rel=1e-9)


def test_kpi_section_in_the_first_section(world: tuple) -> None:
    html = _report(world)
    page = Cells()
    page.feed(html)
    assert page.kpi["data-year"] == str(world[2].year)
    assert 0 <= float(page.kpi["data-on-time-expected"]) <= 1
    assert page.realised, "no realised KPI row"
    assert html.index('id="kpi"') < html.index('id="watch-list"')
    assert "chance of reaching 90%" in html and "P80 finish" in html
    chinese = _report(world, "zh-CN")
    assert (
        "按时交付" in chinese and "P80 完工日期" in chinese and "chance of reaching" not in chinese
    )


def test_explanation_view_draws_the_finish_fan(world: tuple) -> None:
    from serving.views import build_explanation

    portfolio, champions, day = world
    reports = portfolio.status_reports
    pid = reports.groupby("project_id").size().idxmax()
    result = build_explanation(
        portfolio, pid, champions.models(), [], as_of=day.date(), context=champions.context,
        quantiles=champions.quantiles, **KW,
    )  # fmt: skip
    fan = result.fan
    assert fan is not None and len(fan) == len(result.history) > 3
    q = fan[["p10", "p50", "p80", "p90"]]
    assert (q.diff(axis=1).iloc[:, 1:] >= pd.Timedelta(0)).all().all()
    assert 'id="finish-fan"' in result.html
    without = build_explanation(
        portfolio, pid, champions.models(), [], as_of=day.date(), context=champions.context, **KW
    )
    assert without.fan is None and 'id="finish-fan"' not in without.html
