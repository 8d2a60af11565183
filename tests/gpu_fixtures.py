"""Shared by the GPU tests: tiny random-weight models (built once per test run by the real
`storybot models tiny` command) and a real redis-server on a free port in a temporary folder."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

from storybot.worker_cmds import TINY_SETTINGS

STORYBOT = Path(sys.executable).with_name("storybot")
# Small enough for a CPU (what `storybot models tiny` prints): native sizes / 8, two steps, short generations.
TINY_ENV = dict(TINY_SETTINGS)


@cache
def build_tiny_models() -> dict[str, str]:
    """{"STORYBOT_SDXL_MODEL": folder, ...} for the four tiny models, built once per test process."""
    out = Path(tempfile.mkdtemp(prefix="storybot-tiny-"))
    atexit.register(shutil.rmtree, out, True)
    done = subprocess.run(
        [STORYBOT, "models", "tiny", out, "--json", "--no-settings"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    env: dict[str, str] = json.loads(done.stdout)
    return env


def models(env: dict[str, str]) -> dict[str, str]:
    """The family → folder map the GPU backends take."""
    return {name.split("_")[1].lower(): path for name, path in env.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real redis-server (installed by `make redis`) on a free port, stopped on exit."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run `make redis`")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp_path, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def children(pid: int) -> list[int]:
    """The direct child processes of `pid` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def start_celery_worker(
    redis_url: str, queues: str, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "STORYBOT_GPU_BACKEND": "celery", **(extra or {})}
    with log.open("wb") as out:
        return subprocess.Popen(
            [STORYBOT, "worker", *[a for q in queues.split(",") for a in ("--queue", q)]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
