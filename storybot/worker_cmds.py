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
# Native sizes divided by 8, two denoising steps, 17-frame clips, short generations: a CPU job in about a minute.
TINY_SETTINGS = {
    "STORYBOT_GPU_SIZE_DIVISOR": "8",
    "STORYBOT_SDXL_STEPS": "2",
    "STORYBOT_SDXL_BATCH": "4",
    "STORYBOT_LTX_STEPS": "2",
    "STORYBOT_LTX_MAX_FRAMES": "17",
    "STORYBOT_WHISPER_BEAM_SIZE": "1",
    "STORYBOT_WHISPER_MAX_NEW_TOKENS": "16",
    "STORYBOT_VISION_MAX_NEW_TOKENS": "24",
    "STORYBOT_VISION_ROUNDS": "1",
    "STORYBOT_GPU_OFFLOAD": "none",
}


@app.command()
def worker(
    queue: Annotated[list[str] | None, typer.Option("--queue", help="Model family queue (repeatable).")] = None,
) -> None:
    """Run a Celery GPU worker (STORYBOT_GPU_BACKEND=celery, REDIS_URL) for a model queue.

    One process per GPU and family: `CUDA_VISIBLE_DEVICES=0 storybot worker --queue sdxl`. Several
    --queue are allowed; the process still holds one model at a time. The `local` backend needs no command.
    """
    from tools.settings import get_settings

    if not queue:
        raise BadInput(
            f"name the queue this worker serves: storybot worker --queue NAME ({', '.join(QUEUES)}); "
            "run one worker per GPU and family"
        )
    queues = queue
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
    make_app(url).worker_main(
        [
            "worker",
            "-Q",
            ",".join(queues),
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@models_app.command("tiny")
def tiny(
    out: Annotated[Path, typer.Argument(help="Folder to create the four model folders in.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the folders as JSON.")] = False,
    settings: Annotated[
        bool,
        typer.Option(
            help="Also print the sizes, steps and frame caps that keep a CPU run "
            "short (--no-settings: only the folders)."
        ),
    ] = True,
) -> None:
    """Build tiny random-weight SDXL, LTX, Whisper and LLaVA models (no downloads) to test GPU stages on a CPU.

    Prints every setting a quick CPU run needs: `export $(storybot models tiny /tmp/tiny)`; with the
    folders alone a job renders at production sizes and steps and takes over 20 minutes on a CPU.
    """
    try:
        from gpu_workers.tiny import build_all
    except ImportError as exc:
        raise BadInput(f"the models extra is not installed ({exc.name}): pip install -e '.[models]'") from None
    folders = build_all(out.resolve())
    env = {f"STORYBOT_{name.upper()}_MODEL": str(path) for name, path in folders.items()}
    if settings:
        env |= TINY_SETTINGS
    if as_json:
        print(json.dumps(env))
        return
    for name, value in env.items():
        print(f"{name}={value}")


@models_app.command("pull")
def pull(
    families: Annotated[list[str] | None, typer.Argument(help="What to fetch: writer (the embedded writer).")] = None,
) -> None:
    """Fetch model weights before any job, with progress, resume and checksums; prints each folder.

    `writer`: the embedded writer's instruct model (Phi-3.5-mini-instruct, MIT, int4 for
    onnxruntime-genai, 2.8 GB) into STORYBOT_WRITER_MODEL or the user's cache; run it with the
    `writer` extra. The GPU families load from their STORYBOT_*_MODEL settings instead.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    from storybot.app import err, run_async
    from tools.llm.writer_model import DEFAULT, pull_writer
    from tools.settings import get_settings

    wanted = families or ["writer"]
    unknown = [f for f in wanted if f != "writer"]
    if unknown:
        raise BadInput(
            f"cannot pull {', '.join(map(repr, unknown))}: `models pull` fetches the writer; the GPU families "
            "load from STORYBOT_SDXL_MODEL, STORYBOT_LTX_MODEL, STORYBOT_WHISPER_MODEL, STORYBOT_VISION_MODEL"
        )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def show(file: str, done: int, total: int) -> None:
            if file not in tasks:
                tasks[file] = bar.add_task(file, total=total)
            bar.update(tasks[file], completed=done)

        async def go() -> int:
            folder = await pull_writer(get_settings(), show)
            print(folder)
            return 0

        code = run_async(go())
    if code:
        raise typer.Exit(code)
    err.print(f"the writer's model ({DEFAULT.repo}, {DEFAULT.licence}) is ready", markup=False)
