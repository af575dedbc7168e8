"""Bearer auth, the body limit and the bind rule, on a tiny ASGI app (no server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.guards import BearerAuth, BodyLimit, bind_refusal, is_loopback

KEY = "s3cret-key"
LIMIT = 1_000


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body), "head": body[:10].decode()})


async def probe(request: Request) -> PlainTextResponse:
    return PlainTextResponse("\n")


def _app(api_key: str | None) -> TestClient:
    app = Starlette(
        routes=[
            Route("/score", echo, methods=["POST"]),
            Route("/models", echo, methods=["GET"]),
            Route("/livez", probe),
            Route("/readyz", probe),
        ]
    )
    guarded = BearerAuth(BodyLimit(app, max_bytes=LIMIT), api_key=api_key)
    return TestClient(guarded)  # type: ignore[arg-type]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _app(KEY) as c:
        yield c


def test_the_token_opens_every_route(client: TestClient) -> None:
    ok = client.post("/score", content=b"hello", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and ok.json() == {"size": 5, "head": "hello"}
    assert client.get("/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": KEY},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": f"Bearer {KEY}x"},
    ],
)
def test_401_without_the_right_token(client: TestClient, headers: dict[str, str]) -> None:
    for response in (client.post("/score", content=b"x", headers=headers),
                     client.get("/models", headers=headers)):  # fmt: skip
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert KEY not in response.text
        assert "Bearer <key>" in response.json()["error"]


def test_probes_stay_open(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_no_key_no_check() -> None:
    with _app(None) as open_client:
        assert open_client.post("/score", content=b"abc").json()["size"] == 3


def test_413_by_declared_length(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/score", content=b"x" * LIMIT, headers=headers).status_code == 200
    too_big = client.post("/score", content=b"x" * (LIMIT + 1), headers=headers)
    assert too_big.status_code == 413
    assert str(LIMIT) in too_big.json()["error"]


def test_413_when_streamed_without_a_length(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}

    def chunks(n: int) -> Iterator[bytes]:
        for _ in range(n):
            yield b"y" * 300

    small = client.post("/score", content=chunks(3), headers=headers)
    assert small.status_code == 200 and small.json()["size"] == 900  # replayed whole
    assert client.post("/score", content=chunks(4), headers=headers).status_code == 413


def test_auth_comes_before_the_body_limit(client: TestClient) -> None:
    assert client.post("/score", content=b"x" * (LIMIT + 1)).status_code == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.9", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
     ("192.168.1.2", False), ("example.org", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_bind_refusal() -> None:
    assert bind_refusal("127.0.0.1", None) is None
    assert bind_refusal("0.0.0.0", "key") is None
    reason = bind_refusal("0.0.0.0", None)
    assert reason and "FOREWARN_API_KEY" in reason and "0.0.0.0" in reason
