"""Card profiles: which checkpoints and which memory policy fit a card, chosen from its memory.

The figures behind them are estimates from the checkpoints' sizes (bf16 weights plus the headroom in
gpu_workers/families/device.py), not measurements: see docs/GPU.md. On 80 GB every family stays
resident; below that a family that needs the card first stops the others' workers on it (the lease
in tools/gpu/local.py), and on 24 GB LTX is the 2B model under model offload with frame-by-frame
decoding and the judge is Qwen2.5-VL-3B. The card's memory is read with nvidia-smi, so the client
process never opens a CUDA context.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from pydantic import BaseModel

from gpu_workers.protocol import Family

GIB = 1 << 30
PROFILE_NAMES = ("auto", "none", "24gb", "48gb", "80gb")


class Profile(BaseModel):
    name: str
    min_gib: float  # the smallest card (total memory) it is chosen for
    models: dict[Family, str]  # hub ids, used where STORYBOT_*_MODEL is unset (`models pull`, the smoke run)
    lease: bool  # one family resident on the card at a time
    offload: str  # STORYBOT_GPU_OFFLOAD for the diffusers families
    ltx_framewise: str  # STORYBOT_LTX_FRAMEWISE
    vae_tiling: str  # STORYBOT_VAE_TILING
    vision_offload: str  # the judge: "none" (all on the card) or "auto" (device_map when it does not fit)
    estimated_peak_gib: float  # the largest family resident with its headroom (estimated)


LARGE: dict[Family, str] = {
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "ltx": "Lightricks/LTX-Video-0.9.7-distilled",
    "whisper": "Systran/faster-whisper-large-v3",
    "vision": "Qwen/Qwen2.5-VL-7B-Instruct",
}
SMALL: dict[Family, str] = {**LARGE, "ltx": "Lightricks/LTX-Video-0.9.5", "vision": "Qwen/Qwen2.5-VL-3B-Instruct"}
PROFILES: tuple[Profile, ...] = (
    # SDXL 7 + LTX 13B 37 + Qwen-7B 16.6 + Whisper large-v3 3.1 GB of weights: 64 GB, all resident
    Profile(
        name="80gb",
        min_gib=70,
        models=LARGE,
        lease=False,
        offload="auto",
        ltx_framewise="auto",
        vae_tiling="auto",
        vision_offload="none",
        estimated_peak_gib=75,
    ),
    # one at a time: LTX 13B alone is 37 GB + 8 GB headroom
    Profile(
        name="48gb",
        min_gib=40,
        models=LARGE,
        lease=True,
        offload="auto",
        ltx_framewise="auto",
        vae_tiling="auto",
        vision_offload="auto",
        estimated_peak_gib=45,
    ),
    # LTX 2B (transformer 4 GB, T5 9.5 GB) one model at a time, frames decoded one by one; Qwen-3B 7.5 GB
    Profile(
        name="24gb",
        min_gib=0,
        models=SMALL,
        lease=True,
        offload="model",
        ltx_framewise="on",
        vae_tiling="on",
        vision_offload="auto",
        estimated_peak_gib=19,
    ),
)


def pick_profile(total_bytes: int) -> Profile:
    """The largest profile whose smallest card is not bigger than this one (24gb for anything small:
    offload `auto` there turns to sequential by itself when even one model does not fit)."""
    gib = total_bytes / GIB
    return next(p for p in PROFILES if gib >= p.min_gib)


def profile_named(name: str) -> Profile:
    for profile in PROFILES:
        if profile.name == name:
            return profile
    raise ValueError(f"STORYBOT_GPU_PROFILE must be one of {', '.join(PROFILE_NAMES)}, not {name!r}")


def card_memory(device: str | None = None) -> int | None:
    """Total memory of the card the workers use (the first of CUDA_VISIBLE_DEVICES), from nvidia-smi;
    None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    index = (device or os.environ.get("CUDA_VISIBLE_DEVICES", "0") or "0").split(",")[0].strip()
    try:
        done = subprocess.run(
            [smi, f"--id={index}", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return int(float(done.stdout.split()[0])) << 20  # MiB
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None


def resolve_profile(name: str, total_bytes: int | None = None) -> Profile | None:
    """`auto`: from the card's memory (None on a machine without nvidia-smi); `none`: no profile."""
    if name == "none":
        return None
    if name != "auto":
        return profile_named(name)
    total = total_bytes if total_bytes is not None else card_memory()
    return pick_profile(total) if total else None
