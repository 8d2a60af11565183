"""A real PostgreSQL (Debian's, installed by `make postgres`) for the several-machines tests: one
server per test session in a temporary folder, on a free loopback port, `fsync=off`; a fresh database
per test. initdb refuses root, so as root the server runs as the `postgres` user (../shared/LAB_NOTES)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run `make postgres`")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    folder: Path
    port: int

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def _pg_ctl(self, *args: str) -> None:
        # -l LOG always: without it the server keeps the caller's stdout open and run() waits forever
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        command = [str(_bin() / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-l", str(self.folder / "log")]
        subprocess.run(self._as_owner(*command, "-o", options, *args), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "stop")

    def restart(self) -> None:
        """What a database restart looks like to its clients: every connection is cut."""
        self._pg_ctl("-m", "fast", "restart")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://storybot@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    folder = Path(tempfile.mkdtemp(prefix="storybot-pg-", dir="/tmp"))
    folder.chmod(0o755)  # the server's user must reach its folder and socket
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = PostgresServer(folder, _free_port())
    initdb = [str(_bin() / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "storybot", "--no-sync"]
    subprocess.run(server._as_owner(*initdb), check=True, capture_output=True, timeout=120)
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(server.url(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
