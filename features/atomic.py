"""Output files written whole or not at all: into a temporary file beside the target,
renamed over it once complete.

A full disk, a crash or a SIGTERM halfway through a write then leaves the previous file
(or none) and no partial one: a reader never sees a truncated quarantine or score table.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; renamed onto `path` when the
    block ends normally, deleted when it raises (and on SIGTERM, which ends the process
    with exit status 143 once the temporary file is gone)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
