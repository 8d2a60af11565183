"""The final cut: one FFmpeg run that cross-fades the shot clips, burns the subtitles, ducks the
music under the voice, normalises loudness (second pass) and encodes once.

The filter graph is built as a string with typed helpers rather than ffmpeg-python: that library
has had no release since 2019, runs FFmpeg synchronously, and its escaping does not cover paths
inside filter options (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from tools.assets import FONTS_DIR
from tools.ffmpeg import escape_filter_value, run_ffmpeg
from tools.files import atomic_path
from tools.loudness import LoudnormStats, loudnorm_apply_filter, measure_loudnorm
from tools.models import Aspect, Shot
from tools.motion import FPS

TRANSITION = 0.4   # cross-fade length, seconds
TAIL = 0.5         # picture and music after the last word
VOICE_LUFS = -16.0
BED_BELOW_VOICE_LU = 18.0


class VideoEncoding(BaseModel):
    preset: str = "veryfast"
    crf: int = 21
    audio_bitrate: str = "160k"


class CutPlan(BaseModel):
    """How long each clip must be so that cross-fades centre on the shot boundaries."""

    clip_seconds: list[float]
    offsets: list[float]  # xfade offsets on the output timeline
    total: float


def plan_cut(shots: list[Shot], tail: float = TAIL, transition: float = TRANSITION) -> CutPlan:
    half = transition / 2 if len(shots) > 1 else 0.0
    clip_seconds = []
    for i, shot in enumerate(shots):
        lead = half if i > 0 else 0.0
        trail = half if i < len(shots) - 1 else tail
        clip_seconds.append(round(shot.duration + lead + trail, 3))
    offsets = [round(s.start - half, 3) for s in shots[1:]]
    return CutPlan(clip_seconds=clip_seconds, offsets=offsets, total=round(shots[-1].end + tail, 3))


def _video_graph(n_clips: int, plan: CutPlan, ass: Path, transition: float) -> str:
    parts = [f"[{i}:v]fps={FPS},format=yuv420p,setsar=1,settb=AVTB[c{i}]" for i in range(n_clips)]
    last = "c0"
    for k, offset in enumerate(plan.offsets, start=1):
        parts.append(f"[{last}][c{k}]xfade=transition=fade:duration={transition}:offset={offset}[x{k}]")
        last = f"x{k}"
    parts.append(f"[{last}]ass=filename={escape_filter_value(str(ass))}:"
                 f"fontsdir={escape_filter_value(str(FONTS_DIR))},format=yuv420p[vout]")
    return ";".join(parts)


def _audio_graph(voice_idx: int, music_idx: int, gains: tuple[float, float], total: float) -> str:
    """Voice at VOICE_LUFS, music BED_BELOW_VOICE_LU under it and ducked while the voice speaks."""
    voice_gain, music_gain = gains
    fmt = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
    fade_out = max(total - 1.0, 0.0)
    return ";".join([
        f"[{voice_idx}:a]{fmt},volume={voice_gain:.2f}dB,apad=whole_dur={total},asplit=2[voice][key]",
        f"[{music_idx}:a]{fmt},atrim=0:{total},asetpts=PTS-STARTPTS,volume={music_gain:.2f}dB,"
        f"afade=t=in:d=0.5,afade=t=out:st={fade_out}:d=1[bed]",
        "[bed][key]sidechaincompress=threshold=0.02:ratio=6:attack=20:release=400[ducked]",
        "[voice][ducked]amix=inputs=2:duration=first:normalize=0[mix]",
    ])


async def _integrated(path: Path) -> float:
    return (await measure_loudnorm(["-i", path], "[0:a]anull[a]", "a")).input_i


async def mix_gains(voice: Path, music: Path) -> tuple[float, float]:
    """Gains (dB) that put the voice at VOICE_LUFS and the music bed well under it."""
    voice_i, music_i = await asyncio.gather(_integrated(voice), _integrated(music))
    return VOICE_LUFS - voice_i, VOICE_LUFS - BED_BELOW_VOICE_LU - music_i


async def compose(clips: list[Path], shots: list[Shot], voice: Path, music: Path, ass: Path,
                  aspect: Aspect, out: Path, enc: VideoEncoding | None = None,
                  transition: float = TRANSITION) -> tuple[CutPlan, LoudnormStats]:
    """Cut `clips` (one per shot, lengths from plan_cut) into `out`; returns the plan and pass-1 stats."""
    enc = enc or VideoEncoding()
    plan = plan_cut(shots, transition=transition)
    n = len(clips)
    music_in: list[str | Path] = ["-stream_loop", "-1", "-i", music]
    gains = await mix_gains(voice, music)
    audio = _audio_graph(0, 1, gains, plan.total)
    stats = await measure_loudnorm(["-i", voice, *music_in], audio, "mix")
    audio_final = _audio_graph(n, n + 1, gains, plan.total) + f";[mix]{loudnorm_apply_filter(stats)}[aout]"
    graph = _video_graph(n, plan, ass, transition) + ";" + audio_final
    inputs: list[str | Path] = []
    for clip in clips:
        inputs += ["-i", clip]
    inputs += ["-i", voice, *music_in]
    w, h = aspect.size
    with atomic_path(out) as tmp:
        await run_ffmpeg([
            "-v", "error", *inputs, "-filter_complex", graph, "-map", "[vout]", "-map", "[aout]",
            "-t", f"{plan.total}", "-s", f"{w}x{h}", "-r", str(FPS),
            "-c:v", "libx264", "-profile:v", "high", "-preset", enc.preset, "-crf", str(enc.crf),
            "-pix_fmt", "yuv420p", "-g", str(2 * FPS),
            "-c:a", "aac", "-b:a", enc.audio_bitrate, "-ar", "48000", "-ac", "2",
            "-movflags", "+faststart", "-f", "mp4", tmp,
        ])
    return plan, stats
