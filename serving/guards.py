"""ASGI guards in front of the service: bearer-token auth, a body-size limit and read
timeout, one error shape with one log line per refusal, the bind rule.

BentoML has neither auth nor a request-size limit of its own, so these wrap its app (added
with `add_asgi_middleware`). They are plain ASGI so they run before BentoML reads the body.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes stay open so an orchestrator can check the process without holding the key.
PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})

# The routes a log line or a metric may name; any other path is "other", so a client
# sending random paths can neither grow the metrics nor write what it likes into the log.
KNOWN_ROUTES = frozenset({"/score", "/explain", "/models", "/docs.json", "/metrics", *PROBE_PATHS})
VIEW_ROUTE = "/views/explain/{project_id}"

logger = logging.getLogger("bentoml.forewarn")


def route_label(path: str) -> str:
    """The route a request path belongs to, from a fixed set: the label of logs and metrics."""
    if path in KNOWN_ROUTES:
        return path
    if path.startswith("/views/explain/") and path.count("/") == 3:
        return VIEW_ROUTE
    return "other"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for 0.0.0.0, :: and anything else."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str, api_key: str | None) -> str | None:
    """Why the service must not listen on `host`, or None when it may."""
    if api_key or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host}: it is not a loopback address and FOREWARN_API_KEY "
        "is not set. Set FOREWARN_API_KEY (clients then send 'Authorization: Bearer <key>') "
        "or bind to 127.0.0.1."
    )


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps({"detail": [], **body}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class BearerAuth:
    """401 unless `Authorization: Bearer <api_key>`; probes are exempt; no key, no check."""

    def __init__(
        self, app: ASGIApp, api_key: str | None, open_paths: Iterable[str] = PROBE_PATHS
    ) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.expected is None
            or scope["type"] != "http"
            or scope.get("path", "") in self.open_paths
        ):
            await self.app(scope, receive, send)
            return
        sent = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                sent = bytes(value)
                break
        # compare_digest: the time taken must not tell how much of the key was right.
        if not hmac.compare_digest(sent, self.expected):
            await _send_json(
                send,
                401,
                {"error": "missing or wrong bearer token: send 'Authorization: Bearer <key>'"},
                [(b"www-authenticate", b'Bearer realm="forewarn"')],
            )
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over `max_bytes`, whether it says so in Content-Length or not; 408
    for a body that has not arrived `timeout_s` after the request began; 415 for a body
    that is not JSON.

    A declared length over the limit is refused before reading anything. Otherwise the body
    is read here, up to the limit and within the timeout, and replayed to the app: BentoML
    never buffers more than the limit, and a client sending its body a byte at a time holds
    one of the `max_concurrency` slots for `timeout_s`, not for the whole request timeout.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 5.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _too_large(self, send: Send) -> None:
        await _send_json(
            send,
            413,
            {"error": f"request body over {self.max_bytes} bytes: send fewer projects per request"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            # The API takes JSON only: BentoML's other readers (multipart, pickle) answer a
            # malformed body with a 500, and nothing of ours sends them.
            if name.lower() == b"content-type":
                kind = bytes(value).split(b";")[0].strip().lower()
                if kind not in (b"", b"application/json"):
                    await _send_json(
                        send,
                        415,
                        {"error": "send the body as JSON (Content-Type: application/json)"},
                    )
                    return
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
                break
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.timeout_s) as waited:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # client went away
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    break
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if size > self.max_bytes:
            await self._too_large(send)
            return
        if waited.cancelled_caught:
            await _send_json(
                send,
                408,
                {"error": f"request body not received within {self.timeout_s:g} s"},
                [(b"connection", b"close")],
            )
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ------------------------------------------------------------------ one shape, one line


def _rule_summary(detail: list[dict[str, Any]]) -> tuple[str, str]:
    """The first broken rule as (code, location) for the log line."""
    if not detail:
        return "-", "-"
    first = detail[0]
    return str(first.get("type", "-")), ".".join(str(p) for p in first.get("loc", [])) or "-"


def _field_errors(raw: Any) -> list[dict[str, Any]]:
    """Pydantic's error entries as `FieldError`s: loc, msg and type, no links or input."""
    if not isinstance(raw, list):
        return []
    return [
        {
            "loc": list(d.get("loc", [])),
            "msg": str(d.get("msg", "")),
            "type": str(d.get("type", "")),
        }
        for d in raw
        if isinstance(d, dict)
    ]


def error_body(status: int, data: Any) -> dict[str, Any]:
    """Any refusal (BentoML's, pydantic's or ours) as `serving.response_models.ErrorResponse`."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # BentoML sends some errors as a one-element list
    if not isinstance(data, dict):
        data = {"error": str(data)}
    detail = _field_errors(data.get("detail"))
    if status == 400 and detail:
        first = detail[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        problems = "problem" if len(detail) == 1 else "problems"
        error = f"{len(detail)} {problems} in the request: {where}: {first['msg']}{more}"
    else:
        # FastAPI's HTTPException (the mounted /models) says it in a string `detail`.
        said = data.get("error") or (
            data.get("detail") if isinstance(data.get("detail"), str) else ""
        )
        error = str(said) or f"HTTP {status}"
    return {"error": error, "detail": detail}


class ErrorEnvelope:
    """Every 4xx/5xx JSON answer in one shape (`ErrorResponse`), and one log line for it.

    BentoML answers a pydantic error with pydantic's own entries (links to its docs, the
    internal model name "ScoreRequestIODescriptor"); here they become `loc`, `msg` and
    `type` and a one-line `error`. Each refused request is logged once, as
    ``rejected route=... method=... status=... rule=... at=...``: the route from a fixed
    set, never the body, the query or a header. 5xx answers are left to BentoML's own log,
    which carries the traceback of a real fault.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def envelope(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                status = int(message["status"])
                kind = b""
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        kind = bytes(value)
                if status >= 400 and kind.startswith(b"application/json"):
                    start = message  # held until the body is complete
                    return
                if 400 <= status < 500:
                    self._log(scope, status, [])
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = int(start["status"])
            try:
                data = json.loads(b"".join(chunks) or b"null")
            except ValueError:
                data = {"error": b"".join(chunks).decode(errors="replace")[:500]}
            body = error_body(status, data)
            if status < 500:
                self._log(scope, status, body["detail"])
            payload = json.dumps(body).encode()
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": payload, "more_body": False})

        await self.app(scope, receive, envelope)

    @staticmethod
    def _log(scope: Scope, status: int, detail: list[dict[str, Any]]) -> None:
        rule, where = _rule_summary(detail)
        level = logging.WARNING if status in (401, 403, 429) else logging.INFO
        logger.log(
            level,
            "rejected route=%s method=%s status=%d rule=%s at=%s problems=%d",
            route_label(str(scope.get("path", ""))),
            str(scope.get("method", "-"))[:10],
            status,
            rule,
            where,
            len(detail),
        )


class ClientErrorTracebacks(logging.Filter):
    """Drops BentoML's "Exception on /score [POST]" record (with its traceback) when the
    exception is the client's fault (a pydantic ValidationError, a BentoML error with a
    4xx code) or a 503 while the service is not ready. `ErrorEnvelope` logs those as one
    line; real faults keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        from bentoml.exceptions import BentoMLException
        from pydantic_core import ValidationError

        exc = record.exc_info[1]
        if isinstance(exc, ValidationError):
            return False
        if isinstance(exc, BentoMLException):
            # 4xx, and 503 while not ready (its reason was logged once, with its traceback).
            code = int(exc.error_code.value)
            return not (400 <= code < 500 or code == 503)
        return True


def quiet_client_errors() -> None:
    """Keep client errors' tracebacks out of the server log (idempotent).

    The filter sits on the handlers of the ``bentoml`` logger and of the root logger, which
    every record of BentoML's own loggers reaches: no BentoML module is named."""
    for name in ("bentoml", ""):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, ClientErrorTracebacks) for f in handler.filters):
                handler.addFilter(ClientErrorTracebacks())
