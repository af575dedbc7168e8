"""What the service answers, documented field by field.

Probabilities are calibrated; SHAP contributions are in the model's raw space (log-odds
before calibration), so they add up to the raw margin, not to the probability.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

Rag = Literal["red", "amber", "green", "n/a"]
Target = Literal["delay", "overrun"]

CONTRIBUTION_SPACE = "log-odds (raw LightGBM margin, before calibration)"


class ModelRef(BaseModel):
    """Which registered model produced a score."""

    target: Target = Field(description="delay (p_late) or overrun (p_over_budget)")
    name: str = Field(description="registered model name, e.g. forewarn-delay")
    version: str = Field(description="registered model version")


class Driver(BaseModel):
    """One feature that moved a project's risk, with a sentence a PMO reads."""

    feature: str = Field(description="feature name (see docs/features.md)")
    value: float | str | None = Field(description="the feature's value for this project")
    contribution: float = Field(
        description="SHAP contribution in log-odds; positive raises the risk, negative lowers it"
    )
    sentence: str = Field(
        description="the feature in words, e.g. 'CPI fell from 0.98 to 0.86 over the last 8 weeks'"
    )


class ProjectScore(BaseModel):
    """The two risks of one project, seen from `as_of`."""

    project_id: str = Field(description="the project's identifier, as sent")
    as_of: date = Field(description="the date the project was seen from")
    p_late: float | None = Field(
        description="probability of finishing late (slip above the delay tolerance); null "
        "with late_reason when it cannot be scored"
    )
    p_over_budget: float | None = Field(
        description="probability of overrunning the budget by more than the tolerance; null "
        "with over_budget_reason when it cannot be scored (no budget, say)"
    )
    rag_late: Rag = Field(description="red/amber/green for p_late by the service's cut-offs")
    rag_over_budget: Rag = Field(description="red/amber/green for p_over_budget")
    rag: Rag = Field(description="overall: the worse of the two scored risks")
    late_reason: str | None = Field(description="why p_late is null, else null")
    over_budget_reason: str | None = Field(description="why p_over_budget is null, else null")
    drivers_late: list[Driver] = Field(
        description="the features that moved p_late most, largest |contribution| first"
    )
    drivers_over_budget: list[Driver] = Field(
        description="the features that moved p_over_budget most, largest |contribution| first"
    )
    finish_p50: date | None = Field(
        None,
        description="finish date with a 50 % chance of being met (forewarn-finish); null "
        "with finish_range_reason when there is no range",
    )
    finish_p80: date | None = Field(None, description="finish date met with 80 % chance")
    finish_p90: date | None = Field(None, description="finish date met with 90 % chance")
    cost_p50: float | None = Field(
        None,
        description="final cost (budget's currency) with a 50 % chance of not being "
        "exceeded (forewarn-cost); null with cost_range_reason without a budget",
    )
    cost_p80: float | None = Field(None, description="final cost not exceeded with 80 % chance")
    cost_p90: float | None = Field(None, description="final cost not exceeded with 90 % chance")
    finish_range_reason: str | None = Field(None, description="why finish_p* are null")
    cost_range_reason: str | None = Field(None, description="why cost_p* are null")
    models: list[ModelRef] = Field(description="the models behind these scores")
    caveats: list[str] = Field(
        default_factory=list,
        description="what limits these scores, in words (a project with no status report "
        "by as_of is scored from its baseline alone); empty when nothing does",
    )


class Thresholds(BaseModel):
    """The RAG cut-offs in force."""

    red: float = Field(description="a probability at or above this is red")
    amber: float = Field(description="at or above this (and below red) is amber")


class ScoreResponse(BaseModel):
    """Scores for every project of the request, in request order."""

    projects: list[ProjectScore] = Field(description="one entry per project sent")
    thresholds: Thresholds = Field(description="the RAG cut-offs used")


class FeatureContribution(BaseModel):
    """One entry of a SHAP vector."""

    feature: str = Field(description="feature name")
    value: float | str | None = Field(description="the feature's value (null when missing)")
    contribution: float = Field(description="SHAP contribution in log-odds")


class RiskExplanation(BaseModel):
    """The full SHAP vector of one risk of one project."""

    target: Target = Field(description="delay or overrun")
    model: ModelRef = Field(description="the model explained")
    space: str = Field(description="the space of base_value and contributions")
    probability: float | None = Field(description="calibrated probability (null: see reason)")
    rag: Rag = Field(description="red/amber/green for the probability")
    reason: str | None = Field(description="why the risk is not scored, else null")
    base_value: float = Field(
        description="expected raw margin over the training data (the SHAP base value)"
    )
    raw_margin: float = Field(description="base_value + sum(contributions): the model's output")
    contributions: list[FeatureContribution] = Field(
        description="every feature, largest |contribution| first"
    )
    drivers: list[Driver] = Field(description="the top drivers, phrased for a PMO")


class ExplainResponse(BaseModel):
    """Both risks of one project, fully explained."""

    project_id: str = Field(description="the project's identifier")
    as_of: date = Field(description="the date the project was seen from")
    risks: list[RiskExplanation] = Field(description="delay, then overrun")


class ModelInfo(BaseModel):
    """One champion model as loaded by the service."""

    target: Target = Field(description="delay or overrun")
    name: str = Field(description="registered model name")
    version: str = Field(description="registered model version")
    run_id: str | None = Field(description="the MLflow run that trained it")
    trained_at: str | None = Field(description="when it was trained (ISO 8601), when recorded")
    verdict: Literal["better", "cant_tell", "worse"] | None = Field(
        description="training's verdict against the best applicable PMO rule (SPI, SPI(t), "
        "CPI, TCPI, the PM's forecast, the PMO's RAG) on held-out projects: better or worse "
        "only when the paired 95% interval of the AUC difference excludes zero, else "
        "cant_tell; null when not recorded"
    )
    recipe: str | None = Field(
        None,
        description="the champion's recipe: rule, logistic, stack, boost_from_rule or lightgbm",
    )
    source: Literal["mlflow", "bento"] = Field(
        description="where it was loaded from: the MLflow registry or the Bento's model store"
    )
    n_features: int = Field(description="number of input features")
    tags: dict[str, str] = Field(description="every tag training recorded on the version")


class ModelsResponse(BaseModel):
    """The models behind the service."""

    models: list[ModelInfo] = Field(description="delay, then overrun")
    thresholds: Thresholds = Field(description="the RAG cut-offs in force")
    top_drivers: int = Field(description="drivers returned per risk by /score")


class FieldError(BaseModel):
    """One broken rule of a refused request."""

    loc: list[str | int] = Field(
        description="where in the request, e.g. ['projects', 0, 'status_reports', 3, 'report_date']"
    )
    msg: str = Field(description="the rule it breaks, in words")
    type: str = Field(description="the rule's code, e.g. greater_than_equal, contract_rule")


class ErrorResponse(BaseModel):
    """Every refusal (400, 401, 408, 413, 429, 503, ...) has this shape."""

    error: str = Field(description="what went wrong and what to do, in one sentence")
    detail: list[FieldError] = Field(
        default_factory=list,
        description="for a 400, one entry per broken rule; empty (or absent) otherwise",
    )
