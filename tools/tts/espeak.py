"""Offline narration with libespeak-ng, timed word by word from the library's own WORD events.

The library (bundled by PyPI `espeakng-loader`) is driven through ctypes rather than the `espeak-ng`
command, because only the library reports where each word starts in the audio. It is one global,
non-thread-safe state: every call goes through `_LOCK`, in a worker thread so the event loop
never waits on synthesis.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import espeakng_loader
import numpy as np

from tools.errors import BadInput, MediaError
from tools.settings import Settings
from tools.text import Span, word_spans
from tools.tts.base import Provider, VoiceInfo
from tools.tts.speech import (
    Levels,
    Speech,
    assemble,
    frame_levels,
    is_speakable,
    words_per_minute,
    write_wav,
)
from tools.tts.timing import measured_speech

PROVIDER = "espeak-ng"
MIN_RATE, MAX_RATE = 80, 450  # espeakRATE_MINIMUM / espeakRATE_MAXIMUM in speak_lib.h

# speak_lib.h (API revision 12, espeak-ng 1.52)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # a missing data folder must not exit() the whole bot
_BUFFER_MS = 500  # fewer, larger callbacks than the 60 ms default
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # and no espeakSSML / espeakPHONEMES: "<b>" and "[[" are read as text
_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: IPA as UTF-8
_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_ONSET_SLACK = 3  # frames: events land up to ~20 ms after the sound of their word begins

_CALIBRATION = (
    "Every city keeps a few secrets. Some of them hide in plain sight, like the old clock above the "
    "station that has not moved in forty years. Others only appear at night, when the streets go quiet "
    "and the lights come on one by one. Tonight we are going to find three of them, and you might be "
    "surprised by what they tell us about the people who live here."
)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT; checked against 1.52: 40 bytes on x86-64, text_position 1-based in code points."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of this message's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """espeak_VOICE; `languages` is a list of (priority byte, NUL-terminated name), so a raw pointer."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class _WordEvent:
    position: int  # 0-based index into the text
    length: int
    seconds: float


@dataclass(frozen=True)
class _Rendering:
    samples: np.ndarray  # int16 mono
    rate: int
    events: list[_WordEvent]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


class _Engine:
    """The process's one libespeak-ng, initialised on first use. Use only while holding `_LOCK`."""

    def __init__(self) -> None:
        data = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.rate = int(
            lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(data).encode(), _INITIALIZE_DONT_EXIT)
        )
        if self.rate <= 0:
            raise MediaError(f"libespeak-ng could not start with its data folder {data}")
        self._lib = lib
        self._audio = bytearray()
        self._events: list[_WordEvent] = []
        self._callback = _SynthCallback(self._collect)  # keep a reference, or ctypes frees the thunk
        lib.espeak_SetSynthCallback(self._callback)
        self.voices = self._usable_voices(data)
        self.variants = {p.name.lower(): p.name for p in (data / "voices" / "!v").iterdir()}

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]) -> int:
        if wav and count > 0:
            self._audio += ctypes.string_at(wav, count * 2)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                self._events.append(_WordEvent(event.text_position - 1, event.length, event.audio_position / 1000))
            i += 1
        return 0  # continue

    def _usable_voices(self, data: Path) -> dict[str, str]:
        """Language code -> voice file, for voices whose dictionary ships with the bundled data.

        espeak lists a few voices (fo, kaa, xex) whose dictionary is missing: selecting one
        "succeeds" and then speaks garbage, so they are left out.
        """
        voices: dict[str, str] = {}
        table = self._lib.espeak_ListVoices(None)
        i = 0
        while table[i]:
            voice = table[i].contents
            i += 1
            path = data / "lang" / voice.identifier.decode()
            if not voice.languages or not path.is_file():
                continue
            language = ctypes.string_at(voice.languages + 1).decode().lower()
            dictionary = language.split("-")[0]
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition(" ")
                if key == "dictionary" and value.strip():
                    dictionary = value.split()[0]
            if (data / f"{dictionary}_dict").is_file():
                voices.setdefault(language, voice.identifier.decode())
        return voices

    def _select(self, voice: str) -> None:
        language, _, variant = voice.lower().partition("+")
        if language not in self.voices or (variant and variant not in self.variants):
            raise BadInput(
                f"unknown espeak-ng voice {voice!r}: use a language code such as en-us, "
                "en-gb or fr-fr, optionally with a variant like en-us+f3"
            )
        name = self.voices[language] + (f"+{self.variants[variant]}" if variant else "")
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise MediaError(f"libespeak-ng could not load the voice {voice!r}")

    def phonemes(self, text: str, voice: str) -> list[tuple[int, str]]:
        """(character offset where the clause ends in `text`, its IPA) for each clause espeak-ng reads.

        espeak_TextToPhonemes reads one clause per call and moves the text pointer past it; the
        punctuation that ended the clause is not in the IPA, so callers find it in the text.
        """
        self._select(voice)
        data = text.encode()
        buffer = ctypes.create_string_buffer(data)
        base = ctypes.addressof(buffer)
        pointer = ctypes.c_void_p(base)
        clauses: list[tuple[int, str]] = []
        while pointer.value is not None and pointer.value - base < len(data):
            before = pointer.value
            ipa = self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            consumed = len(data) if pointer.value is None else min(pointer.value - base, len(data))
            clauses.append((len(data[:consumed].decode(errors="ignore")), (ipa or b"").decode(errors="replace")))
            if pointer.value is not None and pointer.value <= before:  # never loop on a pointer that stays
                break
        return clauses

    def render(self, text: str, voice: str, rate_wpm: int) -> _Rendering:
        self._select(voice)
        self._lib.espeak_SetParameter(_RATE, rate_wpm, 0)
        self._audio = bytearray()
        self._events = []
        data = text.encode()
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0 or not self._audio:
            raise MediaError(f"libespeak-ng failed to speak the script (status {status})")
        rendering = _Rendering(np.frombuffer(self._audio, dtype=np.int16), self.rate, self._events)
        self._audio, self._events = bytearray(), []  # the engine lives on; this audio need not
        return rendering


_LOCK = threading.Lock()


@cache
def _engine() -> _Engine:
    return _Engine()


def _render(text: str, voice: str, rate_wpm: int) -> _Rendering:
    if not MIN_RATE <= rate_wpm <= MAX_RATE:
        raise BadInput(f"speaking rate {rate_wpm} is outside espeak-ng's {MIN_RATE}-{MAX_RATE} words/minute")
    with _LOCK:
        return _engine().render(text, voice, rate_wpm)


def phonemize(text: str, voice: str) -> list[tuple[int, str]]:
    """espeak-ng's IPA for `text`, clause by clause: (character offset where the clause ends, IPA)."""
    with _LOCK:
        return _engine().phonemes(text, voice)


def list_voices() -> list[str]:
    """Language codes usable as `voice` (a variant may be appended: "en-us+f3")."""
    with _LOCK:
        return sorted(_engine().voices)


def _token_at(spans: list[Span], starts: list[int], event: _WordEvent) -> int:
    """Index of the token an event belongs to, or -1.

    An event inside a token is that token's. One in the whitespace belongs to the next token if its
    length reaches it (1.52 puts "well-known" at the space before it), else it continues the
    previous token (the second word of an emoji's spoken name).
    """
    k = bisect_right(starts, event.position) - 1
    if k >= 0 and event.position < spans[k].end:
        return k
    if k + 1 < len(spans) and event.position + event.length > spans[k + 1].start:
        return k + 1
    return k


def _frames(step: float, start: float, limit: float) -> slice:
    """Frames overlapping [start, limit); the tolerance keeps a time set at a frame edge on that edge."""
    return slice(int(start / step + 1e-6), int(np.ceil(limit / step - 1e-6)))


def _onset(voiced: np.ndarray, step: float, start: float, limit: float) -> float:
    """Where a word's sound begins: the first voiced frame in [start, limit), or the start of the
    sound the event lands in when that began at most `_ONSET_SLACK` frames earlier."""
    frames = _frames(step, start, limit)
    hits = np.flatnonzero(voiced[frames])
    if not len(hits):
        return start
    first = frames.start + int(hits[0])
    if first > frames.start:
        return first * step
    before = voiced[max(0, first - _ONSET_SLACK) : first]
    quiet = np.flatnonzero(~before)
    return (first - len(before) + int(quiet[-1]) + 1) * step if len(quiet) else start


def _last_voiced(voiced: np.ndarray, step: float, start: float, limit: float) -> float:
    """The end of the last voiced frame in [start, limit), or `limit` when none is voiced."""
    frames = _frames(step, start, limit)
    hits = np.flatnonzero(voiced[frames])
    return min(limit, (frames.start + int(hits[-1]) + 1) * step) if len(hits) else limit


def _align(spans: list[Span], rendering: _Rendering, levels: Levels) -> dict[int, tuple[float, float]]:
    """(start, end) of every spoken token.

    Starts come from WORD events, moved onto the onset of the word's sound (an event can come before
    the pause that precedes its word, or a frame after the sound began); tokens without an event
    share the time between their neighbours by character length. A word ends at its last voiced
    frame before the next word, so pauses at commas and full stops are not counted as speech.
    """
    voiced, step = levels.voiced(), levels.step
    hits = np.flatnonzero(voiced)
    if not len(hits):
        raise MediaError("libespeak-ng produced only silence for the script")
    speech_start, speech_end = float(hits[0] * step), float((hits[-1] + 1) * step)

    starts = [span.start for span in spans]
    events: dict[int, float] = {}
    last_index, last_time = -1, 0.0
    for event in rendering.events:
        index = _token_at(spans, starts, event)
        if index > last_index and event.seconds >= last_time:
            events[index], last_index, last_time = event.seconds, index, event.seconds

    spoken = [i for i, span in enumerate(spans) if i in events or is_speakable(span.text)]
    limits = dict(zip(events, [*list(events.values())[1:], speech_end], strict=True))
    pins = [
        (j, _onset(voiced, step, events[index], limits[index]))  # (position in `spoken`, start)
        for j, index in enumerate(spoken)
        if index in events
    ]
    if not pins or pins[0][0] != 0:
        pins.insert(0, (0, speech_start))
    pins.append((len(spoken), speech_end))

    begin: dict[int, float] = {}
    for (j0, t0), (j1, t1) in pairwise(pins):
        done, total = 0, sum(len(spans[spoken[j]].text) for j in range(j0, j1))
        for j in range(j0, j1):
            begin[spoken[j]] = t0 + max(t1 - t0, 0.0) * done / total
            done += len(spans[spoken[j]].text)

    timed: dict[int, tuple[float, float]] = {}
    for index, after in zip(spoken, [*spoken[1:], None], strict=True):
        limit = begin[after] if after is not None else rendering.duration
        timed[index] = (begin[index], _last_voiced(voiced, step, begin[index], max(limit, begin[index])))
    return timed


def _speak(text: str, voice: str, rate_wpm: int) -> tuple[_Rendering, dict[int, tuple[float, float]]]:
    rendering = _render(text, voice, rate_wpm)
    levels = frame_levels(rendering.samples, rendering.rate)
    return rendering, _align(word_spans(text), rendering, levels)


async def synthesize(text: str, out_wav: Path, voice: str = "en-us", rate_wpm: int = 175) -> Speech:
    """Speak cleaned script text into `out_wav` (48 kHz mono WAV) with a timed Word per token."""
    rendering, timed = await asyncio.to_thread(_speak, text, voice, rate_wpm)
    raw = ["-f", "s16le", "-ar", str(rendering.rate), "-ac", "1", "-i", "pipe:0"]
    duration = await write_wav(out_wav, raw, stdin=rendering.samples.astype("<i2", copy=False).tobytes())
    return measured_speech(out_wav, duration, word_spans(text), timed, PROVIDER)


@cache
def _calibrated_rate(voice: str, rate_wpm: int) -> float:
    rendering, timed = _speak(_CALIBRATION, voice, rate_wpm)
    return words_per_minute(assemble(word_spans(_CALIBRATION), timed, rendering.duration, estimated=False))


async def speaking_rate(voice: str = "en-us", rate_wpm: int = 175) -> float:
    """Measured words per minute of this voice and rate, so scripts can be sized to a duration.

    espeak's nominal rate ignores pauses at punctuation, so it is measured on a fixed paragraph.
    """
    return await asyncio.to_thread(_calibrated_rate, voice, rate_wpm)


async def spoken_seconds(text: str, voice: str = "en-us", rate_wpm: int = 175) -> float:
    """How long this text takes to say with this voice (a few milliseconds: nothing is written)."""
    return (await asyncio.to_thread(_render, text, voice, rate_wpm)).duration


class EspeakVoice:
    """An espeak-ng language voice (`espeak:en-us`, `espeak:fr-fr+f3`): robotic, but every language."""

    provider = PROVIDER

    def __init__(self, voice: str, rate_wpm: int = 175) -> None:
        self.voice, self.rate_wpm = voice, rate_wpm
        self.name = f"espeak:{voice}"
        self.language = voice.partition("+")[0]
        self.rate_key = self.name
        self.fingerprint: tuple[object, ...] = (self.name,)
        self.estimator = voice  # espeak-ng estimates its own voices

    async def synthesize(self, text: str, wav: Path) -> Speech:
        return await synthesize(text, wav, voice=self.voice, rate_wpm=self.rate_wpm)

    async def speaking_rate(self) -> float:
        return await speaking_rate(self.voice, self.rate_wpm)


# --- the registry row --------------------------------------------------------------------------------


@cache
def voice_codes() -> tuple[str, ...]:
    """The installed espeak-ng voices' codes (listed once per process)."""
    return tuple(list_voices())


def _listing(settings: Settings) -> list[VoiceInfo]:
    return [
        VoiceInfo(
            name=f"espeak:{code}",
            provider=PROVIDER,
            language=code,
            offline=True,
            needs_key=False,
            description="espeak-ng formant voice",
        )
        for code in voice_codes()
    ]


ROW = Provider("espeak", PROVIDER, _listing, lambda settings, vid: EspeakVoice(vid))
