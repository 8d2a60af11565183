"""Benchmark: every voice provider on the same 60 s script, side by side with espeak-ng.

Prints, per voice: load seconds (model and first use), synthesis seconds, seconds of speech, the
real-time factor (synthesis / speech), CPU seconds per second of speech (what a busy machine
cannot hide), words timed and words per minute. Piper's target on a
2-core machine is a real-time factor of at most 0.1. Online voices run only when named.

    .venv/bin/python bench/voices.py [--voice NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from tools.settings import get_settings
from tools.text import read_script_file
from tools.tts import VoiceRequest, get_voice

HERE = Path(__file__).resolve().parent
OFFLINE = ["piper:en_US-joe-medium", "espeak:en-us"]


async def measure(name: str, text: str, folder: Path) -> dict[str, object]:
    start = time.perf_counter()
    voice = (await asyncio.to_thread(get_voice, get_settings(), VoiceRequest(name=name, text=text))).voice
    await voice.synthesize("Warm up.", folder / "warm.wav")  # first run allocates what later runs reuse
    loaded = time.perf_counter() - start
    start, cpu = time.perf_counter(), _cpu()
    speech = await voice.synthesize(text, folder / "voice.wav")
    took, cpu = time.perf_counter() - start, _cpu() - cpu
    timed = sum(1 for w in speech.words if w.end > w.start)
    return {
        "voice": name,
        "provider": speech.provider,
        "load_s": round(loaded, 2),
        "synth_s": round(took, 2),
        "speech_s": round(speech.duration, 2),
        "rtf": round(took / speech.duration, 3),
        "cpu_per_speech_s": round(cpu / speech.duration, 3),
        "words": len(speech.words),
        "words_timed": timed,
        "wpm": round(speech.words_per_minute, 1),
    }


def _cpu() -> float:
    """CPU seconds used by this process and FFmpeg: on a shared machine wall time says little."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", action="append", help="a voice name to add (edge:..., elevenlabs:...)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    text = read_script_file(HERE / "story60.txt")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*OFFLINE, *(args.voice or [])]:
            rows.append(asyncio.run(measure(name, text, Path(tmp))))
    if args.json:
        print(json.dumps(rows))
        return
    print(
        f"{'voice':32} {'load s':>7} {'synth s':>8} {'speech s':>9} {'RTF':>6} {'CPU/s':>6} {'words':>6} "
        f"{'timed':>6} {'wpm':>6}"
    )
    for r in rows:
        print(
            f"{r['voice']!s:32} {r['load_s']:>7} {r['synth_s']:>8} {r['speech_s']:>9} {r['rtf']:>6} "
            f"{r['cpu_per_speech_s']:>6} {r['words']:>6} {r['words_timed']:>6} {r['wpm']:>6}"
        )


if __name__ == "__main__":
    main()
