"""The voice catalogue and `get_voice`: one place that knows every provider's voices by name.

Names are `provider:id`. A bare id is looked up across providers; ElevenLabs ids cannot be listed
offline, so a bare id that is nothing else is taken as one when a key is configured. Without a
name the script's language picks the best voice that needs no key and no network: Piper where a
voice for that language is installed, else espeak-ng. Adding a provider is one module and one
row in `PROVIDERS`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from tools.errors import BadInput
from tools.settings import Settings
from tools.tts import edge, espeak, piper
from tools.tts.base import Voice, VoiceInfo
from tools.tts.elevenlabs import _VOICE_ID, ElevenLabsVoice
from tools.tts.language import detect_language, same_language
from tools.tts.recording import RecordingVoice

DEFAULT_PIPER = "en_US-joe-medium"
_PREFERRED_ESPEAK = {"en": "en-us", "zh": "cmn", "pt": "pt-br", "fr": "fr-fr"}


class VoiceRequest(BaseModel):
    """What a front end asked for: a voice name (or none), a language (or none), and the script."""

    name: str | None = None
    language: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Chosen:
    """The voice that will narrate, and a one-line notice for the user when it is a compromise."""

    voice: Voice
    notice: str | None = None


@dataclass(frozen=True)
class Provider:
    prefix: str  # the part before ":" in a voice name
    listing: Callable[[Settings], list[VoiceInfo]]
    make: Callable[[Settings, str], Voice]  # a voice from an id the listing has (or, for elevenlabs, any id)


# --- per provider ---------------------------------------------------------------------------------


def _piper_voices(settings: Settings) -> dict[str, tuple[Path, Path]]:
    return piper.describe(settings.piper_voices_dir)


def _config_language(config: Path) -> str:
    """The voice's language; "und" for a config that cannot be read (naming that voice says why)."""
    try:
        return piper.read_config(config).language_code
    except BadInput:
        return "und"


def _piper_listing(settings: Settings) -> list[VoiceInfo]:
    return [
        VoiceInfo(
            name=f"piper:{vid}",
            provider="piper",
            language=_config_language(config),
            offline=True,
            needs_key=False,
            description="Piper neural voice (ONNX)",
        )
        for vid, (_, config) in _piper_voices(settings).items()
    ]


def _piper_make(settings: Settings, vid: str) -> Voice:
    model, config = _piper_voices(settings)[vid]
    voice = piper.PiperVoice(vid, model, config)
    voice.load()  # a broken model is refused now, before a job exists
    return voice


@cache
def _espeak_listing_cached() -> tuple[str, ...]:
    return tuple(espeak.list_voices())


def _espeak_listing(settings: Settings) -> list[VoiceInfo]:
    return [
        VoiceInfo(
            name=f"espeak:{code}",
            provider="espeak-ng",
            language=code,
            offline=True,
            needs_key=False,
            description="espeak-ng formant voice",
        )
        for code in _espeak_listing_cached()
    ]


def _espeak_make(settings: Settings, vid: str) -> Voice:
    return espeak.EspeakVoice(vid)


def _elevenlabs_listing(settings: Settings) -> list[VoiceInfo]:
    vid = settings.elevenlabs_voice_id
    if settings.elevenlabs_api_key is None or not vid:
        return []
    return [
        VoiceInfo(
            name=f"elevenlabs:{vid}",
            provider="elevenlabs",
            language="mul",
            offline=False,
            needs_key=True,
            description="the configured ElevenLabs voice",
        )
    ]


def _elevenlabs_make(settings: Settings, vid: str) -> Voice:
    if settings.elevenlabs_api_key is None:
        raise BadInput(f"elevenlabs:{vid} needs ELEVENLABS_API_KEY")
    return ElevenLabsVoice(
        vid,
        api_key=settings.elevenlabs_api_key.get_secret_value(),
        base_url=settings.elevenlabs_base_url,
        model_id=settings.elevenlabs_model_id,
        voice_settings=settings.elevenlabs_voice_settings or None,
        retries=settings.provider_retries,
    )


def _edge_listing(settings: Settings) -> list[VoiceInfo]:
    return [
        VoiceInfo(
            name=f"edge:{v.short_name}",
            provider="edge",
            language=v.locale.lower(),
            offline=False,
            needs_key=False,
            description=f"Edge TTS ({v.gender}); sends the text to Microsoft",
        )
        for v in edge.snapshot()
    ]


def _edge_make(settings: Settings, vid: str) -> Voice:
    return edge.EdgeVoice(vid, url=settings.edge_wss_url, retries=settings.provider_retries)


PROVIDERS: dict[str, Provider] = {
    "piper": Provider("piper", _piper_listing, _piper_make),
    "espeak": Provider("espeak", _espeak_listing, _espeak_make),
    "edge": Provider("edge", _edge_listing, _edge_make),
    "elevenlabs": Provider("elevenlabs", _elevenlabs_listing, _elevenlabs_make),
}


# --- the catalogue ----------------------------------------------------------------------------------


def catalogue(settings: Settings, language: str | None = None) -> list[VoiceInfo]:
    """Every voice by name, in provider order, with the one used when none is named marked default
    (for `language` when given, else for English)."""
    voices = [info for provider in PROVIDERS.values() for info in provider.listing(settings)]
    if language:
        voices = [v for v in voices if v.language == "mul" or same_language(v.language, language)]
    default = _configured_default(settings) or _best_offline(settings, language or "en").name
    return [v.model_copy(update={"default": v.name == default}) for v in voices]


def _configured_default(settings: Settings) -> str | None:
    """The name STORYBOT_VOICE or the ElevenLabs configuration makes the default, if any."""
    if settings.voice:
        return settings.voice
    if settings.elevenlabs_api_key is not None and settings.elevenlabs_voice_id:
        return f"elevenlabs:{settings.elevenlabs_voice_id}"
    return None


def _closest(settings: Settings, name: str) -> str:
    names = [v.name for v in catalogue(settings)]
    ids = {n.partition(":")[2]: n for n in names}
    close = [n for n in names if name.lower() in n.lower()][:3]
    close += difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    close += [ids[i] for i in difflib.get_close_matches(name.partition(":")[2] or name, list(ids), n=3, cutoff=0.5)]
    unique = list(dict.fromkeys(close))[:3]
    return f" (closest: {', '.join(unique)})" if unique else " (see `storybot voices`)"


def resolve(settings: Settings, name: str) -> tuple[str, str]:
    """(provider prefix, id) for a voice name or bare id; BadInput with the closest names if unknown."""
    name = name.strip()
    prefix, colon, vid = name.partition(":")
    if colon:
        if prefix not in PROVIDERS:
            raise BadInput(
                f"unknown voice provider {prefix!r} in {name!r}: use one of " + ", ".join(f"{p}:" for p in PROVIDERS)
            )
        if prefix == "elevenlabs":
            if not _VOICE_ID.fullmatch(vid):
                raise BadInput(f"{vid!r} is not an ElevenLabs voice id (letters and digits, as in the voice library)")
            return prefix, vid
        if f"{prefix}:{vid}" in {v.name for v in PROVIDERS[prefix].listing(settings)}:
            return prefix, vid
        raise BadInput(f"unknown voice {name!r}" + _closest(settings, name))
    for prefix, provider in PROVIDERS.items():
        for info in provider.listing(settings):
            if info.name.partition(":")[2].lower() == name.lower():
                return prefix, info.name.partition(":")[2]
    if settings.elevenlabs_api_key is not None and _VOICE_ID.fullmatch(name):
        return "elevenlabs", name
    raise BadInput(f"unknown voice {name!r}" + _closest(settings, name))


def _best_offline(settings: Settings, language: str) -> VoiceInfo:
    """The voice that needs no key and no network for this language: Piper if installed, else espeak-ng."""
    pipers = [v for v in _piper_listing(settings) if same_language(v.language, language)]
    if pipers:
        exact = [v for v in pipers if v.language == language.lower()]
        bundled = [v for v in pipers if v.name == f"piper:{DEFAULT_PIPER}"]
        return (exact or bundled or pipers)[0]
    codes = _espeak_listing_cached()
    primary = language.lower().split("-")[0]
    for code in (language.lower(), _PREFERRED_ESPEAK.get(primary, primary)):
        if code in codes:
            return VoiceInfo(name=f"espeak:{code}", provider="espeak-ng", language=code, offline=True, needs_key=False)
    matches = [c for c in codes if same_language(c, language)]
    if not matches:
        raise BadInput(f"no offline voice speaks {language!r} (see `storybot voices`)")
    return VoiceInfo(
        name=f"espeak:{matches[0]}", provider="espeak-ng", language=matches[0], offline=True, needs_key=False
    )


def voice_for_audio(audio: Path) -> Voice:
    """A recorded narration, for `render --voice FILE`."""
    return RecordingVoice(audio)


def get_voice(settings: Settings, request: VoiceRequest) -> Chosen:
    """The voice that narrates this request, or BadInput (one line) when it cannot be had."""
    if request.language is not None and not request.language.strip():
        raise BadInput("--language is empty: give a code such as en, es or ja")
    language = request.language.strip().lower() if request.language else None
    detected = detect_language(request.text) if request.text else None
    name = request.name or _configured_default(settings)
    if name:
        prefix, vid = resolve(settings, name)
        voice = PROVIDERS[prefix].make(settings, vid)
        wanted = language or detected
        if wanted and voice.language not in ("mul", "und") and not same_language(voice.language, wanted):
            return Chosen(
                voice, f"note: {voice.name} speaks {voice.language}, but the script is {wanted}; continuing with it"
            )
        return Chosen(voice)
    info = _best_offline(settings, language or detected or "en")
    prefix, vid = info.name.split(":", 1)
    voice = PROVIDERS[prefix].make(settings, vid)
    if prefix == "espeak":
        return Chosen(
            voice,
            f"note: no Piper voice for {info.language} is installed: narrating with espeak-ng "
            f"({info.name}); set STORYBOT_PIPER_VOICES_DIR to add one",
        )
    return Chosen(voice)
