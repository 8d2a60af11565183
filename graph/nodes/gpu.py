"""GPU requests as the nodes make them: which family is configured, progress mapped into a stage's
span, failures named by stage, shot and model, and SDXL drawing in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from graph.context import NodeContext
from tools.gpu import Family, GpuClient, GpuError, ImageResult, ProgressFn, SdxlParams
from tools.gpu import plan as gpu_plan
from tools.media import keyframes
from tools.models import Aspect, Shot

T = TypeVar("T")


def on_gpu(ctx: NodeContext, family: Family) -> GpuClient | None:
    """The GPU client when this family's model is configured, else None (the offline default runs)."""
    return ctx.gpu if ctx.gpu is not None and ctx.gpu.configured(family) else None


async def gpu_call(
    ctx: NodeContext,
    family: str,
    model: str,
    call: Callable[[ProgressFn], Awaitable[T]],
    *,
    stage_name: str,
    what: str,
    span: tuple[float, float] = (0.0, 100.0),
) -> T:
    """One GPU (or vision API) request with progress mapped into `span` percent of the stage; a
    failure names the stage, the shot(s) and the model, and says out-of-memory plainly."""
    lo, hi = span

    def progress(step: int, total: int) -> None:
        ctx.progress(stage_name, lo + (hi - lo) * step / total, f"{what}: step {step}/{total}")

    try:
        return await call(progress)
    except GpuError as exc:
        label = "out of memory" if exc.kind == "oom" else "failed"
        raise GpuError(f"{stage_name} ({what}) {label} on {family} model {model}: {exc}", exc.kind) from None


async def sdxl_draw(
    ctx: NodeContext,
    gpu: GpuClient,
    stage_name: str,
    aspect: Aspect,
    jobs: list[tuple[Shot, int, str, Path]],
    negatives: list[str],
    span: tuple[float, float] = (0.0, 100.0),
) -> None:
    """Draw (shot, seed, prompt, png) in batches at SDXL's native size and scale each to the output
    size, a batch's scaling overlapping the next batch's drawing; `negatives` has one negative prompt
    per job."""
    s = ctx.settings
    width, height = gpu_plan.sdxl_size(aspect, s.gpu_size_divisor)
    raw_dir = ctx.path("keyframes/.sdxl")
    raw_dir.mkdir(parents=True, exist_ok=True)
    lo, hi = span
    fitting: list[asyncio.Task[None]] = []  # each batch is fitted to the output size while the next draws
    try:
        for b in range(0, len(jobs), s.sdxl_batch):
            batch = jobs[b : b + s.sdxl_batch]
            raws = [raw_dir / png.name for _, _, _, png in batch]
            params = SdxlParams(
                prompts=[p for _, _, p, _ in batch],
                seeds=[seed for _, seed, _, _ in batch],
                outputs=[str(r) for r in raws],
                width=width,
                height=height,
                steps=s.sdxl_steps,
                negative_prompts=negatives[b : b + s.sdxl_batch],
            )
            numbers = ", ".join(str(shot.index + 1) for shot, _, _, _ in batch)
            part = (hi - lo) / len(jobs)

            def draw(progress: ProgressFn, params: SdxlParams = params) -> Awaitable[ImageResult]:
                return gpu.run("sdxl", params, progress)

            await gpu_call(
                ctx,
                "sdxl",
                gpu.model("sdxl"),
                draw,
                stage_name=stage_name,
                what=f"shot {numbers}",
                span=(lo + part * b, lo + part * (b + len(batch))),
            )
            pngs = [png for _, _, _, png in batch]
            fitting.append(asyncio.create_task(_fit(ctx, raws, pngs, aspect)))
    finally:
        done = await asyncio.gather(*fitting, return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome


async def _fit(ctx: NodeContext, raws: list[Path], pngs: list[Path], aspect: Aspect) -> None:
    """SDXL's native pictures scaled and cropped to the output size, off the event loop."""
    for raw, png in zip(raws, pngs, strict=True):
        image = await ctx.in_thread(keyframes.load_image_cover, raw, aspect.size)
        await ctx.in_thread(keyframes.save_png, image, png)
