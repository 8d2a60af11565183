"""`storybot voices`: the voice catalogue, the same one the bot and `--voice` resolve names through."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from storybot.app import app
from tools.settings import get_settings
from tools.tts import catalogue

_FIELDS = ("name", "provider", "language", "offline", "needs_key", "default")


@app.command()
def voices(
    language: Annotated[str | None, typer.Option(help="Only voices for this language (en, es, ja...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the voices --voice accepts, with the default marked."""
    rows = catalogue(get_settings(), language.strip() if language else None)
    if as_json:
        print(json.dumps([r.model_dump(include=set(_FIELDS)) for r in rows], ensure_ascii=False))
        return
    table = Table("name", "language", "offline", "key", "", box=None, highlight=False)
    for r in rows:
        table.add_row(
            r.name,
            r.language,
            "yes" if r.offline else "no (online)",
            "needs key" if r.needs_key else "",
            "default" if r.default else "",
        )
    Console(highlight=False, soft_wrap=True).print(table)
