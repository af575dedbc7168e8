"""A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` in a temp folder.

Uses Debian's `postgresql` package (the Makefile's `postgres` target installs it when
missing): the binaries live in /usr/lib/postgresql/<major>/bin, not on PATH. The server
listens on 127.0.0.1 at a free port, with its socket in the cluster folder, trust auth for
the one role `forewarn`, fsync off (a test's data is thrown away), and is stopped and
deleted by `stop()` (or on leaving the `with` block).

PostgreSQL refuses to run as root, and CI runs as root: then the cluster is owned by and
run as the unprivileged `postgres` user that the Debian package creates (subprocess's
``user=``, no sudo needed).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

ROLE = "forewarn"


def bin_dir() -> Path | None:
    """Folder of initdb/pg_ctl: PATH first, then the newest Debian major version."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    majors = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return majors[-1].parent if majors else None


def missing_reason() -> str | None:
    """Why a cluster cannot be started here (None when it can)."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (make test installs Debian's postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server on 127.0.0.1; `uri(db)` gives an MLflow tracking URI."""

    def __init__(self) -> None:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="forewarn-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user: dict[str, int] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid}
        self.started = False

    def _run(self, *args: str) -> None:
        assert self.bin is not None
        command = [str(self.bin / args[0]), *args[1:]]
        extra = {**self._user, "extra_groups": []} if self._user else {}
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self.root, check=False, **extra
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr}{done.stdout}\n{tail}")

    def start(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        self.started = True
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; returns its tracking URI (``postgresql://``)."""
        import psycopg

        with psycopg.connect(self.uri("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def uri(self, database: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
