"""Thumbnail: the strongest of a few early frames, picked by contrast and colourfulness."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from tools.files import atomic_path
from tools.media.motion import ClipShot, StillShot
from tools.models import Aspect


def _strength(img: Image.Image) -> float:
    """Hasler-Süsstrunk colourfulness plus luminance contrast: a crude but stable "looks strong"."""
    rgb = np.asarray(img.convert("RGB").reduce(4), dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    contrast = (0.299 * r + 0.587 * g + 0.114 * b).std()
    return float(colourful + contrast)


def _frame_at(clip: Path, seconds: float) -> Image.Image | None:
    """The first frame at or after `seconds`, or the clip's last frame when it is shorter."""
    last = None
    with av.open(str(clip)) as container:
        for frame in container.decode(container.streams.video[0]):
            last = frame
            if frame.time is not None and frame.time >= seconds:
                break
    return last.to_image() if last is not None else None


def _picture(shot: StillShot | ClipShot) -> Image.Image | None:
    """What the shot shows before any motion: the still, or its first clip one second in."""
    if isinstance(shot, StillShot):
        with Image.open(shot.image) as img:
            return img.convert("RGB")
    return _frame_at(shot.sources[0].path, min(1.0, shot.sources[0].duration / 2))


def make_thumbnail(media: list[StillShot | ClipShot], aspect: Aspect, out: Path) -> Path:
    """Pick from the first shots' own pictures (no subtitles, no cross-fade) and write a PNG."""
    candidates = [img for shot in media[:3] for img in [_picture(shot)] if img is not None]
    if not candidates:
        raise ValueError("no frame to make a thumbnail from")
    best = ImageOps.fit(max(candidates, key=_strength), aspect.size, Image.Resampling.LANCZOS)
    with atomic_path(out) as tmp:
        best.save(tmp, format="PNG")
    return out
