"""What the service accepts: projects in data contract v1, documented field by field.

Field names and types are contract v1's (`features.contract`), and a test keeps the two in
step; bounds, allowed values and the date rule are read from it. A project carries its own
status reports and changes, so their `project_id` is optional (when given it must match the
project's). Unknown fields are refused rather than ignored: a misspelt `budjet` would
otherwise silently score a project as having no budget.
Rules that span rows or tables (a report before the project's start, say) are checked
afterwards by `serving.intake`, from the same declarations a file load runs.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.contract import (
    DATE_RULE,
    ChangeKind,
    ChangeStatus,
    ProjectStatus,
    RagColour,
    column,
    in_contract_years,
)
from serving import i18n

# The contract's date rule as OpenAPI can state it: a pattern on the date string.
_YEAR = "(167[89]|16[89][0-9]|1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9]|226[01])"
DATE_PATTERN = f"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def _measure(table: str, name: str, description: str) -> Any:
    """An optional number field bounded as contract v1 bounds the column (`ge`/`le`, which
    pydantic enforces and OpenAPI shows as minimum/maximum)."""
    col = column(table, name)
    return Field(None, ge=col.minimum, le=col.maximum, description=description)


def _contract_day(day: date) -> date:
    if not in_contract_years(day):
        raise PydanticCustomError("date_range", DATE_RULE)
    return day


# What the schema says is what is taken: pydantic alone would read 0 as the date 1970-01-01
# and "12" or true as a number, so a client breaking the schema would not hear of it.
def _not_a_number(value: Any) -> Any:
    if isinstance(value, (int, float)):
        raise PydanticCustomError("date_type", "Input should be a date written YYYY-MM-DD")
    return value


def _not_text(value: Any) -> Any:
    if isinstance(value, (str, bool, bytes)):
        raise PydanticCustomError(
            "number_type", "Input should be a valid number, not text or a boolean"
        )
    return value


ContractDate = Annotated[
    date,
    BeforeValidator(_not_a_number),
    AfterValidator(_contract_day),
    Field(json_schema_extra={"pattern": DATE_PATTERN}),
]

# NaN and infinity are not numbers a PMO reports; JSON has no such values either.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class StatusReportIn(BaseModel):
    """One status report of a project: the `status_reports` table of contract v1."""

    model_config = _STRICT

    project_id: str | None = Field(
        None, description="optional; when given it must equal the enclosing project's"
    )
    report_date: ContractDate = Field(
        description="reporting date (YYYY-MM-DD); unique per project, and not before the "
        "project's start (the earlier of planned_start and actual_start)"
    )
    percent_complete: float | None = _measure(
        "status_reports", "percent_complete", "physical progress, 0–100"
    )
    planned_value: float | None = _measure(
        "status_reports", "planned_value", "cumulative planned value (PV)"
    )
    earned_value: float | None = _measure(
        "status_reports", "earned_value", "cumulative earned value (EV)"
    )
    actual_cost: float | None = _measure(
        "status_reports", "actual_cost", "cumulative actual cost (AC)"
    )
    forecast_finish: ContractDate | None = Field(
        None, description="the project manager's current forecast finish date"
    )
    forecast_cost: float | None = _measure(
        "status_reports",
        "forecast_cost",
        "the project manager's current forecast cost at completion",
    )
    milestones_planned: int | None = _measure(
        "status_reports", "milestones_planned", "milestones due by this date per the baseline"
    )
    milestones_done: int | None = _measure(
        "status_reports", "milestones_done", "milestones done by this date"
    )
    open_risks: int | None = _measure("status_reports", "open_risks", "open risks on this date")
    open_issues: int | None = _measure("status_reports", "open_issues", "open issues on this date")
    rag: RagColour | None = Field(
        None, description="the PMO's own status colour for this report (contract v1.1)"
    )
    # --- v1.1 schedule health: the DCMA checks `forewarn import` writes (docs/import.md) ---
    dcma_logic: float | None = _measure(
        "status_reports", "dcma_logic", "share of open activities missing a predecessor/successor"
    )
    dcma_leads: float | None = _measure(
        "status_reports", "dcma_leads", "share of links with a lead"
    )
    dcma_lags: float | None = _measure("status_reports", "dcma_lags", "share of links with a lag")
    dcma_fs_share: float | None = _measure(
        "status_reports", "dcma_fs_share", "share of links that are finish-to-start"
    )
    dcma_hard_constraints: float | None = _measure(
        "status_reports", "dcma_hard_constraints", "share of open activities with a hard constraint"
    )
    dcma_high_float: float | None = _measure(
        "status_reports", "dcma_high_float", "share of open activities with total float > 44 days"
    )
    dcma_negative_float: float | None = _measure(
        "status_reports", "dcma_negative_float", "share of open activities with negative float"
    )
    dcma_high_duration: float | None = _measure(
        "status_reports", "dcma_high_duration", "share of open activities longer than 44 days"
    )
    dcma_invalid_dates: float | None = _measure(
        "status_reports",
        "dcma_invalid_dates",
        "share of activities with invalid actual/forecast dates",
    )
    dcma_resources: float | None = _measure(
        "status_reports",
        "dcma_resources",
        "share of open activities with neither resources nor cost",
    )
    dcma_missed: float | None = _measure(
        "status_reports", "dcma_missed", "share of activities due by now that finished late"
    )
    dcma_critical_path_test: float | None = _measure(
        "status_reports", "dcma_critical_path_test", "1 when the critical path is unbroken, else 0"
    )
    cpli: float | None = Field(None, description="critical path length index")
    bei: float | None = _measure("status_reports", "bei", "baseline execution index")

    @field_validator(
        "percent_complete",
        "planned_value",
        "earned_value",
        "actual_cost",
        "forecast_cost",
        "milestones_planned",
        "milestones_done",
        "open_risks",
        "open_issues",
        mode="before",
    )
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _not_text(value)


class ChangeIn(BaseModel):
    """One change request of a project: the `changes` table of contract v1."""

    model_config = _STRICT

    project_id: str | None = Field(
        None, description="optional; when given it must equal the enclosing project's"
    )
    raised_date: ContractDate = Field(description="when the change request was raised")
    change_id: str | None = Field(None, description="the change request's identifier")
    kind: ChangeKind | None = Field(None, description="what the change touches")
    decided_date: ContractDate | None = Field(
        None, description="when it was decided, if it has been; not before raised_date"
    )
    status: ChangeStatus | None = Field(None, description="the decision")
    cost_impact: float | None = Field(None, description="requested or approved cost impact")
    schedule_impact_days: float | None = Field(None, description="schedule impact in days")

    @field_validator("cost_impact", "schedule_impact_days", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _not_text(value)


class ProjectIn(BaseModel):
    """One project: its approved baseline (the `projects` row), status reports and changes."""

    model_config = _STRICT

    project_id: str = Field(
        min_length=1, pattern=r"\S", description="unique identifier (once per request)"
    )
    name: str | None = Field(None, description="display name")
    portfolio: str | None = Field(None, description="programme or department")
    project_type: str | None = Field(
        None, description="kind of project (it, construction, ...), as in the training data"
    )
    planned_start: ContractDate = Field(description="approved baseline start")
    planned_finish: ContractDate = Field(
        description="approved baseline finish; must be after planned_start"
    )
    budget: float | None = _measure(
        "projects",
        "budget",
        "budget at completion (BAC) of the baseline; without it the overrun "
        "risk is not scored and a reason is given instead",
    )
    actual_start: ContractDate | None = Field(None, description="actual start")
    actual_finish: ContractDate | None = Field(
        None,
        description="set once delivered; not before actual_start, and required when status "
        "is closed",
    )
    final_cost: float | None = _measure("projects", "final_cost", "set once closed")
    status: ProjectStatus | None = Field(None, description="derived from actual_finish when absent")
    attributes: dict[str, str | float | None] = Field(
        default_factory=dict,
        description="extra project columns (kept as attributes; features only when listed "
        "in FOREWARN_EXTRA_ATTRIBUTES)",
    )
    status_reports: list[StatusReportIn] = Field(
        default_factory=list, description="the project's status reports, any order"
    )
    changes: list[ChangeIn] = Field(
        default_factory=list, description="the project's change requests, any order"
    )

    @field_validator("budget", "final_cost", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _not_text(value)

    @field_validator("attributes", mode="before")
    @classmethod
    def _attribute_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, given in value.items():
                if isinstance(given, bool):
                    raise PydanticCustomError(
                        "attribute_type",
                        "attribute {name} must be text, a number or null, not a boolean",
                        {"name": str(name)[:100]},
                    )
        return value

    @model_validator(mode="after")
    def _rows_belong_to_project(self) -> ProjectIn:
        given = [("status_reports", i, r.project_id) for i, r in enumerate(self.status_reports)]
        given += [("changes", i, c.project_id) for i, c in enumerate(self.changes)]
        for table, i, project_id in given:
            if project_id is not None and project_id != self.project_id:
                raise ValueError(
                    f"{table}[{i}].project_id {project_id!r} is not this project's "
                    f"({self.project_id!r}): send each project's rows inside it"
                )
        return self


_EXAMPLE_PROJECT: dict[str, Any] = {
    "project_id": "P-0042",
    "name": "Billing platform migration",
    "portfolio": "Finance IT",
    "project_type": "it",
    "planned_start": "2024-01-08",
    "planned_finish": "2024-12-20",
    "budget": 1_200_000,
    "actual_start": "2024-01-15",
    "status": "active",
    "status_reports": [
        {
            "report_date": "2024-04-29",
            "percent_complete": 27,
            "planned_value": 360_000,
            "earned_value": 330_000,
            "actual_cost": 345_000,
            "forecast_finish": "2024-12-20",
            "forecast_cost": 1_200_000,
            "milestones_planned": 3,
            "milestones_done": 3,
            "open_risks": 4,
            "open_issues": 2,
        },
        {
            "report_date": "2024-06-24",
            "percent_complete": 36,
            "planned_value": 540_000,
            "earned_value": 440_000,
            "actual_cost": 520_000,
            "forecast_finish": "2025-01-31",
            "forecast_cost": 1_350_000,
            "milestones_planned": 5,
            "milestones_done": 4,
            "open_risks": 7,
            "open_issues": 5,
        },
    ],
    "changes": [
        {
            "change_id": "CR-7",
            "raised_date": "2024-05-13",
            "kind": "scope",
            "decided_date": "2024-05-27",
            "status": "approved",
            "cost_impact": 60_000,
            "schedule_impact_days": 21,
        },
        {"change_id": "CR-9", "raised_date": "2024-06-10", "kind": "schedule", "status": "pending"},
    ],
}


class ScoreRequest(BaseModel):
    """Projects to score, each with its baseline, status reports and changes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"as_of": "2024-06-30", "projects": [_EXAMPLE_PROJECT]}},
    )

    projects: list[ProjectIn] = Field(min_length=1, description="the projects to score")
    as_of: ContractDate | None = Field(
        None,
        description="the date the projects are seen from: only reports dated on or before "
        "it and changes raised by it count; default today (UTC)",
    )
    lang: str | None = Field(
        None,
        description="language of the driver sentences and reasons: en or zh-CN; default the "
        "Accept-Language header, else the service's FOREWARN_LANG (en). Keys and feature "
        "codes never change",
    )

    @field_validator("lang")
    @classmethod
    def _known_lang(cls, value: str | None) -> str | None:
        return _language(value)

    @classmethod
    def limited_to(cls, max_projects: int) -> type[ScoreRequest]:
        """This model with at most `max_projects` projects, so OpenAPI shows the limit too."""
        return create_model(
            "ScoreRequest",
            __base__=cls,
            __doc__=cls.__doc__,
            projects=(
                list[ProjectIn],
                Field(
                    min_length=1,
                    max_length=max_projects,
                    description=f"the projects to score, at most {max_projects} per request",
                ),
            ),
        )


class ExplainRequest(BaseModel):
    """One project to explain in full."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"as_of": "2024-06-30", "project": _EXAMPLE_PROJECT}},
    )

    project: ProjectIn = Field(description="the project to explain")
    as_of: ContractDate | None = Field(
        None, description="the date the project is seen from; default today (UTC)"
    )
    lang: str | None = Field(
        None,
        description="language of the driver sentences and reasons: en or zh-CN; default the "
        "Accept-Language header, else the service's FOREWARN_LANG (en)",
    )

    @field_validator("lang")
    @classmethod
    def _known_lang(cls, value: str | None) -> str | None:
        return _language(value)


def _language(value: str | None) -> str | None:
    """A request's language as en or zh-CN (pydantic answers any other with a 400)."""
    return None if value is None else i18n.check(value)
