"""`storybot worker` (a Celery GPU worker) and `storybot models tiny DIR` (tiny test models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from storybot.app import app
from tools.errors import BadInput

models_app = typer.Typer(no_args_is_help=True, help="Model helpers.")
app.add_typer(models_app, name="models")
QUEUES = ("sdxl", "ltx", "whisper", "vision")


@app.command()
def worker(
    queue: Annotated[list[str] | None, typer.Option("--queue", help="Model family queue (repeatable).")] = None,
) -> None:
    """Run a Celery GPU worker (STORYBOT_GPU_BACKEND=celery, REDIS_URL) for one or more model queues.

    The `local` backend needs no command: the client starts its own worker processes.
    """
    from tools.settings import get_settings

    queues = queue or list(QUEUES)
    if unknown := [q for q in queues if q not in QUEUES]:
        raise BadInput(f"unknown queue {unknown[0]!r} (use {', '.join(QUEUES)})")
    url = get_settings().redis_url
    if not url:
        raise BadInput("storybot worker needs REDIS_URL (the Celery broker)")
    try:
        from tools.gpu.celery_app import make_app
    except ImportError as exc:
        raise BadInput(f"the celery extra is not installed ({exc.name}): pip install -e '.[celery,models]'") from None

    # one task at a time per worker: a GPU holds one model and one batch
    make_app(url).worker_main(["worker", "-Q", ",".join(queues), "--concurrency", "1", "--pool", "prefork",
                               "--loglevel", "INFO", "--without-gossip", "--without-mingle"])


@models_app.command("tiny")
def tiny(
    out: Annotated[Path, typer.Argument(help="Folder to create the four model folders in.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the folders as JSON.")] = False,
) -> None:
    """Build tiny random-weight SDXL, LTX, Whisper and LLaVA models (no downloads) to test GPU stages on a CPU."""
    try:
        from gpu_workers.tiny import build_all
    except ImportError as exc:
        raise BadInput(f"the models extra is not installed ({exc.name}): pip install -e '.[models]'") from None
    folders = build_all(out.resolve())
    env = {f"STORYBOT_{name.upper()}_MODEL": str(path) for name, path in folders.items()}
    if as_json:
        print(json.dumps(env))
        return
    for name, value in env.items():
        print(f"{name}={value}")
