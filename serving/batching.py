"""Requests that reach a worker together are scored together.

Scoring one project is mostly fixed costs: some hundred NumPy calls to build its features,
a LightGBM call per model, pandas and pydantic set-up, each costing about the same for
one row as for ten. When several small requests are waiting in a worker (sixteen clients
on two workers: eight each), scoring their projects in one pass
(serving.endpoints.score_requests; the answers are the same) costs a fraction of scoring
them one by one: bench/bench_serve.py prints both.

`Gatherer` does it on the event loop without a timer: a request hands its work over and
waits; the first to arrive schedules a flush for the loop's next turn, by which time every
request the loop picked up in the same turn has handed its work over too. A lone request
is flushed at once, alone: nothing waits for company. BentoML's adaptive batching wants a
single list argument and a wait window; this keeps /score's request shape and adds no
wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Gatherer(Generic[T, R]):
    """Calls ``score(items)`` once for the items submitted in the same turn of the loop.

    ``score`` returns one result per item, in order: an answer or the exception that item
    raises (a request's own bad input). Should ``score`` itself raise, each item is scored
    alone, so that one request's failure is not its neighbours'. At most `max_items` go in
    one call; the rest wait for the next turn.
    """

    def __init__(
        self, score: Callable[[list[T]], Sequence[R | BaseException]], max_items: int = 32
    ) -> None:
        self.score = score
        self.max_items = max_items
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.scheduled = False
        self.calls = 0  # how many times `score` was called (tests, logs)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.pending.append((item, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush, loop)
        return await future

    def _results(self, items: list[T]) -> Sequence[R | BaseException]:
        self.calls += 1
        try:
            return self.score(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        # One of them broke the whole call: alone, each gets its own answer or error.
        return [self._results([item])[0] for item in items]

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self.pending = self.pending[: self.max_items], self.pending[self.max_items :]
        self.scheduled = bool(self.pending)
        if self.scheduled:
            loop.call_soon(self._flush, loop)
        results = self._results([item for item, _ in batch])
        for (_, future), result in zip(batch, results, strict=True):
            if future.cancelled():  # its request timed out or its client went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
