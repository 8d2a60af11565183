"""`clips/shot_NN.mp4`: every shot as its own file, cut out of the finished master.

The stills move and the footage is fitted inside the final cut's one graph (tools.media.compose), so no
per-shot clip is ever encoded on the way. The shots a user may want on their own are instead split
from the master by stream copy (FFmpeg's segment muxer) at the IDR frames the final cut forces where
each shot begins: one pass over the file, no decode, no encode, and each clip is that shot exactly as
it plays in the video (its picture, subtitles, voice and music). A shot whose clip came from the
image-to-video model keeps that clip: it is the model's output, and an input of the final cut.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tools.media.compose import CutPlan
from tools.media.ffmpeg import run_ffmpeg

CLIPS_DIR = "clips"


def clip_name(index: int) -> str:
    """The file of shot `index` (0-based) under `clips/`."""
    return f"shot_{index + 1:02d}.mp4"


async def split_shots(final: Path, cut: CutPlan, folder: Path, keep: set[int]) -> list[Path]:
    """Write `folder/clips/shot_NN.mp4` for every shot not in `keep` (0-based); return the files written.

    Files are made in a private temporary folder and renamed into place, so a crash leaves either
    the previous clip or the new one, never half of one.
    """
    clips = folder / CLIPS_DIR
    clips.mkdir(exist_ok=True)
    # the same times the final cut forced its IDR frames at: the segment muxer splits on the first
    # keyframe at or after each
    split = ["-segment_times", cut.shot_key_times()] if len(cut.clip_frames) > 1 else ["-segment_time", "86400"]
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix=".split-", dir=clips) as tmp:
        await run_ffmpeg(
            [
                "-v",
                "error",
                "-i",
                final,
                "-map",
                "0",
                "-c",
                "copy",
                "-f",
                "segment",
                *split,
                "-segment_format",
                "mp4",
                "-segment_format_options",
                "movflags=+faststart",
                "-reset_timestamps",
                "1",
                Path(tmp) / "shot_%02d.mp4",
            ],
            limit_s=60 + cut.total,
        )
        for index in range(len(cut.clip_frames)):
            made = Path(tmp) / f"shot_{index:02d}.mp4"
            if index in keep or not made.is_file():
                continue
            target = clips / clip_name(index)
            os.replace(made, target)
            written.append(target)
    return written
