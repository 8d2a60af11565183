"""faster-whisper word timings for subtitles: float16 on CUDA, int8 on the CPU.

The ctranslate2 4.8 wheel loads CUDA 12's cuBLAS and cuDNN lazily, at the first transcription; a
machine whose torch is a CUDA 13 build often has neither, so a model that "loads" on CUDA can still
fail on its first real request. The worker therefore transcribes one second of silence at load, and
if CUDA fails for any reason it falls back to the CPU (int8) with a notice in its `ready` report:
subtitles are slower, never missing. The device is picked with ctranslate2's own count (no torch,
so no CUDA context is opened here just to choose); `STORYBOT_WHISPER_DEVICE` forces one.
"""

from __future__ import annotations

import os
from typing import Any

from gpu_workers.families.device import Progress, log
from gpu_workers.protocol import RecognisedWord, Transcript, WhisperParams

WHISPER_DEVICES = ("auto", "cuda", "cpu")
PROBE_SAMPLES = 16000  # one second at Whisper's 16 kHz


def pick_device(setting: str) -> str:
    """`auto`: CUDA when ctranslate2 sees a card; `cuda` / `cpu` as asked."""
    import ctranslate2

    if setting not in WHISPER_DEVICES:
        raise ValueError(f"STORYBOT_WHISPER_DEVICE must be one of {', '.join(WHISPER_DEVICES)}, not {setting!r}")
    if setting != "auto":
        return setting
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def probe(model: Any) -> None:
    """Transcribe a second of silence: the first call is where a missing libcublas.so.12 shows."""
    import numpy as np

    segments, _info = model.transcribe(
        np.zeros(PROBE_SAMPLES, dtype=np.float32), language="en", beam_size=1, max_new_tokens=4, without_timestamps=True
    )
    list(segments)  # a generator: decoding happens while iterating


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class Whisper:
    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel

        device = pick_device(os.environ.get("STORYBOT_WHISPER_DEVICE", "auto") or "auto")
        compute = "float16" if device == "cuda" else "int8"
        fallback = None
        try:
            self.model = WhisperModel(model, device=device, compute_type=compute)
            probe(self.model)
        except (RuntimeError, OSError, ValueError) as exc:
            if device == "cpu":
                raise
            fallback = f"whisper on CUDA failed ({one_line(exc)}); transcribing on the CPU (int8) instead"
            log.warning("%s", fallback)
            print(f"notice: {fallback}", flush=True)  # fd 1 is stderr in the worker: the client's log tail
            device, compute = "cpu", "int8"
            self.model = WhisperModel(model, device=device, compute_type=compute)
            probe(self.model)
        self.device = device
        self.info: dict[str, Any] = {"device": device, "dtype": compute, "offload": "none", "probed": True}
        if fallback:
            self.info["fallback"] = fallback

    def __call__(self, params: dict[str, Any], progress: Progress) -> Transcript:
        p = WhisperParams.model_validate(params)
        extra = {"max_new_tokens": p.max_new_tokens} if p.max_new_tokens else {}
        segments, info = self.model.transcribe(
            p.audio,
            language=p.language,
            beam_size=p.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            temperature=0.0,
            **extra,
        )
        words = []
        for segment in segments:  # a generator: decoding happens while iterating
            words += [
                RecognisedWord(
                    word=w.word.strip(),
                    start=round(float(w.start), 3),
                    end=round(float(w.end), 3),
                    probability=round(float(w.probability), 3),
                )
                for w in segment.words or []
            ]
            progress(min(int(segment.end), int(info.duration)), max(int(info.duration), 1))
        return Transcript(words=words, language=info.language, duration=round(float(info.duration), 3))
