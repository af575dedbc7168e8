"""Connection balancing on a tiny ASGI app: which responses close their connection.

Two `BalanceConnections` over one load table stand for two workers of a server; requests
come from distinct client ports (distinct connections). The real service with two workers
is exercised in test_service.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import serving.connections as connections
from serving.connections import BalanceConnections, LoadTable, forget_table, table_path


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})


def _request(app: BalanceConnections, port: int) -> list[tuple[bytes, bytes]]:
    """One GET from client port `port`; the response's headers."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/livez", "client": ("127.0.0.1", port)}
    asyncio.run(app(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    return list(sent[0]["headers"])


def _closes(app: BalanceConnections, port: int) -> bool:
    return (b"connection", b"close") in _request(app, port)


@pytest.fixture
def table(tmp_path: Path) -> LoadTable:
    """Two workers, both registered (this test process stands for both)."""
    loads = LoadTable(tmp_path / "loads", workers=2)
    loads.register(0, os.getpid())
    loads.register(1, os.getpid())
    return loads


def _gone_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_workers_share_one_table(tmp_path: Path) -> None:
    first, second = LoadTable(tmp_path / "t", 3), LoadTable(tmp_path / "t", 3)
    assert list(first.loads) == [0, 0, 0]  # a new table: nobody holds anything
    assert list(first.pids) == [0, 0, 0]  # and nobody registered
    first.loads[2] = 7
    first.register(1, 4242)
    assert list(second.loads) == [0, 0, 7]
    assert list(second.pids) == [0, 4242, 0]
    first.close()
    second.close()


def test_workers_that_are_not_running_are_left_out(tmp_path: Path) -> None:
    loads = LoadTable(tmp_path / "t", 3)
    loads.register(0, os.getpid())
    busy = BalanceConnections(_ok, table=loads, worker=0)
    # Worker 1 never registered, worker 2 has exited: nobody to hand connections to.
    loads.register(2, _gone_pid())
    assert not any(_closes(busy, port) for port in range(9000, 9010))
    assert loads.loads[0] == 10
    loads.close()


def test_a_worker_over_its_share_closes_until_even(table: LoadTable) -> None:
    busy = BalanceConnections(_ok, table=table, worker=0)
    table.loads[1] = 1  # the other worker holds one connection
    assert not _closes(busy, 5001)  # 1 held: not above 1 + 1
    assert not _closes(busy, 5002)  # 2
    assert _closes(busy, 5003)  # a third would be 3 > 2: this one goes
    assert table.loads[0] == 2
    assert not _closes(busy, 5001)  # the connections it kept stay open
    assert not _closes(busy, 5002)
    table.loads[1] = 3  # the other worker took the closed one and more
    assert not _closes(busy, 5004)  # 3 ≤ 3 + 1
    assert table.loads[0] == 3


def test_the_response_is_otherwise_the_apps(table: LoadTable) -> None:
    busy = BalanceConnections(_ok, table=table, worker=1)
    table.loads[0] = 0
    _request(busy, 6001)
    _request(busy, 6002)
    headers = _request(busy, 6003)
    assert headers == [(b"x-app", b"1"), (b"connection", b"close")]


def test_idle_connections_stop_counting(table: LoadTable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "ACTIVE_S", 0.5)
    monkeypatch.setattr(connections, "_PRUNE_S", 0.0)
    worker = BalanceConnections(_ok, table=table, worker=0)
    table.loads[1] = 5  # the other worker is busier: nothing is closed here
    for port in (7001, 7002):
        _request(worker, port)
    assert table.loads[0] == 2
    time.sleep(0.7)  # both connections idle for longer than ACTIVE_S
    _request(worker, 7003)
    assert table.loads[0] == 1


def test_one_worker_closes_nothing() -> None:
    alone = BalanceConnections(_ok, workers=1)  # outside a BentoML worker: no table
    assert not any(_closes(alone, port) for port in range(8000, 8020))
    assert alone.table is None


def test_other_scopes_pass_through(table: LoadTable) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    balance = BalanceConnections(app, table=table, worker=0)
    asyncio.run(balance({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    asyncio.run(balance({"type": "http", "client": None}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan", "http"]
    assert list(table.loads) == [0, 0]


def test_forget_table_removes_the_file() -> None:
    path = table_path(999_999_999)
    LoadTable(path, 2).close()
    assert path.exists()
    forget_table(999_999_999)
    assert not path.exists()
    forget_table(999_999_999)  # gone already: no error
