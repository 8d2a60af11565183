"""`storybot` on the command line, as a user runs it: one child process per call, output captured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def storybot(
    *args: str | Path,
    data: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m storybot ARGS` in this environment, with STORYBOT_DATA_DIR=`data` when given and
    `env` on top; `input_text` on stdin; stdout and stderr as text, and the seconds the run took as `.elapsed`."""
    full = dict(os.environ)
    if data is not None:
        full["STORYBOT_DATA_DIR"] = str(data)
    full.update(env or {})
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "storybot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=timeout,
        input=input_text,
    )
    result.elapsed = time.monotonic() - start  # type: ignore[attr-defined]
    return result


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful run printed."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def storybot_json(*args: str | Path, **options: Any) -> Any:
    """`storybot ARGS --json`, which must succeed, and the JSON it printed."""
    return ok_json(storybot(*args, "--json", **options))
