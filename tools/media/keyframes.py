"""Keyframes: the still picture behind each shot, and any picture read safely.

A user's own pictures (and stock photos, and model output) arrive in every shape Pillow knows (odd
modes, EXIF rotation, alpha, 16-bit, huge or tiny), so they are normalised here to RGB at exactly
the output size. The art cards that stand in without pictures are painted in `tools.visuals.painter`.
"""

from __future__ import annotations

import io
import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from tools.errors import BadInput
from tools.files import atomic_path
from tools.models import Shot
from tools.text import natural_key

RGB = tuple[int, int, int]
T = TypeVar("T")

MAX_PIXELS = 50_000_000  # a 50 MP photo decodes to ~150 MB (RGB); a header claiming more is refused
MATTE: RGB = (16, 18, 24)  # what the transparent parts of a picture are shown on
_COMMON_EXTENSIONS = {
    ".png",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".webp",
    ".gif",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
    ".tga",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".avif",
    ".qoi",
    ".jp2",
    ".j2k",
    ".psd",
    ".ico",
}
# Only extensions this Pillow build can actually open (AVIF and JPEG 2000 depend on the build).
IMAGE_EXTENSIONS = frozenset(
    ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and ext in _COMMON_EXTENSIONS
)
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


# --- users' pictures ---------------------------------------------------------------------------


def load_image_cover(path: Path, size: tuple[int, int]) -> Image.Image:
    """Read any picture as RGB, scaled to cover `size` and centre-cropped to exactly `size`.

    Raises BadInput naming the file when it is not a readable image or is implausibly large.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides
            with Image.open(path) as img:
                _draft(img, size)
                _check_pixels(img)  # after draft: what is decoded (a 108 MP JPEG at 1/4 scale is 7 MP)
                img.load()
                rgb = _to_rgb(ImageOps.exif_transpose(img))
    except Exception as exc:  # Pillow reports corrupt data with many exception types
        raise BadInput(f"{path.name}: not a readable image ({_reason(path, exc)})") from exc
    return _cover(rgb, size)


def _check_pixels(img: Image.Image) -> None:
    """Our own bomb limit on the pixels to decode, so it holds whatever another module sets
    Image.MAX_IMAGE_PIXELS to."""
    if img.width * img.height > MAX_PIXELS:
        raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels")


def _draft(img: Image.Image, size: tuple[int, int]) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when that still covers `size` (huge photos stay cheap)."""
    w, h = size
    if img.getexif().get(ExifTags.Base.Orientation, 1) in _ROTATED:
        w, h = h, w
    scale = max(w / img.width, h / img.height)
    if scale < 1:
        img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit sRGB; transparency is composited over a dark matte, not left as black garbage."""
    if img.mode.startswith("I") or img.mode == "F":
        img = _grey8(img)
    if img.mode == "P":
        img = img.convert("RGBA")  # a palette's transparency lives in img.info, so expand it first
    if img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*MATTE, 255)), rgba).convert("RGB")
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "CMYK"):
        return _icc_to_srgb(img, icc)
    return img.convert("RGB")


def _grey8(img: Image.Image) -> Image.Image:
    """16/32-bit and float greyscale to 8 bit by scaling; Pillow's own convert clips at 255."""
    values = np.nan_to_num(np.asarray(img, dtype=np.float32))
    if img.mode.startswith("I;16"):
        top = 65535.0
    else:  # the narrowest usual range that holds the data: 0-1 (float), 0-255, 0-65535
        peak = float(values.max(initial=0.0))
        top = next((t for t in (1.0, 255.0, 65535.0) if peak <= t), peak)
    return Image.fromarray(np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """Honour an embedded colour profile (CMYK print files, wide-gamut phone photos)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        converted = None  # a broken or unusual profile: the plain conversion is still a fair picture
    return converted if converted is not None else img.convert("RGB")


def _cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to cover `size` and keep the centre; resizing from a box never touches cropped pixels."""
    tw, th = size
    scale = max(tw / img.width, th / img.height)
    cw, ch = tw / scale, th / scale
    left, top = (img.width - cw) / 2, (img.height - ch) / 2
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    return img.resize(size, resample, box=(left, top, left + cw, top + ch), reducing_gap=3.0)


def _reason(path: Path, exc: Exception) -> str:
    """A short, one-line cause for the user (Pillow's messages repeat the full path)."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large: over {MAX_PIXELS // 10**6} megapixels"
    if isinstance(exc, UnidentifiedImageError):
        return "empty file" if path.stat().st_size == 0 else "unknown format or corrupt header"
    text = " ".join(str(exc).replace(str(path), path.name).split())
    return text[:120] or type(exc).__name__


def list_images(folder: Path) -> list[Path]:
    """Pictures in `folder` in natural name order (shot2 before shot10), hidden files skipped."""
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such folder")
    found = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not found:
        raise BadInput(f"{folder}: no pictures in it (expected .png, .jpg, .webp, ...)")
    return sorted(found, key=lambda p: (natural_key(p.name), p.name))


# --- the stage -----------------------------------------------------------------------------------


def keyframe_name(shot: Shot) -> str:
    return f"shot_{shot.index + 1:02d}.png"


def save_png(img: Image.Image, path: Path) -> Path:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=1)
    return path
