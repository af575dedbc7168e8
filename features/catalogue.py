"""The feature catalogue: every feature declared once, with its definition and its inputs.

`features.pointintime` builds exactly these columns, in this order; `docs/features.md` is
rendered from here (``python -m features.catalogue > docs/features.md``) and a test fails
when the committed page is stale. The conventions the definitions use are in `CONVENTIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

FeatureKind = Literal["numeric", "categorical", "flag"]

CONVENTIONS = """\
* A feature row is `(project_id, as_of)`. It sees the project's baseline row, its status
  reports with `report_date ≤ as_of` and its changes raised by `as_of`; a decision counts
  only once `decided_date ≤ as_of`. "The latest report" is the report with the greatest
  `report_date ≤ as_of`. An "at approval" row (`as_of = planned_start`) sees no report and
  no change at all.
* `t` is days since `planned_start`; `PD` the planned duration in days
  (`planned_finish − planned_start`); `BAC` the `budget`; PV, EV, AC the cumulative planned
  value, earned value and actual cost of a report; AT the `t` of the latest report.
* "The last *n* reports" are the latest report and the *n − 1* before it; a windowed
  feature is NaN unless all *n* reports carry its input.
* Missing inputs give NaN plus a `has_*` flag, never a zero that pretends to be data.
  Counts of events (changes, reports) are true zeros when there are none.
* Portfolio context uses only projects closed strictly before `as_of`, labelled with the
  tolerances in force. For one project scored alone it comes from a precomputed
  `features.pointintime.portfolio_context` (the training portfolio's), so that the project
  gets exactly the row it would get inside the whole table.
"""

FAMILIES: dict[str, str] = {
    "baseline": "Baseline",
    "progress": "Progress and earned value",
    "trends": "Trends",
    "timeline": "Timeline",
    "changes": "Changes",
    "context": "Portfolio context",
    "schedule": "Schedule health, when the status reports carry it",
}


@dataclass(frozen=True)
class Feature:
    """One feature: its column name, family, exact definition, unit, inputs and kind."""

    name: str
    family: str
    definition: str
    unit: str
    inputs: tuple[str, ...]
    kind: FeatureKind = "numeric"


_P = "projects."
_R = "status_reports."
_C = "changes."
_EV = (_R + "planned_value", _R + "earned_value")


def _trend_features() -> tuple[Feature, ...]:
    """Slopes, changes and volatility of SPI, CPI and percent complete (declared once here)."""
    metrics = {
        "spi": ("SPI", "ratio", (*_EV, _P + "planned_start")),
        "cpi": ("CPI", "ratio", (_R + "earned_value", _R + "actual_cost", _P + "planned_start")),
        "percent_complete": (
            "percent complete",
            "percentage points",
            (_R + "percent_complete", _P + "planned_start"),
        ),
    }
    out: list[Feature] = []
    for name, (label, unit, inputs) in metrics.items():
        for n in (3, 6):
            out.append(
                Feature(
                    f"{name}_slope_{n}",
                    "trends",
                    f"Least-squares slope of {label} against report date over the last {n} "
                    "reports, per week.",
                    f"{unit} per week",
                    inputs,
                )
            )
            out.append(
                Feature(
                    f"{name}_change_{n}",
                    "trends",
                    f"{label} at the latest report minus {label} at the oldest of the last "
                    f"{n} reports.",
                    unit,
                    inputs,
                )
            )
        out.append(
            Feature(
                f"{name}_volatility_6",
                "trends",
                f"Standard deviation (ddof 1) of the five report-to-report changes of {label} "
                "over the last 6 reports.",
                unit,
                inputs,
            )
        )
    for name, label, inputs in (
        ("spi", "SPI", (*_EV,)),
        ("cpi", "CPI", (_R + "earned_value", _R + "actual_cost")),
    ):
        out.append(
            Feature(
                f"{name}_weeks_since_improved",
                "trends",
                f"Weeks from the last report at which {label} rose above the report before "
                f"it to the latest report (from the first report when it never rose); NaN "
                f"when the latest report has no {label}.",
                "weeks",
                (_R + "report_date", *inputs),
            )
        )
    return tuple(out)


FEATURES: tuple[Feature, ...] = (
    # --- baseline ------------------------------------------------------------------------
    Feature(
        "project_type",
        "baseline",
        "The project's declared type (it, construction, ...).",
        "category",
        (_P + "project_type",),
        "categorical",
    ),
    Feature(
        "portfolio",
        "baseline",
        "The programme or department the project belongs to.",
        "category",
        (_P + "portfolio",),
        "categorical",
    ),
    Feature(
        "log_budget",
        "baseline",
        "ln(1 + BAC), the approved budget at completion; NaN without a budget.",
        "ln(currency)",
        (_P + "budget",),
    ),
    Feature(
        "planned_duration_days",
        "baseline",
        "PD = planned_finish − planned_start.",
        "days",
        (_P + "planned_start", _P + "planned_finish"),
    ),
    Feature(
        "start_month",
        "baseline",
        "Calendar month of planned_start (1–12).",
        "month",
        (_P + "planned_start",),
    ),
    Feature(
        "start_quarter",
        "baseline",
        "Calendar quarter of planned_start (1–4): the season in which work starts.",
        "quarter",
        (_P + "planned_start",),
    ),
    Feature(
        "has_budget",
        "baseline",
        "1 when the baseline has a positive budget (BAC), else 0.",
        "flag",
        (_P + "budget",),
        "flag",
    ),
    # --- progress and earned value -----------------------------------------------------
    Feature(
        "elapsed_fraction",
        "progress",
        "(as_of − planned_start) / PD; may exceed 1 (past the planned finish).",
        "fraction of PD",
        (_P + "planned_start", _P + "planned_finish"),
    ),
    Feature(
        "percent_complete",
        "progress",
        "Physical percent complete at the latest report.",
        "percent",
        (_R + "percent_complete",),
    ),
    Feature(
        "progress_gap",
        "progress",
        "percent_complete / 100 − elapsed_fraction: progress behind (< 0) or ahead of the "
        "calendar.",
        "fraction",
        (_R + "percent_complete", _P + "planned_start", _P + "planned_finish"),
    ),
    Feature(
        "spi",
        "progress",
        "Schedule performance index EV / PV at the latest report; NaN when PV ≤ 0.",
        "ratio",
        _EV,
    ),
    Feature(
        "cpi",
        "progress",
        "Cost performance index EV / AC at the latest report; NaN when AC ≤ 0.",
        "ratio",
        (_R + "earned_value", _R + "actual_cost"),
    ),
    Feature(
        "earned_schedule_days",
        "progress",
        "Earned schedule (Lipke) ES in days after planned_start, at the latest report k. "
        "The PV curve is the reported one: the points (t_i, PV_i) of the reports up to k "
        "that carry PV (PV made non-decreasing by its running maximum), preceded by "
        "(0, 0). With C the last point whose PV_C ≤ EV_k: ES = t_C + (EV_k − PV_C) / "
        "(PV_{C+1} − PV_C) × (t_{C+1} − t_C); with reports every period this is Lipke's "
        "C + (EV − PV_C)/(PV_{C+1} − PV_C) periods. When EV_k is at or above the last "
        "reported PV the curve is closed by the baseline point (PD, BAC): ES = PD when "
        "EV ≥ BAC, else interpolated towards it (ES = t_C without a budget).",
        "days",
        (*_EV, _R + "report_date", _P + "planned_start", _P + "budget"),
    ),
    Feature(
        "spi_t",
        "progress",
        "SPI(t) = ES / AT, AT = t of the latest report (days since planned_start); NaN "
        "when AT ≤ 0.",
        "ratio",
        (*_EV, _R + "report_date", _P + "planned_start"),
    ),
    Feature(
        "sv_t_days",
        "progress",
        "SV(t) = ES − AT: schedule variance in time; negative is behind.",
        "days",
        (*_EV, _R + "report_date", _P + "planned_start"),
    ),
    Feature(
        "ieac_t_days",
        "progress",
        "IEAC(t) = PD / SPI(t): the duration forecast by earned schedule (= AT + "
        "(PD − ES)/SPI(t)); NaN when SPI(t) ≤ 0.",
        "days",
        (*_EV, _R + "report_date", _P + "planned_start", _P + "planned_finish"),
    ),
    Feature(
        "ieac_t_fraction",
        "progress",
        "IEAC(t) / PD = 1 / SPI(t): forecast duration as a fraction of the planned one.",
        "fraction of PD",
        (*_EV, _R + "report_date", _P + "planned_start", _P + "planned_finish"),
    ),
    Feature(
        "tcpi",
        "progress",
        "To-complete performance index (BAC − EV) / (BAC − AC) at the latest report; NaN "
        "when BAC − AC ≤ 0 (the budget is already spent: see spent_fraction).",
        "ratio",
        (_R + "earned_value", _R + "actual_cost", _P + "budget"),
    ),
    Feature(
        "eac_cpi_ratio",
        "progress",
        "EAC by CPI as a ratio to budget: (AC + (BAC − EV) / CPI) / BAC = 1 / CPI.",
        "ratio to BAC",
        (_R + "earned_value", _R + "actual_cost", _P + "budget"),
    ),
    Feature(
        "eac_cpi_spi_ratio",
        "progress",
        "EAC by CPI×SPI as a ratio to budget: (AC + (BAC − EV) / (CPI × SPI)) / BAC.",
        "ratio to BAC",
        (*_EV, _R + "actual_cost", _P + "budget"),
    ),
    Feature(
        "spent_fraction",
        "progress",
        "AC / BAC at the latest report.",
        "fraction of BAC",
        (_R + "actual_cost", _P + "budget"),
    ),
    Feature(
        "forecast_overrun",
        "progress",
        "forecast_cost / BAC − 1 at the latest report: the project manager's own overrun "
        "forecast (used by the PM-forecast baseline).",
        "fraction of BAC",
        (_R + "forecast_cost", _P + "budget"),
    ),
    Feature(
        "open_risks",
        "progress",
        "Open risks at the latest report.",
        "count",
        (_R + "open_risks",),
    ),
    Feature(
        "open_issues",
        "progress",
        "Open issues at the latest report.",
        "count",
        (_R + "open_issues",),
    ),
    Feature(
        "rag",
        "progress",
        "The PMO's own status colour at the latest report as a rank: green 0, amber 1, "
        "red 2; NaN when that report carries none (contract v1.1). Also the RAG rule's index.",
        "rank 0–2",
        (_R + "rag",),
    ),
    Feature(
        "has_progress_data",
        "progress",
        "1 when the latest report has percent_complete or earned_value, else 0.",
        "flag",
        (_R + "percent_complete", _R + "earned_value"),
        "flag",
    ),
    Feature(
        "has_earned_value",
        "progress",
        "1 when the latest report has both PV and EV (SPI and earned schedule computable).",
        "flag",
        _EV,
        "flag",
    ),
    Feature(
        "has_cost_data",
        "progress",
        "1 when the latest report has an actual cost and the baseline a positive budget "
        "(CPI, TCPI and EAC computable), else 0.",
        "flag",
        (_R + "actual_cost", _P + "budget"),
        "flag",
    ),
    # --- trends --------------------------------------------------------------------------
    *_trend_features(),
    # --- timeline ------------------------------------------------------------------------
    Feature(
        "n_reports",
        "timeline",
        "Number of status reports with report_date ≤ as_of (0 at approval).",
        "count",
        (_R + "report_date",),
    ),
    Feature(
        "days_since_last_report",
        "timeline",
        "as_of − report_date of the latest report; NaN without a report.",
        "days",
        (_R + "report_date",),
    ),
    Feature(
        "report_cadence_days",
        "timeline",
        "The project's usual reporting interval: median of its last (up to) 6 intervals "
        "between consecutive reports; NaN with fewer than 2 reports.",
        "days",
        (_R + "report_date",),
    ),
    Feature(
        "missing_report_rate",
        "timeline",
        "Share of expected reports that are missing: each interval between consecutive "
        "reports misses max(0, round(interval / cadence) − 1) reports, the cadence being "
        "report_cadence_days as known at the later report; rate = missed / (missed + "
        "intervals), summed up to the latest report; NaN with fewer than 2 reports.",
        "fraction",
        (_R + "report_date",),
    ),
    Feature(
        "forecast_slip",
        "timeline",
        "(forecast_finish − planned_finish) / PD at the latest report.",
        "fraction of PD",
        (_R + "forecast_finish", _P + "planned_finish", _P + "planned_start"),
    ),
    Feature(
        "forecast_revisions",
        "timeline",
        "Number of reports up to the latest whose forecast_finish differs from the previous "
        "forecast (planned_finish before the first one); NaN before any forecast.",
        "count",
        (_R + "forecast_finish", _P + "planned_finish"),
    ),
    Feature(
        "forecast_movement",
        "timeline",
        "Sum of |forecast_finish − previous forecast| over those revisions, / PD.",
        "fraction of PD",
        (_R + "forecast_finish", _P + "planned_finish", _P + "planned_start"),
    ),
    Feature(
        "milestone_slippage",
        "timeline",
        "milestones_planned − milestones_done at the latest report (milestones late).",
        "count",
        (_R + "milestones_planned", _R + "milestones_done"),
    ),
    Feature(
        "milestones_done",
        "timeline",
        "milestones_done at the latest report.",
        "count",
        (_R + "milestones_done",),
    ),
    Feature(
        "has_forecast",
        "timeline",
        "1 when the latest report has a forecast_finish, else 0.",
        "flag",
        (_R + "forecast_finish",),
        "flag",
    ),
    Feature(
        "has_milestones",
        "timeline",
        "1 when the latest report has milestones_done, else 0.",
        "flag",
        (_R + "milestones_done",),
        "flag",
    ),
    # --- changes -------------------------------------------------------------------------
    Feature(
        "changes_raised",
        "changes",
        "Change requests with raised_date ≤ as_of.",
        "count",
        (_C + "raised_date",),
    ),
    Feature(
        "changes_approved",
        "changes",
        "Of those, approved with decided_date ≤ as_of (a decision without a date is never "
        "counted: we cannot tell when it was known).",
        "count",
        (_C + "raised_date", _C + "decided_date", _C + "status"),
    ),
    Feature(
        "changes_pending",
        "changes",
        "Raised by as_of and not decided by as_of (decided_date missing or later), whatever "
        "their eventual decision.",
        "count",
        (_C + "raised_date", _C + "decided_date"),
    ),
    Feature(
        "change_rate_per_month",
        "changes",
        "changes_raised / max(as_of − planned_start, 30 days), per 30.44 days: the floor "
        "keeps the first weeks from exploding.",
        "changes per month",
        (_C + "raised_date", _P + "planned_start"),
    ),
    Feature(
        "changes_last_30d",
        "changes",
        "Change requests raised in (as_of − 30 days, as_of].",
        "count",
        (_C + "raised_date",),
    ),
    Feature(
        "changes_last_90d",
        "changes",
        "Change requests raised in (as_of − 90 days, as_of].",
        "count",
        (_C + "raised_date",),
    ),
    Feature(
        "approved_cost_impact",
        "changes",
        "Sum of cost_impact of the changes approved by as_of / BAC; NaN without a budget, "
        "or when approved changes exist but none states a cost impact.",
        "fraction of BAC",
        (_C + "cost_impact", _C + "decided_date", _C + "status", _P + "budget"),
    ),
    Feature(
        "approved_schedule_impact",
        "changes",
        "Sum of schedule_impact_days of the changes approved by as_of / PD; NaN when "
        "approved changes exist but none states a schedule impact.",
        "fraction of PD",
        (_C + "schedule_impact_days", _C + "decided_date", _C + "status"),
    ),
    Feature(
        "baseline_changes",
        "changes",
        "Changes of kind baseline approved by as_of (re-baselines).",
        "count",
        (_C + "kind", _C + "decided_date", _C + "status"),
    ),
    # --- portfolio context ---------------------------------------------------------------
    Feature(
        "closed_projects",
        "context",
        "Projects of the portfolio closed strictly before as_of with a delay label.",
        "count",
        (_P + "actual_finish", _P + "status"),
    ),
    Feature(
        "type_closed_projects",
        "context",
        "Of those, the projects of the same project_type.",
        "count",
        (_P + "actual_finish", _P + "status", _P + "project_type"),
    ),
    Feature(
        "closed_late_rate",
        "context",
        "Share of the closed_projects that were late (labels at the tolerances in force); "
        "NaN when there are none.",
        "fraction",
        (_P + "actual_finish", _P + "planned_finish", _P + "planned_start", _P + "status"),
    ),
    Feature(
        "type_late_rate",
        "context",
        "Late rate of the same type smoothed toward closed_late_rate: (late_type + m × "
        "closed_late_rate) / (n_type + m), m = 5 projects.",
        "fraction",
        (_P + "actual_finish", _P + "planned_finish", _P + "project_type", _P + "status"),
    ),
    Feature(
        "closed_overrun_rate",
        "context",
        "Share over budget of the projects closed before as_of that have an overrun label; "
        "NaN when there are none.",
        "fraction",
        (_P + "actual_finish", _P + "final_cost", _P + "budget", _P + "status"),
    ),
    Feature(
        "type_overrun_rate",
        "context",
        "Over-budget rate of the same type smoothed toward closed_overrun_rate, as type_late_rate.",
        "fraction",
        (_P + "actual_finish", _P + "final_cost", _P + "budget", _P + "project_type"),
    ),
)

# Contract v1.1's schedule-health columns (DCMA 14-point checks per snapshot, written by
# `forewarn import`; docs/import.md defines each), as they stood at the latest report. A
# family of their own: a portfolio whose reports carry none of them gets none of these
# columns (its feature table, models and goldens unchanged); one whose reports carry any
# gets them all, NaN where a report has none.
_HEALTH_LABELS: dict[str, tuple[str, str]] = {
    "dcma_logic": ("Share of incomplete activities missing a predecessor or a successor", "share"),
    "dcma_leads": ("Share of relationships with a lead (negative lag)", "share"),
    "dcma_lags": ("Share of relationships with a positive lag", "share"),
    "dcma_fs_share": ("Share of relationships that are finish-to-start", "share"),
    "dcma_hard_constraints": ("Share of incomplete activities with a hard constraint", "share"),
    "dcma_high_float": ("Share of incomplete activities with high total float", "share"),
    "dcma_negative_float": ("Share of incomplete activities with negative total float", "share"),
    "dcma_high_duration": ("Share of incomplete activities with a long baseline duration", "share"),
    "dcma_invalid_dates": (
        "Share of activities with actual dates after, or forecast dates before, the data date",
        "share",
    ),
    "dcma_resources": ("Share of incomplete activities with neither resources nor cost", "share"),
    "dcma_missed": ("Share of the activities due by the data date that finished late", "share"),
    "dcma_critical_path_test": ("1 when the critical path is unbroken, else 0", "0 or 1"),
    "cpli": ("The critical path length index, (CPL + total float) / CPL", "index"),
    "bei": ("The baseline execution index, activities done / activities due", "index"),
}
SCHEDULE_HEALTH_FEATURES: tuple[Feature, ...] = (
    *(
        Feature(
            name,
            "schedule",
            f"`{name}` of the latest report: {label[:1].lower()}{label[1:]}; NaN when that "
            "report has none.",
            unit,
            (_R + name,),
        )
        for name, (label, unit) in _HEALTH_LABELS.items()
    ),
    Feature(
        "has_schedule_health",
        "schedule",
        "1 when the latest report carries any schedule-health value, else 0.",
        "flag",
        tuple(_R + name for name in _HEALTH_LABELS),
        "flag",
    ),
)
SCHEDULE_HEALTH_NAMES: tuple[str, ...] = tuple(f.name for f in SCHEDULE_HEALTH_FEATURES)
# The report columns whose presence (any value) brings the family in.
SCHEDULE_HEALTH_INPUTS: tuple[str, ...] = tuple(_HEALTH_LABELS)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
_BY_NAME = {f.name: f for f in (*FEATURES, *SCHEDULE_HEALTH_FEATURES)}
if len(_BY_NAME) != len(FEATURES) + len(SCHEDULE_HEALTH_FEATURES):  # pragma: no cover
    raise RuntimeError("a feature is declared twice in features.catalogue")


def feature(name: str) -> Feature:
    """The declaration of one feature (fixed or schedule health)."""
    return _BY_NAME[name]


def _check_attributes(extra_attributes: Sequence[str]) -> None:
    clash = [a for a in extra_attributes if a in _BY_NAME or a in ("project_id", "as_of")]
    if clash:
        raise ValueError(
            f"extra attribute(s) {clash} have the name of a built-in feature: rename the "
            "column(s) in projects"
        )


def feature_names(extra_attributes: Sequence[str] = (), schedule_health: bool = False) -> list[str]:
    """The feature columns, in order: the catalogue's fixed ones, the schedule-health family
    when the reports carry it, then the declared extra attributes."""
    _check_attributes(extra_attributes)
    health = SCHEDULE_HEALTH_NAMES if schedule_health else ()
    return [*FEATURE_NAMES, *health, *extra_attributes]


def categorical_names(
    extra_attributes: Sequence[str] = (), frame: pd.DataFrame | None = None
) -> list[str]:
    """The categorical feature columns (object dtype in the frame; LightGBM categories).

    Extra attributes are categorical unless numeric in the data, so telling them apart needs
    the feature ``frame`` (or the ``projects`` table) when any are declared.
    """
    names = [f.name for f in FEATURES if f.kind == "categorical"]
    if extra_attributes:
        if frame is None:
            raise ValueError("pass the feature frame to tell numeric from categorical attributes")
        names += [a for a in extra_attributes if not pd.api.types.is_numeric_dtype(frame[a].dtype)]
    return names


def flag_names(schedule_health: bool = False) -> list[str]:
    """The 0/1 availability flags (with the schedule-health family's when it is in)."""
    declared = (*FEATURES, *SCHEDULE_HEALTH_FEATURES) if schedule_health else FEATURES
    return [f.name for f in declared if f.kind == "flag"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """docs/features.md: every declared feature by family, with definition, unit and inputs."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated from `features/catalogue.py` by `python -m features.catalogue > "
        "docs/features.md`; do not edit by hand (a test fails when this page is stale).",
        "",
        f"{len(FEATURES)} features in {len(FAMILIES) - 1} families; "
        f"{len(SCHEDULE_HEALTH_FEATURES)} schedule-health features when the status reports "
        "carry any of contract v1.1's schedule-health columns (a portfolio from `forewarn "
        "import`), after the fixed ones; then one column per extra project attribute "
        "declared in settings (`FOREWARN_EXTRA_ATTRIBUTES`): numeric in the data → numeric "
        "feature, otherwise categorical; they come last, in declared order.",
        "",
    ]
    lines += ["## Conventions", "", CONVENTIONS]
    for family, title in FAMILIES.items():
        members = [f for f in (*FEATURES, *SCHEDULE_HEALTH_FEATURES) if f.family == family]
        lines += [
            f"## {title} ({len(members)})",
            "",
            "| feature | kind | unit | definition | inputs |",
            "|---|---|---|---|---|",
        ]
        for f in members:
            inputs = ", ".join(f"`{i}`" for i in f.inputs)
            lines.append(
                f"| `{f.name}` | {f.kind} | {_cell(f.unit)} | {_cell(f.definition)} | {inputs} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - `python -m features.catalogue`
    print(render_markdown(), end="")
