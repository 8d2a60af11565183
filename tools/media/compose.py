"""The final cut: one FFmpeg run that cross-fades the shot clips, burns the subtitles, ducks the
music under the voice, normalises loudness (second pass) and encodes once.

Cross-fades blend only the frames that overlap: each clip is split into head, body and tail with
`trim`, neighbouring tails and heads go through a short `xfade`, and everything is joined with
`concat`. A plain `xfade` chain pushes every frame of the video through every transition filter,
which cost more than a tenth of the cut's time on this machine.

The filter graph is built as a string with typed helpers rather than ffmpeg-python: that library
has had no release since 2019, runs FFmpeg synchronously, and its escaping does not cover paths
inside filter options (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from tools.files import atomic_path
from tools.media.ffmpeg import escape_filter_value, run_ffmpeg
from tools.media.fonts import fonts_dir
from tools.media.loudness import LoudnormStats, loudnorm_apply_filter, measure_loudnorm
from tools.media.motion import FPS, ShotMedia, shot_chain
from tools.models import Aspect, Shot

TRANSITION_FRAMES = 12  # 0.4 s cross-fades
TAIL = 0.5  # picture and music after the last word
VOICE_LUFS = -16.0
BED_BELOW_VOICE_LU = 18.0


class VideoEncoding(BaseModel):
    preset: str = "veryfast"
    crf: int = 21
    audio_bitrate: str = "160k"


class CutPlan(BaseModel):
    """Frame counts that put each cross-fade's midpoint on a shot boundary, without drift.

    Boundaries are rounded to frames from absolute times, so rounding never accumulates.
    """

    clip_frames: list[int]
    transition_frames: int
    total_frames: int

    @property
    def clip_seconds(self) -> list[float]:
        return [f / FPS for f in self.clip_frames]

    @property
    def total(self) -> float:
        return self.total_frames / FPS

    @property
    def shot_starts(self) -> list[int]:
        """The frame of the cut where each shot begins: the midpoint of the cross-fade into it."""
        starts, clip_start = [0], 0
        for frames in self.clip_frames[:-1]:
            clip_start += frames - self.transition_frames
            starts.append(clip_start + self.transition_frames // 2)
        return starts

    def shot_key_times(self) -> str:
        """`-force_key_frames` times: an IDR frame where every shot after the first begins, so each
        shot can be cut out of the master by stream copy. Half a frame early, since FFmpeg keys the
        first frame at or after each time."""
        return ",".join(f"{(k - 0.5) / FPS:.4f}" for k in self.shot_starts[1:]) or "0"


def plan_cut(shots: list[Shot], tail: float = TAIL, transition_frames: int = TRANSITION_FRAMES) -> CutPlan:
    transition = transition_frames if len(shots) > 1 else 0
    half = transition // 2
    total = round((shots[-1].end + tail) * FPS)
    bounds = [0, *(round(s.start * FPS) for s in shots[1:]), total]
    frames = []
    for i in range(len(shots)):
        start = bounds[i] - (half if i > 0 else 0)
        end = bounds[i + 1] + (transition - half if i < len(shots) - 1 else 0)
        frames.append(end - start)
    return CutPlan(clip_frames=frames, transition_frames=transition, total_frames=total)


def _video_graph(media: list[ShotMedia], plan: CutPlan, ass: Path, aspect: Aspect) -> tuple[list[str], int, str]:
    """Inputs and the video half of the graph: fitted shots, cross-fades, subtitles, into `[vout]`."""
    n, t = len(plan.clip_frames), plan.transition_frames
    inputs: list[str] = []
    parts: list[str] = []
    order: list[str] = []
    count = 0
    for i, (shot, frames) in enumerate(zip(media, plan.clip_frames, strict=True)):
        fitted = shot_chain(shot, frames, aspect, count, f"s{i}")
        count += len(fitted.inputs)
        for args in fitted.inputs:
            inputs += args
        parts.append(fitted.chain)
        head = t if i > 0 else 0
        tail = t if i < n - 1 else 0
        pieces = (["h"] if head else []) + ["b"] + (["t"] if tail else [])
        parts.append(f"[s{i}]settb=AVTB,split={len(pieces)}" + "".join(f"[{p}{i}]" for p in pieces))
        spans = {"h": (0, head), "b": (head, frames - tail), "t": (frames - tail, frames)}
        for p in pieces:
            a, b = spans[p]
            parts.append(f"[{p}{i}]trim=start_frame={a}:end_frame={b},setpts=PTS-STARTPTS[{p}{i}c]")
        if head:
            parts.append(f"[t{i - 1}c][h{i}c]xfade=transition=fade:duration={t / FPS:.4f}:offset=0[x{i}]")
            order.append(f"[x{i}]")
        order.append(f"[b{i}c]")
    parts.append(
        "".join(order) + f"concat=n={len(order)}:v=1:a=0,"
        f"ass=filename={escape_filter_value(str(ass))}:fontsdir={escape_filter_value(str(fonts_dir()))},"
        "format=yuv420p[vout]"
    )
    return inputs, count, ";".join(parts)


class AudioMix(BaseModel):
    """Gains and the loudnorm first pass: everything the final run needs to treat the audio."""

    voice_gain_db: float
    music_gain_db: float
    total: float
    measured: LoudnormStats

    def graph(self, voice_idx: int, music_idx: int) -> str:
        return _mix_graph(voice_idx, music_idx, self.voice_gain_db, self.music_gain_db, self.total)


def _mix_graph(voice_idx: int, music_idx: int, voice_gain: float, music_gain: float, total: float) -> str:
    """Voice at VOICE_LUFS, music BED_BELOW_VOICE_LU under it and ducked while the voice speaks.

    A limiter at -6 dBFS trims the rare speech peaks, so that loudnorm's second pass can apply one
    linear gain (exactly -14 LUFS) instead of falling back to dynamic mode (which landed ~0.5 LU low).
    """
    fmt = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
    fade_out = max(total - 1.0, 0.0)
    return ";".join(
        [
            f"[{voice_idx}:a]{fmt},volume={voice_gain:.2f}dB,apad=whole_dur={total},asplit=2[voice][key]",
            f"[{music_idx}:a]{fmt},atrim=0:{total},asetpts=PTS-STARTPTS,volume={music_gain:.2f}dB,"
            f"afade=t=in:d=0.5,afade=t=out:st={fade_out}:d=1[bed]",
            "[bed][key]sidechaincompress=threshold=0.02:ratio=6:attack=20:release=400[ducked]",
            "[voice][ducked]amix=inputs=2:duration=first:normalize=0,"
            "alimiter=limit=0.5:attack=5:release=50:level=false[mix]",
        ]
    )


def _music_input(music: Path) -> list[str | Path]:
    return ["-stream_loop", "-1", "-i", music]


async def _integrated(path: Path) -> float:
    return (await measure_loudnorm(["-i", path], "[0:a]anull[a]", "a")).input_i


async def prepare_audio(voice: Path, music: Path, total: float) -> AudioMix:
    """Measure voice and music, set their gains, and run loudnorm's first pass on the mix.

    Audio only and independent of the pictures, so it can run while the clips are animated.
    """
    voice_i, music_i = await asyncio.gather(_integrated(voice), _integrated(music))
    voice_gain, music_gain = VOICE_LUFS - voice_i, VOICE_LUFS - BED_BELOW_VOICE_LU - music_i
    graph = _mix_graph(0, 1, voice_gain, music_gain, total)
    measured = await measure_loudnorm(["-i", voice, *_music_input(music)], graph, "mix")
    return AudioMix(voice_gain_db=voice_gain, music_gain_db=music_gain, total=total, measured=measured)


class UploadCopy(BaseModel):
    """The second output of the final cut: a copy sized for a chat upload limit.

    One-pass ABR under a VBV cap (maxrate 10% above the target, a one-second buffer) keeps the size
    near bitrate x duration; two-pass would need a second run, which is what this copy avoids.
    """

    path: Path
    video_kbps: int
    width: int
    height: int


def x264_args(preset: str, *, crf: int | None = None, kbps: int | None = None) -> list[str]:
    """H.264 High profile in yuv420p, what phones and chat apps play: constant quality `crf` (the
    master), or an average `kbps` under a VBV cap (maxrate 10% above, a one-second buffer), which
    keeps a copy near bitrate x duration."""
    if (crf is None) == (kbps is None):
        raise TypeError("x264_args takes one of crf and kbps")
    if kbps is None:
        rate = ["-crf", str(crf)]
    else:
        rate = ["-b:v", f"{kbps}k", "-maxrate", f"{int(kbps * 1.1)}k", "-bufsize", f"{kbps}k"]
    return ["-c:v", "libx264", "-profile:v", "high", "-preset", preset, *rate, "-pix_fmt", "yuv420p"]


def mp4_args(plan: CutPlan, enc: VideoEncoding, kbps: int | None = None) -> list[str]:
    """The output options of a cut (the master, its upload copy, the bench's reference): its length
    and frame rate, x264 at `enc.crf` (or at `kbps`, for a copy), AAC, an mp4 with its index first."""
    return [
        "-frames:v",
        str(plan.total_frames),
        "-t",
        f"{plan.total:.3f}",
        "-r",
        str(FPS),
        *(x264_args(enc.preset, crf=enc.crf) if kbps is None else x264_args(enc.preset, kbps=kbps)),
        "-c:a",
        "aac",
        "-b:a",
        enc.audio_bitrate,
        "-ar",
        "48000",
        "-ac",
        "2",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ]


async def compose(
    media: list[ShotMedia],
    plan: CutPlan,
    voice: Path,
    music: Path,
    mix: AudioMix,
    ass: Path,
    aspect: Aspect,
    out: Path,
    enc: VideoEncoding | None = None,
    upload_copy: UploadCopy | None = None,
) -> None:
    """Cut the shots (one `media` per shot) with the voice, music and subtitles into `out`, and into
    `upload_copy` from the same decoded and filtered frames when one is asked for."""
    enc = enc or VideoEncoding()
    inputs, count, video = _video_graph(media, plan, ass, aspect)
    audio = mix.graph(count, count + 1) + f";[mix]{loudnorm_apply_filter(mix.measured)}[aout]"
    graph = video + ";" + audio
    maps = ["-map", "[vout]", "-map", "[aout]"]
    if upload_copy is not None:
        size = (upload_copy.width, upload_copy.height)
        scale = f"scale={size[0]}:{size[1]}:flags=bicubic" if size != aspect.size else "null"
        graph += f";[vout]split=2[vmain][vcopy];[vcopy]{scale}[vsmall];[aout]asplit=2[afull][asmall]"
        maps = ["-map", "[vmain]", "-map", "[afull]"]
    w, h = aspect.size
    main = [
        *maps,
        "-s",
        f"{w}x{h}",
        *mp4_args(plan, enc),
        "-force_key_frames",
        plan.shot_key_times(),
    ]
    with atomic_path(out) as tmp, _maybe_atomic(upload_copy) as tmp_copy:
        extra: list[str | Path] = []
        if upload_copy is not None and tmp_copy is not None:
            extra = [
                "-map",
                "[vsmall]",
                "-map",
                "[asmall]",
                *mp4_args(plan, enc, upload_copy.video_kbps),
                tmp_copy,
            ]
        await run_ffmpeg(
            ["-v", "error", *inputs, "-i", voice, *_music_input(music), "-filter_complex", graph, *main, tmp, *extra]
        )


@contextmanager
def _maybe_atomic(copy: UploadCopy | None) -> Iterator[Path | None]:
    if copy is None:
        yield None
        return
    with atomic_path(copy.path) as tmp:
        yield tmp
