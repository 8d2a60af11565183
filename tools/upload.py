"""Upload fitting: a copy of the master that fits a chat upload limit, by bitrate targeting.

One pass aims at the bitrate under a VBV cap (maxrate 10% above, a one-second buffer), which keeps
the size near bitrate x (duration + 1 s); a file that still comes out too big is redone 8% lower.
Two-pass ABR would use the budget a little better but costs a second decode and encode, which on
two cores was most of the fitting time. The audio is copied, so the fitted file keeps the master's
measured loudness. Width drops to 720 only when the bitrate left for 1080-wide video would look
worse than a sharper, smaller picture.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tools.errors import MediaError
from tools.ffmpeg import run_ffmpeg
from tools.probe import probe

DEFAULT_LIMIT = 10 * 1024 * 1024
MIN_FULL_WIDTH_KBPS = 1800   # below this, 720-wide looks better than starved 1080-wide
MIN_KBPS = 150
CONTAINER_MARGIN = 0.96      # room for the mp4 index and rate-control error


class FitReport(BaseModel):
    path: str
    size_bytes: int
    video_kbps: int
    width: int
    height: int
    attempts: int


async def fit_for_upload(master: Path, out: Path, limit_bytes: int = DEFAULT_LIMIT) -> FitReport | None:
    """Write `out` under `limit_bytes` when `master` is over it; None when the master already fits."""
    if master.stat().st_size <= limit_bytes:
        out.unlink(missing_ok=True)
        return None
    info = probe(master)
    if info.video is None or info.audio is None:
        raise MediaError(f"{master.name}: needs video and audio to fit for upload")
    audio_kbps = 160
    budget_kbps = limit_bytes * 8 / 1000 / (info.duration + 1) * CONTAINER_MARGIN - audio_kbps
    w, h = info.video.width, info.video.height
    short = min(w, h)
    if budget_kbps < MIN_FULL_WIDTH_KBPS and short > 720:
        w, h = (round(w * 720 / short / 2) * 2, round(h * 720 / short / 2) * 2)
    scratch = out.with_name(f".{out.stem}.fitting{out.suffix}")
    try:
        for attempt in range(1, 4):
            kbps = int(budget_kbps * (0.92 ** (attempt - 1)))
            if kbps < MIN_KBPS:
                break
            await _encode_capped(master, scratch, kbps, w, h)
            size = scratch.stat().st_size
            if size <= limit_bytes:  # else try again, asking for 8% less
                scratch.replace(out)
                return FitReport(path=str(out), size_bytes=size, video_kbps=kbps, width=w, height=h,
                                 attempts=attempt)
    finally:
        scratch.unlink(missing_ok=True)
    raise MediaError(f"cannot fit {master.name} ({info.duration:.0f} s) under {limit_bytes} bytes")


async def _encode_capped(master: Path, out: Path, kbps: int, w: int, h: int) -> None:
    await run_ffmpeg([
        "-v", "error", "-i", master, "-vf", f"scale={w}:{h}:flags=bicubic", "-c:v", "libx264",
        "-profile:v", "high", "-preset", "veryfast", "-b:v", f"{kbps}k", "-maxrate", f"{int(kbps * 1.1)}k",
        "-bufsize", f"{kbps}k", "-pix_fmt", "yuv420p", "-c:a", "copy", "-movflags", "+faststart", "-f", "mp4", out,
    ])
