"""`storybot db upgrade`: the database's migrations, once, before runners start (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storybot.app import app, err, run_async, settings_for

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder for databases and job folders.")]
db_app = typer.Typer(
    help="The job database (STORYBOT_DATABASE_URL, else SQLite in the data folder).", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade_cmd(data: DataOpt = None) -> None:
    """Bring the job tables, checkpoints and queue to this storybot's schema; safe to run twice or at once."""
    from graph.database import is_postgres, upgrade_database

    settings = settings_for(data)
    before, after = upgrade_database(settings)
    if is_postgres(settings):
        from graph.checkpoints import setup_checkpoints
        from graph.steps import setup_queue

        run_async(setup_checkpoints(settings))
        if run_async(setup_queue(settings)):
            err.print("job queue created", markup=False)
    err.print(
        f"job tables at schema {after}" + (f" (was {before or 'empty'})" if before != after else ""), markup=False
    )
