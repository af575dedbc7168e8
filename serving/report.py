"""The early-warning report: one self-contained HTML page a PMO analyst reads and mails.

Everything on the page comes from `serving.scoring.score_frame` at two dates: the report
date and the previous report date (`since`). Both are scored point in time with the same
models, so nothing has to be stored between reports. The page inlines Plotly's JavaScript
once, so it opens from disk or from a mail attachment with no network.

`render_report` turns the two score frames into HTML and is what the tests drive with
hand-built frames; `build_report` does the scoring around it for the CLI. The drift status
comes in as plain data (`DriftStatus`): serving never imports monitoring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from markupsafe import Markup

from features.contract import Portfolio
from features.pointintime import snapshot
from serving import i18n
from serving.i18n import N_, _, ngettext
from serving.kpi import KpiOptions, kpi_sentences, kpi_summary
from serving.ranges import range_columns
from serving.scoring import ScoringModel, score_frame
from training.quantiles import QuantileModel

TEMPLATES = Path(__file__).parent / "templates"

#: RAG levels in order of concern; `n/a` (no data for that risk) ranks below green.
RAG_LEVEL: dict[str, int] = {"n/a": -1, "green": 0, "amber": 1, "red": 2}
RAG_COLOURS: dict[str, str] = {
    "red": "#b71c1c",
    "amber": "#f0a202",
    "green": "#2e7d32",
    "n/a": "#9aa5b1",
}
#: Marker shapes per RAG, so the charts do not rely on colour alone.
RAG_SYMBOLS: dict[str, str] = {"red": "diamond", "amber": "square", "green": "circle"}
#: The two risks: score-frame suffix and the words a PMO uses.
#: The words are catalog message ids: translate them with `_` where they are shown.
RISKS: tuple[tuple[str, str], ...] = (
    ("late", N_("Finish late")),
    ("over_budget", N_("Over budget")),
)
NO_COST = N_("no cost data")
#: The risk a driver belongs to, as the watch list names it beside the sentence.
DRIVER_RISKS = {"late": N_("late"), "over_budget": N_("over budget")}
#: Body text and charts: Latin faces first, then CJK ones that Debian (fonts-noto-cjk),
#: macOS and Windows ship, so a Chinese page never falls back to boxes.
FONT_STACK = (
    '-apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans CJK SC", '
    '"Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Hiragino Sans GB", '
    '"Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'
)


# ------------------------------------------------------------------------- plain inputs


@dataclass(frozen=True)
class ModelCard:
    """What the report says about one model, so nobody trusts a stale model unawares."""

    target: str
    risk: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    trained: str | None = None
    verdict: str | None = None  # better, cant_tell, worse against the best rule
    recipe: str | None = None
    rules_note: str = ""
    data_as_of: str | None = None
    auc: str | None = None

    @property
    def available(self) -> bool:
        return self.version is not None

    def age_days(self, data_as_of: date | None) -> int | None:
        """Days between the data the model learnt from and the report's data: staleness."""
        if data_as_of is None or not self.data_as_of:
            return None
        try:
            learnt = date.fromisoformat(self.data_as_of[:10])
        except ValueError:
            return None
        return (data_as_of - learnt).days


@dataclass(frozen=True)
class DriftStatus:
    """The monitoring verdict, handed over by the CLI as plain data.

    ``state`` is ``ok`` (inputs look like the training data), ``drift`` (they do not), or
    ``unknown`` (not checked, or the check could not run); ``summary`` says it in words.
    """

    state: Literal["ok", "drift", "unknown"]
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- page machinery


def fmt_pct(value: Any) -> str:
    """A probability or fraction as a percent with no decimals; a dash when missing."""
    if is_missing(value):
        return "—"
    return f"{float(value):.0%}"


def fmt_prob(value: Any) -> str:
    """A probability as a percent with no decimals; never a bare 0% or 100%.

    A calibrated model can output 0.997: printed as "100%" a PMO reads certainty, so the
    ends show as ">99%" and "<1%".
    """
    if is_missing(value):
        return "—"
    p = float(value)
    if p >= 0.995:
        return ">99%"
    if p < 0.005:
        return "<1%"
    return f"{p:.0%}"


def fmt_ratio(value: Any) -> str:
    """SPI, CPI and similar indices with two decimals; a dash when missing."""
    if is_missing(value):
        return "—"
    return f"{float(value):.2f}"


def fmt_day(value: Any) -> str:
    """A date as '1 May 2024' (no day/month order to misread) or '2024年5月1日'."""
    return i18n.fmt_day(value)


def fmt_money(value: Any) -> str:
    """An amount grouped per locale (1,234,567); in zh-CN, by setting, 123.5万."""
    return i18n.fmt_money(value)


def is_missing(value: Any) -> bool:
    """None, NaN, NaT or NA: a cell with nothing in it."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a frame as dicts keyed by column name (what templates and loops read)."""
    columns = [str(c) for c in frame.columns]
    return [dict(zip(columns, row, strict=True)) for row in frame.itertuples(index=False)]


def _attr(value: Any) -> str:
    """A number for a data attribute: full precision so tests compare exactly, '' if missing."""
    if is_missing(value):
        return ""
    return repr(float(value))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # The callables read the language in force (serving.i18n.use), so one environment
    # serves every language.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_, ngettext=ngettext, newstyle=True
    )
    # Whitespace inside {% trans %} collapses, as Babel extracts it (babel.cfg: trimmed).
    env.policies["ext.i18n.trimmed"] = True
    # Every filter speaks the language in force at render time. Jinja folds a filter on a
    # constant ("red" | rag) when it compiles a template, once per process: a filter that
    # takes the context is never folded, so a page compiled in one language cannot carry
    # its words into the next.
    env.filters.update(
        {
            name: _at_render(fn)
            for name, fn in {
                "pct": fmt_pct,
                "prob": fmt_prob,
                "ratio": fmt_ratio,
                "day": fmt_day,
                "money": fmt_money,
                "attr": _attr,
                "rag": i18n.rag_word,
                "reason": i18n.reason,
                "verdict": i18n.verdict_words,
            }.items()
        }
    )
    return env


def _at_render(fn: Any) -> Any:
    """`fn` as a Jinja filter evaluated when the page renders, never at compile time."""

    @pass_context
    def rendered(_context: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return rendered


@cache
def _plotly_js() -> str:
    import plotly.offline

    return plotly.offline.get_plotlyjs()


def render_page(template: str, **context: Any) -> str:
    """Render one of our templates with Plotly inlined and the footer's facts filled in."""
    context.setdefault("generated", _("on {when}").format(when=f"{datetime.now():%Y-%m-%d %H:%M}"))
    context.setdefault("html_lang", i18n.current().lang)
    context.setdefault("font_stack", FONT_STACK)
    return _environment().get_template(template).render(plotly_js=_plotly_js(), **context)


def figure_div(fig: go.Figure, div_id: str, title: str, height: int = 400) -> Markup:
    """A Plotly figure under an HTML heading; the library itself is inlined once per page.

    The title is HTML, not Plotly's, so it never collides with the chart's toolbar and is
    read by screen readers.
    """
    fig.update_layout(
        height=height,
        template="plotly_white",
        font={"family": FONT_STACK, "size": 13},
    )
    # Default margins, unless the figure asked for its own (the waterfall needs room).
    margin = fig.layout.margin
    fig.update_layout(
        margin={
            side: getattr(margin, side) if getattr(margin, side) is not None else default
            for side, default in (("l", 70), ("r", 20), ("t", 30), ("b", 50))
        }
    )
    html = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=f"{height}px",
        config={"displaylogo": False, "responsive": True},
    )
    heading = Markup("<h3>{}</h3>").format(title)
    return Markup(f'<div class="chart" data-chart="{div_id}">{heading}{html}</div>')


def drift_words(drift: DriftStatus | None) -> str:
    """The drift verdict in words, in the language in force.

    The CLI hands the check's figures over in ``details`` (drifted, columns, share,
    threshold, failed); from them the sentence is the catalog's. Without them, the
    ``summary`` as given.
    """
    if drift is None:
        return ""
    d = drift.details
    if not {"drifted", "columns", "share", "threshold"} <= set(d):
        return drift.summary
    share = _(
        "{drifted} of {columns} features drifted ({share}; the check fails at {threshold})"
    ).format(
        drifted=d["drifted"],
        columns=d["columns"],
        share=fmt_pct(d["share"]),
        threshold=fmt_pct(d["threshold"]),
    )
    failed = [str(f) for f in d.get("failed") or []]
    if failed:
        return _("{share}. Failed: {failed}").format(share=share, failed=_("; ").join(failed))
    return _("{share}; every drift test passed").format(share=share)


def rag_label(rag: Any, reason: Any = None, cost_data: Any = None) -> str:
    """The words printed in a RAG chip: Red, Amber, Green, or in two words why there is none.

    ``cost_data`` False (the project has no budget) wins over every other reason: a PMO
    reads "No cost data", whether or not an over-budget model happens to be loaded.
    ``reason`` is scoring's (English) reason; the words are in the language in force.
    """
    if not (is_missing(rag) or rag == "n/a"):
        return i18n.rag_word(str(rag))
    return _(_no_rag_words(reason, cost_data))


NO_COST_WORDS = N_("No cost data")


def _no_rag_words(reason: Any, cost_data: Any) -> str:
    text = "" if is_missing(reason) else str(reason).lower()
    if cost_data is False or (cost_data is None and ("budget" in text or "cost" in text)):
        return NO_COST_WORDS
    if "model" in text:
        return N_("No model")
    return N_("Not scored")


# ---------------------------------------------------------------------- the report data


def reporting_period(status_reports: pd.DataFrame) -> pd.Timedelta:
    """The usual gap between two status reports of one project (weekly, monthly, ...).

    The median over all consecutive pairs: robust to the odd missed report. Thirty days when
    there is nothing to measure.
    """
    if status_reports.empty:
        return pd.Timedelta(days=30)
    dates = (
        status_reports[["project_id", "report_date"]]
        .dropna()
        .sort_values(["project_id", "report_date"])
    )
    gaps = dates.groupby("project_id")["report_date"].diff().dropna()
    gaps = gaps[gaps > pd.Timedelta(0)]
    if gaps.empty:
        return pd.Timedelta(days=30)
    median_days = float(gaps.dt.days.median())
    return pd.Timedelta(days=max(1, round(median_days)))


def data_date(status_reports: pd.DataFrame, as_of: date | None = None) -> date | None:
    """The latest status report date on or before as_of: how fresh the data really is."""
    dates = status_reports["report_date"].dropna()
    if as_of is not None:
        dates = dates[dates <= pd.Timestamp(as_of)]
    return None if dates.empty else pd.Timestamp(dates.max()).date()


def compare_with_previous(
    current: pd.DataFrame, previous: pd.DataFrame, since: date | None = None
) -> pd.DataFrame:
    """Current scores plus, per project, how it moved since the previous report date.

    Adds ``prev_*`` columns, ``change`` and ``change_note`` (the moves in words). ``change``
    is ``new`` when the project was not on the watch list then (green, no RAG, or not yet
    running), ``worse`` when either risk's RAG went up, ``better`` when one went down and
    none up, else ``same``.
    """
    cols = ["rag", "rag_late", "rag_over_budget", "p_late", "p_over_budget"]
    prev = previous.drop_duplicates("project_id").set_index("project_id")[cols]
    out = current.join(prev.add_prefix("prev_"), on="project_id")
    absent = out["prev_rag"].isna().to_numpy()
    was_listed = out["prev_rag"].map(RAG_LEVEL).fillna(-1).to_numpy() >= 1
    up = np.zeros(len(out), dtype=bool)
    down = np.zeros(len(out), dtype=bool)
    for risk, _words in RISKS:
        now = out[f"rag_{risk}"].map(RAG_LEVEL).fillna(-1).to_numpy()
        before = out[f"prev_rag_{risk}"].map(RAG_LEVEL).fillna(-1).to_numpy()
        # n/a on either side is no move: a missing score is not an improvement.
        known = (now >= 0) & (before >= 0)
        up |= known & (now > before)
        down |= known & (now < before)
    out["change"] = np.select(
        [absent | ~was_listed, up, down], ["new", "worse", "better"], default="same"
    )
    absent_note = (
        _("not running on {day}").format(day=fmt_day(since))
        if since is not None
        else _("not running on the previous report")
    )
    out["change_note"] = [
        absent_note if is_missing(row["prev_rag"]) else _moves(row) for row in records(out)
    ]
    return out


def _moves(row: Mapping[str, Any]) -> str:
    """'late amber → red (52% → 64%); p(over budget) 30% → 33%' for one project."""
    moves = []
    for risk in ("late", "over_budget"):
        p_now, p_before = row[f"p_{risk}"], row[f"prev_p_{risk}"]
        if is_missing(p_now) or is_missing(p_before):
            continue
        words = _(DRIVER_RISKS[risk])
        rag_now, rag_before = row[f"rag_{risk}"], row[f"prev_rag_{risk}"]
        probs = f"{fmt_prob(p_before)} → {fmt_prob(p_now)}"
        if rag_now != rag_before:
            moves.append(
                _("{risk} {before} → {now} ({probs})").format(
                    risk=words,
                    before=i18n.rag_word(str(rag_before)).lower(),
                    now=i18n.rag_word(str(rag_now)).lower(),
                    probs=probs,
                )
            )
        elif fmt_prob(p_now) != fmt_prob(p_before):
            moves.append(_("p({risk}) {probs}").format(risk=words, probs=probs))
    return _("; ").join(moves)


def _risk_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Highest concern first: RAG level, the larger of the two probabilities, then its margin.

    Isotonic calibration saturates: many projects share the top probability (">99%"). The
    raw margin (log-odds before calibration, `score_frame`'s ``margin_*``) separates most
    of them, so ties are broken by the margin of the risk that has the larger probability (the
    larger margin when both do). Then the other risk: the mean probability, the mean margin;
    last the project id, so the order never depends on the input's.
    """
    level = frame["rag"].map(RAG_LEVEL).fillna(-1)
    probs = frame[["p_late", "p_over_budget"]].astype(float)
    top = probs.max(axis=1, skipna=True)
    # Keyed like `probs`, so each margin lines up with its probability in `where`.
    margins = pd.DataFrame(
        {
            f"p_{risk}": frame[f"margin_{risk}"].astype(float)
            if f"margin_{risk}" in frame
            else np.nan
            for risk, _words in RISKS
        },
        index=frame.index,
    )
    # The margin of the risk at the top probability (NaN never equals: unscored risks drop).
    top_margin = margins.where(probs.eq(top, axis=0)).max(axis=1, skipna=True)
    keys = {
        "_level": level,
        "_top": top.fillna(-1),
        "_margin": top_margin.fillna(-np.inf),
        "_mean": probs.mean(axis=1, skipna=True).fillna(-1),
        "_mean_margin": margins.where(probs.notna()).mean(axis=1, skipna=True).fillna(-np.inf),
    }
    return (
        frame.assign(**keys)
        .sort_values([*keys, "project_id"], ascending=[False] * len(keys) + [True])
        .drop(columns=list(keys))
    )


def main_drivers(row: Mapping[str, Any], n: int = 3) -> list[dict[str, Any]]:
    """The n drivers that push this project's flagged risks up most, in words.

    Drivers come from the risks that put the project on the watch list (red or amber); each
    keeps its sentence and says which risk it belongs to. When no driver pushes risk up, the
    largest by size are shown.
    """
    flagged = [r for r, _words in RISKS if row.get(f"rag_{r}") in ("red", "amber")] or [
        r for r, _words in RISKS
    ]
    pool: list[dict[str, Any]] = []
    for risk in flagged:
        drivers = row.get(f"drivers_{risk}")
        if not isinstance(drivers, Iterable) or isinstance(drivers, str):
            continue
        for d in drivers:
            if isinstance(d, Mapping) and d.get("sentence"):
                pool.append({**d, "risk": DRIVER_RISKS[risk]})
    up = [d for d in pool if float(d.get("contribution") or 0.0) > 0]
    chosen = up or pool
    chosen.sort(key=lambda d: -abs(float(d.get("contribution") or 0.0)))
    seen: set[str] = set()
    out = []
    for d in chosen:
        if d["sentence"] in seen:
            continue
        seen.add(d["sentence"])
        out.append(d)
        if len(out) == n:
            break
    return out


def rag_counts(frame: pd.DataFrame, risk: str) -> dict[str, int]:
    """How many projects are red, amber, green and without a RAG (n/a) for one risk."""
    values = frame[f"rag_{risk}"].fillna("n/a") if len(frame) else pd.Series([], dtype=object)
    return {k: int((values == k).sum()) for k in ("red", "amber", "green", "n/a")}


def _move(now: int, before: int | None) -> str:
    if before is None:
        return ""
    delta = now - before
    if delta == 0:
        return _("no change")
    if delta > 0:
        return _("▲ {n} (up)").format(n=abs(delta))
    return _("▼ {n} (down)").format(n=abs(delta))


def headline(
    current: pd.DataFrame, previous: pd.DataFrame | None, since: date | None
) -> dict[str, Any]:
    """The top of the page: counts per risk and RAG, their moves, and one sentence each."""
    rows: list[dict[str, Any]] = []
    sentences = []
    for risk, words in RISKS:
        now = rag_counts(current, risk)
        before = rag_counts(previous, risk) if previous is not None else None
        cells = [
            {
                "rag": rag,
                "count": now[rag],
                "previous": None if before is None else before[rag],
                "move": _move(now[rag], None if before is None else before[rag]),
            }
            for rag in ("red", "amber", "green", "n/a")
        ]
        no_data = now["n/a"] == len(current) and len(current) > 0
        rows.append({"risk": risk, "words": words, "cells": cells, "no_data": no_data, "label": ""})
        if no_data:
            reason = _first_reason(current, risk)
            cost_data = None
            if "has_budget" in current and risk == "over_budget":
                cost_data = bool(current["has_budget"].fillna(0).astype(float).max() >= 0.5)
            label = rag_label("n/a", reason, cost_data).lower()
            sentences.append(
                _("{risk}: not scored for any running project ({label}).").format(
                    risk=_(words), label=label
                )
            )
            row_label = rows[-1]
            row_label["label"] = label
            continue
        sentences.append(_headline_sentence(risk, now, before, len(current), since))
    any_na = any(r["cells"][-1]["count"] for r in rows if not r["no_data"])
    return {"rows": rows, "sentences": sentences, "any_na": any_na}


def _headline_sentence(
    risk: str,
    now: Mapping[str, int],
    before: Mapping[str, int] | None,
    running: int,
    since: date | None,
) -> str:
    """'12 of 240 running projects are red for finishing late (3 more than on 1 May 2024),
    and 30 amber.' One whole message per case, so a translator orders it freely."""
    red, amber = now["red"], now["amber"]
    if before is None or since is None:
        text = (
            _("{red} of {running} running projects are red for finishing late, and {amber} amber.")
            if risk == "late"
            else _(
                "{red} of {running} running projects are red for going over budget, "
                "and {amber} amber."
            )
        )
        return text.format(red=red, running=running, amber=amber)
    delta = red - before["red"]
    if delta == 0:
        text = (
            _(
                "{red} of {running} running projects are red for finishing late "
                "(the same as on {day}), and {amber} amber."
            )
            if risk == "late"
            else _(
                "{red} of {running} running projects are red for going over budget "
                "(the same as on {day}), and {amber} amber."
            )
        )
    elif delta > 0:
        text = (
            _(
                "{red} of {running} running projects are red for finishing late "
                "({delta} more than on {day}), and {amber} amber."
            )
            if risk == "late"
            else _(
                "{red} of {running} running projects are red for going over budget "
                "({delta} more than on {day}), and {amber} amber."
            )
        )
    else:
        text = (
            _(
                "{red} of {running} running projects are red for finishing late "
                "({delta} fewer than on {day}), and {amber} amber."
            )
            if risk == "late"
            else _(
                "{red} of {running} running projects are red for going over budget "
                "({delta} fewer than on {day}), and {amber} amber."
            )
        )
    return text.format(red=red, running=running, amber=amber, delta=abs(delta), day=fmt_day(since))


def _first_reason(frame: pd.DataFrame, risk: str) -> str | None:
    col = f"{risk}_reason"
    if col not in frame:
        return None
    reasons = frame[col].dropna()
    reasons = reasons[reasons.astype(str).str.len() > 0]
    return None if reasons.empty else str(reasons.iloc[0])


def has_cost_scores(frame: pd.DataFrame) -> bool:
    """Whether any project has an over-budget probability (little06, say, has no costs)."""
    return bool(len(frame)) and bool(frame["p_over_budget"].notna().any())


# ------------------------------------------------------------------------------ charts


def heatmap_figure(frame: pd.DataFrame, risk: str, words: str) -> go.Figure:
    """Mean probability by portfolio (rows) and project type (columns), with counts."""
    p = f"p_{risk}"
    data = frame.assign(
        portfolio=frame["portfolio"].fillna(_("(no portfolio)")).astype(str),
        project_type=frame["project_type"].fillna(_("(no type)")).astype(str),
    )
    data = data[data[p].notna()]
    grouped = (
        data.groupby(["portfolio", "project_type"])
        .agg(
            mean=(p, "mean"), n=(p, "size"), red=(f"rag_{risk}", lambda s: int((s == "red").sum()))
        )
        .reset_index()
    )
    rows = sorted(grouped["portfolio"].unique())
    cols = sorted(grouped["project_type"].unique())
    z = grouped.pivot(index="portfolio", columns="project_type", values="mean").reindex(
        index=rows, columns=cols
    )
    n = grouped.pivot(index="portfolio", columns="project_type", values="n").reindex(
        index=rows, columns=cols
    )
    red = grouped.pivot(index="portfolio", columns="project_type", values="red").reindex(
        index=rows, columns=cols
    )
    zs, ns, reds = (t.to_numpy(dtype=float) for t in (z, n, red))
    text = [
        [
            ""
            if np.isnan(zs[i, j])
            else f"{fmt_prob(zs[i, j])}<br>"
            + _("{red} red of {n}").format(red=int(reds[i, j]), n=int(ns[i, j]))
            for j in range(len(cols))
        ]
        for i in range(len(rows))
    ]
    fig = go.Figure(
        go.Heatmap(
            z=zs,
            x=cols,
            y=rows,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 12},
            zmin=0,
            zmax=1,
            colorscale="YlOrRd",
            colorbar={"title": _("mean p"), "tickformat": ".0%"},
            hovertemplate="%{y} · %{x}<br>"
            + _("mean p({risk})").format(risk=_(words).lower())
            + " %{z:.0%}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_layout(
        xaxis_title=_("project type"),
        yaxis_title=_("portfolio"),
    )
    return fig


def heatmap_div(frame: pd.DataFrame, risk: str, words: str, key: str) -> Markup:
    """The heatmap under its heading, tall enough for its rows."""
    fig = heatmap_figure(frame, risk, words)
    rows = len(fig.data[0].y) if len(fig.data) and fig.data[0].y is not None else 0
    return figure_div(
        fig,
        f"heat-{key}",
        _("{risk}: mean risk by portfolio and project type").format(risk=_(words)),
        # Each row keeps room for its two-line labels however many portfolios there are.
        height=max(400, 140 + 56 * rows),
    )


def scatter_figure(
    frame: pd.DataFrame, risk: str, words: str, red: float, amber: float
) -> go.Figure:
    """Probability against elapsed share of the planned duration, one trace per RAG."""
    p = f"p_{risk}"
    fig = go.Figure()
    data = frame[frame[p].notna()]
    for rag in ("red", "amber", "green"):
        part = data[data[f"rag_{risk}"] == rag]
        if part.empty:
            continue
        hover = [
            f"<b>{r['project_id']}</b> {'' if is_missing(r.get('name')) else r['name']}<br>"
            f"{r['portfolio'] or ''} · {r['project_type'] or ''}<br>"
            + _("elapsed {elapsed}, p {p}").format(
                elapsed=fmt_pct(r["elapsed_fraction"]), p=fmt_prob(r[p])
            )
            for r in records(part)
        ]
        fig.add_trace(
            go.Scatter(
                x=part["elapsed_fraction"].astype(float) * 100,
                y=part[p].astype(float),
                mode="markers",
                name=f"{i18n.rag_word(rag)} ({len(part)})",
                marker={
                    "color": RAG_COLOURS[rag],
                    "symbol": RAG_SYMBOLS[rag],
                    "size": 8,
                    "opacity": 0.8,
                    "line": {"width": 0.5, "color": "#ffffff"},
                },
                text=hover,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    for level, name in ((red, "red"), (amber, "amber")):
        fig.add_hline(
            y=level,
            line={"dash": "dash", "color": RAG_COLOURS[name], "width": 1},
            annotation_text=_("{rag} from {pct}").format(
                rag=i18n.rag_word(name).lower(), pct=fmt_pct(level)
            ),
            annotation_position="top left",
        )
    fig.update_layout(
        xaxis_title=_("elapsed share of the planned duration (%)"),
        yaxis={
            "title": _("p({risk})").format(risk=_(words).lower()),
            "tickformat": ".0%",
            "range": [0, 1.02],
        },
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


# ----------------------------------------------------------------------------- scoring


def report_dates(
    portfolio: Portfolio, as_of: date | None = None, since: date | None = None
) -> tuple[date, date]:
    """The report date (default: the latest status report) and the previous one.

    The previous date defaults to one reporting period earlier (the portfolio's usual gap
    between two status reports), so a weekly PMO compares with last week without storing
    anything.
    """
    if as_of is None:
        latest = data_date(portfolio.status_reports)
        as_of = latest if latest is not None else date.today()
    if since is None:
        since = (pd.Timestamp(as_of) - reporting_period(portfolio.status_reports)).date()
    if since >= as_of:
        raise ValueError(f"--since {since} must be before the report date {as_of}")
    return as_of, since


def score_running(
    portfolio: Portfolio,
    models: Mapping[str, ScoringModel | None],
    as_of: date,
    *,
    red: float,
    amber: float,
    top_drivers: int,
    delay_tolerance: float,
    overrun_tolerance: float,
    context: pd.DataFrame | None = None,
    quantiles: Mapping[str, QuantileModel] | None = None,
) -> pd.DataFrame:
    """`score_frame` of every project running at as_of, from what was known that day.

    Adds the project's ``name`` and ``has_budget`` (so "no cost data" can be told apart
    from "no model") to the documented columns; with `quantiles` (the forewarn-finish /
    forewarn-cost champions), the finish and cost ranges of `serving.ranges`.
    """
    features = snapshot(
        portfolio,
        as_of,
        running_only=True,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        context=context,
    )
    scores = score_frame(models, features, red, amber, top_drivers)
    if quantiles:
        ranges = range_columns(quantiles, features, portfolio.projects, delay_tolerance)
        scores = scores.assign(**ranges)
    names = portfolio.projects.set_index("project_id")["name"]
    scores["name"] = scores["project_id"].map(names).to_numpy()
    scores["has_budget"] = (
        features["has_budget"].to_numpy(dtype=float) >= 0.5
        if "has_budget" in features
        else features["log_budget"].notna().to_numpy()
    )
    return scores


def build_report(
    portfolio: Portfolio,
    models: Mapping[str, ScoringModel | None],
    cards: Sequence[ModelCard],
    *,
    as_of: date | None,
    since: date | None,
    red: float,
    amber: float,
    top_drivers: int,
    delay_tolerance: float,
    overrun_tolerance: float,
    drift: DriftStatus | None,
    context: pd.DataFrame | None = None,
    watch_list_size: int | None = None,
    lang: str | None = None,
    quantiles: Mapping[str, QuantileModel] | None = None,
    kpi: KpiOptions | None = None,
) -> ReportResult:
    """Score the running projects at the report date and at the previous one; render.

    Both dates are scored point in time with the same models, so the moves reflect what
    the data said then, not a change of model. ``context`` is the portfolio context to
    score with (the champions', as batch scoring does); None computes it from the data.
    ``watch_list_size`` caps the watch list's table (None: every red and amber project).
    ``lang`` is the page's language (None: the one in force, `serving.i18n.use`); the
    driver sentences are written in it. ``quantiles`` adds the P80 finish and cost to the
    watch list; ``kpi`` the portfolio's KPI forecast to the first section.
    """
    with i18n.use(lang):
        return _build_report(
            portfolio,
            models,
            cards,
            as_of=as_of,
            since=since,
            red=red,
            amber=amber,
            top_drivers=top_drivers,
            delay_tolerance=delay_tolerance,
            overrun_tolerance=overrun_tolerance,
            drift=drift,
            context=context,
            watch_list_size=watch_list_size,
            quantiles=quantiles,
            kpi=kpi,
        )


def _build_report(
    portfolio: Portfolio,
    models: Mapping[str, ScoringModel | None],
    cards: Sequence[ModelCard],
    *,
    as_of: date | None,
    since: date | None,
    red: float,
    amber: float,
    top_drivers: int,
    delay_tolerance: float,
    overrun_tolerance: float,
    drift: DriftStatus | None,
    context: pd.DataFrame | None,
    watch_list_size: int | None,
    quantiles: Mapping[str, QuantileModel] | None = None,
    kpi: KpiOptions | None = None,
) -> ReportResult:
    as_of, since = report_dates(portfolio, as_of, since)
    kwargs: dict[str, Any] = {
        "red": red,
        "amber": amber,
        "delay_tolerance": delay_tolerance,
        "overrun_tolerance": overrun_tolerance,
        "context": context,
    }
    current = score_running(
        portfolio, models, as_of, top_drivers=top_drivers, quantiles=quantiles, **kwargs
    )
    # The previous date needs RAG and probabilities only: skip the TreeSHAP work.
    previous = score_running(portfolio, models, since, top_drivers=0, **kwargs)
    summary = None
    if kpi is not None:
        summary = kpi_summary(
            portfolio.projects, current, as_of, kpi,
            delay_tolerance=delay_tolerance, overrun_tolerance=overrun_tolerance,
        )  # fmt: skip
    html = render_report(
        current,
        previous,
        as_of=as_of,
        since=since,
        data_as_of=data_date(portfolio.status_reports, as_of),
        models=cards,
        drift=drift,
        red=red,
        amber=amber,
        source=portfolio.source,
        watch_list_size=watch_list_size,
        kpi=summary,
    )
    return ReportResult(html=html, scores=current, previous=previous, as_of=as_of, since=since)


@dataclass(frozen=True)
class ReportResult:
    """The rendered page and the score frames it was made from (the CLI prints a summary)."""

    html: str
    scores: pd.DataFrame
    previous: pd.DataFrame
    as_of: date
    since: date


def model_cards(by_target: Mapping[str, Any], alias: str | None = "champion") -> list[ModelCard]:
    """One card per risk, in page order, from loaded models by target (missing: "no model").

    The values are `serving.champions.Champion` or `training.tracking.LoadedModel`: anything
    with ``name``, ``version``, ``run_id`` and ``tags``.
    """
    return [model_card(t, by_target.get(t), alias) for t in ("delay", "overrun")]


def model_card(target: str, loaded: Any | None, alias: str | None = None) -> ModelCard:
    """What the report shows of a `training.tracking.LoadedModel` (None: no such model).

    Reads the run's tags for the training date and the verdict against the EVM and
    PM-forecast rules; a tag that is absent shows as "not recorded", never as a yes.
    """
    risk = dict(RISKS)["late" if target == "delay" else "over_budget"]
    if loaded is None:
        return ModelCard(
            target=target,
            risk=risk,
            rules_note=_("no {target} model registered").format(
                target=_(i18n.TARGET_WORDS[target])
            ),
        )
    tags: Mapping[str, Any] = getattr(loaded, "tags", None) or {}
    return ModelCard(
        target=target,
        risk=risk,
        name=str(getattr(loaded, "name", "")) or None,
        version=str(getattr(loaded, "version", "")) or None,
        alias=alias,
        run_id=str(getattr(loaded, "run_id", "")) or None,
        trained=_first_tag(tags, TRAINED_TAGS),
        recipe=_first_tag(tags, ("recipe",)),
        rules_note=_rule_words(_first_tag(tags, RULES_NOTE_TAGS) or ""),
        data_as_of=_first_tag(tags, ("data_as_of",)),
        auc=_first_tag(tags, ("auc",)),
        verdict=i18n.verdict_code(_first_tag(tags, VERDICT_TAGS)),
    )


#: Tag names read for the card, first present wins (training's tags, see training.tracking).
TRAINED_TAGS = ("trained_at", "created_at")
RULES_NOTE_TAGS = ("best_rule",)
VERDICT_TAGS = ("verdict",)
#: The rules' names as the page says them (training's keys: `training.baselines.RULES`).
RULE_WORDS = {
    "spi": N_("SPI"),
    "spi_t": N_("SPI(t)"),
    "pm_forecast": N_("PM forecast"),
    "rag": N_("PMO status colour"),
    "cpi": N_("CPI"),
    "tcpi": N_("TCPI"),
}


def _rule_words(rule: str) -> str:
    """The best rule the model was compared with, in the language in force."""
    if rule not in RULE_WORDS:
        return ""
    return _("compared with the best rule: {rule}").format(rule=_(RULE_WORDS[rule]))


def _first_tag(tags: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = tags.get(name)
        if value not in (None, ""):
            return str(value)
    return None


# ------------------------------------------------------------------------------ render


def render_report(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    as_of: date,
    since: date | None,
    data_as_of: date | None,
    models: Sequence[ModelCard],
    drift: DriftStatus | None,
    red: float,
    amber: float,
    source: str = "",
    title: str | None = None,
    watch_list_size: int | None = None,
    lang: str | None = None,
    kpi: Mapping[str, Any] | None = None,
) -> str:
    """The report page from the score frames at as_of and at since (point in time).

    ``current``/``previous`` are `score_frame` outputs for the projects running at each
    date; a ``name`` column, when present, is shown beside the id. The watch list shows
    the ``watch_list_size`` red or amber projects at highest risk (None: all of them); the
    others that are new to the list or worse since the previous date are named below it,
    and every project is in the full table. ``lang``: the page's language (None: the one
    in force); ``title`` defaults to "Early-warning report" in it.
    """
    with i18n.use(lang):
        return _render_report(
            current,
            previous,
            as_of=as_of,
            since=since,
            data_as_of=data_as_of,
            models=models,
            drift=drift,
            red=red,
            amber=amber,
            source=source,
            title=title if title is not None else _("Early-warning report"),
            watch_list_size=watch_list_size,
            kpi=kpi,
        )


def _render_report(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    as_of: date,
    since: date | None,
    data_as_of: date | None,
    models: Sequence[ModelCard],
    drift: DriftStatus | None,
    red: float,
    amber: float,
    source: str,
    title: str,
    watch_list_size: int | None,
    kpi: Mapping[str, Any] | None = None,
) -> str:
    frame = current.copy()
    if "name" not in frame:
        frame["name"] = None
    prev = previous if previous is not None else frame.iloc[0:0]
    compared = _risk_order(compare_with_previous(frame, prev, since))
    listed = compared[compared["rag"].isin(["red", "amber"])]
    watch = watch_list(listed, watch_list_size, compared_with_previous=previous is not None)
    watch_rows = [_row_context(r) for r in records(watch.shown)]
    all_rows = [_row_context(r, drivers=False) for r in records(compared)]

    left = _left_watch_list(frame, prev)
    cost = has_cost_scores(frame)
    charts: dict[str, Markup | None] = {}
    if len(frame):
        for risk, words in RISKS:
            if risk == "over_budget" and not cost:
                continue
            key = risk.replace("_", "-")
            charts[f"heat_{risk}"] = heatmap_div(frame, risk, words, key)
            charts[f"scatter_{risk}"] = figure_div(
                scatter_figure(frame, risk, words, red, amber),
                f"scatter-{key}",
                _("p({risk}) against time elapsed").format(risk=_(words).lower()),
            )
    return render_page(
        "report.html",
        title=title,
        source=source,
        as_of=as_of,
        since=since,
        data_as_of=data_as_of,
        running=len(frame),
        previous_running=None if previous is None else len(previous),
        headline=headline(frame, previous, since),
        watch=watch_rows,
        watch_counts=watch.counts,
        watch_more=watch.more,
        moved=[_row_context(r, drivers=False) for r in records(watch.moved)],
        all_rows=all_rows,
        left=left,
        cost=cost,
        no_cost=_(NO_COST),
        charts=charts,
        models=list(models),
        drift=drift,
        drift_summary=drift_words(drift),
        since_heading=_("Since {day}").format(day=fmt_day(since))
        if since
        else _("Since last report"),
        stale_days=None if data_as_of is None else (as_of - data_as_of).days,
        red=red,
        amber=amber,
        ranges="finish_p80" in frame.columns,
        kpi=None if kpi is None else _kpi_context(kpi),
    )


def _kpi_context(kpi: Mapping[str, Any]) -> dict[str, Any]:
    """The KPI forecast's sentences and the realised KPIs of the portfolio as a whole."""
    return {
        "year": kpi["year"],
        "sentences": kpi_sentences(kpi),
        "forecast": {k: kpi[k] for k in ("on_time", "within_budget")},
        "realised": [r for r in kpi["realised"] if r["portfolio"] == "all"],
    }


@dataclass(frozen=True)
class WatchList:
    """The red and amber projects the page lists, and what it leaves to the full table."""

    shown: pd.DataFrame  # the top rows, highest risk first
    moved: pd.DataFrame  # not shown, but new to the list or worse since the previous date
    counts: dict[str, int]  # red and amber projects in all, shown or not
    more: int  # red or amber projects not shown in the table


def watch_list(
    listed: pd.DataFrame, size: int | None, compared_with_previous: bool = True
) -> WatchList:
    """The first ``size`` rows of the red and amber projects (already highest risk first).

    A move must never hide below the cut: the projects past it whose ``change`` is ``new``
    (red or amber now, not then) or ``worse`` are kept aside, in the same order, for the
    page to name under the table. Without a previous report there is no move to keep.
    """
    if size is not None and size < 1:
        raise ValueError(f"watch_list_size must be 1 or more, got {size}")
    cut = len(listed) if size is None else min(size, len(listed))
    shown, rest = listed.iloc[:cut], listed.iloc[cut:]
    if compared_with_previous:
        moved = rest[rest["change"].isin(["new", "worse"])]
    else:
        moved = rest.iloc[0:0]
    counts = {rag: int((listed["rag"] == rag).sum()) for rag in ("red", "amber")}
    return WatchList(shown=shown, moved=moved, counts=counts, more=len(rest))


def _row_context(row: dict[str, Any], drivers: bool = True) -> dict[str, Any]:
    out = dict(row)
    out["drivers"] = main_drivers(row) if drivers else []
    cost_data = row.get("has_budget")
    cost_data = None if is_missing(cost_data) else bool(cost_data)
    out["rag_late_label"] = rag_label(row.get("rag_late"), row.get("late_reason"))
    out["rag_over_budget_label"] = rag_label(
        row.get("rag_over_budget"), row.get("over_budget_reason"), cost_data
    )
    out["cost_data"] = cost_data is not False and not is_missing(row.get("cpi"))
    out["no_cost_data"] = out["rag_over_budget_label"] == _(NO_COST_WORDS)
    finish: Any = row.get("finish_p80")
    out["finish_p80_iso"] = "" if is_missing(finish) else pd.Timestamp(finish).date().isoformat()
    out["rag_class"] = {
        r: "na"
        if is_missing(row.get(f"rag_{r}")) or row.get(f"rag_{r}") == "n/a"
        else str(row.get(f"rag_{r}"))
        for r, _words in RISKS
    }
    return out


def _left_watch_list(current: pd.DataFrame, previous: pd.DataFrame) -> dict[str, list[str]]:
    """Projects red or amber at the previous date that are no longer: green now, or ended."""
    if previous.empty:
        return {"green": [], "ended": []}
    was = previous[previous["rag"].isin(["red", "amber"])]["project_id"]
    now = current.set_index("project_id")["rag"] if len(current) else pd.Series(dtype=object)
    green = sorted(p for p in was if p in now.index and now[p] not in ("red", "amber"))
    ended = sorted(p for p in was if p not in now.index)
    return {"green": green, "ended": ended}
