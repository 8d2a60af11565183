"""GPU smoke test: every model family through a real local worker, one command.

    .venv/bin/python bench/gpu_smoke.py [--device auto|cuda|cpu] [--real] [--models DIR] [--out report.json]

With the tiny random-weight models (built by `storybot models tiny`'s own function) it runs on a CPU
(`--device cpu`) and on a bare CUDA machine; `--real` takes the checkpoints in the local Hugging Face
cache (HF_HUB_OFFLINE=1, nothing is downloaded). It asserts what each worker reports it runs on: the
device asked for (a silent CPU fallback on a CUDA machine fails it), the dtype (bf16/fp16 on CUDA,
float32 on the CPU), the offload mode, VAE tiling with LTX's frame-by-frame decoding on, Whisper probed
on CUDA or its announced CPU fallback. It measures load seconds, seconds per item, each worker's peak
memory and GPU utilisation sampled with nvidia-smi every 200 ms; pictures are neither black nor NaN,
clip frames move, and a cancelled request leaves the worker serving. The tiny run also builds LTX as
0.9.7's distilled LTXConditionPipeline and makes a clip that needs a continuation segment.

On CUDA a second process (the ballast) fills the card's free memory, so SDXL's next request meets a
real out-of-memory: with the card full it must be reported as `oom` (after the batch was halved);
then the free memory is bisected until two pictures at once run out of memory and one at a time
fits (the batch halved, the pictures drawn); the ballast is released and the same worker, never
restarted, must serve again. No out-of-memory with the card full is a failed check.

It imports nothing of the voice or media stack (no PyAV, Piper or espeak-ng): the speech is a WAV
written with the standard library and LTX writes raw frames (`.npy`). faster-whisper itself imports
PyAV, so where PyAV is absent Whisper is reported as skipped, not passed. Exit 1 on any failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gpu_workers.protocol import (
    FAMILIES,
    Family,
    ImageResult,
    Look,
    LtxParams,
    SdxlParams,
    VisionParams,
    WhisperParams,
)
from tools.gpu import GpuError
from tools.gpu.local import LocalBackend

# The checkpoints the real run looks for in the local cache, first found wins (see docs/GPU.md).
REAL: dict[Family, list[str]] = {
    "sdxl": ["stabilityai/stable-diffusion-xl-base-1.0"],
    "ltx": ["Lightricks/LTX-Video-0.9.7-distilled", "Lightricks/LTX-Video-0.9.5", "Lightricks/LTX-Video"],
    "whisper": ["Systran/faster-whisper-large-v3", "Systran/faster-whisper-small"],
    "vision": ["Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct"],
}
# (sdxl w, h, steps), (ltx w, h, frames, steps): the tiny runs use the CPU settings of `storybot models tiny`
TINY = {"sdxl": (96, 160, 2), "ltx": (64, 96, 17, 2)}
FULL = {"sdxl": (768, 1344, 30), "ltx": (512, 896, 121, 30)}
# the distilled LTXConditionPipeline run (tiny only): w, h, frames, frames per generation; 25 frames in
# generations of at most 17 are two segments, the second conditioned on the first one's last 9 frames
DISTILLED = (32, 64, 25, 17)
# the OOM check (CUDA): w, h, and the free MiB its bisection starts from; large enough that two
# pictures at once need clearly more memory than one (the tiny UNet's activations grow with the area)
OOM = {"tiny": (1536, 1536, 64), "real": (768, 1344, 2048)}


def cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


class Utilisation:
    """nvidia-smi sampled every 200 ms while a family runs: mean and max utilisation, max memory used."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen[str] | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Utilisation:
        if smi := shutil.which("nvidia-smi"):
            query = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"]
            self.proc = subprocess.Popen([smi, *query], stdout=subprocess.PIPE, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 2 and parts[0].replace(".", "").isdigit():
                self.samples.append((float(parts[0]), float(parts[1])))

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_mem_used_mib_max": None}
        util = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": round(sum(util) / len(util), 1),
            "gpu_util_max": max(util),
            "gpu_mem_used_mib_max": max(m for _, m in self.samples),
        }


def picture_ok(path: str) -> dict[str, Any]:
    """Not black, not NaN (diffusers turns NaN latents into black pictures), not one flat colour."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return {
        "mean": round(float(pixels.mean()), 2),
        "std": round(float(pixels.std()), 2),
        "ok": bool(np.isfinite(pixels).all() and pixels.mean() > 2 and pixels.std() > 1),
    }


def frames_move(path: str) -> dict[str, Any]:
    frames = list(np.load(path).astype(np.float64))  # the worker's raw frames (.npy): no PyAV here
    motion = float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(frames)]))
    return {
        "frames": len(frames),
        "mean_abs_change": round(motion, 3),
        "ok": bool(len(frames) > 1 and motion > 0.05 and picture_ok_array(frames[len(frames) // 2])),
    }


def picture_ok_array(pixels: Any) -> bool:
    return bool(np.isfinite(pixels).all() and pixels.mean() > 2 and pixels.std() > 1)


def find_real() -> dict[Family, str]:
    from huggingface_hub import scan_cache_dir

    cached = {repo.repo_id for repo in scan_cache_dir().repos}
    return {
        family: next(i for i in ids if i in cached) for family, ids in REAL.items() if any(i in cached for i in ids)
    }


def speech_wav(path: Path, seconds: float = 4.0, rate: int = 16000) -> Path:
    """A voiced-like tone (a 140 Hz buzz with formant-ish partials) written with the standard library."""
    t = np.arange(int(seconds * rate)) / rate
    wave_ = sum(np.sin(2 * math.pi * f * t) / (i + 1) for i, f in enumerate((140, 700, 1200, 2500)))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 3 * t)  # syllable-rate loudness changes
    pcm = (wave_ * envelope / 2 * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def missing_media(family: Family) -> str | None:
    """faster-whisper imports PyAV at import: without it (a bare GPU machine) Whisper cannot run here."""
    if family == "whisper" and not all(importlib.util.find_spec(m) for m in ("faster_whisper", "av")):
        return "faster-whisper and PyAV are not installed here (see docs/GPU.md, the bare CUDA machine)"
    return None


def expect(family: Family, info: dict[str, Any], device: str, row: dict[str, Any]) -> list[str]:
    """What the worker reports against what this run asked for; every miss is one line."""
    failed: list[str] = []
    on = str(info.get("device", ""))
    if family == "whisper":
        if device == "cuda" and not on.startswith("cuda") and "fallback" not in info:
            failed.append(f"whisper on {on} without an announced fallback")
        if not info.get("probed"):
            failed.append("whisper was not probed at load")
        if on == "cpu" and info.get("dtype") != "int8":
            failed.append(f"whisper on the CPU in {info.get('dtype')}, not int8")
        return failed
    if not on.startswith(device):
        failed.append(f"{family} runs on {on or 'nothing'}, not {device} (a silent fallback?)")
    dtypes = ("bfloat16", "float16") if device == "cuda" else ("float32",)
    if info.get("dtype") not in dtypes:
        failed.append(f"{family} dtype {info.get('dtype')}, not {' or '.join(dtypes)}")
    allowed = ("none",) if device == "cpu" else ("none", "model", "sequential", "device_map")
    if info.get("offload") not in allowed:
        failed.append(f"{family} offload {info.get('offload')}, not {' or '.join(allowed)}")
    if family in ("sdxl", "ltx") and not info.get("tiling"):
        failed.append(f"{family}: VAE tiling is off")
    if family == "sdxl" and not info.get("slicing"):
        failed.append("sdxl: VAE slicing is off")
    if family == "ltx" and not info.get("temporal_tiling"):
        failed.append("ltx: frame-by-frame (temporal) decoding is off")
    if family == "ltx" and row.get("latent_frames", 0) <= row.get("temporal_tile_frames", 0):
        failed.append("ltx: the clip is too short for a temporal tile to be reached")
    if family == "vision" and (row.get("verdicts"), row.get("vision_batch")) != (4, 4):
        failed.append(f"vision: {row.get('verdicts')} verdicts in batches of {row.get('vision_batch')}, not 4 in one")
    return failed


async def smoke(
    models: dict[Family, str], out: Path, real: bool, device: str, distilled: str | None = None
) -> list[dict[str, Any]]:
    """Each family in turn through its own worker; `distilled`: a tiny LTXConditionPipeline folder whose
    name says distilled, run after LTX with a continuation."""
    # the smoke run must reach the spatial and temporal tiled decode, which `auto` skips on a large card
    env = {"STORYBOT_LTX_FRAMEWISE": "on", "STORYBOT_VAE_TILING": "on"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the workers see no card
    backend = LocalBackend(models, offload=os.environ.get("STORYBOT_GPU_OFFLOAD", "auto"), env=env)
    rows: list[dict[str, Any]] = []
    speech = speech_wav(out / "voice.wav")
    # started now, so it imports torch while SDXL loads; it touches the card only when first asked
    ballast = await Ballast.start() if device == "cuda" and "sdxl" in models else None
    try:
        for fam in FAMILIES:
            family = str(fam)
            if fam not in models:
                rows.append({"family": family, "skipped": "no model"})
                continue
            if reason := missing_media(fam):
                rows.append({"family": family, "skipped": reason})
                continue
            row: dict[str, Any] = {"family": family, "model": models[fam]}
            with Utilisation() as util:
                try:
                    started = time.perf_counter()
                    await backend.worker(fam).start()
                    row["load_s"] = round(time.perf_counter() - started, 2)
                    row |= await run_family(backend, fam, out, real, speech)
                except GpuError as exc:
                    row["error"] = str(exc)
            worker = backend.workers[fam]
            row |= {"info": worker.info, "peak_mib": round(worker.peak_bytes / 2**20, 1), **util.summary()}
            if "error" not in row:
                row["failed"] = expect(fam, worker.info, device, row)
                if fam == "sdxl" and ballast is not None:  # after the nvidia-smi sampling: the ballast fills the card
                    oom, failed = await oom_check(backend, ballast, out, real)
                    row |= oom
                    row["failed"] += failed
                elif fam == "sdxl":
                    row["oom_leaves_serving"] = "cpu: covered by tests/test_gpu_real_path.py (injected OOM)"
            rows.append(row)
            await worker.close()  # one family at a time, so each peak is its own
            if fam == "ltx":
                rows.append(
                    await distilled_row(distilled, env, out, device)
                    if distilled
                    else {"family": "ltx-distilled", "skipped": "tiny models only"}
                )
        families = [r["family"] for r in rows if "failed" in r and r["family"] in FAMILIES]
        rows.append(await resident_together(backend, families))
    finally:
        if ballast is not None:
            await ballast.close()
        await backend.close()
    return rows


async def distilled_row(model: str, env: dict[str, str], out: Path, device: str) -> dict[str, Any]:
    """LTX as 0.9.7-distilled runs it: LTXConditionPipeline, recognised as distilled by its folder's
    name (what `auto` reads), eight explicit timesteps per generation, and a clip longer than one
    generation, so a continuation conditioned on the last frames runs."""
    w, h, frames, cap = DISTILLED
    backend = LocalBackend(
        {"ltx": model},
        offload=os.environ.get("STORYBOT_GPU_OFFLOAD", "auto"),
        env={**env, "STORYBOT_LTX_DISTILLED": "auto"},
    )
    row: dict[str, Any] = {"family": "ltx-distilled", "model": model}
    steps: list[tuple[int, int]] = []
    if not (out / "key.png").exists():  # the LTX row writes it (the SDXL keyframe) unless it failed to load
        Image.new("RGB", (w, h), (200, 120, 40)).save(out / "key.png")
    try:
        with Utilisation() as util:
            try:
                started = time.perf_counter()
                await backend.worker("ltx").start()
                row["load_s"] = round(time.perf_counter() - started, 2)
                params = LtxParams(
                    image=str(out / "key.png"),
                    prompt="waves roll in, the camera slowly pushes in",
                    output=str(out / "distilled.npy"),
                    width=w,
                    height=h,
                    num_frames=frames,
                    max_frames=cap,
                    steps=2,  # ignored: a distilled LTXConditionPipeline runs its own eight timesteps
                )
                started = time.perf_counter()
                clip = await backend.run("ltx", params, lambda i, n: steps.append((i, n)))
                row["s_per_clip"] = round(time.perf_counter() - started, 3)
                row["frames"], row["segments"] = clip.frames, clip.segments
                row["latent_frames"] = (cap - 1) // 4 + 1  # per generation
                row["temporal_tile_frames"] = 16 // 4
                row["steps"] = steps[-1] if steps else None
                moved = frames_move(clip.output)
                row["frames_move"], row["mean_abs_change"] = moved["ok"], moved["mean_abs_change"]
            except GpuError as exc:
                row["error"] = str(exc)
        worker = backend.workers["ltx"]
        row |= {"info": worker.info, "peak_mib": round(worker.peak_bytes / 2**20, 1), **util.summary()}
        if "error" not in row:
            row["failed"] = expect("ltx", worker.info, device, row) + expect_distilled(worker.info, row, frames)
    finally:
        await backend.close()
    return row


def expect_distilled(info: dict[str, Any], row: dict[str, Any], frames: int) -> list[str]:
    """The distilled, conditioned branch and its continuation, as the worker reports them."""
    from gpu_workers.families.ltx import Ltx

    failed: list[str] = []
    if info.get("pipeline") != "LTXConditionPipeline":
        failed.append(f"ltx-distilled: the worker built {info.get('pipeline')}, not LTXConditionPipeline")
    if info.get("distilled") is not True:
        failed.append("ltx-distilled: the worker did not take the checkpoint as distilled")
    if row.get("segments", 0) < 2:
        failed.append(f"ltx-distilled: {row.get('segments')} generation(s), no continuation ran")
    if row.get("frames") != frames:
        failed.append(f"ltx-distilled: {row.get('frames')} frames, not {frames}")
    per_clip = len(Ltx.DISTILLED_TIMESTEPS) * max(row.get("segments", 0), 1)
    if row.get("steps") != (per_clip, per_clip):
        failed.append(f"ltx-distilled: progress ended at {row.get('steps')}, not the distilled schedule's {per_clip}")
    return failed


# The ballast: a process of its own, so the smoke run never holds a CUDA context (the memory figures
# stay the workers' own) and closing it hands every byte back. Each line in is the MiB to leave free
# (0: the card full); each line out is what is free after filling. Big blocks first; under 10 MiB the
# caching allocator would round a block up to a 20 MiB segment, so the rest goes in 1 MiB pieces
# (two per 2 MiB segment of the small pool): at most 2 MiB above what was asked stays free.
BALLAST = """
import json, sys
import torch
MIB = 1 << 20
held = []

def free():
    return torch.cuda.mem_get_info()[0]

def fill(leave):
    held.clear()
    torch.cuda.empty_cache()
    size = max(free() - leave, 0) // (2 * MIB) * (2 * MIB)
    while size >= 10 * MIB:
        try:
            held.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
        except torch.cuda.OutOfMemoryError:
            size = size // (4 * MIB) * (2 * MIB)
            continue
        size = min(size, max(free() - leave, 0) // (2 * MIB) * (2 * MIB))
    while free() >= leave + 2 * MIB:
        try:
            held.append(torch.empty(MIB, dtype=torch.uint8, device="cuda"))
        except torch.cuda.OutOfMemoryError:
            break
    torch.cuda.synchronize()
    return {"free_mib": round(free() / MIB, 1), "held_mib": round(sum(t.numel() for t in held) / MIB, 1)}

for line in sys.stdin:
    print(json.dumps(fill(int(line) * MIB)), flush=True)
"""


class Ballast:
    """A second process on the card holding all of its free memory but what `leave` is given."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> Ballast:
        env = {k: v for k, v in os.environ.items() if k != "PYTORCH_CUDA_ALLOC_CONF"}  # the segment sizes above
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BALLAST, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        return cls(proc)

    async def leave(self, mib: int) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{mib}\n".encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 180)
        if not line:
            raise RuntimeError(f"the ballast process exited with code {await self.proc.wait()}")
        level: dict[str, float] = json.loads(line)
        return level

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def find_halving(
    probe: Callable[[int], Awaitable[str]], start: int, limit: int = 20, resolution: int = 2
) -> int | None:
    """Bisect the MiB left free on the card for a level where the batch of two runs out of memory and
    one at a time fits: below it even one picture fails (`oom`), above it both fit at once (`whole`).
    `probe(mib)` runs the request with that much free and says which happened (`halved` in between;
    anything else stops the search). The level found, or None."""
    low, high, leave = 0, None, start
    for _ in range(limit):
        outcome = await probe(leave)
        if outcome == "halved":
            return leave
        if outcome == "oom":
            low = leave
        elif outcome == "whole":
            high = leave
        else:
            return None
        if high is None:
            leave *= 2
        elif high - low <= resolution:
            return None
        else:
            leave = (low + high) // 2
    return None


async def oom_check(backend: LocalBackend, ballast: Ballast, out: Path, real: bool) -> tuple[dict[str, Any], list[str]]:
    """A real CUDA out-of-memory in the SDXL worker, then the same worker serving (see the docstring
    at the top). Returns the row's fields and the failed checks."""
    worker = backend.worker("sdxl")
    w, h, start = OOM["real" if real else "tiny"]
    big = SdxlParams(
        prompts=["a lighthouse on a cliff at dusk", "a whale under the sea"],
        seeds=[1, 2],
        outputs=[str(out / "oom1.png"), str(out / "oom2.png")],
        width=w,
        height=h,
        steps=2,
    )
    starts, probes, failed = worker.starts, list[dict[str, Any]](), list[str]()

    async def probe(leave: int) -> str:
        level = await ballast.leave(leave)
        worker.stderr_tail.clear()
        entry: dict[str, Any] = {"leave_mib": leave, "free_mib": level["free_mib"]}
        try:
            result: ImageResult = await backend.run("sdxl", big)
        except GpuError as exc:
            entry |= {"outcome": exc.kind, "error": str(exc)[:300]}
        else:
            ok = all(picture_ok(p)["ok"] for p in result.outputs)
            entry |= {"outcome": "halved" if result.batch < 2 else "whole", "batch": result.batch, "pictures_ok": ok}
        await asyncio.sleep(0.2)  # the worker's stderr catches up with its answer
        entry["halving_logged"] = any("retrying with batches of 1" in line for line in worker.stderr_tail)
        probes.append(entry)
        return str(entry["outcome"])

    try:
        full = await probe(0)
        if full != "oom":
            failed.append(f"sdxl with the card full ({probes[0]['free_mib']} MiB free): {full}, no out-of-memory")
        if await find_halving(probe, start) is None:
            tried = ", ".join(f"{p['free_mib']:.0f} MiB {p['outcome']}" for p in probes)
            failed.append(f"sdxl: no free memory found where two pictures ran out and one fitted ({tried})")
        elif not probes[-1]["pictures_ok"]:
            failed.append("sdxl: the pictures drawn after halving the batch are black, flat or NaN")
    except (RuntimeError, OSError, TimeoutError, ValueError) as exc:
        failed.append(f"the OOM check could not fill the card: {type(exc).__name__}: {exc}")
    finally:
        await ballast.close()
    small = big.model_copy(update={"width": TINY["sdxl"][0], "height": TINY["sdxl"][1]} if not real else {})
    try:
        served = all(Path(p).is_file() for p in (await backend.run("sdxl", small)).outputs)
    except GpuError as exc:
        served = False
        failed.append(f"sdxl after the out-of-memory: {exc}")
    if worker.starts != starts:
        failed.append(f"sdxl: the worker was restarted during the OOM check ({worker.starts - starts} times)")
    halved = next((p for p in probes if p["outcome"] == "halved"), None)
    fields = {
        "oom_leaves_serving": not failed,
        "oom_full_card": probes[0] if probes else None,
        "oom_halved_at_free_mib": halved["free_mib"] if halved else None,
        "oom_probes": probes,
        "oom_served_after": served,
    }
    return fields, failed


async def resident_together(backend: LocalBackend, families: list[Family]) -> dict[str, Any]:
    """Every family that passed loaded at once (what the 80 GB profile keeps resident): the card's
    memory in use from nvidia-smi, or the workers' resident memory on the CPU."""
    row: dict[str, Any] = {"family": "all resident", "families": families}
    with Utilisation() as util:
        try:
            await asyncio.gather(*(backend.worker(f).start() for f in families))
            await asyncio.sleep(0.6)  # three nvidia-smi samples with everything loaded
        except GpuError as exc:
            row["error"] = str(exc)
    row |= util.summary()
    procs = [w.proc for w in backend.workers.values() if w.proc is not None and w.proc.returncode is None]
    row["workers_rss_mib"] = round(sum(rss_mib(p.pid) for p in procs), 1)
    row["resident"] = len(procs)
    return row


def rss_mib(pid: int) -> float:
    """A process's resident memory now (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
        return int(fields[0]) / 1024
    except (OSError, IndexError, ValueError):
        return 0.0


async def run_family(backend: LocalBackend, family: Family, out: Path, real: bool, wav: Path) -> dict[str, Any]:
    sizes = FULL if real else TINY
    row: dict[str, Any] = {}
    if family == "sdxl":
        w, h, steps = sizes["sdxl"]
        params = SdxlParams(
            prompts=["a lighthouse on a cliff at dusk", "a whale under the sea"],
            seeds=[1, 2],
            outputs=[str(out / "k1.png"), str(out / "k2.png")],
            width=w,
            height=h,
            steps=steps,
        )
        started = time.perf_counter()
        images = await backend.run("sdxl", params)
        row["s_per_image"] = round((time.perf_counter() - started) / 2, 3)
        checks = [picture_ok(p) for p in images.outputs]
        row["pictures_ok"] = all(c["ok"] for c in checks)
        row["picture_stats"] = checks
        row["cancel_leaves_serving"] = await cancel_then_serve(
            backend, params.model_copy(update={"steps": 5000}), params
        )
    elif family == "ltx":
        w, h, frames, steps = sizes["ltx"]
        if (out / "k1.png").exists():  # animate the SDXL keyframe when there is one
            shutil.copyfile(out / "k1.png", out / "key.png")
        else:
            Image.new("RGB", (w, h), (200, 120, 40)).save(out / "key.png")
        clip_params = LtxParams(
            image=str(out / "key.png"),
            prompt="waves roll in, the camera slowly pushes in",
            output=str(out / "clip.npy"),
            width=w,
            height=h,
            num_frames=frames,
            max_frames=frames,
            steps=steps,
        )
        started = time.perf_counter()
        clip = await backend.run("ltx", clip_params)
        row["s_per_clip"] = round(time.perf_counter() - started, 3)
        row["frames"] = clip.frames
        row["latent_frames"] = (frames - 1) // 4 + 1 if not real else (frames - 1) // 8 + 1
        row["temporal_tile_frames"] = 16 // 4 if not real else 16 // 8  # tile_sample_min_num_frames / compression
        moved = frames_move(clip.output)
        row["frames_move"], row["mean_abs_change"] = moved["ok"], moved["mean_abs_change"]
    elif family == "whisper":
        started = time.perf_counter()
        heard = await backend.run(
            "whisper",
            WhisperParams(
                audio=str(wav), language="en", beam_size=5 if real else 1, max_new_tokens=None if real else 16
            ),
        )
        row["s_per_transcript"] = round(time.perf_counter() - started, 3)
        row["audio_s"], row["words"] = heard.duration, len(heard.words)
    else:
        image = out / "k1.png" if (out / "k1.png").exists() else out / "key.png"
        if not image.exists():
            Image.new("RGB", (108, 192), (30, 90, 160)).save(image)
        started = time.perf_counter()
        looks = [  # a stage's verdicts in one request: the keyframe, then it again after "the previous shot"
            Look(image=0, prompt="a lighthouse on a cliff at dusk"),
            Look(image=0, prompt="a whale under the moon", previous=0),
            Look(image=0, prompt="rain over a harbour town", previous=0),
            Look(image=0, prompt="a keeper climbing the stairs with a lamp", previous=0),
        ]
        judged = await backend.run(
            "vision",
            VisionParams(images=[str(image)], looks=looks, max_new_tokens=120 if real else 24, batch=len(looks)),
        )
        row["s_per_verdict"] = round((time.perf_counter() - started) / len(looks), 3)
        row["verdicts"], row["vision_batch"] = len(judged.verdicts), judged.batch
        row["parsed"] = sum(v.parsed for v in judged.verdicts)
    return row


async def cancel_then_serve(backend: LocalBackend, long: SdxlParams, short: SdxlParams) -> bool:
    worker = backend.worker("sdxl")
    starts, stepping = worker.starts, asyncio.Event()
    task = asyncio.create_task(backend.run("sdxl", long, lambda i, n: stepping.set()))
    await asyncio.wait_for(stepping.wait(), 600)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    served = await backend.run("sdxl", short)
    return worker.starts == starts and all(Path(p).is_file() for p in served.outputs)


def table(rows: list[dict[str, Any]]) -> str:
    cols = ["family", "device", "dtype", "offload", "load_s", "per_item_s", "peak_mib", "gpu_util_mean", "checks"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['family']} | skipped: {r['skipped']}" + " |" * (len(cols) - 2))
            continue
        info = r.get("info", {})
        per = next((r[k] for k in ("s_per_image", "s_per_clip", "s_per_transcript", "s_per_verdict") if k in r), None)
        checks = {
            k: r[k]
            for k in (
                "pictures_ok",
                "cancel_leaves_serving",
                "oom_leaves_serving",
                "oom_halved_at_free_mib",
                "frames_move",
                "segments",
                "words",
                "parsed",
                "vision_batch",
                "failed",
                "resident",
                "workers_rss_mib",
                "gpu_mem_used_mib_max",
                "error",
            )
            if k in r
        }
        lines.append(
            " | ".join(
                str(v)
                for v in (
                    r["family"],
                    info.get("device"),
                    info.get("dtype"),
                    info.get("offload"),
                    r.get("load_s"),
                    per,
                    r.get("peak_mib"),
                    r.get("gpu_util_mean"),
                    checks,
                )
            )
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", action="store_true", help="real checkpoints from the local Hugging Face cache")
    parser.add_argument("--models", type=Path, help="tiny models already built by `storybot models tiny`")
    parser.add_argument("--out", type=Path, default=Path("gpu_smoke.json"), help="the JSON report")
    parser.add_argument(
        "--device", choices=("auto", "cuda", "cpu"), default="auto", help="what the workers must run on"
    )
    args = parser.parse_args()
    device = ("cuda" if cuda() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not cuda():
        print("gpu_smoke: --device cuda, but torch sees no CUDA card here", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        root = Path(tmp)
        distilled: Path | None = None
        if args.real:
            os.environ["HF_HUB_OFFLINE"] = "1"
            models = find_real()
        else:
            folder = args.models or root / "models"
            from gpu_workers.tiny import build_all, build_ltx  # build_all: what `storybot models tiny` runs

            if args.models is None:
                build_all(folder)
            models = {f: str(folder / f) for f in FAMILIES}
            distilled = folder / "ltx-distilled" if (folder / "ltx-distilled").is_dir() else root / "ltx-distilled"
            if not distilled.is_dir():  # 0.9.7's class; the name is what makes the worker treat it as distilled
                build_ltx(distilled, "LTXConditionPipeline")
        started = time.perf_counter()
        rows = asyncio.run(smoke(models, root, args.real, device, str(distilled) if distilled else None))
    media = sorted(m for m in ("av", "piper", "espeakng", "tools.tts") if m in sys.modules)
    report = {
        "cuda": cuda(),
        "device": device,
        "real": args.real,
        "wall_s": round(time.perf_counter() - started, 1),
        "media_modules_imported": media,
        "families": rows,
    }
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(table(rows))
    print(f"\nreport: {args.out} ({report['wall_s']} s, {'cuda' if report['cuda'] else 'cpu'})")
    bad = [
        r["family"]
        for r in rows
        if "error" in r
        or r.get("pictures_ok") is False
        or r.get("frames_move") is False
        or r.get("cancel_leaves_serving") is False
        or r.get("oom_leaves_serving") is False
        or r.get("failed")
        or ("resident" in r and r["resident"] != len(r["families"]))
    ]
    for r in rows:
        for line in r.get("failed", []):
            print(f"FAILED {line}", file=sys.stderr)
    if media:
        print(f"FAILED the smoke run imported the media stack: {', '.join(media)}", file=sys.stderr)
    return 1 if bad or media else 0


if __name__ == "__main__":
    sys.exit(main())
