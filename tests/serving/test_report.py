"""The early-warning report and the explanation view, on hand-built frames and small models.

The page content is checked through the data attributes the templates put on rows and
cells (what a browser test or a scraper reads), not through the wording around them.
"""

from __future__ import annotations

from datetime import date
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.contract import Portfolio, conform
from features.simulator import simulate_portfolio
from serving.report import (
    NO_COST,
    DriftStatus,
    ModelCard,
    build_report,
    compare_with_previous,
    fmt_pct,
    fmt_prob,
    fmt_ratio,
    main_drivers,
    model_card,
    render_report,
    report_dates,
    reporting_period,
)
from serving.views import (
    UnknownProjectError,
    Waterfall,
    build_explanation,
    changes_as_known,
    explain_page_app,
    render_explanation,
)

RED, AMBER = 0.60, 0.35
RAGS = ("red", "amber")  # the RAGs that put a project on the watch list
AS_OF, SINCE = date(2024, 6, 1), date(2024, 5, 1)


# ----------------------------------------------------------------------------- helpers


class PageRows(HTMLParser):
    """Collects the data-* attributes of every element carrying data-project-id, by table."""

    def __init__(self) -> None:
        super().__init__()
        self.table: str | None = None
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.cells: list[dict[str, str]] = []
        self.charts: list[str] = []
        self.missing: list[str] = []
        self.scripts_with_src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and "id" in a:
            self.table = a["id"]
        if tag == "tr" and "data-project-id" in a and self.table:
            self.rows.setdefault(self.table, []).append(a)
        if tag == "td" and "data-count" in a:
            self.cells.append(a)
        if "data-chart" in a:
            self.charts.append(a["data-chart"])
        if "data-chart-missing" in a:
            self.missing.append(a["data-chart-missing"])
        if tag == "script" and "src" in a:
            self.scripts_with_src.append(a["src"])


def parse(html: str) -> PageRows:
    parser = PageRows()
    parser.feed(html)
    return parser


def drivers(i: int) -> list[dict[str, Any]]:
    return [
        {"feature": "spi", "value": 0.8, "contribution": 0.6, "sentence": f"SPI is 0.8{i}"},
        {"feature": "changes_last_90d", "value": 3.0, "contribution": 0.3, "sentence": "3 CRs"},
        {"feature": "cpi", "value": 1.1, "contribution": -0.2, "sentence": "CPI is 1.10"},
        {"feature": "tcpi", "value": 1.2, "contribution": 0.1, "sentence": "TCPI is 1.20"},
    ]


def logit(p: float) -> float:
    return float(np.log(p / (1 - p))) if 0 < p < 1 else float("nan")


def score_rows(
    p_late: list[float],
    p_over: list[float],
    ids: list[str] | None = None,
    margins: tuple[list[float], list[float]] | None = None,
) -> pd.DataFrame:
    """A `score_frame`-shaped frame with the RAG rules applied as scoring applies them.

    The raw margins default to the log-odds of the probabilities (a calibration that is the
    identity); pass ``margins`` (late, over budget) to make calibrated ties.
    """
    n = len(p_late)
    ids = ids or [f"P{i:02d}" for i in range(n)]
    margin_late, margin_over = margins or ([logit(p) for p in p_late], [logit(p) for p in p_over])

    def rag(p: float) -> str:
        return "n/a" if np.isnan(p) else "red" if p >= RED else "amber" if p >= AMBER else "green"

    level = {"n/a": 0, "green": 1, "amber": 2, "red": 3}
    rl, rb = [rag(p) for p in p_late], [rag(p) for p in p_over]
    return pd.DataFrame(
        {
            "project_id": ids,
            "as_of": pd.Timestamp(AS_OF),
            "p_late": p_late,
            "p_over_budget": p_over,
            "rag_late": rl,
            "rag_over_budget": rb,
            "rag": [max(a, b, key=level.__getitem__) for a, b in zip(rl, rb, strict=True)],
            "late_reason": None,
            "over_budget_reason": [
                "no budget (BAC) in the baseline" if np.isnan(p) else None for p in p_over
            ],
            "drivers_late": [drivers(i) for i in range(n)],
            "drivers_over_budget": [drivers(i) for i in range(n)],
            "portfolio": ["Estates", "Digital"] * (n // 2) + ["Estates"] * (n % 2),
            "project_type": ["it", "building", "rail"] * (n // 3) + ["it"] * (n % 3),
            "elapsed_fraction": np.linspace(0.1, 1.2, n),
            "spi": np.linspace(0.7, 1.1, n),
            "cpi": [np.nan if np.isnan(p) else 0.9 for p in p_over],
            "margin_late": margin_late,
            "margin_over_budget": margin_over,
            "name": [f"Project {i}" for i in range(n)],
            "has_budget": [not np.isnan(p) for p in p_over],
        }
    )


def render(current: pd.DataFrame, previous: pd.DataFrame | None = None, **kw: Any) -> str:
    args: dict[str, Any] = {
        "as_of": AS_OF,
        "since": SINCE,
        "data_as_of": date(2024, 5, 31),
        "models": [
            ModelCard("delay", "Finish late", "forewarn-delay", "3", "champion", "r1", None, True),
            ModelCard("overrun", "Over budget", rules_note="no overrun model registered"),
        ],
        "drift": DriftStatus("ok", "2% of the features drifted"),
        "red": RED,
        "amber": AMBER,
    }
    args.update(kw)
    return render_report(current, previous, **args)


# ------------------------------------------------------------------------------ formats


def test_formats_follow_the_pmo_conventions() -> None:
    assert fmt_prob(0.4449) == "44%"
    assert fmt_prob(0.997) == ">99%"  # never a bare 100%: that reads as certainty
    assert fmt_prob(0.001) == "<1%"
    assert fmt_prob(float("nan")) == "—"
    assert fmt_ratio(0.876) == "0.88"
    assert fmt_ratio(None) == "—"
    assert fmt_pct(1.25) == "125%"


def test_reporting_period_is_the_usual_gap_between_reports() -> None:
    dates = pd.to_datetime(["2024-01-05", "2024-01-12", "2024-01-19", "2024-02-09"])
    reports = pd.DataFrame({"project_id": ["A"] * 4, "report_date": dates})
    assert reporting_period(reports) == pd.Timedelta(days=7)
    portfolio = Portfolio(
        projects=conform(pd.DataFrame(), "projects"),
        status_reports=conform(reports, "status_reports"),
        changes=conform(pd.DataFrame(), "changes"),
    )
    assert report_dates(portfolio) == (date(2024, 2, 9), date(2024, 2, 2))
    with pytest.raises(ValueError, match="before the report date"):
        report_dates(portfolio, date(2024, 2, 1), date(2024, 2, 1))


# ------------------------------------------------------------------------ what changed


def test_changes_since_the_previous_report() -> None:
    current = score_rows([0.7, 0.7, 0.4, 0.7, 0.5], [0.1, 0.7, 0.1, 0.1, 0.1])
    previous = score_rows(
        [0.1, 0.7, 0.7, 0.7], [0.1, 0.4, 0.1, 0.1], ids=["P00", "P01", "P02", "P03"]
    )
    out = compare_with_previous(current, previous, SINCE).set_index("project_id")
    assert out.loc["P00", "change"] == "new"  # green → red
    assert out.loc["P01", "change"] == "worse"  # still red overall, over budget amber → red
    assert out.loc["P02", "change"] == "better"  # red → amber
    assert out.loc["P03", "change"] == "same"
    assert out.loc["P04", "change"] == "new"  # not running then
    assert "not running on 1 May 2024" in out.loc["P04", "change_note"]
    assert "over budget amber → red" in out.loc["P01", "change_note"]


def test_main_drivers_push_the_flagged_risk_up() -> None:
    row = score_rows([0.7], [0.1]).iloc[0].to_dict()
    chosen = main_drivers(row)
    assert [d["feature"] for d in chosen] == ["spi", "changes_last_90d", "tcpi"]
    assert all(d["risk"] == "late" for d in chosen)  # over budget is green: not its drivers


# ------------------------------------------------------------------------------ report


def test_report_lists_red_and_amber_highest_risk_first() -> None:
    current = score_rows([0.9, 0.2, 0.5, 0.65, 0.1, 0.4], [0.1, 0.95, 0.1, 0.1, 0.2, 0.5])
    page = parse(render(current, current.iloc[:3]))
    watch = page.rows["watch-table"]
    ids = [r["data-project-id"] for r in watch]
    # red (by the larger probability) first, then amber
    assert ids == ["P01", "P00", "P03", "P05", "P02"]
    assert {r["data-rag"] for r in watch[:3]} == {"red"}
    assert float(watch[0]["data-p-over-budget"]) == pytest.approx(0.95)
    assert len(page.rows["all-table"]) == len(current)
    counts = {
        (c["data-risk"], c["data-rag"]): (int(c["data-count"]), int(c["data-previous"]))
        for c in page.cells
    }
    assert counts[("late", "red")] == (2, 1)  # 0.9 and 0.65 now; 0.9 only then
    assert counts[("over_budget", "red")] == (1, 1)
    assert counts[("late", "amber")] == (2, 1)


def ids_of(page: PageRows, table: str) -> list[str]:
    return [r["data-project-id"] for r in page.rows.get(table, [])]


def words(html: str) -> str:
    """The page's text with runs of white space as one space (the template wraps lines)."""
    return " ".join(html.split())


def test_watch_list_shows_the_top_n_and_says_how_many_more() -> None:
    current = score_rows(
        [0.9, 0.2, 0.5, 0.65, 0.1, 0.4, 0.8, 0.7], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    )
    html = render(current, current, watch_list_size=3)
    page = parse(html)
    # The three at highest risk, highest first; the other three red or amber are counted.
    assert ids_of(page, "watch-table") == ["P00", "P06", "P07"]
    text = words(html)
    assert "… and 3 more red or amber projects</strong> — all are listed under" in text
    assert '<a href="#all-projects">‘All running projects’</a> below' in text
    assert '<h2 id="h-all">All running projects</h2>' in html  # the line names a real heading
    # The headline and the heading count every red and amber project, not the shown ones.
    assert "Projects to look at: 4 red and 2 amber" in text
    counts = {(c["data-risk"], c["data-rag"]): int(c["data-count"]) for c in page.cells}
    assert counts[("late", "red")] == 4 and counts[("late", "amber")] == 2
    # Nothing moved since (the same frame): no list of moves.
    assert "moved-table" not in page.rows
    # The full table still holds everyone, in the same order as the watch list.
    all_ids = ids_of(page, "all-table")
    assert all_ids[:6] == ["P00", "P06", "P07", "P03", "P02", "P05"]
    assert sorted(all_ids) == sorted(current["project_id"])

    # At or under the cap: every red and amber project, and no "more" line.
    html = render(current, current, watch_list_size=6)
    assert len(ids_of(parse(html), "watch-table")) == 6
    assert 'id="watch-more"' not in html
    assert len(ids_of(parse(render(current, current)), "watch-table")) == 6  # None: no cap


def test_a_move_below_the_cut_is_still_shown() -> None:
    ids = [f"P{i:02d}" for i in range(8)]
    current = score_rows([0.9, 0.85, 0.8, 0.62, 0.61, 0.5, 0.45, 0.1], [0.1] * 8, ids)
    previous = score_rows(  # P03 was green, P04 amber, P06 not running yet
        [0.9, 0.85, 0.8, 0.2, 0.4, 0.5, 0.1],
        [0.1] * 7,
        ["P00", "P01", "P02", "P03", "P04", "P05", "P07"],
    )
    html = render(current, previous, watch_list_size=2)
    page = parse(html)
    assert ids_of(page, "watch-table") == ["P00", "P01"]
    moved = {r["data-project-id"]: r for r in page.rows["moved-table"]}
    # Newly red (P03), amber → red (P04), newly running and amber (P06): highest risk first.
    assert list(moved) == ["P03", "P04", "P06"]
    assert [moved[p]["data-change"] for p in moved] == ["new", "worse", "new"]
    assert [moved[p]["data-rag"] for p in moved] == ["red", "red", "amber"]
    # Unchanged projects below the cut (P02 red, P05 amber) are counted, not listed.
    text = words(html)
    assert "… and 5 more red or amber projects" in text
    assert "late green → red (20% → 62%)" in text
    assert "late amber → red (40% → 61%)" in text
    assert "not running on 1 May 2024" in text
    assert "New to the list or worse since 1 May 2024, below the top 2: 3 more" in text
    assert set(ids_of(page, "all-table")) == set(ids)

    # Without a previous report there is nothing to compare: no list of moves.
    assert "moved-table" not in parse(render(current, None, watch_list_size=2)).rows


def test_ties_at_the_top_are_broken_by_the_raw_margin() -> None:
    # Calibration maps all five to 0.999 (">99%") for at least one risk; the margins differ.
    p_late = [0.999, 0.999, 0.999, 0.999, 0.999, 0.7]
    p_over = [0.1, 0.1, 0.1, 0.2, 0.999, 0.1]
    margin_late = [2.0, 3.5, 3.0, 1.0, 0.5, 0.8]
    # P03's over-budget margin is large, but its over-budget risk is only 20%: the margin
    # that breaks the tie is the one of the risk at the top probability.
    margin_over = [-2.0, -2.0, -2.0, 9.0, 4.0, -2.0]
    ids = ["P00", "P01", "P02", "P03", "P04", "P05"]
    current = score_rows(p_late, p_over, ids, margins=(margin_late, margin_over))
    page = parse(render(current, current, watch_list_size=4))
    expected = ["P04", "P01", "P02", "P00", "P03", "P05"]  # not the id order
    assert ids_of(page, "watch-table") == expected[:4]
    assert ids_of(page, "all-table") == expected
    # Without margins (a frame from before them) ties fall to the mean probability, then ids.
    bare = current.drop(columns=["margin_late", "margin_over_budget"])
    assert ids_of(parse(render(bare, bare)), "all-table") == [
        "P04",
        "P03",
        "P00",
        "P01",
        "P02",
        "P05",
    ]


def test_report_is_self_contained() -> None:
    html = render(score_rows([0.9, 0.2, 0.5], [0.1, 0.95, 0.1]))
    page = parse(html)
    assert page.scripts_with_src == []  # nothing fetched: opens offline, from a mail
    assert html.count("* plotly.js v") == 1  # the library, inlined once for all charts
    assert html.count("Plotly.newPlot(") == 1 + len(page.charts)  # its own + one per chart
    assert len(page.charts) == 4
    import plotly.offline

    # Outside the library (which names a CDN for map data we never draw): no URL at all.
    assert "https://" not in html.replace(plotly.offline.get_plotlyjs(), "")


def test_report_without_cost_data_says_so() -> None:
    nan = float("nan")
    html = render(score_rows([0.9, 0.2, 0.5, 0.7], [nan] * 4))
    page = parse(html)
    assert set(page.missing) == {"heat-over-budget", "scatter-over-budget"}
    assert set(page.charts) == {"heat-late", "scatter-late"}
    assert "No cost data: not scored" in html
    assert f">{NO_COST.capitalize()}<" in html  # the over-budget chip of each row
    assert all(r["data-p-over-budget"] == "" for r in page.rows["watch-table"])


def test_report_with_no_running_project_says_so() -> None:
    html = render(score_rows([], []), score_rows([], []))
    assert "No project was running on 1 Jun 2024" in html
    assert parse(html).charts == []


def test_model_card_reads_training_tags() -> None:
    from types import SimpleNamespace

    loaded = SimpleNamespace(
        name="forewarn-delay",
        version="4",
        run_id="abc",
        tags={"verdict": "worse", "trained_at": "2024-05-02T10:00:00"},
    )
    card = model_card("delay", loaded, "champion")
    assert (card.version, card.verdict, card.trained) == ("4", "worse", "2024-05-02T10:00:00")
    assert model_card("overrun", None).available is False
    html = render(score_rows([0.9], [0.9]), models=[card])
    assert "forewarn-delay" in html and "status-warn" in html


# ------------------------------------------------------------------------- explanation


def test_changes_as_known_hides_later_decisions() -> None:
    changes = conform(
        pd.DataFrame(
            {
                "project_id": ["A", "A", "A"],
                "raised_date": ["2024-01-10", "2024-03-01", "2024-07-01"],
                "decided_date": ["2024-02-01", "2024-06-15", None],
                "status": ["approved", "rejected", "pending"],
            }
        ),
        "changes",
    )
    known = changes_as_known(changes, AS_OF)
    assert list(known["status_at_as_of"]) == ["approved", "pending"]  # the third: not raised


def test_explanation_renders_every_section_from_frames() -> None:
    sim = simulate_portfolio(60, seed=3)
    projects = sim.portfolio.projects
    pid = projects.loc[projects["status"] == "active", "project_id"].iloc[0]
    project = projects[projects["project_id"] == pid].iloc[0].to_dict()
    reports = sim.portfolio.status_reports
    reports = reports[reports["project_id"] == pid]
    history = pd.DataFrame(
        {
            "as_of": reports["report_date"].to_numpy(),
            "p_late": np.linspace(0.2, 0.8, len(reports)),
            "p_over_budget": 0.3,
            "rag_late": "amber",
            "rag_over_budget": "green",
            "spi": 0.9,
            "cpi": 1.0,
        }
    )
    contributions = pd.DataFrame(
        {
            "feature": [f"f{i}" for i in range(15)],
            "value": np.arange(15.0),
            "contribution": np.linspace(-0.5, 0.5, 15),
            "sentence": [f"sentence {i}" for i in range(15)],
        }
    )
    score = score_rows([0.7], [0.3], ids=[pid]).iloc[0].to_dict()
    html = render_explanation(
        project=project,
        score=score,
        contributions={"late": Waterfall(contributions, -0.2), "over_budget": None},
        history=history,
        reports=reports,
        changes=sim.portfolio.changes[sim.portfolio.changes["project_id"] == pid],
        as_of=sim.today,
        models=[],
        red=RED,
        amber=AMBER,
    )
    charts = parse(html).charts
    assert {"waterfall-late", "s-curve", "spi-cpi", "trajectory"} <= set(charts)
    assert "waterfall-over-budget" not in charts  # no contributions given: no empty chart


# --------------------------------------------------------- scoring through real models


@pytest.fixture(scope="module")
def small_portfolio() -> Portfolio:
    return simulate_portfolio(80, seed=11).portfolio


def test_build_report_scores_exactly_the_running_projects(
    small_portfolio: Portfolio, models: dict[str, Any]
) -> None:
    result = build_report(
        small_portfolio,
        models,
        [],
        as_of=None,
        since=None,
        red=RED,
        amber=AMBER,
        top_drivers=3,
        delay_tolerance=0.05,
        overrun_tolerance=0.05,
        drift=None,
        watch_list_size=5,
    )
    scores = result.scores
    # score_frame's raw margins: NaN exactly where not scored, and the calibrated
    # probability never decreases as the margin rises (it is a calibration of it).
    for risk in ("late", "over_budget"):
        assert (scores[f"margin_{risk}"].isna() == scores[f"p_{risk}"].isna()).all()
        by_margin = scores.dropna(subset=[f"margin_{risk}"]).sort_values(f"margin_{risk}")
        assert by_margin[f"p_{risk}"].is_monotonic_increasing
    # The watch list is the first five red or amber rows of the full table's order.
    page = parse(result.html)
    listed = [r["data-project-id"] for r in page.rows["all-table"] if r["data-rag"] in RAGS]
    assert len(listed) == int(scores["rag"].isin(RAGS).sum())
    assert ids_of(page, "watch-table") == listed[:5]
    projects = small_portfolio.projects
    started = projects["actual_start"].fillna(projects["planned_start"]) <= pd.Timestamp(
        result.as_of
    )
    finished = projects["actual_finish"] <= pd.Timestamp(result.as_of)
    running = projects[started & ~finished & (projects["status"] != "cancelled")]
    assert set(result.scores["project_id"]) == set(running["project_id"])
    rows = parse(result.html).rows["all-table"]
    html_p = {r["data-project-id"]: float(r["data-p-late"]) for r in rows}
    expected = result.scores.set_index("project_id")["p_late"].to_dict()
    assert html_p == pytest.approx(expected, rel=0, abs=1e-12)


def test_explanation_of_a_project_and_its_route(
    small_portfolio: Portfolio, models: dict[str, Any]
) -> None:
    from starlette.testclient import TestClient

    kwargs: dict[str, Any] = {
        "red": RED,
        "amber": AMBER,
        "top_drivers": 3,
        "delay_tolerance": 0.05,
        "overrun_tolerance": 0.05,
    }
    projects = small_portfolio.projects
    pid = str(projects.loc[projects["status"] == "active", "project_id"].iloc[0])
    result = build_explanation(small_portfolio, pid, models, [], as_of=None, **kwargs)
    assert len(result.history) > 0
    assert {"waterfall-late", "trajectory"} <= set(parse(result.html).charts)
    with pytest.raises(UnknownProjectError):
        build_explanation(small_portfolio, "nope", models, [], as_of=None, **kwargs)

    app = explain_page_app(
        lambda: models, lambda: [], lambda: small_portfolio, api_key="s3cret", **kwargs
    )
    client = TestClient(app)
    assert client.get(f"/explain/{pid}").status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    ok = client.get(f"/explain/{pid}", headers=auth)
    assert ok.status_code == 200 and "waterfall-late" in ok.text
    assert client.get("/explain/nope", headers=auth).status_code == 404
    assert client.get(f"/explain/{pid}?as_of=June", headers=auth).status_code == 400

    def no_data() -> Portfolio:
        raise LookupError("no portfolio configured")

    empty = TestClient(explain_page_app(lambda: models, lambda: [], no_data, **kwargs))
    assert empty.get(f"/explain/{pid}").status_code == 503
