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


# ------------------------------------------------------------- one error shape, one line


def test_pydantic_errors_become_the_error_model() -> None:
    from pydantic import ValidationError

    from serving.guards import error_body
    from serving.request_models import ScoreRequest
    from serving.response_models import ErrorResponse

    try:
        ScoreRequest.model_validate({"projects": [{"project_id": "a", "budget": -1}]})
    except ValidationError as exc:
        # What BentoML answers: its title (here the model's; BentoML's own says
        # "ScoreRequestIODescriptor") and pydantic's entries with their links.
        raw = {"error": f"{exc.error_count()} validation error for {exc.title}",
               "detail": exc.errors(include_context=False, include_input=False)}  # fmt: skip
    assert any("url" in d for d in raw["detail"])
    body = error_body(400, raw)
    ErrorResponse.model_validate(body)
    assert body["error"].startswith("3 problems in the request: projects.0.planned_start")
    assert "validation error" not in body["error"]
    assert all(set(d) == {"loc", "msg", "type"} for d in body["detail"])
    assert error_body(503, [{"error": "not loaded"}]) == {"error": "not loaded", "detail": []}
    assert error_body(503, {"detail": "not ready"}) == {"error": "not ready", "detail": []}


def test_client_error_tracebacks_are_dropped_real_faults_kept() -> None:
    import logging
    import sys

    from pydantic import BaseModel, ValidationError

    from serving.guards import ClientErrorTracebacks

    class M(BaseModel):
        x: int

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            info = sys.exc_info()
        return logging.LogRecord("b", logging.ERROR, "f", 1, "Exception on /score", (), info)

    try:
        M.model_validate({"x": "no"})
    except ValidationError as exc:
        invalid = exc
    from bentoml.exceptions import InvalidArgument, ServiceUnavailable

    keep = ClientErrorTracebacks().filter
    assert not keep(record(invalid))
    assert not keep(record(InvalidArgument("bad")))
    assert not keep(record(ServiceUnavailable("no model")))  # 503: said once at start-up
    assert keep(record(RuntimeError("a real fault")))
    assert keep(logging.LogRecord("b", logging.INFO, "f", 1, "no exception", (), None))


def test_route_labels_come_from_a_fixed_set() -> None:
    from serving.guards import route_label

    assert route_label("/score") == "/score"
    assert route_label("/views/explain/P-1") == "/views/explain/{project_id}"
    assert route_label("/views/explain/P-1/x") == "other"
    assert route_label("/wp-admin.php\n[ERROR] forged") == "other"


def test_a_body_that_does_not_arrive_in_time_gets_408() -> None:
    import anyio

    from serving.guards import BodyLimit

    sent: list[dict[str, object]] = []

    async def never_called(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the app must not see a request whose body never came")

    async def trickle() -> dict[str, object]:
        await anyio.sleep(0.2)
        return {"type": "http.request", "body": b"{", "more_body": True}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    headers = [(b"content-length", b"100"), (b"content-type", b"application/json")]
    scope = {"type": "http", "method": "POST", "path": "/score", "headers": headers}
    guard = BodyLimit(never_called, max_bytes=LIMIT, timeout_s=0.5)

    async def main() -> None:
        with anyio.fail_after(5):
            await guard(scope, trickle, send)  # type: ignore[arg-type]

    anyio.run(main)
    assert sent[0]["status"] == 408


def test_only_json_bodies_are_taken() -> None:
    with _app(None) as client:
        form = client.post(
            "/score", content=b"a=1", headers={"Content-Type": "multipart/form-data"}
        )
        assert form.status_code == 415
        assert (
            client.post(
                "/score", content=b"{}", headers={"Content-Type": "application/json; charset=utf-8"}
            ).status_code
            == 200
        )
