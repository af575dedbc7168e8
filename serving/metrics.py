"""Prometheus metrics of the service, labelled by route from a fixed set.

BentoML's own HTTP metrics label every series with the raw request path, so each random
path a client sends (authenticated or not) became a series of its own that lived until
restart: 3,000 such requests took `/metrics` from 82 KB to 12.6 MB. The service turns
those off (`metrics={"enabled": False}`) and counts here instead, under
`serving.guards.route_label` (unknown paths are all "other"). Served at `GET /metrics`.

Under `bentoml serve` each worker writes to BentoML's multiprocess directory
(PROMETHEUS_MULTIPROC_DIR), and `/metrics` adds up every worker's values.
"""

from __future__ import annotations

import os
import time
from typing import Any

from serving.guards import ASGIApp, Message, Receive, Scope, Send, route_label

_metrics: dict[str, Any] = {}


def _instruments() -> dict[str, Any]:
    """Made on first use: prometheus_client picks its multiprocess mode at creation."""
    if not _metrics:
        from prometheus_client import Counter, Gauge, Histogram

        _metrics["requests"] = Counter(
            "forewarn_http_requests_total", "HTTP requests answered", ["route", "status"]
        )
        _metrics["duration"] = Histogram(
            "forewarn_http_request_duration_seconds",
            "time to answer an HTTP request",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        _metrics["in_progress"] = Gauge(
            "forewarn_http_requests_in_progress",
            "HTTP requests being answered",
            ["route"],
            multiprocess_mode="livesum",
        )
    return _metrics


class RouteMetrics:
    """Counts requests by route and status, and times them by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            await self.app(scope, receive, send)
            return
        metrics = _instruments()
        route = route_label(str(scope.get("path", "")))
        started = time.perf_counter()
        status = 500  # unless an answer starts

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics["in_progress"].labels(route).inc()
        try:
            await self.app(scope, receive, counted)
        finally:
            metrics["in_progress"].labels(route).dec()
            metrics["requests"].labels(route, str(status)).inc()
            metrics["duration"].labels(route).observe(time.perf_counter() - started)


def render() -> tuple[bytes, str]:
    """The metrics text (every worker's, under `bentoml serve`) and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _instruments()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
