"""The `storybot` command line: thin front ends over the media engine and JobService.

Bad input exits with code 2 and one line on stderr; `--json` prints one JSON object on stdout.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys
import unicodedata
from typing import NoReturn

import typer
from sqlalchemy.exc import OperationalError

from storybot import (  # noqa: F401  (they register their commands)
    bot_cmd,
    db_cmds,
    job_cmds,
    publish_cmds,
    render_cmd,
    runner_cmd,
    serve_cmds,
    voices_cmd,
    worker_cmds,
)
from storybot.app import app, err
from tools.errors import BadInput, StorybotError
from tools.net.redact import redact, redact_logs

INTERRUPTED = 130  # the shell's code for a command stopped by a signal
INTERRUPTED_LINE = "interrupted; a job that was running can be continued with `storybot resume JOB_ID`"


def safe_line(message: str) -> str:
    """One line a terminal shows as written: whitespace collapsed, control and format characters
    (ESC, BEL, bidi overrides, from a file name or any user text) shown as escapes, never obeyed."""
    flat = " ".join(message.split())
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch)[0] == "C" else ch for ch in flat)


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"storybot: error: {safe_line(redact(message))}", file=sys.stderr)
    sys.exit(code)


@app.callback()
def _root() -> None:
    """Turn a request or a script into a finished short video."""


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM outside a running command takes Ctrl-C's path (inside one, `run_async` handles it)."""
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: every bad input, Typer's own usage errors included, becomes one line and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # as Python's last-resort handler prints
    redact_logs()
    signal.signal(signal.SIGTERM, _terminated)
    try:
        result = app(standalone_mode=False)
    except BadInput as exc:
        fail(str(exc))
    except StorybotError as exc:
        fail(str(exc), 1)
    except sqlite3.OperationalError as exc:  # locked past the busy timeout, or a full disk
        fail(f"the job database could not be written ({exc}); jobs can be resumed once it can", 1)
    except OperationalError as exc:  # the same through SQLAlchemy, or a PostgreSQL that cannot be reached
        fail(f"the job database could not be used ({exc.orig}); jobs can be resumed once it can", 1)
    except (typer.Abort, KeyboardInterrupt):
        fail(INTERRUPTED_LINE, INTERRUPTED)
    except Exception as exc:
        # Typer vendors its own click, so its usage errors are recognised by shape, not class.
        message = getattr(exc, "format_message", None)
        if getattr(exc, "exit_code", None) != 2 or not callable(message):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            err.print(message(), markup=False)
            sys.exit(2)
        fail(message())
    if result == INTERRUPTED:  # Typer turns a KeyboardInterrupt inside a command into a bare 130
        fail(INTERRUPTED_LINE, INTERRUPTED)
    sys.exit(result if isinstance(result, int) else 0)
