"""`storybot bot`: run the Discord bot until stopped (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from storybot.app import app, settings_for
from tools.net.redact import redact_logs


@app.command()
def bot(
    data: Annotated[Path | None, typer.Option("--data", help="Folder for databases and job folders.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log discord.py's own messages too.")] = False,
) -> None:
    """Run the Discord bot (needs DISCORD_TOKEN; DISCORD_API_BASE points it at a REST proxy)."""
    from bot.client import run_bot
    from service.app import serving

    settings = settings_for(data)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    redact_logs(settings)
    logging.getLogger("discord").setLevel(logging.INFO if verbose else logging.WARNING)
    # with a public address, the service's HTTP app runs beside the client: it serves the signed links
    asyncio.run(run_bot(settings, serving if settings.public_url else None))
