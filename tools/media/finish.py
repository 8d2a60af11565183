"""Post-production shared by `storybot render` and the graph's post_produce node:
music bed, final cut, loudness check, upload copy and thumbnail, plus the metadata they yield.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from tools.media import compose, loudness, shot_clips, thumbnail, upload
from tools.media.motion import FPS, ClipShot, ShotMedia
from tools.media.music import synth_bed
from tools.media.outputs import AudioEncoderMeta, CutMeta, EncoderMeta, LoudnessMeta, MasterInfo, VideoEncoderMeta
from tools.media.probe import MediaInfo, probe
from tools.models import Aspect

PREDICT_MARGIN = 0.9  # make the copy in the same run when the master is predicted over 90% of the limit


class Finished(BaseModel):
    final: Path
    discord: Path | None
    thumbnail: Path
    info: MediaInfo
    loudness: loudness.Loudness
    fit: upload.FitReport | None
    predicted_master_bytes: int
    seconds: dict[str, float]  # where post-production's time went


async def music_or_bed(music: Path | None, folder: Path, seconds: float, seed: int) -> Path:
    """The user's music, or a bed synthesised into `folder` (hidden: it is not an artifact)."""
    if music is not None:
        return music
    bed = folder / ".bed.wav"
    await asyncio.to_thread(synth_bed, seconds + 1, bed, seed)
    return bed


async def finish(
    folder: Path,
    media: list[ShotMedia],
    cut: compose.CutPlan,
    voice: Path,
    music: Path,
    ass: Path,
    aspect: Aspect,
    enc: compose.VideoEncoding,
    upload_limit: int,
    mix: compose.AudioMix | None = None,
) -> Finished:
    """Cut, check and package the video into `folder` (final.mp4, final.discord.mp4, thumbnail.png,
    clips/shot_NN.mp4).

    When the master is predicted over the upload limit, the final cut writes the upload copy too,
    from the same frames (no second decode, filter pass or full-size encode). The copy's size is
    checked; only a copy that still does not fit (or a master that was predicted to fit and did
    not) is re-encoded from the master.
    """
    clock = _Clock()
    with clock("predict"):
        predict = upload.predict_master_bytes(media, cut, aspect, enc)
        if mix is None:
            predicted, audio = await asyncio.gather(predict, compose.prepare_audio(voice, music, cut.total))
        else:
            predicted, audio = await predict, mix
    final, copy_path = folder / "final.mp4", folder / "final.discord.mp4"
    plan = upload.plan_copy(cut.total, aspect.size, upload_limit) if predicted > upload_limit * PREDICT_MARGIN else None
    copy = (
        compose.UploadCopy(path=copy_path, video_kbps=plan.video_kbps, width=plan.width, height=plan.height)
        if plan
        else None
    )
    with clock("final_cut"):
        await compose.compose(media, cut, voice, music, audio, ass, aspect, final, enc=enc, upload_copy=copy)
    with clock("upload_copy"):
        fitted = _same_run_fit(final, copy, upload_limit)
        if fitted is None and final.stat().st_size > upload_limit:
            fitted = await upload.fit_for_upload(final, copy_path, upload_limit, first_attempt=2 if copy else 1)
    with clock("shot_clips"):
        await shot_clips.split_shots(final, cut, folder, _own_clips(media, folder))
    with clock("checks"):
        measured, thumb, info = await asyncio.gather(
            loudness.measure_file(final),
            asyncio.to_thread(thumbnail.make_thumbnail, media, aspect, folder / "thumbnail.png"),
            asyncio.to_thread(probe, final),
        )
    return Finished(
        final=final,
        discord=Path(fitted.path) if fitted else None,
        thumbnail=thumb,
        info=info,
        loudness=measured,
        fit=fitted,
        predicted_master_bytes=predicted,
        seconds=clock.seconds,
    )


def signed_sizes(done: Finished) -> Finished:
    """`done` with the file sizes read again after the C2PA manifest went in (a few KB; the streams,
    and every other measured property, are unchanged by signing)."""
    info = done.info.model_copy(update={"size_bytes": done.final.stat().st_size})
    fit = done.fit.model_copy(update={"size_bytes": Path(done.fit.path).stat().st_size}) if done.fit else None
    return done.model_copy(update={"info": info, "fit": fit})


def _own_clips(media: list[ShotMedia], folder: Path) -> set[int]:
    """Shots whose clip is already `clips/shot_NN.mp4` (the image-to-video model's): they keep it."""
    clips = (folder / shot_clips.CLIPS_DIR).resolve()
    return {
        i
        for i, shot in enumerate(media)
        if isinstance(shot, ClipShot) and shot.sources[0].path.resolve() == clips / shot_clips.clip_name(i)
    }


def _same_run_fit(final: Path, copy: compose.UploadCopy | None, limit: int) -> upload.FitReport | None:
    """The copy the final cut wrote, if it is needed and fits; a needless or oversized one is removed."""
    if copy is None or not copy.path.exists():
        return None
    size = copy.path.stat().st_size
    if final.stat().st_size <= limit or size > limit:
        copy.path.unlink()
        return None
    return upload.FitReport(
        path=str(copy.path),
        size_bytes=size,
        video_kbps=copy.video_kbps,
        width=copy.width,
        height=copy.height,
        attempts=1,
        same_run=True,
    )


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def finish_metadata(
    done: Finished, enc: compose.VideoEncoding, cut: compose.CutPlan, music_supplied: bool, upload_limit: int
) -> CutMeta:
    """The video half of metadata.json: what was made, how it measures, how it was encoded."""
    return CutMeta(
        video=MasterInfo.model_validate(done.info.model_dump(exclude={"path"})),
        loudness=LoudnessMeta(**done.loudness.model_dump(), target_lufs=loudness.TARGET_LUFS, ceiling_dbtp=-1.0),
        encoder=EncoderMeta(
            video=VideoEncoderMeta(preset=enc.preset, crf=enc.crf, fps=FPS),
            audio=AudioEncoderMeta(bitrate=enc.audio_bitrate),
            transition_seconds=cut.transition_frames / FPS,
            music="supplied" if music_supplied else "synth",
        ),
        discord=done.fit,
        predicted_master_bytes=done.predicted_master_bytes,
        post_produce_seconds=done.seconds,
        upload_limit_bytes=upload_limit,
    )
