"""A quiet music bed synthesised on the spot, used when the user brings no music.

A slow pad (four chords, soft sine partials, long fades) sits in the low-mid range where it is
heard in the pauses but does not compete with speech formants (roughly 300 Hz to 3 kHz).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from tools.files import atomic_path

RATE = 48000
# A minor, F major, C major, G major: root-position triads an octave low.
_CHORDS = [(110.0, 130.81, 164.81), (87.31, 110.0, 130.81), (130.81, 164.81, 196.0), (98.0, 123.47, 146.83)]
CHORD_SECONDS = 4.0


def synth_bed(seconds: float, out: Path, seed: int = 0) -> None:
    """Write a stereo 48 kHz 16-bit WAV pad of `seconds` to `out` (peak about -12 dBFS)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(seed)
    left = np.zeros(n)
    right = np.zeros(n)
    chord_len = int(CHORD_SECONDS * RATE)
    fade = np.sin(np.linspace(0, np.pi, chord_len)) ** 0.8  # swell in and out per chord
    offset = int(rng.integers(0, len(_CHORDS)))
    for c, start in enumerate(range(0, n, chord_len // 2)):  # chords overlap by half
        freqs = _CHORDS[(c + offset) % len(_CHORDS)]
        stop = min(n, start + chord_len)
        seg = t[start:stop]
        env = fade[: stop - start]
        for i, f in enumerate(freqs):
            detune = 1 + 0.002 * (i - 1)
            tone = np.sin(2 * np.pi * f * seg) + 0.25 * np.sin(4 * np.pi * f * seg)
            left[start:stop] += env * tone * (0.8 if i == 2 else 1.0)
            right[start:stop] += env * np.sin(2 * np.pi * f * detune * seg) * (0.8 if i == 0 else 1.0)
    stereo = np.stack([left, right], axis=1)
    edge = min(n // 2, RATE)  # one-second fade in and out of the whole bed
    ramp = np.linspace(0, 1, edge)[:, None]
    stereo[:edge] *= ramp
    stereo[n - edge :] *= ramp[::-1]
    stereo *= 0.25 / max(np.abs(stereo).max(), 1e-9)
    pcm = (stereo * 32767).astype("<i2")
    with atomic_path(out) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
