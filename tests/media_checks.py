"""Measurements a user would make on a finished video, shared by the render and subtitle tests."""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from tools.media.ffmpeg import decode_audio, escape_filter_value, ffmpeg_exe
from tools.media.fonts import fonts_dir
from tools.models import Aspect

BACKGROUND = (0x33, 0x66, 0x99)


def burn_subtitles(ass: Path, aspect: Aspect, out: Path, at: float = 0.0) -> np.ndarray:
    """The pixels the subtitles paint at `at` seconds, burned by libass over a plain background."""
    width, height = aspect.size
    vf = f"ass=filename={escape_filter_value(str(ass))}:fontsdir={escape_filter_value(str(fonts_dir()))}"
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"color=c=0x336699:s={width}x{height}:d={at + 0.5}",
        "-vf",
        vf,
        "-ss",
        f"{at}",
        "-frames:v",
        "1",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    return np.abs(image - np.array(BACKGROUND)).sum(axis=2) > 40


def safe_area_mask(aspect: Aspect) -> np.ndarray:
    """True over the pixels of an `aspect` frame that lie inside its safe area."""
    width, height = aspect.size
    safe = aspect.safe_area
    inside = np.zeros((height, width), dtype=bool)
    inside[safe.top : height - safe.bottom, safe.left : width - safe.right] = True
    return inside


def top_level_atoms(path: Path) -> list[str]:
    """MP4 box types in file order (faststart puts moov before mdat)."""
    atoms, data = [], path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        atoms.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return atoms


def audio_rms_db(path: Path, start: float, end: float) -> float:
    """RMS level (dBFS) of a file's audio between two times."""
    pcm = np.frombuffer(asyncio.run(decode_audio(path)), dtype=np.float32)
    seg = pcm[int(start * 48000) : int(end * 48000)]
    return float(20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-12))
