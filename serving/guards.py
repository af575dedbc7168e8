"""ASGI guards in front of the service: bearer-token auth, a body-size limit, the bind rule.

BentoML has neither auth nor a request-size limit of its own, so these wrap its app (added
with `add_asgi_middleware`). They are plain ASGI so they run before BentoML reads the body.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes stay open so an orchestrator can check the process without holding the key.
PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})


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
    payload = json.dumps(body).encode()
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
    """413 for a body over `max_bytes`, whether it says so in Content-Length or not.

    A declared length is refused before reading anything; within the limit the request goes
    straight on (the server reads exactly that many bytes as the body). A chunked body is
    read up to the limit and then replayed to the app, so BentoML never buffers more than
    the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
                if declared >= 0:
                    await self.app(scope, receive, send)
                    return
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
