"""The service's OpenAPI document, saying what the service accepts and answers.

BentoML flattens an optional top-level field (``as_of``) to a plain string, so a schema
client may not send the null the service takes; `document_errors` declares it nullable
again. BentoML declares every error of an API route as ``{"error": string, "detail": string}``
while it answers a 400 with a list in ``detail``, and does not declare 401, 408, 413 or 429
at all: a client generated from the schema broke on our own errors. `document_errors`
points every refusal at `serving.response_models.ErrorResponse` (what `ErrorEnvelope`
answers) and adds the statuses the guards give; `DocumentedErrors` applies it to
``GET /docs.json``.
"""

from __future__ import annotations

import json
from typing import Any

from serving.guards import PROBE_PATHS, ASGIApp, Message, Receive, Scope, Send
from serving.response_models import ErrorResponse

_REF = "#/components/schemas/{model}"

REFUSALS = {
    "400": "the request breaks the API contract: `detail` names each field and rule",
    "401": "no or wrong bearer token",
    "408": "the request body did not arrive in time (FOREWARN_BODY_TIMEOUT_S)",
    "413": "the request body is over FOREWARN_MAX_BODY_BYTES",
    "415": "a content type the service does not take",
    "429": "too many requests in flight (FOREWARN_MAX_CONCURRENCY): retry shortly",
    "500": "a fault of the service: see the server log",
    "503": "no champion model loaded yet: see the server log and GET /readyz",
    "504": "not answered within FOREWARN_REQUEST_TIMEOUT_S",
}


def _statuses(path: str, method: str) -> list[str]:
    if path in PROBE_PATHS:
        return ["500"]
    codes = ["401", "429", "500", "503", "504"]
    if method == "post":
        codes += ["400", "408", "413", "415"]
    return codes


def _nullable_top_fields(operation: dict[str, Any]) -> None:
    """Top-level request fields that default to null declared as nullable (anyOf null,
    as pydantic declares the nested ones)."""
    if "requestBody" in operation:
        operation["requestBody"]["required"] = True  # an empty body is refused
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    for name, field in body.get("schema", {}).get("properties", {}).items():
        if "default" in field and field["default"] is None and "anyOf" not in field:
            shown = {k: field.pop(k) for k in ("title", "description", "default") if k in field}
            body["schema"]["properties"][name] = {
                "anyOf": [field, {"type": "null"}],
                **shown,
            }


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with every route's refusals declared as `ErrorResponse`, and null allowed
    where the service takes it (changed in place)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template=_REF)
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _nullable_top_fields(operation)
            responses = operation["responses"]
            for code in [c for c in responses if str(c)[:1] in "45"]:
                del responses[code]  # BentoML's InvalidArgument / NotFound / 422 shapes
            for code in _statuses(path, method):
                responses[code] = {
                    "description": REFUSALS[code],
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}
                    },
                }
    return spec


class DocumentedErrors:
    """Rewrites the ``GET /docs.json`` answer with `document_errors` (once per process)."""

    def __init__(self, app: ASGIApp, path: str = "/docs.json") -> None:
        self.app = app
        self.path = path
        self._cached: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        if self._cached is not None:
            await _send_spec(send, self._cached)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        assert start is not None
        if int(start["status"]) != 200:
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})
            return
        self._cached = json.dumps(document_errors(json.loads(b"".join(chunks)))).encode()
        await _send_spec(send, self._cached)


async def _send_spec(send: Send, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})
