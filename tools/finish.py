"""Post-production shared by `storybot render` and the graph's post_produce node:
music bed, final cut, loudness check, upload copy and thumbnail, plus the metadata they yield.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools import compose, loudness, thumbnail, upload
from tools.models import Aspect
from tools.motion import FPS
from tools.music import synth_bed
from tools.probe import MediaInfo, probe


class Finished(BaseModel):
    final: Path
    discord: Path | None
    thumbnail: Path
    info: MediaInfo
    loudness: loudness.Loudness
    fit: upload.FitReport | None


async def music_or_bed(music: Path | None, folder: Path, seconds: float, seed: int) -> Path:
    """The user's music, or a bed synthesised into `folder` (hidden: it is not an artifact)."""
    if music is not None:
        return music
    bed = folder / ".bed.wav"
    await asyncio.to_thread(synth_bed, seconds + 1, bed, seed)
    return bed


async def finish(folder: Path, clips: list[Path], cut: compose.CutPlan, voice: Path, music: Path, ass: Path,
                 aspect: Aspect, enc: compose.VideoEncoding, upload_limit: int,
                 mix: compose.AudioMix | None = None) -> Finished:
    """Cut, check and package the video into `folder` (final.mp4, final.discord.mp4, thumbnail.png)."""
    if mix is None:
        mix = await compose.prepare_audio(voice, music, cut.total)
    final = folder / "final.mp4"
    await compose.compose(clips, cut, voice, music, mix, ass, aspect, final, enc=enc)
    measured = await loudness.measure_file(final)
    fitted = await upload.fit_for_upload(final, folder / "final.discord.mp4", upload_limit)
    thumb = await asyncio.to_thread(thumbnail.make_thumbnail, clips, aspect, folder / "thumbnail.png")
    return Finished(final=final, discord=Path(fitted.path) if fitted else None, thumbnail=thumb,
                    info=await asyncio.to_thread(probe, final), loudness=measured, fit=fitted)


def finish_metadata(done: Finished, enc: compose.VideoEncoding, cut: compose.CutPlan, music_supplied: bool,
                    upload_limit: int) -> dict[str, Any]:
    """The video half of metadata.json: what was made, how it measures, how it was encoded."""
    return {
        "video": done.info.model_dump(exclude={"path"}),
        "loudness": {**done.loudness.model_dump(), "target_lufs": loudness.TARGET_LUFS, "ceiling_dbtp": -1.0},
        "encoder": {
            "video": {"codec": "libx264", "profile": "high", "preset": enc.preset, "crf": enc.crf,
                      "pix_fmt": "yuv420p", "fps": FPS, "faststart": True},
            "audio": {"codec": "aac", "bitrate": enc.audio_bitrate, "sample_rate": 48000, "channels": 2},
            "transition_seconds": cut.transition_frames / FPS,
            "music": "supplied" if music_supplied else "synth",
        },
        "discord": done.fit.model_dump() if done.fit else None,
        "upload_limit_bytes": upload_limit,
    }
