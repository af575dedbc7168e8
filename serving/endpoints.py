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
from pydantic_core import ValidationError

from features.contract import PortfolioColumns
from serving import i18n
from serving.champions import Champions
from serving.intake import as_of_columns, combine_tables, request_tables
from serving.ranges import RANGE_COLUMNS, range_columns
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
    #: The language of the driver sentences and reasons (serving.i18n); keys never change.
    lang: str = "en"

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


ScoreCall = tuple[Sequence[ProjectIn], date | None]  # one /score request: projects, as_of


def score_projects(
    champions: Champions,
    projects: Sequence[ProjectIn],
    as_of: date | None,
    options: ScoringOptions,
) -> ScoreResponse:
    """POST /score: validate the contract rules, build features, score, in request order.

    Raises `pydantic_core.ValidationError` for a broken contract rule (the service: 400).
    """
    answer = score_requests(champions, [(projects, as_of)], options)[0]
    if isinstance(answer, ValidationError):
        raise answer
    return answer


def score_requests(
    champions: Champions, calls: Sequence[ScoreCall], options: ScoringOptions
) -> list[ScoreResponse | ValidationError]:
    """Several /score requests scored together, each answered as `score_projects` answers
    it alone.

    Their projects go through one feature build and one pass of each model (the service
    gathers the small requests that reach a worker together: per request, most of the cost
    of scoring one project is calls whose cost does not grow with the rows). A project's
    features and scores do not depend on the rows beside it (tests hold this), so the
    answers are the same. A request that breaks a contract rule gets its ValidationError;
    the others are answered.
    """
    with i18n.use(options.lang):
        return _score_requests(champions, calls, options)


def _score_requests(
    champions: Champions, calls: Sequence[ScoreCall], options: ScoringOptions
) -> list[ScoreResponse | ValidationError]:
    answers: list[ScoreResponse | ValidationError | None] = [None] * len(calls)
    groups: dict[tuple[str, ...], list[tuple[int, PortfolioColumns]]] = {}
    for k, (projects, _) in enumerate(calls):
        try:
            tables = request_tables(projects, options.extra_attributes)
        except ValidationError as exc:
            answers[k] = exc
            continue
        # Extra attributes are typed per request (numbers, else text): requests are scored
        # together only with requests whose attributes have the same types.
        kinds = tuple(tables.projects[a].dtype.str for a in options.extra_attributes)
        if champions.scoring_context is None:  # each request would be its own context
            kinds = (*kinds, str(k))
        groups.setdefault(kinds, []).append((k, tables))
    day = today()
    refs = model_refs(champions)
    for group in groups.values():
        dates = [calls[k][1] or day for k, _ in group]
        combined, as_of = combine_tables([t for _, t in group], dates, options.extra_attributes)
        features = portfolio_features(
            combined,
            as_of,
            champions.scoring_context,
            options.delay_tolerance,
            options.overrun_tolerance,
        )
        # score_frame's columns, unframed: a DataFrame would only be taken apart again here.
        columns = score_columns(
            champions.models(), features, options.red, options.amber, options.top_drivers
        )
        cols = {name: columns[name].tolist() for name in RISK_COLUMNS}
        if champions.quantiles:
            ranges = range_columns(
                champions.quantiles, features, combined.projects, options.delay_tolerance
            )
            cols.update({name: ranges[name].tolist() for name in RANGE_COLUMNS})
        start = 0
        for (k, tables), day_k in zip(group, dates, strict=True):
            ids = tables.projects["project_id"].tolist()
            reported = _reported_by(tables, day_k)
            answers[k] = ScoreResponse(
                projects=[
                    _project_score(
                        cols, start + i, str(pid), refs, _caveats(pid in reported, day_k)
                    )
                    for i, pid in enumerate(ids)
                ],
                thresholds=options.thresholds,
            )
            start += len(ids)
    assert all(a is not None for a in answers)
    return answers  # type: ignore[return-value]


def _reported_by(tables: PortfolioColumns, day: date) -> set[str]:
    """The projects of a request with a status report dated on or before `day`."""
    reports = tables.status_reports
    seen = reports["report_date"] <= np.datetime64(day, "ns")
    return set(reports["project_id"][seen].tolist())


def _caveats(reported: bool, day: date) -> list[str]:
    if reported:
        return []
    return [
        f"no status report on or before {day.isoformat()}: scored from the baseline alone "
        "(planned dates, budget, type), so the risk is that of such a project at approval, "
        "not a reading of its progress"
    ]


def _project_score(
    cols: dict[str, list[Any]],
    i: int,
    project_id: str,
    refs: list[ModelRef],
    caveats: list[str],
) -> ProjectScore:
    return ProjectScore(
        project_id=project_id,
        as_of=pd.Timestamp(cols["as_of"][i]).date(),
        p_late=_probability(cols["p_late"][i]),
        p_over_budget=_probability(cols["p_over_budget"][i]),
        rag_late=cols["rag_late"][i],
        rag_over_budget=cols["rag_over_budget"][i],
        rag=cols["rag"][i],
        late_reason=i18n.reason(cols["late_reason"][i]),
        over_budget_reason=i18n.reason(cols["over_budget_reason"][i]),
        drivers_late=cols["drivers_late"][i],
        drivers_over_budget=cols["drivers_over_budget"][i],
        models=refs,
        caveats=caveats,
        **_ranges(cols, i),
    )


def _ranges(cols: dict[str, list[Any]], i: int) -> dict[str, Any]:
    """The finish and cost ranges of row i, where the quantile champions gave them."""
    if "finish_p50" not in cols:
        return {}
    out: dict[str, Any] = {}
    for name in RANGE_COLUMNS:
        value = cols[name][i]
        if name.startswith("finish_p"):
            out[name] = None if pd.isna(value) else pd.Timestamp(value).date()
        elif name.startswith("cost_p"):
            out[name] = _probability(value)
        else:
            out[name] = i18n.reason(value)
    return out


def explain_project(
    champions: Champions, project: ProjectIn, as_of: date | None, options: ScoringOptions
) -> ExplainResponse:
    """POST /explain: each risk's full SHAP vector, base value and feature values."""
    with i18n.use(options.lang):
        return _explain_project(champions, project, as_of, options)


def _explain_project(
    champions: Champions, project: ProjectIn, as_of: date | None, options: ScoringOptions
) -> ExplainResponse:
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
            RiskExplanation(
                model=refs[e["target"]],
                space=CONTRIBUTION_SPACE,
                **{**e, "reason": i18n.reason(e["reason"])},
            )
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
                verdict=c.verdict,
                recipe=c.tags.get("recipe"),
                source=c.source,
                n_features=len(c.model.feature_names),
                tags=c.tags,
            )
            for c in champions.by_target.values()
        ],
        thresholds=options.thresholds,
        top_drivers=options.top_drivers,
    )
