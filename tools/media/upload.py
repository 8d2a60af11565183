"""Upload fitting: predicting the master's size, planning a copy under a chat upload limit, and the
fallback that re-encodes the master when the copy made by the final cut (tools.media.compose) missed.

One pass aims at the bitrate under a VBV cap (maxrate 10% above, a one-second buffer), which keeps
the size near bitrate x (duration + 1 s); a file that still comes out too big is redone 8% lower.
Two-pass ABR would use the budget a little better but costs a second decode and encode, which on
two cores was most of the fitting time. The fallback copies the audio, so the fitted file keeps the
master's measured loudness; the same-run copy encodes the same normalised PCM. Width drops to 720
only when the bitrate left for 1080-wide video would look worse than a sharper, smaller picture.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel

from tools.errors import MediaError
from tools.media.compose import CutPlan, VideoEncoding, x264_args
from tools.media.ffmpeg import run_ffmpeg
from tools.media.motion import FPS, ShotMedia, StillShot, cover_filter, drift_filter, ken_burns_filter
from tools.media.probe import probe
from tools.models import Aspect

DEFAULT_LIMIT = 10 * 1024 * 1024
MIN_FULL_WIDTH_KBPS = 1800  # below this, 720-wide looks better than starved 1080-wide
MIN_KBPS = 150
AUDIO_KBPS = 160
RETRY_FACTOR = 0.92
SAMPLE_FRAMES = 12
# trial bytes per frame / master bytes per frame, by bench/render.py with x264's default keyframe interval:
# 1.77 (clips) and 1.70 (cards); the lower one, since a needless copy costs less than the fallback
TRIAL_BIAS = 1.7
CONTAINER_MARGIN = 0.96  # room for the mp4 index and rate-control error


class FitReport(BaseModel):
    path: str
    size_bytes: int
    video_kbps: int
    width: int
    height: int
    attempts: int
    same_run: bool  # made by the final cut itself, from the same frames as the master


class CopyPlan(BaseModel):
    video_kbps: int
    width: int
    height: int


def plan_copy(
    duration: float, size: tuple[int, int], limit_bytes: int, audio_kbps: int = AUDIO_KBPS, attempt: int = 1
) -> CopyPlan | None:
    """Bitrate and picture size for a copy of `duration` seconds under `limit_bytes`; None when none fits."""
    budget_kbps = limit_bytes * 8 / 1000 / (duration + 1) * CONTAINER_MARGIN - audio_kbps
    w, h = size
    short = min(w, h)
    if budget_kbps < MIN_FULL_WIDTH_KBPS and short > 720:
        w, h = (round(w * 720 / short / 2) * 2, round(h * 720 / short / 2) * 2)
    kbps = int(budget_kbps * (RETRY_FACTOR ** (attempt - 1)))
    return CopyPlan(video_kbps=kbps, width=w, height=h) if kbps >= MIN_KBPS else None


async def fit_for_upload(
    master: Path, out: Path, limit_bytes: int = DEFAULT_LIMIT, first_attempt: int = 1
) -> FitReport | None:
    """Write `out` under `limit_bytes` when `master` is over it; None when the master already fits.

    `first_attempt` > 1 starts lower: the fallback after a copy made in the final cut came out too big.
    """
    if master.stat().st_size <= limit_bytes:
        out.unlink(missing_ok=True)
        return None
    info = probe(master)
    if info.video is None or info.audio is None:
        raise MediaError(f"{master.name}: needs video and audio to fit for upload")
    scratch = out.with_name(f".{out.stem}.fitting{out.suffix}")
    try:
        for attempt in range(first_attempt, first_attempt + 3):
            copy = plan_copy(info.duration, (info.video.width, info.video.height), limit_bytes, attempt=attempt)
            if copy is None:
                break
            await _encode_capped(master, scratch, copy)
            size = scratch.stat().st_size
            if size <= limit_bytes:  # else try again, asking for 8% less
                scratch.replace(out)
                return FitReport(
                    path=str(out),
                    size_bytes=size,
                    video_kbps=copy.video_kbps,
                    width=copy.width,
                    height=copy.height,
                    attempts=attempt,
                    same_run=False,
                )
    finally:
        scratch.unlink(missing_ok=True)
    raise MediaError(f"cannot fit {master.name} ({info.duration:.0f} s) under {limit_bytes} bytes")


async def _encode_capped(master: Path, out: Path, copy: CopyPlan) -> None:
    await run_ffmpeg(
        [
            "-v",
            "error",
            "-i",
            master,
            "-vf",
            f"scale={copy.width}:{copy.height}:flags=bicubic",
            *x264_args("veryfast", kbps=copy.video_kbps),
            "-c:a",
            "copy",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            out,
        ]
    )


async def predict_master_bytes(media: list[ShotMedia], cut: CutPlan, aspect: Aspect, enc: VideoEncoding) -> int:
    """Predict the size of the CRF master before it is made, from a trial encode of a sample.

    A CRF encode's size depends on the pictures, so it is measured, not guessed: SAMPLE_FRAMES of
    every shot (the start of a clip, so nothing before them is decoded; the middle of a still's move,
    where it is fastest) go through the same fitting and the same encoder settings. Each sample
    starts on a cut, so the trial has more intra frames than the master: it came out 1.7-1.8x the
    master's bytes per frame on the bench's clips and cards, hence TRIAL_BIAS. The estimate errs to
    either side by a few tens of percent: a needless copy costs its encode, a missing one the fallback.
    """
    inputs: list[str] = []
    chains: list[str] = []
    opened = 0  # inputs so far: a still with a layer has two
    for i, (shot, n) in enumerate(zip(media, cut.clip_frames, strict=True)):
        count, first = min(SAMPLE_FRAMES, n), opened
        if isinstance(shot, StillShot):
            inputs += ["-i", str(shot.image)]
            moved = f"[{first}:v]{ken_burns_filter(shot.motion, n, aspect, (n - count) // 2, count)}"
            opened += 1
            if shot.layer is None:
                chains.append(f"{moved}[p{i}]")
                continue
            inputs += ["-i", str(shot.layer)]
            opened += 1
            drift = f"[{first + 1}:v]format=rgba[p{i}l];[p{i}b][p{i}l]{drift_filter(aspect)}"
            chains.append(f"{moved}[p{i}b];{drift}[p{i}]")
            continue
        opened += 1
        inputs += ["-t", f"{count / FPS + 0.5:.3f}", "-i", str(shot.sources[0].path)]
        chains.append(
            f"[{first}:v]setpts=PTS-STARTPTS,fps={FPS},{cover_filter(aspect)},"
            f"tpad=stop_mode=clone:stop={count},trim=end_frame={count}[p{i}]"
        )
    labels = "".join(f"[p{i}]" for i in range(len(media)))
    graph = ";".join(chains) + f";{labels}concat=n={len(media)}:v=1:a=0[v]"
    sampled = sum(min(SAMPLE_FRAMES, n) for n in cut.clip_frames)
    with tempfile.TemporaryDirectory(prefix="storybot-trial-") as tmp:
        trial = Path(tmp) / "trial.mp4"
        await run_ffmpeg(
            [
                "-v",
                "error",
                *inputs,
                "-filter_complex",
                graph,
                "-map",
                "[v]",
                *x264_args(enc.preset, crf=enc.crf),
                "-an",
                "-f",
                "mp4",
                trial,
            ]
        )
        video_bytes = trial.stat().st_size
    audio_kbps = int(enc.audio_bitrate.rstrip("k"))
    return int(video_bytes / sampled / TRIAL_BIAS * cut.total_frames + audio_kbps * 1000 / 8 * cut.total)
