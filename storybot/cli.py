"""The `storybot` command line: thin front ends over the media engine and JobService.

Bad input exits with code 2 and one line on stderr; `--json` prints one JSON object on stdout.
"""

from __future__ import annotations

import logging
import sys
import unicodedata
from typing import NoReturn

import typer

from storybot import bot_cmd, job_cmds, render_cmd, voices_cmd, worker_cmds  # noqa: F401  (they register their commands)
from storybot.app import app, err
from tools.errors import BadInput, StorybotError
from tools.net.redact import redact, redact_logs


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


def main() -> None:
    """Entry point: every bad input, Typer's own usage errors included, becomes one line and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # as Python's last-resort handler prints
    redact_logs()
    try:
        result = app(standalone_mode=False)
    except BadInput as exc:
        fail(str(exc))
    except StorybotError as exc:
        fail(str(exc), 1)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except Exception as exc:
        # Typer vendors its own click, so its usage errors are recognised by shape, not class.
        message = getattr(exc, "format_message", None)
        if getattr(exc, "exit_code", None) != 2 or not callable(message):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            err.print(message(), markup=False)
            sys.exit(2)
        fail(message())
    sys.exit(result if isinstance(result, int) else 0)
