"""`storybot voices`: the voice catalogue, the same one the bot and `--voice` resolve names through;
`storybot voices pull NAME` downloads a Piper voice of the public repository ahead of time."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from storybot.app import app, download_bars, err
from tools.errors import BadInput
from tools.settings import get_settings
from tools.tts import catalogue

_FIELDS = ("name", "provider", "language", "offline", "needs_key", "default", "installed", "licence")
voices_app = typer.Typer(help="The voices --voice accepts (and Piper voices to download).")
app.add_typer(voices_app, name="voices")


@voices_app.callback(invoke_without_command=True)
def voices(
    ctx: typer.Context,
    language: Annotated[str | None, typer.Option(help="Only voices for this language (en, es, ja...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the voices --voice accepts, with the default marked."""
    if ctx.invoked_subcommand is not None:
        return
    rows = catalogue(get_settings(), language.strip() if language else None)
    if as_json:
        print(json.dumps([r.model_dump(include=set(_FIELDS)) for r in rows], ensure_ascii=False))
        return
    table = Table(box=None, highlight=False)
    table.add_column("name", no_wrap=True)
    for column in ("language", "offline", "key", "licence", ""):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.name,
            r.language,
            "yes" if r.offline else ("download" if not r.installed else "online"),
            "needs key" if r.needs_key else "",
            r.licence or ("" if r.installed else "on download"),
            "default" if r.default else "",
        )
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # piped: full names, not cut to a guessed 80 columns
        console.width = 160
    console.print(table)


@voices_app.command("pull")
def pull(name: Annotated[str, typer.Argument(help="A Piper voice, e.g. piper:de_DE-thorsten-medium.")]) -> None:
    """Download a Piper voice now (resumed if cut off, checked against the index), then print its files."""
    from tools.tts import piper, piper_fetch
    from tools.tts.catalogue import resolve

    settings = get_settings()
    prefix, vid = resolve(settings, name)
    if prefix != "piper":
        raise BadInput(f"{name!r} is not a Piper voice: only Piper voices are downloaded")
    with download_bars() as show:
        voice = piper.open_voice(settings, vid, show)
    licence = piper_fetch.known_licence(settings, vid)
    err.print(f"piper:{vid} is ready ({licence.label() if licence else 'licence not stated'})", markup=False)
    print(voice.model_path)
    print(voice.config_path)
