"""Keep-alive connections spread over the workers: a busy worker hands connections back.

BentoML's workers share one listening socket, and a keep-alive connection stays with the
worker that accepted it. Clients that open their connections together (a pool starting up,
a load generator) often land all of them on the first worker to wake, while the others
idle: sixteen connections on one of two workers is what the serving benchmark saw, at half
the throughput of an even split.

`BalanceConnections` evens them out. Each worker counts the client connections that sent it
a request in the last second and posts the count to a small table all the workers of one
server share (a memory-mapped file named after the server process, where each worker
enters its process id at start-up: a worker that is gone is left out). A worker that holds
more than one connection above the least-loaded worker answers its next request with
``Connection: close``; uvicorn closes the connection once the response is sent, the client
opens a new one (HTTP clients do so by themselves: httpx, requests, urllib3,
serving.client), and the worker free to run its accept loop, the less busy one, is the
likelier to take it. A worker closes nothing while the split is even, and with one worker
nothing at all. Web servers do the like with a fixed count (nginx's
``keepalive_requests``); counting the load closes only where it helps.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from serving.guards import ASGIApp, Message, Receive, Scope, Send

# A connection counts as held for this long after its last request.
ACTIVE_S = 1.0
# How often a worker forgets connections idle for longer than ACTIVE_S.
_PRUNE_S = 0.25


def table_path(server_pid: int) -> Path:
    """The load table of the server whose arbiter process is `server_pid`."""
    return Path(tempfile.gettempdir()) / f"forewarn-connections-{server_pid}"


class LoadTable:
    """Per worker, the connections it holds and its process id, in a file all of them map.

    Each worker writes only its own slots; a read of the others may be a moment old, which
    costs at most one connection closed too many or too few. A worker registers its pid
    when it starts (`register`); a slot whose process is gone (a worker that crashed, or
    one of more workers than the server runs) is left out of the comparison.
    """

    def __init__(self, path: Path, workers: int) -> None:
        self.path = path
        size = 16 * workers
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zeros: no worker registered, none holds anything
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        slots = np.frombuffer(self._map, dtype=np.int64, count=2 * workers)
        self.loads, self.pids = slots[:workers], slots[workers:]
        self._live: list[int] = []
        self._checked = -1.0

    def register(self, worker: int, pid: int) -> None:
        self.pids[worker] = pid
        self.loads[worker] = 0

    def live_others(self, worker: int, now: float) -> list[int]:
        """The other workers whose process runs (looked up at most every _PRUNE_S)."""
        if now - self._checked > _PRUNE_S:
            self._checked = now
            self._live = [
                i
                for i, pid in enumerate(self.pids.tolist())
                if i != worker and pid > 0 and _running(pid)
            ]
        return self._live

    def close(self) -> None:
        del self.loads, self.pids
        self._map.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists (another user's)
        pass
    return True


class BalanceConnections:
    """``Connection: close`` on a response when this worker holds more than one connection
    above the least-loaded worker of its server.

    Give either `workers` (the server's worker count: the table and this worker's place
    are found on the first request, in the worker) or `table` and `worker` (this worker's
    0-based place). Without a table (one worker, or not under BentoML) it passes
    everything through. A connection is told apart by its client address and port
    (``scope["client"]``).
    """

    def __init__(
        self,
        app: ASGIApp,
        workers: int = 1,
        table: LoadTable | None = None,
        worker: int = 0,
    ) -> None:
        self.app = app
        self.workers = workers
        self.table = table
        self.worker = worker
        self.looked_up = table is not None
        self.seen: dict[tuple[str, int], float] = {}  # connection → last request
        self.pruned = 0.0

    def _held(self, now: float) -> int:
        if now - self.pruned > _PRUNE_S:
            self.pruned = now
            stale = [k for k, t in self.seen.items() if now - t > ACTIVE_S]
            for key in stale:
                del self.seen[key]
        return len(self.seen)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.looked_up:
            self.looked_up = True
            self.table, self.worker = worker_table(self.workers)
        client = scope.get("client")
        if self.table is None or scope["type"] != "http" or not client:
            await self.app(scope, receive, send)
            return
        loads = self.table.loads
        key = (str(client[0]), int(client[1]))
        now = time.monotonic()
        self.seen[key] = now
        held = self._held(now)
        others = self.table.live_others(self.worker, now)
        least = min((int(loads[i]) for i in others), default=held)
        if held <= least + 1:
            loads[self.worker] = held
            await self.app(scope, receive, send)
            return
        # Over its share: this connection goes, the client reconnects (likely elsewhere).
        del self.seen[key]
        loads[self.worker] = held - 1

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, closing)


_THIS_WORKER: tuple[LoadTable, int] | None = None  # this process's table and place


def worker_table(workers: int) -> tuple[LoadTable | None, int]:
    """This BentoML worker's load table and place, or (None, 0) with one worker or outside
    a BentoML server's worker. The table is named after the worker's parent, the server's
    arbiter (`forget_table` removes it); the worker registers in it the first time."""
    global _THIS_WORKER
    if workers < 2:
        return None, 0
    from bentoml._internal.context import server_context

    index = server_context.worker_index  # 1-based, set before the service is loaded
    if index is None or not 1 <= index <= workers:
        return None, 0
    if _THIS_WORKER is None:
        table = LoadTable(table_path(os.getppid()), workers)
        table.register(index - 1, os.getpid())
        _THIS_WORKER = (table, index - 1)
    return _THIS_WORKER


def register_worker(workers: int) -> None:
    """Enter this worker in its server's load table (the service calls it at start-up, so
    that a worker counts before its first request)."""
    worker_table(workers)


def forget_table(server_pid: int) -> None:
    """Remove the load table of server `server_pid` (at its start, in case a process of the
    same id left one, and at its exit)."""
    table_path(server_pid).unlink(missing_ok=True)
