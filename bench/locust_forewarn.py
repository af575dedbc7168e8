"""The locust user of bench/bench_load.py: POST /score with one project per request.

Bodies come from the JSON-lines file in FOREWARN_BENCH_BODIES (one request body a line),
the key from FOREWARN_BENCH_KEY. Run by bench_load.py (`locust --headless`), not alone.
"""

import itertools
import os
from pathlib import Path

from locust import FastHttpUser, constant, task

_BODIES = Path(os.environ["FOREWARN_BENCH_BODIES"]).read_bytes().splitlines()
_NEXT = itertools.cycle(range(len(_BODIES)))


class Scorer(FastHttpUser):
    """Sends its next request as soon as the last is answered (no think time)."""

    wait_time = constant(0)

    @task
    def score(self) -> None:
        self.client.post(
            "/score",
            data=_BODIES[next(_NEXT)],
            headers={
                "Authorization": f"Bearer {os.environ['FOREWARN_BENCH_KEY']}",
                "Content-Type": "application/json",
            },
            name="/score",
        )
