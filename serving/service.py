"""The Forewarn BentoML service: champion models, feature code and TreeSHAP in one process.

An entry point, so it reads `forewarn.settings` (FOREWARN_* environment variables) and
hands plain values to library code; the class stays thin. Routes:

* ``POST /score`` — many projects: p_late, p_over_budget, RAG, top drivers, model versions
* ``POST /explain`` — one project: the full SHAP vector of each risk, in log-odds
* ``GET /models`` — the champions: versions, runs, whether they beat the PMO rules
* ``GET /livez``, ``GET /readyz`` — probes (ready once the models are loaded)
* ``GET /metrics`` — Prometheus metrics by route (serving.metrics)
* ``GET /docs.json`` — OpenAPI, with an example request
* ``GET /views/explain/{project_id}`` — the explanation page (portfolio at FOREWARN_DATA)

Every route but the probes needs ``Authorization: Bearer $FOREWARN_API_KEY`` when a key is
set, and the service will not listen off loopback without one. Serve it with
``forewarn serve`` or ``bentoml serve serving.service:Forewarn``.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import replace
from datetime import date
from typing import Any

import anyio
import anyio.to_thread
import bentoml
from bentoml.exceptions import ServiceUnavailable
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from starlette.responses import Response

from forewarn.settings import Settings
from serving.bento_store import ChampionExport, load_from_bento_store, packed_tag
from serving.champions import Champions, load_from_registry
from serving.endpoints import (
    ScoringOptions,
    describe_models,
    explain_project,
    score_projects,
)
from serving.guards import BearerAuth, BodyLimit, ErrorEnvelope, bind_refusal, quiet_client_errors
from serving.i18n import from_accept_language
from serving.metrics import RouteMetrics, render
from serving.openapi import DocumentedErrors
from serving.request_models import ExplainRequest, ProjectIn, ScoreRequest
from serving.response_models import (
    ErrorResponse,
    ExplainResponse,
    ModelsResponse,
    ScoreResponse,
)
from serving.views import champions_page_app
from training.tracking import TrackingStoreUnavailableError, redacted

# BentoML's own logger namespace: its server logging configuration shows these lines.
logger = logging.getLogger("bentoml.forewarn")

settings = Settings()
options = ScoringOptions(
    red=settings.red_threshold,
    amber=settings.amber_threshold,
    top_drivers=settings.top_drivers,
    delay_tolerance=settings.delay_tolerance,
    overrun_tolerance=settings.overrun_tolerance,
    extra_attributes=tuple(settings.extra_attributes),
    lang=settings.lang,
)


def _options_for(lang: str | None, ctx: bentoml.Context) -> ScoringOptions:
    """The options of one request: its `lang`, else its Accept-Language, else the service's."""
    chosen = lang or from_accept_language(ctx.request.headers.get("accept-language"))
    return options if chosen is None or chosen == options.lang else replace(options, lang=chosen)


# Up to this many projects a request is scored on the event loop: a few milliseconds,
# less than a hop to a thread and back, and no thread then competes for the GIL with the
# loop. Larger requests go to the thread pool so that one slow request does not hold up
# the rest. bench/bench_serve.py prints what the service serves either way.
INLINE_PROJECTS = 4


# Routes left out of OpenTelemetry tracing unless FOREWARN_TRACING (regexes on the URL).
UNTRACED_ROUTES = ("/score$", "/explain$")


def _json(answer: BaseModel) -> Response:
    """The answer as a JSON response, sent as one body (BentoML would stream it in chunks
    through its own serializer: the same bytes, more work)."""
    return Response(answer.model_dump_json(), media_type="application/json")


def _requested_host() -> str:
    """The address `bentoml serve` is about to bind: its --host, else the host this
    service configures (FOREWARN_HOST, given to BentoML below; set the host there, not in
    a BentoML configuration file, which this check does not read)."""
    import click

    ctx = click.get_current_context(silent=True)
    host = ctx.params.get("host") if ctx is not None else None
    return str(host or settings.host)


@bentoml.service(
    name="forewarn",
    description="Forewarn: how likely each project is to finish late and over budget, and why.",
    traffic={"timeout": settings.request_timeout_s, "max_concurrency": settings.max_concurrency},
    # Requests of more than INLINE_PROJECTS run in a pool of `threads` per worker, so one
    # slow request leaves the rest to go on; smaller ones are scored on the event loop.
    workers=settings.workers,
    threads=settings.threads,
    # BentoML's access log cost ~1 ms a request (one-off measurement), a tenth of /score's
    # budget: off unless asked for (FOREWARN_ACCESS_LOG=true). Errors and start-up are
    # logged either way.
    logging={"access": {"enabled": settings.access_log}},
    # The default bind (bentoml's is 0.0.0.0): `bentoml serve` without --host stays local.
    http={"host": settings.host, "port": settings.port},
    # OpenTelemetry spans for every request cost ~0.5 ms of /score's (py-spy, one-off), and
    # with no exporter configured nothing reads them: the scoring routes skip them unless
    # FOREWARN_TRACING=true (then configure BentoML's tracing exporter as well).
    tracing={} if settings.tracing else {"excluded_urls": list(UNTRACED_ROUTES)},
    # BentoML's HTTP metrics label each series with the raw path (any random path became
    # a series): serving.metrics counts by route instead and serves GET /metrics.
    metrics={"enabled": False},
)
class Forewarn:
    """Scores projects with the champion models; the work is in serving.endpoints."""

    # `bentoml build` packs the MLflow champions through this reference.
    champions_in_bento = ChampionExport(tracking_uri=settings.resolved_tracking_uri())

    @bentoml.on_deployment
    def refuse_open_bind() -> None:
        # Runs in the `bentoml serve` process before it binds the socket.
        reason = bind_refusal(_requested_host(), settings.api_key)
        if reason:
            raise SystemExit(reason)

    def __init__(self) -> None:
        # A client's bad request is one log line (ErrorEnvelope), not a traceback.
        quiet_client_errors()
        self.champions: Champions | None = None
        self.not_ready_reason = "the champion models are loading"
        self._pool: anyio.CapacityLimiter | None = None
        try:
            # A built Bento serves the champions it was packed with; source, the registry's.
            packed = packed_tag(_service.bento)
            if packed is not None:
                self.champions = load_from_bento_store(packed)
            else:
                self.champions = load_from_registry(settings.resolved_tracking_uri())
        except Exception as exc:
            # Stay up and not ready (a crash would make BentoML restart us in a loop), and
            # say why: to clients on 503, in the log (with the traceback, but for an outage).
            source = (
                "the Bento" if packed is not None else redacted(settings.resolved_tracking_uri())
            )
            self.not_ready_reason = (
                f"could not load the champion models from {source}: {type(exc).__name__}: "
                f"{str(exc)[:300]}"
            )
            if isinstance(exc, TrackingStoreUnavailableError):
                # An outage, not a fault of ours: the reason says it all, and the network
                # stack's chained traceback (pages of it) would bury that line.
                logger.error("Forewarn is not ready: %s", self.not_ready_reason)
            else:
                logger.exception("Forewarn is not ready: %s", self.not_ready_reason)
            return
        # One LightGBM thread per call: concurrency comes from the request threads.
        self.champions.set_threads(1)
        # The libraries loaded so far (MLflow, BentoML, pandas: ~400k objects) never become
        # garbage; frozen, a full collection no longer walks them. Unfrozen, that walk (0.2 s
        # in a one-off timing here) lands on whichever request triggers it: it was most of
        # /score's p99.
        gc.collect()
        gc.freeze()
        loaded = self.champions.by_target.values()
        logger.info(
            "Forewarn loaded %s", ", ".join(f"{c.name} v{c.version} ({c.source})" for c in loaded)
        )

    def __is_ready__(self) -> bool:
        return self.champions is not None

    def not_ready(self, ctx: bentoml.Context) -> Response:
        """503 with the reason (BentoML would answer a raised 503 with a generic text).

        The status goes on `ctx.response` too: an API that takes the context answers with
        the context's status, whatever the returned response says."""
        body = ErrorResponse(error=f"not ready: {self.not_ready_reason} (see the server log)")
        ctx.response.status_code = 503
        return Response(body.model_dump_json(), status_code=503, media_type="application/json")

    def loaded(self) -> Champions:
        if self.champions is None:
            raise ServiceUnavailable(f"not ready: {self.not_ready_reason} (see the server log)")
        return self.champions

    @bentoml.api(
        route="/score",
        input_spec=ScoreRequest.limited_to(settings.max_projects_per_request),
        output_spec=ScoreResponse,
    )
    async def score(
        self,
        projects: list[ProjectIn],
        ctx: bentoml.Context,
        as_of: date | None = None,
        lang: str | None = None,
    ) -> Response:
        """Score projects: p_late, p_over_budget, RAG each and overall, top drivers."""
        if self.champions is None:
            return self.not_ready(ctx)
        champions = self.loaded()
        asked = _options_for(lang, ctx)
        if len(projects) <= INLINE_PROJECTS:
            return _json(score_projects(champions, projects, as_of, asked))
        scored = await anyio.to_thread.run_sync(
            score_projects, champions, projects, as_of, asked, limiter=self.pool()
        )
        return _json(scored)

    @bentoml.api(route="/explain", input_spec=ExplainRequest, output_spec=ExplainResponse)
    async def explain(
        self,
        project: ProjectIn,
        ctx: bentoml.Context,
        as_of: date | None = None,
        lang: str | None = None,
    ) -> Response:
        """Explain one project: each risk's full SHAP vector, base value and feature values."""
        if self.champions is None:
            return self.not_ready(ctx)
        return _json(explain_project(self.loaded(), project, as_of, _options_for(lang, ctx)))

    def pool(self) -> anyio.CapacityLimiter:
        """The request threads (made on first use: a limiter belongs to the event loop)."""
        if self._pool is None:
            self._pool = anyio.CapacityLimiter(settings.threads)
        return self._pool


# GET routes: BentoML APIs are POST only, so the model info is a small mounted app (its
# OpenAPI is merged into /docs.json).
info_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@info_app.get("/models", response_model=ModelsResponse, summary="The champion models")
def models() -> ModelsResponse:
    """Names, versions, runs, training date and whether each beats the EVM/PM rules."""
    service: Forewarn = bentoml.get_current_service()
    try:
        return describe_models(service.loaded(), options)
    except ServiceUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc


@info_app.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus metrics, by route (serving.metrics)."""
    body, media_type = render()
    return Response(body, media_type=media_type)


# `bentoml.service` made Forewarn a bentoml.Service; mypy cannot see through the decorator.
_service: Any = Forewarn
# The explanation view (GET /views/explain/{project_id}?as_of=), behind the same auth. Its
# portfolio is settings.data (FOREWARN_DATA). Mounted before "/".
_service.mount_asgi_app(
    champions_page_app(
        lambda: bentoml.get_current_service().champions,
        settings.data,
        options,
        api_key=settings.api_key,
    ),
    path="/views",
)
_service.mount_asgi_app(info_app, path="/")
# First added, outermost: every request is counted by route, every refusal gets one shape
# and one log line, and a request without the key is refused before its body is read.
_service.add_asgi_middleware(RouteMetrics)
_service.add_asgi_middleware(ErrorEnvelope)
_service.add_asgi_middleware(BearerAuth, api_key=settings.api_key)
_service.add_asgi_middleware(
    BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
)
_service.add_asgi_middleware(DocumentedErrors)
