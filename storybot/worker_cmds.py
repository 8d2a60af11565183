"""`storybot worker` (a Celery GPU worker) and `storybot models tiny DIR` (tiny test models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer

from gpu_workers.protocol import Family
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


PULLABLE = ("writer", *QUEUES)


@models_app.command("pull")
def pull(
    families: Annotated[
        list[str] | None,
        typer.Argument(
            help="What to fetch: writer, sdxl, ltx, whisper, vision (default: the writer and the configured families)."
        ),
    ] = None,
) -> None:
    """Fetch model weights before any job, with progress, resume and checksums; prints each folder.

    `writer`: the embedded writer's instruct model (Phi-3.5-mini-instruct, MIT, int4 for
    onnxruntime-genai, 2.8 GB) into STORYBOT_WRITER_MODEL or the user's cache; run it with the
    `writer` extra. `sdxl`, `ltx`, `whisper`, `vision`: the hub id in STORYBOT_*_MODEL (named, also the
    card profile's, STORYBOT_GPU_PROFILE) into ~/.cache/storybot/models, where the GPU workers then
    load it, so no download runs inside a worker's load timeout. A folder needs no pull.
    """
    from storybot.app import download_bars, err, run_async
    from tools.gpu.profiles import LARGE, resolve_profile
    from tools.gpu.pull import is_hub_id, pull_family
    from tools.llm.writer_model import DEFAULT, pull_writer
    from tools.settings import get_settings

    if unknown := [f for f in families or [] if f not in PULLABLE]:
        raise BadInput(f"cannot pull {', '.join(map(repr, unknown))}: use {', '.join(PULLABLE)}")
    settings = get_settings()
    profile = resolve_profile(settings.gpu_profile)
    defaults = profile.models if profile else LARGE
    configured: dict[Family, str | None] = {
        "sdxl": settings.sdxl_model,
        "ltx": settings.ltx_model,
        "whisper": settings.whisper_model,
        "vision": settings.vision_model,
    }
    # no argument: the writer and the GPU families this machine is configured for (not ~70 GB unasked)
    wanted = list(dict.fromkeys(families or ["writer", *(f for f in QUEUES if configured[cast(Family, f)])]))
    with download_bars() as show:

        async def go() -> int:
            for family in wanted:
                if family == "writer":
                    print(await pull_writer(settings, show))
                    err.print(f"the writer's model ({DEFAULT.repo}, {DEFAULT.licence}) is ready", markup=False)
                    continue
                gpu = cast(Family, family)
                model = configured[gpu] or defaults[gpu]
                if not is_hub_id(model):
                    err.print(f"{family}: {model} is a folder here; nothing to pull", markup=False)
                    continue
                print(await pull_family(settings.hub_url, gpu, model, show))
                err.print(f"{family}: {model} is ready", markup=False)
            return 0

        code = run_async(go())
    if code:
        raise typer.Exit(code)
