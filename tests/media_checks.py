"""Measurements a user would make on a finished video, shared by the render tests."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import numpy as np

from tools.ffmpeg import decode_audio


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
