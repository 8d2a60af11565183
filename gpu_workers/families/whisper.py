"""faster-whisper word timings for subtitles: float16 on CUDA (needs the cu12 cuBLAS/cuDNN
runtime, see docs/GPU.md), int8 on CPU."""

from __future__ import annotations

from typing import Any

from gpu_workers.families.device import Progress, device_and_dtype
from gpu_workers.protocol import RecognisedWord, Transcript, WhisperParams


class Whisper:
    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel

        self.device, _ = device_and_dtype()
        compute = "float16" if self.device == "cuda" else "int8"
        self.model = WhisperModel(model, device=self.device, compute_type=compute)
        self.info = {"device": self.device, "dtype": compute, "offload": "none"}

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
