"""Device policy shared by every family: dtype, placement and offload, generators, memory, failures.

torch is imported inside each function: the client process imports this package (through
`gpu_workers.serve` and the Celery app) without ever loading the ML stack. Generators live on the
pipeline's execution device (LTX's timestep-conditioned VAE draws decode noise there), tiling and
slicing are the VAE's own methods (called, never `hasattr`-skipped), and CPU offload is used only
when the card lacks room for the whole pipeline (`STORYBOT_GPU_OFFLOAD`).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from typing import Any

from gpu_workers.protocol import OFFLOAD_MODES

log = logging.getLogger("storybot.gpu")
Progress = Callable[[int, int], None]  # (step, total); raises to cancel
GIB = 1 << 30
# Activations, VAE decode and the CUDA context on top of the weights (estimates; see docs/GPU.md).
HEADROOM = {"sdxl": 4 * GIB, "ltx": 8 * GIB, "vision": 3 * GIB}


def device_and_dtype() -> tuple[str, Any]:
    """bf16 (fp16 where bf16 is missing) on CUDA, float32 on CPU (half precision is slow or missing there)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def is_oom(exc: BaseException) -> bool:
    """Out of memory, including cuBLAS failing to allocate its workspace (`CUBLAS_STATUS_ALLOC_FAILED`
    is an allocation failure the worker survives, not a poisoned context)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "outofmemory" in text or "out of memory" in text or "cublas_status_alloc_failed" in text


def is_fatal(exc: BaseException) -> bool:
    """A CUDA error other than OOM leaves the context unusable: the worker must exit, not serve failures."""
    text = str(exc).lower()
    return not is_oom(exc) and (
        "cuda error" in text
        or "illegal memory access" in text
        or "device-side assert" in text
        or "cublas_status" in text
    )


def free_memory() -> None:
    """After each request (and before retrying a smaller batch): return cached blocks to the card,
    so other workers sharing it can allocate."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def peak_bytes() -> int:
    """Peak memory of this worker: what torch allocated on the card, or the process's resident peak on CPU."""
    import resource

    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pick_offload(mode: str, free: int, weights: int, largest: int, headroom: int) -> str:
    """`auto`: everything on the card when it fits, else one model at a time (model offload), else
    layer by layer (sequential, slow but fits anything)."""
    if mode not in OFFLOAD_MODES:
        raise ValueError(f"STORYBOT_GPU_OFFLOAD must be one of {', '.join(OFFLOAD_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    if free >= weights + headroom:
        return "none"
    if free >= largest + headroom:
        return "model"
    return "sequential"


TILING_MODES = ("auto", "on", "off")


def short_of_memory(device: str, offload: str, free: int, weights: int, headroom: int) -> bool:
    """On a card, offloaded or with under twice the headroom left after the weights: then the VAE
    decodes in tiles. A CPU decodes in tiles too (its memory is the machine's)."""
    return device != "cuda" or offload != "none" or free < weights + 2 * headroom


def pick_tiling(mode: str, short: bool) -> bool:
    """Spatial VAE tiling (`STORYBOT_VAE_TILING`): it bounds the decode's memory but costs about 30%
    more decode time and is not needed where the card has room, so `auto` tiles only when short."""
    if mode not in TILING_MODES:
        raise ValueError(f"STORYBOT_VAE_TILING must be one of {', '.join(TILING_MODES)}, not {mode!r}")
    return mode == "on" or (mode == "auto" and short)


def pick_framewise(mode: str, device: str, short: bool) -> bool:
    """LTX temporal tiling (`vae.use_framewise_decoding`): `enable_tiling()` only tiles space, so each
    tile still decodes every frame at once, the largest single allocation on a small card. `auto` turns
    it on on CUDA when memory is short."""
    if mode not in TILING_MODES:
        raise ValueError(f"STORYBOT_LTX_FRAMEWISE must be one of {', '.join(TILING_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode == "on"
    return device == "cuda" and short


def _module_bytes(module: Any) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def place(pipe: Any, family: str, device: str, mode: str | None = None) -> dict[str, Any]:
    """The offload that fits, tiling on the VAE when memory is short (and slicing for SDXL batches),
    then the pipeline on the device or offloaded.
    Returns what was chosen, for the `ready` message and the smoke report."""
    import torch

    offload = "none"
    modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    sizes = [_module_bytes(m) for m in modules]
    headroom = HEADROOM.get(family, 4 * GIB)
    free = 0
    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        offload = pick_offload(
            mode or os.environ.get("STORYBOT_GPU_OFFLOAD", "auto"), free, sum(sizes), max(sizes, default=0), headroom
        )
    short = short_of_memory(device, offload, free, sum(sizes), headroom)
    if pick_tiling(os.environ.get("STORYBOT_VAE_TILING", "auto") or "auto", short):
        pipe.vae.enable_tiling()  # AttributeError here is wanted: a VAE without it would not fit at 1 MP
    if family == "sdxl":
        pipe.vae.enable_slicing()
    if family == "ltx":
        framewise = os.environ.get("STORYBOT_LTX_FRAMEWISE", "auto") or "auto"
        pipe.vae.use_framewise_decoding = pick_framewise(framewise, device, short)
    if offload == "model":
        pipe.enable_model_cpu_offload()
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to(device)
    return {
        "device": str(pipe._execution_device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "offload": offload,
        "tiling": bool(pipe.vae.use_tiling),
        "temporal_tiling": bool(getattr(pipe.vae, "use_framewise_decoding", False)),
        "slicing": bool(pipe.vae.use_slicing),
        "pipeline": type(pipe).__name__,
    }


def generators(pipe: Any, seeds: list[int]) -> list[Any]:
    """One generator per seed on the pipeline's execution device (under offload: the GPU the hooks
    move each model to), where the pipeline draws its noise."""
    import torch

    device = pipe._execution_device
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def step_callback(progress: Progress, total: int, done: int = 0, per_step: int = 1) -> Callable[..., dict[str, Any]]:
    """A diffusers `callback_on_step_end` that reports `done + steps × per_step` of `total`."""

    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(done + (step + 1) * per_step, total)
        return kwargs

    return on_step_end


def from_pretrained(cls: Any, model: str, dtype: Any) -> Any:
    """Half-precision weights where the repo has them (`variant="fp16"`, safetensors); the plain
    files otherwise (a repo or folder without the variant)."""
    try:
        return cls.from_pretrained(model, dtype=dtype, variant="fp16", use_safetensors=True)
    except (ValueError, OSError) as exc:
        if "variant" not in str(exc) and "fp16" not in str(exc):
            raise
        log.info("no fp16 variant in %s; loading the plain weights", model)
        return cls.from_pretrained(model, dtype=dtype)
