"""Probing media with PyAV (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from pydantic import BaseModel

from tools.errors import BadInput


class VideoInfo(BaseModel):
    codec: str
    profile: str | None
    width: int
    height: int
    pix_fmt: str | None
    fps: float
    duration: float


class AudioInfo(BaseModel):
    codec: str
    sample_rate: int
    channels: int
    duration: float


class MediaInfo(BaseModel):
    path: str
    duration: float
    size_bytes: int
    video: VideoInfo | None = None
    audio: AudioInfo | None = None


def _seconds(value: int | None, time_base: Fraction | None) -> float:
    return float(value * time_base) if value is not None and time_base is not None else 0.0


def probe(path: Path) -> MediaInfo:
    """Streams, sizes and durations of a media file; BadInput if it is not one."""
    try:
        with av.open(str(path)) as container:
            duration = container.duration / av.time_base if container.duration else 0.0
            info = MediaInfo(path=str(path), duration=duration, size_bytes=path.stat().st_size)
            if container.streams.video:
                vs = container.streams.video[0]
                rate = vs.average_rate or vs.base_rate or 0
                info.video = VideoInfo(
                    codec=vs.codec_context.name,
                    profile=vs.codec_context.profile,
                    width=vs.codec_context.width,
                    height=vs.codec_context.height,
                    pix_fmt=vs.codec_context.format.name if vs.codec_context.format else None,
                    fps=float(rate),
                    duration=_seconds(vs.duration, vs.time_base) or duration,
                )
            if container.streams.audio:
                aus = container.streams.audio[0]
                info.audio = AudioInfo(
                    codec=aus.codec_context.name,
                    sample_rate=aus.codec_context.sample_rate,
                    channels=aus.codec_context.channels,
                    duration=_seconds(aus.duration, aus.time_base) or duration,
                )
            return info
    except (av.error.FFmpegError, OSError) as exc:
        raise BadInput(f"{path.name}: not a readable media file ({exc})") from exc


# 8K UHD a frame: the render decodes every frame of a clip at full size, so an 8192x8192 one (67 MP)
# took 4x the time of the whole render for nothing a 1080p video can show
MAX_CLIP_PIXELS = 7680 * 4320


def require_clip_size(path: Path, video: VideoInfo) -> None:
    """BadInput for a clip over 8K, decided from its header before any frame is decoded."""
    if video.width * video.height > MAX_CLIP_PIXELS:
        raise BadInput(
            f"{path.name}: {video.width}x{video.height} is more than 8K ({MAX_CLIP_PIXELS // 10**6} megapixels a "
            "frame); scale it down first, e.g. `ffmpeg -i IN -vf scale=-2:2160 OUT`"
        )


def require_video_frame(path: Path) -> None:
    """BadInput unless the first video frame really decodes.

    A header can promise frames its data lacks; FFmpeg looping such a clip (`-stream_loop -1`)
    never produces a frame and never ends, so a clip is proven by decoding, not by its header.
    """
    _require_decoded(path, "video", "no video frame can be decoded")


def require_audio_sample(path: Path) -> None:
    """BadInput unless the audio decodes to at least one sample (a 0-sample WAV loops forever)."""
    _require_decoded(path, "audio", "no audio sample can be decoded")


def _require_decoded(path: Path, kind: str, problem: str) -> None:
    try:
        with av.open(str(path)) as container:
            streams = container.streams.video if kind == "video" else container.streams.audio
            if not streams:
                raise BadInput(f"{path.name}: has no {kind} stream")
            for frame in container.decode(streams[0]):
                if kind == "video" or getattr(frame, "samples", 0) > 0:
                    return
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadInput(f"{path.name}: {problem} ({' '.join(str(exc).split())[:120]})") from exc
    raise BadInput(f"{path.name}: {problem}")
