"""The explanation view: one page per project for the project review meeting.

For one project seen at a date: a SHAP waterfall for each risk with the drivers in words,
the PV/EV/AC S-curves against the baseline, SPI and CPI over time, the risk across the
project's past report dates (each scored point in time, from what was known then), and its
change requests on a timeline.

`render_explanation` turns plain frames into HTML (the tests drive it with hand-built
frames); `build_explanation` gathers those frames for the CLI; `explain_page_app` serves
the same page from the BentoML service at ``GET /explain/{project_id}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from features.contract import Portfolio
from features.loading import load_portfolio
from features.pointintime import build_features
from serving import i18n
from serving.endpoints import ScoringOptions
from serving.explain import python_value, sentence
from serving.guards import ASGIApp, BearerAuth
from serving.i18n import N_, _
from serving.report import (
    NO_COST,
    RAG_COLOURS,
    RISKS,
    ModelCard,
    data_date,
    figure_div,
    fmt_day,
    fmt_pct,
    fmt_prob,
    is_missing,
    model_cards,
    rag_label,
    records,
    render_page,
)
from serving.request_models import DATE_RULE, in_contract_years
from serving.scoring import ScoringModel, explain_row, score_frame
from training.quantiles import QuantileModel, finish_dates, level_names

#: How many contributions a waterfall shows before folding the rest into one bar.
WATERFALL_FEATURES = 10
#: The EVM rule PMOs use today (DESIGN.md): red under 0.90, amber under 0.95.
EVM_RED, EVM_AMBER = 0.90, 0.95
CHANGE_STATUS_STYLE: dict[str, tuple[str, str]] = {
    "approved": ("#1f4e79", "circle"),
    "pending": ("#f0a202", "diamond-open"),
    "rejected": ("#9aa5b1", "x"),
    "withdrawn": ("#9aa5b1", "x-open"),
}


@dataclass(frozen=True)
class Waterfall:
    """One risk's SHAP explanation of one project, in log-odds before calibration.

    ``frame`` has one row per feature: ``feature``, ``value`` (the feature's value),
    ``contribution`` and ``sentence``; ``base`` is the model's average log-odds. They add up
    to the booster's raw margin; the calibrated probability is shown beside, not derived
    from it.
    """

    frame: pd.DataFrame
    base: float


_ACRONYMS = {"spi", "cpi", "tcpi", "eac", "sv", "ieac", "bac", "pv", "ev", "ac", "t", "d"}


def feature_label(name: str) -> str:
    """A column name as a short label: 'spi_change_3' → 'SPI change 3'."""
    words = name.split("_")
    text = " ".join(w.upper() if w in _ACRONYMS else w for w in words)
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------ charts


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _("missing")
    if isinstance(value, float | np.floating):
        v = float(value)
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _waterfall_range(base: float, steps: Sequence[float]) -> list[float]:
    """The x range of every bar end plus room for the value printed beside each bar."""
    ends = np.cumsum([base, *steps])
    low, high = min(0.0, float(ends.min())), max(0.0, float(ends.max()))
    pad = 0.18 * max(high - low, 1e-6)
    return [low - pad, high + pad]


def waterfall_figure(contrib: Waterfall, words: str, calibrated: float | None = None) -> go.Figure:
    """The model's average, each large contribution in words, the rest folded, this project.

    Bars to the right push the risk up (red), to the left pull it down (green). The axis is
    log-odds before calibration, so the first and last bars also say the probability they
    stand for, and the last one the calibrated probability the page headlines.
    """
    frame = contrib.frame.copy()
    frame["size"] = frame["contribution"].abs()
    frame = frame.sort_values("size", ascending=False, kind="stable")
    top = frame.head(WATERFALL_FEATURES)
    rest = frame.iloc[WATERFALL_FEATURES:]
    # Each bar is labelled by its sentence (what a PMO reads); the hover gives the column
    # and value. Categories must be unique or Plotly merges the bars.
    names: list[str] = []
    for text, feature in zip(top["sentence"], top["feature"], strict=True):
        label = _short(str(text))
        names.append(label if label not in names else f"{label} ({feature_label(feature)})")
    values = [float(c) for c in top["contribution"]]
    hover = [
        f"{feature_label(f)} = {_value_text(v)}"
        for f, v in zip(top["feature"], top["value"], strict=True)
    ]
    if len(rest):
        names.append(_("{n} other features together").format(n=len(rest)))
        values.append(float(rest["contribution"].sum()))
        hover.append(_("the smaller pushes added up"))
    end = contrib.base + float(frame["contribution"].sum())
    if calibrated is not None:
        final = _("this project: model score {score}, calibrated {p}").format(
            score=fmt_pct(_sigmoid(end)), p=fmt_prob(calibrated)
        )
    else:
        final = _("this project: model score {score}").format(score=fmt_pct(_sigmoid(end)))
    y = [_("average project: {p}").format(p=fmt_pct(_sigmoid(contrib.base))), *names, final]
    x = [contrib.base, *values, end]
    measure = ["absolute", *["relative"] * len(values), "total"]
    hover = [_("the model's average over its training rows"), *hover, _("sum of all the above")]
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=y,
            x=x,
            measure=measure,
            text=[f"{contrib.base:+.2f}", *[f"{v:+.2f}" for v in values], f"{end:+.2f}"],
            textposition="outside",
            cliponaxis=False,  # the value labels of the longest bars stay readable
            increasing={"marker": {"color": RAG_COLOURS["red"]}},
            decreasing={"marker": {"color": RAG_COLOURS["green"]}},
            totals={"marker": {"color": "#52606d"}},
            connector={"line": {"color": "#bcccdc", "width": 1}},
            customdata=hover,
            hovertemplate="%{customdata}<br>%{text} " + _("log-odds") + "<extra></extra>",
        )
    )
    fig.update_layout(
        # Plotly puts the first category at the bottom: reverse, so the story reads down.
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={
            "title": _("push on the log-odds of {risk} (right = riskier)").format(
                risk=_(words).lower()
            ),
            "zeroline": True,
            "range": _waterfall_range(contrib.base, values),
        },
        showlegend=False,
        margin={"r": 60},
    )
    return fig


def s_curve_figure(project: Mapping[str, Any], reports: pd.DataFrame, as_of: date) -> go.Figure:
    """Cumulative PV, EV and AC against the baseline budget and planned finish."""
    fig = go.Figure()
    styles = (
        ("planned_value", N_("Planned value (PV, baseline)"), "#52606d", "dash"),
        ("earned_value", N_("Earned value (EV)"), "#1f4e79", "solid"),
        ("actual_cost", N_("Actual cost (AC)"), RAG_COLOURS["red"], "solid"),
    )
    for col, message, colour, dash in styles:
        name = _(message)
        part = reports[reports[col].notna()]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part["report_date"],
                y=part[col],
                mode="lines+markers",
                name=name,
                line={"color": colour, "dash": dash, "width": 2},
                marker={"size": 4},
                hovertemplate="%{x|" + _DAY + "}: %{y:,.0f}<extra>" + name + "</extra>",
            )
        )
    budget = project.get("budget")
    start, finish = project.get("planned_start"), project.get("planned_finish")
    if budget is not None and not pd.isna(budget) and not pd.isna(start) and not pd.isna(finish):
        fig.add_trace(
            go.Scatter(
                x=[start, finish],
                y=[budget, budget],
                mode="lines",
                name=_("Budget at completion ({amount})").format(amount=i18n.fmt_money(budget)),
                line={"color": "#9aa5b1", "dash": "dot"},
                hoverinfo="skip",
            )
        )
    _date_marks(fig, project, as_of)
    fig.update_layout(
        yaxis={"title": _("cumulative cost"), "tickformat": ",.0f", "rangemode": "tozero"},
        xaxis=_date_axis(),
        legend={"orientation": "h", "y": -0.18},
        hovermode="x unified",
    )
    return fig


# Plotly's d3 date formats: month names are English in d3, so Chinese pages use numbers.
_DAY = "%d %b %Y"
_DAY_ZH = "%Y年%-m月%-d日"


def _day_format() -> str:
    return _DAY_ZH if i18n.is_chinese() else _DAY


def _date_axis(**extra: Any) -> dict[str, Any]:
    """A date axis whose tick labels read in the page's language."""
    axis: dict[str, Any] = dict(extra)
    if i18n.is_chinese():
        axis["tickformat"] = "%Y年%-m月"
        axis["hoverformat"] = _DAY_ZH
    return axis


def _date_marks(fig: go.Figure, project: Mapping[str, Any], as_of: date) -> None:
    """Vertical lines for the baseline finish and the date the page is seen from.

    Their labels lean away from each other (the earlier one to the left), so they stay
    readable when the two dates are close.
    """
    seen = pd.Timestamp(as_of)
    finish = project.get("planned_finish")
    if finish is not None and not pd.isna(finish):
        finish = pd.Timestamp(finish)
        lean = "left" if finish >= seen else "right"
        _vline(fig, finish, _("planned finish"), "#52606d", lean)
        _vline(fig, seen, _("as of"), "#1f4e79", "right" if finish >= seen else "left")
    else:
        _vline(fig, seen, _("as of"), "#1f4e79")


def _vline(fig: go.Figure, when: pd.Timestamp, text: str, colour: str, lean: str = "left") -> None:
    # add_vline with a Timestamp trips over Plotly's annotation arithmetic: draw it by hand.
    fig.add_shape(
        type="line",
        x0=when,
        x1=when,
        y0=0,
        y1=1,
        yref="paper",
        line={"color": colour, "dash": "dot", "width": 1},
    )
    fig.add_annotation(
        x=when,
        y=1,
        yref="paper",
        text=text,
        showarrow=False,
        xanchor=lean,
        yanchor="bottom",
        font={"size": 11, "color": colour},
    )


#: SPI and CPI beyond this are early-project noise (a tiny AC or PV): off the chart.
INDEX_CEILING = 2.0


def index_range(values: np.ndarray) -> list[float]:
    """A y range that shows 0.80–1.10 at least and clips early outliers at 2.00.

    One early CPI of 60 (a few hundred spent, a milestone earned) would otherwise flatten
    every later report into a line at the bottom.
    """
    finite = values[np.isfinite(values)]
    low = min(0.8, float(finite.min()) - 0.05) if finite.size else 0.8
    high = max(1.1, float(finite.max()) + 0.05) if finite.size else 1.1
    return [max(0.0, low), min(INDEX_CEILING, high)]


def performance_figure(history: pd.DataFrame, project: Mapping[str, Any], as_of: date) -> go.Figure:
    """SPI and CPI at each report date, with the EVM rule's 0.90 and 0.95 lines."""
    fig = go.Figure()
    for col, name, colour in (
        ("spi", N_("SPI (schedule)"), "#1f4e79"),
        ("cpi", N_("CPI (cost)"), "#b35900"),
    ):
        name = _(name)
        part = history[history[col].notna()]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part["as_of"],
                y=part[col],
                mode="lines+markers",
                name=name,
                line={"color": colour, "width": 2},
                marker={"size": 5, "symbol": "circle" if col == "spi" else "square"},
                hovertemplate="%{x|" + _day_format() + "}: %{y:.2f}<extra>" + name + "</extra>",
            )
        )
    # The two labels sit on opposite sides of their lines, 0.05 apart, so they never overlap.
    for level, rag, where in ((EVM_RED, "red", "bottom left"), (EVM_AMBER, "amber", "top left")):
        fig.add_hline(
            y=level,
            line={"dash": "dash", "color": RAG_COLOURS[rag], "width": 1},
            annotation_text=_("EVM rule: {rag} below {level}").format(
                rag=i18n.rag_word(rag).lower(), level=f"{level:.2f}"
            ),
            annotation_position=where,
            annotation_font={"size": 11, "color": RAG_COLOURS[rag]},
        )
    fig.add_hline(y=1.0, line={"color": "#bcccdc", "width": 1})
    _date_marks(fig, project, as_of)
    fig.update_layout(
        yaxis={
            "title": _("index (1.00 = on plan)"),
            "tickformat": ".2f",
            "range": index_range(history[["spi", "cpi"]].to_numpy(dtype=float)),
        },
        xaxis=_date_axis(),
        legend={"orientation": "h", "y": -0.18},
        hovermode="x unified",
    )
    return fig


def forecast_figure(project: Mapping[str, Any], reports: pd.DataFrame, as_of: date) -> go.Figure:
    """The project manager's forecast finish at each report, against the planned finish."""
    part = reports[reports["forecast_finish"].notna()]
    fig = go.Figure(
        go.Scatter(
            x=part["report_date"],
            y=part["forecast_finish"],
            mode="lines+markers",
            name=_("forecast finish"),
            line={"color": "#1f4e79", "shape": "hv", "width": 2},
            marker={"size": 4},
            hovertemplate=_("reported {day}: finish {finish}").format(
                day="%{x|" + _day_format() + "}", finish="%{y|" + _day_format() + "}"
            )
            + "<extra></extra>",
        )
    )
    finish = project.get("planned_finish")
    if finish is not None and not pd.isna(finish) and len(part):
        fig.add_trace(
            go.Scatter(
                x=[part["report_date"].min(), part["report_date"].max()],
                y=[finish, finish],
                mode="lines",
                name=_("planned finish (baseline)"),
                line={"color": "#52606d", "dash": "dash"},
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        yaxis={"title": _("forecast finish date"), "tickformat": _day_format()},
        xaxis=_date_axis(title=_("report date")),
        legend={"orientation": "h", "y": -0.22},
    )
    return fig


def fan_frame(
    quantiles: Mapping[str, QuantileModel], features: pd.DataFrame, project: Mapping[str, Any]
) -> pd.DataFrame | None:
    """The finish quantiles (P10 … P90 as dates) at each feature row's date; None without a
    forewarn-finish champion."""
    model = quantiles.get("finish")
    if model is None or features.empty:
        return None
    base = pd.DataFrame(
        {k: [project.get(k)] * len(features) for k in ("planned_start", "planned_finish")}
    )
    dates = finish_dates(base, model.predict(features))
    fan = pd.DataFrame({"as_of": pd.to_datetime(features["as_of"]).to_numpy()})
    for i, name in enumerate(level_names(model.levels)):
        fan[name] = pd.to_datetime(dates[:, i])
    return fan


def fan_figure(fan: pd.DataFrame, project: Mapping[str, Any], as_of: date) -> go.Figure:
    """Forewarn's finish range at each past report date: P10–P90 and P50–P80 bands, the
    P50 line, the planned finish, and the actual finish once known by as_of."""
    x = fan["as_of"]
    fig = go.Figure()
    for lo, hi, name, alpha in (
        ("p10", "p90", _("P10–P90"), 0.15),
        ("p50", "p80", _("P50–P80"), 0.3),
    ):
        fig.add_trace(go.Scatter(x=x, y=fan[lo], mode="lines", line={"width": 0},
                                 hoverinfo="skip", showlegend=False))  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=x,
                y=fan[hi],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=f"rgba(31,78,121,{alpha})",
                name=name,
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=fan["p50"],
            mode="lines+markers",
            name=_("P50 finish"),
            line={"color": "#1f4e79", "width": 2},
            marker={"size": 4},
            customdata=fan[["p80", "p90"]].to_numpy(),
            hovertemplate=_("reported {day}: P50 {p50}, P80 {p80}, P90 {p90}").format(
                day="%{x|" + _day_format() + "}",
                p50="%{y|" + _day_format() + "}",
                p80="%{customdata[0]|" + _day_format() + "}",
                p90="%{customdata[1]|" + _day_format() + "}",
            )
            + "<extra></extra>",
        )
    )
    span = [x.min(), x.max()]
    planned = project.get("planned_finish")
    if planned is not None and not pd.isna(planned):
        fig.add_trace(go.Scatter(x=span, y=[planned, planned], mode="lines",
                                 name=_("planned finish (baseline)"), hoverinfo="skip",
                                 line={"color": "#52606d", "dash": "dash"}))  # fmt: skip
    actual = project.get("actual_finish")
    if actual is not None and not pd.isna(actual) and pd.Timestamp(actual) <= pd.Timestamp(as_of):
        fig.add_trace(go.Scatter(x=span, y=[actual, actual], mode="lines",
                                 name=_("actual finish"), hoverinfo="skip",
                                 line={"color": "#b42318", "width": 2}))  # fmt: skip
    fig.update_layout(
        yaxis={"title": _("finish date"), "tickformat": _day_format()},
        xaxis=_date_axis(title=_("report date")),
        legend={"orientation": "h", "y": -0.22},
    )
    return fig


def trajectory_figure(history: pd.DataFrame, red: float, amber: float, cost: bool) -> go.Figure:
    """p(late) and p(over budget) at each past report date, with the RAG bands."""
    fig = go.Figure()
    fig.add_hrect(y0=red, y1=1.0, fillcolor=RAG_COLOURS["red"], opacity=0.07, line_width=0)
    fig.add_hrect(y0=amber, y1=red, fillcolor=RAG_COLOURS["amber"], opacity=0.09, line_width=0)
    fig.add_hrect(y0=0, y1=amber, fillcolor=RAG_COLOURS["green"], opacity=0.05, line_width=0)
    for risk, message in RISKS:
        if risk == "over_budget" and not cost:
            continue
        words = _(message)
        part = history[history[f"p_{risk}"].notna()]
        fig.add_trace(
            go.Scatter(
                x=part["as_of"],
                y=part[f"p_{risk}"],
                mode="lines+markers",
                name=_("p({risk})").format(risk=words.lower()),
                line={"color": "#1f4e79" if risk == "late" else "#b35900", "width": 2},
                marker={"size": 5, "symbol": "circle" if risk == "late" else "square"},
                customdata=part[f"rag_{risk}"].map(lambda r: rag_label(r)),
                hovertemplate="%{x|"
                + _day_format()
                + "}: %{y:.0%} (%{customdata})<extra>"
                + words
                + "</extra>",
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
        yaxis={"title": _("probability"), "tickformat": ".0%", "range": [0, 1.02]},
        xaxis=_date_axis(title=_("report date")),
        legend={"orientation": "h", "y": -0.22},
        hovermode="x unified",
    )
    return fig


#: Change request kinds and decisions (contract v1 codes) in words.
CHANGE_KINDS = {
    "scope": N_("scope"),
    "schedule": N_("schedule"),
    "cost": N_("cost"),
    "baseline": N_("baseline"),
    "other": N_("other"),
}
CHANGE_STATUSES = {
    "approved": N_("approved"),
    "pending": N_("pending"),
    "rejected": N_("rejected"),
    "withdrawn": N_("withdrawn"),
}


def _code_words(words: Mapping[str, str], code: Any, default: str) -> str:
    """A contract code in words; an unknown code as it is (it is the PMO's own)."""
    key = default if is_missing(code) or not str(code) else str(code)
    return _(words[key]) if key in words else key


def _change_hover(change: Mapping[str, Any], status: str) -> str:
    text = _("{change} ({kind}), {status}").format(
        change=f"<b>{change.get('change_id') or _('change')}</b>",
        kind=_code_words(CHANGE_KINDS, change.get("kind"), "other"),
        status=_code_words(CHANGE_STATUSES, status, "pending"),
    )
    text += "<br>" + _("raised {day}").format(day=fmt_day(change.get("raised_date")))
    if status != "pending" and not is_missing(change.get("decided_date")):
        text += _(", decided {day}").format(day=fmt_day(change.get("decided_date")))
    days, cost = change["schedule_impact_days"], change["cost_impact"]
    if not is_missing(days):
        text += "<br>" + _("schedule {days} days").format(days=f"{float(days):+.0f}")
    if not is_missing(cost):
        text += "<br>" + _("cost {amount}").format(amount=f"{float(cost):+,.0f}")
    return text


def changes_figure(project: Mapping[str, Any], changes: pd.DataFrame, as_of: date) -> go.Figure:
    """Change requests by raise date and kind, marked by their decision as known at as_of."""
    fig = go.Figure()
    kind_words = changes["kind"].map(lambda k: _code_words(CHANGE_KINDS, k, "other"))
    kinds = sorted(kind_words.unique())
    for status, (colour, symbol) in CHANGE_STATUS_STYLE.items():
        part = changes[changes["status_at_as_of"] == status]
        if part.empty:
            continue
        hover = [_change_hover(c, status) for c in records(part)]
        impact = part["schedule_impact_days"].abs().fillna(0)
        status_words = _code_words(CHANGE_STATUSES, status, "pending")
        fig.add_trace(
            go.Scatter(
                x=part["raised_date"],
                y=kind_words[part.index],
                mode="markers",
                name=f"{status_words} ({len(part)})",
                marker={
                    "color": colour,
                    "symbol": symbol,
                    "size": (8 + np.sqrt(impact.to_numpy(dtype=float)) * 1.5).clip(8, 30),
                    "line": {"width": 1, "color": colour},
                },
                text=hover,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    start = project.get("planned_start")
    if start is not None and not pd.isna(start):
        _vline(fig, pd.Timestamp(start), _("planned start"), "#52606d")
    _date_marks(fig, project, as_of)
    fig.update_layout(
        yaxis={"title": _("kind"), "categoryorder": "array", "categoryarray": kinds},
        xaxis=_date_axis(title=_("raised on")),
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


# ----------------------------------------------------------------------------- gather


class UnknownProjectError(KeyError):
    """The project id is not in the portfolio (the CLI exits 2, the route answers 404)."""


def _waterfalls(
    models: Mapping[str, ScoringModel | None],
    features: pd.DataFrame,
    red: float,
    amber: float,
    top_drivers: int,
) -> dict[str, Waterfall | None]:
    """Per risk, the full TreeSHAP vector of the one feature row, with each one in words."""
    row = features.iloc[0]

    def get(name: str) -> Any:
        return python_value(row.get(name))

    out: dict[str, Waterfall | None] = {"late": None, "over_budget": None}
    for item in explain_row(models, features, red, amber, top_drivers):
        risk = "late" if item["target"] == "delay" else "over_budget"
        contributions = pd.DataFrame(item["contributions"])
        contributions["sentence"] = [sentence(f, get) for f in contributions["feature"]]
        out[risk] = Waterfall(frame=contributions, base=float(item["base_value"]))
    return out


def build_explanation(
    portfolio: Portfolio,
    project_id: str,
    models: Mapping[str, ScoringModel | None],
    cards: Sequence[ModelCard],
    *,
    as_of: date | None,
    red: float,
    amber: float,
    top_drivers: int,
    delay_tolerance: float,
    overrun_tolerance: float,
    context: pd.DataFrame | None = None,
    lang: str | None = None,
    quantiles: Mapping[str, QuantileModel] | None = None,
) -> ExplanationResult:
    """Score one project at as_of and at each of its past report dates; render the page.

    as_of defaults to the portfolio's latest status report. Every date is scored from what
    was known on it, with the same models. ``context`` is the portfolio context to score
    with (the champions', as batch scoring does); None computes it from the portfolio.
    ``lang``: the page's language (None: the one in force, `serving.i18n.use`).
    ``quantiles`` (the forewarn-finish champion) adds the fan chart of the finish range.
    """
    with i18n.use(lang):
        return _build_explanation(
            portfolio,
            project_id,
            models,
            cards,
            as_of=as_of,
            red=red,
            amber=amber,
            top_drivers=top_drivers,
            delay_tolerance=delay_tolerance,
            overrun_tolerance=overrun_tolerance,
            context=context,
            quantiles=quantiles,
        )


def _build_explanation(
    portfolio: Portfolio,
    project_id: str,
    models: Mapping[str, ScoringModel | None],
    cards: Sequence[ModelCard],
    *,
    as_of: date | None,
    red: float,
    amber: float,
    top_drivers: int,
    delay_tolerance: float,
    overrun_tolerance: float,
    context: pd.DataFrame | None,
    quantiles: Mapping[str, QuantileModel] | None = None,
) -> ExplanationResult:
    projects = portfolio.projects
    match = projects[projects["project_id"] == project_id]
    if match.empty:
        raise UnknownProjectError(project_id)
    project = records(match)[0]
    if as_of is None:
        latest = data_date(portfolio.status_reports)
        as_of = latest if latest is not None else date.today()
    cutoff = pd.Timestamp(as_of)
    reports = portfolio.status_reports
    reports = reports[
        (reports["project_id"] == project_id) & (reports["report_date"] <= cutoff)
    ].sort_values("report_date")
    changes = portfolio.changes[portfolio.changes["project_id"] == project_id]
    # One build_features call for the page's date and every past report date: the same
    # point-in-time code as training, so the trajectory shows what each date knew.
    dates = sorted({*pd.to_datetime(reports["report_date"]).tolist(), cutoff})
    rows = pd.DataFrame({"project_id": project_id, "as_of": pd.DatetimeIndex(dates)})
    features = build_features(
        portfolio,
        rows,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        context=context,
    )
    now = features[features["as_of"] == cutoff].reset_index(drop=True)
    score = records(score_frame(models, now, red, amber, top_drivers))[0]
    score["has_budget"] = bool(now["log_budget"].notna().iloc[0])
    history = score_frame(models, features, red, amber, top_drivers=0)
    # The page's own date joins the trajectory only when it is a report date.
    history = history[history["as_of"].isin(pd.to_datetime(reports["report_date"]))]
    waterfalls = _waterfalls(models, now, red, amber, top_drivers)
    past = features[features["as_of"].isin(pd.to_datetime(reports["report_date"]))]
    fan = fan_frame(quantiles or {}, past.reset_index(drop=True), project)
    html = render_explanation(
        project=project,
        score=score,
        contributions=waterfalls,
        history=history.reset_index(drop=True),
        reports=reports.reset_index(drop=True),
        changes=changes.reset_index(drop=True),
        as_of=as_of,
        models=cards,
        red=red,
        amber=amber,
        fan=fan,
    )
    return ExplanationResult(html=html, score=score, history=history, as_of=as_of, fan=fan)


@dataclass(frozen=True)
class ExplanationResult:
    """The rendered page and the numbers on it."""

    html: str
    score: dict[str, Any]
    history: pd.DataFrame
    as_of: date
    fan: pd.DataFrame | None = None  # finish quantiles (dates) at each past report date


# ------------------------------------------------------------------------------ render


def changes_as_known(changes: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Change requests raised by as_of, with the decision as it was known on that day.

    A decision dated after as_of did not exist yet: the request shows as pending, the same
    rule the point-in-time features follow.
    """
    cutoff = pd.Timestamp(as_of)
    known = changes[changes["raised_date"] <= cutoff].copy()
    decided = known["decided_date"].notna() & (known["decided_date"] <= cutoff)
    status = known["status"].fillna("pending").astype(str)
    known["status_at_as_of"] = status.where(decided | (status == "pending"), "pending")
    return known.sort_values("raised_date").reset_index(drop=True)


def status_at(project: Mapping[str, Any], as_of: date) -> str:
    """The project's state on as_of, not today's: the page must not leak the future."""
    day = pd.Timestamp(as_of)
    finish: Any = project.get("actual_finish")
    status: Any = project.get("status")
    start: Any = project.get("actual_start")
    if is_missing(start):
        start = project.get("planned_start")
    if not is_missing(finish) and pd.Timestamp(finish) <= day:
        return _("finished {day}").format(day=fmt_day(finish))
    if status == "cancelled":
        return _("cancelled")
    if not is_missing(start) and pd.Timestamp(start) > day:
        return _("not started yet")
    return _("on hold") if status == "on_hold" else _("running")


def render_explanation(
    *,
    project: Mapping[str, Any],
    score: Mapping[str, Any],
    contributions: Mapping[str, Waterfall | None],
    history: pd.DataFrame,
    reports: pd.DataFrame,
    changes: pd.DataFrame,
    as_of: date,
    models: Sequence[ModelCard],
    red: float,
    amber: float,
    lang: str | None = None,
    fan: pd.DataFrame | None = None,
) -> str:
    """The explanation page of one project from plain frames, all cut at as_of.

    ``score`` is the project's `score_frame` row at as_of; ``history`` the score frames at
    its past report dates (``as_of``, ``p_late``, ``p_over_budget``, ``rag_*``, ``spi``,
    ``cpi``); ``reports`` and ``changes`` its contract rows known at as_of. ``lang``: the
    page's language (None: the one in force). The driver sentences in ``score`` and
    ``contributions`` are shown as they are: write them in the same language.
    """
    with i18n.use(lang):
        return _render_explanation(
            project=project,
            score=score,
            contributions=contributions,
            history=history,
            reports=reports,
            changes=changes,
            as_of=as_of,
            models=models,
            red=red,
            amber=amber,
            fan=fan,
        )


def _render_explanation(
    *,
    project: Mapping[str, Any],
    score: Mapping[str, Any],
    contributions: Mapping[str, Waterfall | None],
    history: pd.DataFrame,
    reports: pd.DataFrame,
    changes: pd.DataFrame,
    as_of: date,
    models: Sequence[ModelCard],
    red: float,
    amber: float,
    fan: pd.DataFrame | None = None,
) -> str:
    cost = score.get("p_over_budget") is not None and not pd.isna(score.get("p_over_budget"))
    risks = []
    for risk, message in RISKS:
        words = _(message)
        contrib = contributions.get(risk)
        p = score.get(f"p_{risk}")
        has_p = p is not None and not pd.isna(p)
        reason = score.get(f"{risk}_reason")
        # No budget wins over every other reason (no model, say): the PMO reads "no cost data".
        budget = score.get("has_budget")
        no_cost = (budget is not None and not bool(budget)) or (not has_p and not reason)
        if risk == "over_budget" and not has_p and no_cost:
            reason = NO_COST
        reason = _(NO_COST) if reason == NO_COST else i18n.reason(reason)
        rag = score.get(f"rag_{risk}")
        rag_cls = "na" if rag in (None, "n/a") or pd.isna(rag) else str(rag)
        drivers = score.get(f"drivers_{risk}")
        risks.append(
            {
                "risk": risk,
                "words": words,
                "p": p if has_p else None,
                "rag": rag_cls,
                "label": rag_label(
                    rag, reason, False if risk == "over_budget" and no_cost else None
                ),
                "reason": reason if not has_p else None,
                "drivers": [d for d in drivers if isinstance(d, Mapping)]
                if isinstance(drivers, list | tuple)
                else [],
                "chart": figure_div(
                    waterfall_figure(contrib, words, p if has_p else None),
                    f"waterfall-{risk.replace('_', '-')}",
                    _("{risk}: what moves this project's risk").format(risk=words),
                    height=120 + 30 * min(len(contrib.frame), WATERFALL_FEATURES + 1),
                )
                if has_p and contrib is not None
                else None,
            }
        )
    has_ev = bool(reports[["planned_value", "earned_value", "actual_cost"]].notna().any().any())
    has_cost_reports = bool(reports["actual_cost"].notna().any())
    has_forecast = bool(reports["forecast_finish"].notna().any())
    has_indices = bool(len(history)) and bool(history[["spi", "cpi"]].notna().any().any())
    known_changes = changes_as_known(changes, as_of)
    charts: dict[str, Markup | None] = {
        "s_curve": figure_div(
            s_curve_figure(project, reports, as_of),
            "s-curve",
            _("Planned value, earned value and actual cost"),
        )
        if has_ev
        else None,
        "performance": figure_div(
            performance_figure(history, project, as_of), "spi-cpi", _("SPI and CPI over time")
        )
        if has_indices
        else None,
        "forecast": figure_div(
            forecast_figure(project, reports, as_of),
            "forecast-finish",
            _("The project manager's forecast finish, report by report"),
        )
        if has_forecast
        else None,
        "fan": figure_div(
            fan_figure(fan, project, as_of),
            "finish-fan",
            _("Forewarn's finish range (P10–P90), report by report"),
        )
        if fan is not None and len(fan)
        else None,
        "trajectory": figure_div(
            trajectory_figure(history, red, amber, cost),
            "trajectory",
            _("Risk at each past report date"),
        )
        if len(history)
        else None,
        "changes": figure_div(
            changes_figure(project, known_changes, as_of), "changes", _("Change requests")
        )
        if len(known_changes)
        else None,
    }
    return render_page(
        "explain.html",
        title=_("Project {project}: why this risk?").format(project=project.get("project_id")),
        project=dict(project),
        status=status_at(project, as_of),
        score=dict(score),
        risks=risks,
        charts=charts,
        changes=[
            {
                **c,
                "kind_words": _code_words(CHANGE_KINDS, c.get("kind"), "other"),
                "status_words": _code_words(CHANGE_STATUSES, c.get("status_at_as_of"), "pending"),
            }
            for c in records(known_changes)
        ],
        history_rows=len(history),
        has_cost_reports=has_cost_reports,
        as_of=as_of,
        models=list(models),
        red=red,
        amber=amber,
        no_cost=_(NO_COST),
    )


# ------------------------------------------------------------------------------ served


def explain_page_app(
    models: Callable[[], Mapping[str, ScoringModel | None]],
    cards: Callable[[], Sequence[ModelCard]],
    portfolio: Callable[[], Portfolio],
    *,
    red: float,
    amber: float,
    top_drivers: int,
    delay_tolerance: float,
    overrun_tolerance: float,
    api_key: str | None = None,
    context: Callable[[], pd.DataFrame | None] | None = None,
    lang: str = "en",
    quantiles: Callable[[], Mapping[str, QuantileModel]] | None = None,
) -> ASGIApp:
    """The explanation page as a small ASGI app: ``GET /explain/{project_id}[?as_of=&lang=]``.

    The page's language: ``?lang=``, else the request's Accept-Language, else ``lang``.

    The BentoML service mounts it (``/views``), so the page reads its models from the
    loaded champions through ``models``/``cards``; ``portfolio`` says where the project's
    history comes from (it raises LookupError when the service has none to read: 503).
    ``quantiles`` gives the forewarn-finish champion, where there is one: the page then
    draws the same fan chart as `forewarn explain`.
    The app checks the same bearer token as the service itself, so it stays closed even
    if it is mounted somewhere without the service's middleware.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    def page(request: Request) -> HTMLResponse:
        # A plain def: Starlette runs it in its thread pool, so scoring never blocks the loop.
        project_id = str(request.path_params["project_id"])
        raw = request.query_params.get("as_of")
        try:
            as_of = date.fromisoformat(raw) if raw else None
        except ValueError:
            return _message(400, f"as_of={raw!r} is not a date: use YYYY-MM-DD")
        if as_of is not None and not in_contract_years(as_of):
            return _message(400, f"as_of={raw}: {DATE_RULE}")
        try:
            asked = request.query_params.get("lang")
            language = (
                i18n.check(asked)
                if asked
                else i18n.from_accept_language(request.headers.get("accept-language")) or lang
            )
        except ValueError as exc:
            return _message(400, f"lang: {exc}")
        try:
            data = portfolio()
            loaded = models()
        except LookupError as exc:
            return _message(503, str(exc))
        with i18n.use(language):
            return _page(data, project_id, loaded, as_of)

    def _page(
        data: Portfolio, project_id: str, loaded: Mapping[str, ScoringModel | None], as_of: Any
    ) -> HTMLResponse:
        try:
            result = build_explanation(
                data,
                project_id,
                loaded,
                cards(),
                as_of=as_of,
                red=red,
                amber=amber,
                top_drivers=top_drivers,
                delay_tolerance=delay_tolerance,
                overrun_tolerance=overrun_tolerance,
                context=context() if context is not None else None,
                quantiles=quantiles() if quantiles is not None else None,
            )
        except UnknownProjectError:
            return _message(404, f"no project {project_id!r} in the portfolio")
        return HTMLResponse(result.html)

    app = Starlette(routes=[Route("/explain/{project_id}", page, methods=["GET"])])
    return BearerAuth(app, api_key=api_key, open_paths=())


def _message(status: int, text: str) -> Any:
    from starlette.responses import HTMLResponse

    body = Markup(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Forewarn</title>"
        "</head><body><p>{}</p></body></html>"
    ).format(text)
    return HTMLResponse(str(body), status_code=status)


def portfolio_loader(
    path: Path | None, extra_attributes: Sequence[str] = ()
) -> Callable[[], Portfolio]:
    """A callable that reads the portfolio at ``path``, again only when its files change.

    ``path`` None gives a loader that raises LookupError: the page then answers 503 and
    says what to configure, instead of the service failing to start.
    """
    state: dict[str, Any] = {}

    def load() -> Portfolio:
        if path is None:
            raise LookupError(
                "this service has no portfolio to read the project's history from: start it "
                "with FOREWARN_DATA set to a portfolio folder or workbook"
            )
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
        stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
        if state.get("stamp") != stamp:
            state["portfolio"] = load_portfolio(path, extra_attributes=extra_attributes).portfolio
            state["stamp"] = stamp
        portfolio: Portfolio = state["portfolio"]
        return portfolio

    return load


def champions_page_app(
    champions: Callable[[], Any | None],
    data: Path | None,
    options: ScoringOptions,
    api_key: str | None,
) -> ASGIApp:
    """`explain_page_app` wired to the service's loaded champions and a portfolio on disk.

    ``champions`` returns the service's `serving.champions.Champions` (None while it has
    none: the page answers 503); ``data`` is the portfolio whose history the page shows.
    """

    def loaded() -> Any:
        found = champions()
        if found is None:
            raise LookupError("no champion model loaded: see the server log")
        return found

    return explain_page_app(
        lambda: loaded().models(),
        lambda: model_cards(loaded().by_target),
        portfolio_loader(data, options.extra_attributes),
        red=options.red,
        amber=options.amber,
        top_drivers=options.top_drivers,
        delay_tolerance=options.delay_tolerance,
        overrun_tolerance=options.overrun_tolerance,
        api_key=api_key,
        context=lambda: loaded().context,
        lang=options.lang,
        quantiles=lambda: loaded().quantiles,
    )
