"""A small typed client for the Forewarn service (httpx).

    from serving.client import ForewarnClient, projects_from_portfolio

    with ForewarnClient("http://127.0.0.1:3000", api_key=os.environ["FOREWARN_API_KEY"]) as fw:
        result = fw.score(projects_from_portfolio(portfolio, ["P-00042"]), as_of=date(2024, 6, 30))
        for project in result.projects:
            print(project.project_id, project.rag, project.p_late, project.p_over_budget)

Errors come back as `ForewarnError` with the HTTP status and the service's message (for a
400, one entry per offending field: where it is and which rule it breaks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import pandas as pd

from features.contract import COLUMNS, Portfolio, column_names
from serving.request_models import ChangeIn, ProjectIn, StatusReportIn
from serving.response_models import ExplainResponse, ModelsResponse, ScoreResponse

ProjectLike = ProjectIn | Mapping[str, Any]

# FOREWARN_MAX_PROJECTS_PER_REQUEST's default, for a service whose schema does not say.
DEFAULT_MAX_PROJECTS = 500


class ForewarnError(Exception):
    """The service refused a request: status code, its message and per-field details."""

    def __init__(self, status: int, error: str, detail: list[dict[str, Any]] | None = None):
        self.status = status
        self.error = error
        self.detail = detail or []
        where = "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in self.detail
        )
        super().__init__(f"HTTP {status}: {error}" + (f" ({where})" if where else ""))


class ForewarnClient:
    """Calls /score, /explain and /models; reuses one connection pool."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:3000",
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_projects: int | None = None,
    ) -> None:
        """`max_projects`: projects per /score request; None reads the service's limit from
        its /docs.json on the first `score`."""
        self.max_projects = max_projects
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> ForewarnClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def score(self, projects: Iterable[ProjectLike], as_of: date | None = None) -> ScoreResponse:
        """p_late, p_over_budget, RAG and top drivers of each project, seen from `as_of`.

        More projects than the service takes in one request go in several requests, one
        after the other; the answer is theirs together, in the order sent.
        """
        payloads = [_payload(p) for p in projects]
        limit = self.projects_per_request()
        answers = [
            ScoreResponse.model_validate(
                self._post("/score", {"projects": payloads[i : i + limit], "as_of": _day(as_of)})
            )
            for i in range(0, max(len(payloads), 1), limit)
        ]
        if len(answers) == 1:
            return answers[0]
        return ScoreResponse(
            projects=[p for a in answers for p in a.projects], thresholds=answers[0].thresholds
        )

    def projects_per_request(self) -> int:
        """The most projects one /score request may carry (the service's, from /docs.json)."""
        if self.max_projects is None:
            spec = self._json(self._http.get("/docs.json"))
            try:
                body = spec["paths"]["/score"]["post"]["requestBody"]["content"]
                limit = body["application/json"]["schema"]["properties"]["projects"]["maxItems"]
            except (KeyError, TypeError):
                limit = DEFAULT_MAX_PROJECTS
            self.max_projects = int(limit)
        return self.max_projects

    def explain(self, project: ProjectLike, as_of: date | None = None) -> ExplainResponse:
        """The full SHAP vector of each risk of one project (log-odds)."""
        body = {"project": _payload(project), "as_of": _day(as_of)}
        return ExplainResponse.model_validate(self._post("/explain", body))

    def models(self) -> ModelsResponse:
        """The champion models behind the service."""
        return ModelsResponse.model_validate(self._json(self._http.get("/models")))

    def ready(self) -> bool:
        """True once the service has loaded its models (GET /readyz)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self._http.post(path, json=body))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                data = response.json()
            except ValueError:
                data = {"error": response.text[:500]}
            if isinstance(data, list) and data and isinstance(data[0], dict):
                data = data[0]  # BentoML wraps some errors in a list
            data = data if isinstance(data, dict) else {"error": str(data)}
            raise ForewarnError(
                response.status_code, str(data.get("error", "")), data.get("detail")
            )
        return response.json()


def _payload(project: ProjectLike) -> dict[str, Any]:
    if isinstance(project, ProjectIn):
        return project.model_dump(mode="json", exclude_none=True)
    return dict(project)


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


# ----------------------------------------------------------- from contract files to requests


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, np.generic):
        return value.item()
    return value


# Integer columns load as floats when a value is missing; the request models take ints.
_INTEGERS = {c.name for table in COLUMNS.values() for c in table if c.kind == "integer"}


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    present = [c for c in columns if c in frame.columns]
    if not present:
        return [{} for _ in range(len(frame))]
    rows = [
        {str(k): _cell(v) for k, v in row.items()}
        for row in frame[present].astype(object).to_dict("records")
    ]
    whole = [c for c in present if c in _INTEGERS]
    for row in rows:
        for c in whole:
            value = row[c]
            if isinstance(value, float) and value.is_integer():
                row[c] = int(value)
    return rows


def projects_from_portfolio(
    portfolio: Portfolio, project_ids: Sequence[str] | None = None
) -> list[ProjectIn]:
    """Request models for projects of a loaded portfolio (all, or `project_ids` in order).

    Each project carries its baseline row, its status reports and its changes; extra
    project columns go in `attributes`.
    """
    projects = portfolio.projects
    if project_ids is not None:
        order = pd.Index(projects["project_id"]).get_indexer(list(project_ids))
        if (order < 0).any():
            unknown = [p for p, i in zip(project_ids, order, strict=True) if i < 0]
            raise KeyError(f"not in the portfolio: {unknown[:5]}")
        projects = projects.iloc[order]
    wanted = set(projects["project_id"])
    by_project: dict[str, dict[str, list[dict[str, Any]]]] = {
        str(p): {"status_reports": [], "changes": []} for p in wanted
    }
    for table in ("status_reports", "changes"):
        frame = getattr(portfolio, table)
        frame = frame[frame["project_id"].isin(wanted)]
        for row in _records(frame, column_names(table)):
            by_project[str(row.pop("project_id"))][table].append(row)
    contract = column_names("projects")
    extra = [c for c in projects.columns if c not in contract]
    out: list[ProjectIn] = []
    for base, attrs in zip(_records(projects, contract), _records(projects, extra), strict=True):
        children = by_project[str(base["project_id"])]
        out.append(
            ProjectIn(
                **base,
                attributes=attrs,
                status_reports=[StatusReportIn(**r) for r in children["status_reports"]],
                changes=[ChangeIn(**c) for c in children["changes"]],
            )
        )
    return out
