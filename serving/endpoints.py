"""What each route answers, as plain functions of the loaded champions.

The BentoML service calls these, and so do the benchmark's in-process and bare-FastAPI
baselines: the three measure the same work. Settings arrive as a `ScoringOptions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from serving.champions import Champions
from serving.intake import as_of_columns, request_tables
from serving.request_models import ProjectIn
from serving.response_models import (
    CONTRIBUTION_SPACE,
    ExplainResponse,
    ModelInfo,
    ModelRef,
    ModelsResponse,
    ProjectScore,
    RiskExplanation,
    ScoreResponse,
    Thresholds,
)
from serving.scoring import RISK_COLUMNS, explain_row, portfolio_features, score_columns


@dataclass(frozen=True)
class ScoringOptions:
    """The settings scoring depends on (the service takes them from FOREWARN_*)."""

    red: float = 0.60
    amber: float = 0.35
    top_drivers: int = 3
    delay_tolerance: float = 0.05
    overrun_tolerance: float = 0.05
    extra_attributes: tuple[str, ...] = ()

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(red=self.red, amber=self.amber)


def today() -> date:
    """The default `as_of`: today in UTC."""
    return datetime.now(UTC).date()


def model_refs(champions: Champions) -> list[ModelRef]:
    return [
        ModelRef(target=c.target, name=c.name, version=c.version)
        for c in champions.by_target.values()
    ]


def _probability(value: Any) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def score_projects(
    champions: Champions,
    projects: Sequence[ProjectIn],
    as_of: date | None,
    options: ScoringOptions,
) -> ScoreResponse:
    """POST /score: validate the contract rules, build features, score, in request order."""
    tables = request_tables(projects, options.extra_attributes)
    features = portfolio_features(
        tables,
        as_of_columns(tables, as_of or today()),
        champions.scoring_context,
        options.delay_tolerance,
        options.overrun_tolerance,
    )
    # score_frame's columns, unframed: a DataFrame would only be taken apart again here.
    columns = score_columns(
        champions.models(), features, options.red, options.amber, options.top_drivers
    )
    refs = model_refs(champions)
    cols = {name: columns[name].tolist() for name in RISK_COLUMNS}
    scores = [
        ProjectScore(
            project_id=str(cols["project_id"][i]),
            as_of=pd.Timestamp(cols["as_of"][i]).date(),
            p_late=_probability(cols["p_late"][i]),
            p_over_budget=_probability(cols["p_over_budget"][i]),
            rag_late=cols["rag_late"][i],
            rag_over_budget=cols["rag_over_budget"][i],
            rag=cols["rag"][i],
            late_reason=cols["late_reason"][i],
            over_budget_reason=cols["over_budget_reason"][i],
            drivers_late=cols["drivers_late"][i],
            drivers_over_budget=cols["drivers_over_budget"][i],
            models=refs,
        )
        for i in range(len(features))
    ]
    return ScoreResponse(projects=scores, thresholds=options.thresholds)


def explain_project(
    champions: Champions, project: ProjectIn, as_of: date | None, options: ScoringOptions
) -> ExplainResponse:
    """POST /explain: each risk's full SHAP vector, base value and feature values."""
    tables = request_tables(
        [project], options.extra_attributes, title="ExplainRequest", loc_prefix=("project",)
    )
    day = as_of or today()
    features = portfolio_features(
        tables,
        as_of_columns(tables, day),
        champions.scoring_context,
        options.delay_tolerance,
        options.overrun_tolerance,
    )
    explained = explain_row(
        champions.models(), features, options.red, options.amber, options.top_drivers
    )
    refs = {r.target: r for r in model_refs(champions)}
    return ExplainResponse(
        project_id=project.project_id,
        as_of=day,
        risks=[
            RiskExplanation(model=refs[e["target"]], space=CONTRIBUTION_SPACE, **e)
            for e in explained
        ],
    )


def describe_models(champions: Champions, options: ScoringOptions) -> ModelsResponse:
    """GET /models: the champions behind the answers."""
    return ModelsResponse(
        models=[
            ModelInfo(
                target=c.target,
                name=c.name,
                version=c.version,
                run_id=c.run_id,
                trained_at=c.trained_at,
                beats_baselines=c.beats_baselines,
                source=c.source,
                n_features=len(c.model.feature_names),
                tags=c.tags,
            )
            for c in champions.by_target.values()
        ],
        thresholds=options.thresholds,
        top_drivers=options.top_drivers,
    )
