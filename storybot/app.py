"""The Typer app and the few helpers every command shares."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tools.errors import BadInput
from tools.models import Aspect
from tools.settings import Settings, get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Turn a request or a script into a finished short video.",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def parse_aspect(value: str) -> Aspect:
    try:
        return Aspect(value)
    except ValueError:
        raise BadInput(f"unsupported aspect {value!r} (use 9:16, 16:9 or 1:1)") from None


def settings_for(data: Path | None) -> Settings:
    """`--data DIR` moves every database and job folder; otherwise STORYBOT_DATA_DIR or ./data."""
    if data is None:
        return get_settings()
    return get_settings().model_copy(update={"data_dir": data.resolve()})
