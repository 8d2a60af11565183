"""The user's own pictures and clips (CLI `--images`/`--clips`, Discord attachments), in order:
file N is shot N. Files beyond the shots are alternates that a re-roll takes in turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from tools.errors import BadInput, StorybotError
from tools.files import atomic_path
from tools.media import keyframes
from tools.media.probe import probe, require_clip_size
from tools.settings import Settings
from tools.visuals import footage
from tools.visuals.base import Job, Miss, Opening, ShotBrief, SourceRow, Visual

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".gif"})


def media_kind(path: Path) -> Literal["image", "video"] | None:
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in keyframes.IMAGE_EXTENSIONS else None


class UserSource:
    name: Literal["user"] = "user"

    def __init__(self, files: list[Path], first: dict[int, Path] | None = None) -> None:
        """`files` in shot order; `first` pins some shots (0-based) to a given file (a replacement)."""
        self.files, self.first = files, first or {}

    def _key(self, path: Path) -> str:
        return f"user:{path.name}"

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]:
        used = set(job.exclude)
        out: list[Visual | Miss] = []
        for brief in briefs:
            pinned = self.first.get(brief.index)
            own = [pinned] if pinned else ([self.files[brief.index]] if brief.index < len(self.files) else [])
            spare = self.files[job.shots :]
            result: Visual | Miss = Miss(shot=brief.index, reason=f"no picture of yours for shot {brief.index + 1}")
            for path in [*own, *spare]:
                if self._key(path) in used and path is not pinned:
                    continue
                try:
                    result = await self._use(path, brief, job)
                    break
                except StorybotError as exc:
                    result = Miss(shot=brief.index, reason=str(exc))
            if isinstance(result, Visual):
                used.update(result.media_ids)
            out.append(result)
        return out

    async def _use(self, path: Path, brief: ShotBrief, job: Job) -> Visual:
        png = job.keyframe(brief)
        png.parent.mkdir(parents=True, exist_ok=True)
        if media_kind(path) == "video":
            info = probe(path)
            if info.video is None:
                raise StorybotError(f"{path.name}: has no video stream")
            require_clip_size(path, info.video)
            await footage.clip_keyframe(path, job.aspect, png)
            clips = [path]
        else:
            await asyncio.to_thread(footage.still_keyframe, path, job.aspect, png)
            clips = []
        return Visual(shot=brief.index, source="user", keyframe=png, clips=clips, media_ids=[self._key(path)])


MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def keep_uploads(uploads: list[tuple[str, bytes]], folder: Path) -> list[Path]:
    """Store uploaded pictures and clips (a chat's attachments) as `folder/NN.<ext>`, named by order,
    never by the sender's file name; BadInput naming the first file that is not an image or video
    by its bytes, or does not decode. Nothing is kept when one is refused."""
    from tools.visuals.fetch import check_media, sniff

    kinds: list[tuple[Literal["image", "video"], str]] = []
    for name, data in uploads:
        if not data:
            raise BadInput(f"{name}: the file is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise BadInput(f"{name}: over {MAX_UPLOAD_BYTES // 2**20} MB")
        try:
            kinds.append(("image", sniff(data[:64], "image")))
        except ValueError:
            try:
                kinds.append(("video", sniff(data[:64], "video")))
            except ValueError:
                raise BadInput(f"{name}: not a picture or a video clip") from None
    folder.mkdir(parents=True, exist_ok=True)
    kept: list[Path] = []
    try:
        for n, ((name, data), (kind, suffix)) in enumerate(zip(uploads, kinds, strict=True), 1):
            path = folder / f"{n:02d}{'.mp4' if suffix == '.mov' else suffix}"
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
                try:
                    check_media(tmp, kind)
                except (ValueError, StorybotError) as exc:
                    raise BadInput(f"{name}: {exc}") from None
            kept.append(path)
    except BadInput:
        for path in kept:
            path.unlink(missing_ok=True)
        raise
    return kept


@asynccontextmanager
async def _open(settings: Settings, opening: Opening) -> AsyncIterator[UserSource]:
    yield UserSource(opening.user_files, opening.pinned)


ROW = SourceRow("user", "", lambda settings: True, _open, lambda settings, used: "your media")
