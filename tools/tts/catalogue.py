"""The voice catalogue and `get_voice`: one place that knows every provider's voices by name.

Names are `provider:id`. A bare id is looked up across providers; ElevenLabs ids cannot be listed
offline, so a bare id that is nothing else is taken as one when a key is configured. Without a
name the script's language picks the best voice that needs no key and no network: Piper where a
voice for that language is installed, else espeak-ng. Adding a provider is one module and one
row in `PROVIDERS`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from tools.errors import BadInput
from tools.settings import Settings
from tools.tts import edge, elevenlabs, espeak, piper, piper_fetch
from tools.tts.base import Provider, Voice, VoiceInfo
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


PROVIDERS: dict[str, Provider] = {row.prefix: row for row in (piper.ROW, espeak.ROW, edge.ROW, elevenlabs.ROW)}


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
    """The name STORYBOT_VOICE, or a provider's own configuration (an ElevenLabs voice id), makes the default."""
    return settings.voice or next((n for row in PROVIDERS.values() if (n := row.configured(settings))), None)


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
        row = PROVIDERS[prefix]
        if row.unlisted is not None:
            if (why := row.unlisted(vid)) is not None:
                raise BadInput(why)
            return prefix, vid
        if f"{prefix}:{vid}" in {v.name for v in row.listing(settings)}:
            return prefix, vid
        raise BadInput(f"unknown voice {name!r}" + _closest(settings, name))
    for prefix, provider in PROVIDERS.items():
        for info in provider.listing(settings):
            if info.name.partition(":")[2].lower() == name.lower():
                return prefix, info.name.partition(":")[2]
    for prefix, row in PROVIDERS.items():  # an id a keyed provider serves without listing it
        if row.unlisted is not None and row.available(settings) and row.unlisted(name) is None:
            return prefix, name
    raise BadInput(f"unknown voice {name!r}" + _closest(settings, name))


def _best_offline(settings: Settings, language: str) -> VoiceInfo:
    """The voice that needs no key and no network for this language: Piper if installed, else espeak-ng."""
    pipers = [v for v in piper.ROW.listing(settings) if v.installed and same_language(v.language, language)]
    if pipers:
        exact = [v for v in pipers if v.language == language.lower()]
        bundled = [v for v in pipers if v.name == f"piper:{DEFAULT_PIPER}"]
        return (exact or bundled or pipers)[0]
    codes = espeak.voice_codes()
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
    wanted = language or detected or "en"
    info = _best_offline(settings, wanted)
    prefix, vid = info.name.split(":", 1)
    if prefix == "espeak":  # no Piper voice installed for it: the repository may have one
        fetched, why = _download_for(settings, wanted)
        if fetched is not None:
            return fetched
    voice = PROVIDERS[prefix].make(settings, vid)
    if prefix == "espeak":
        return Chosen(
            voice,
            f"note: no Piper voice for {info.language} is installed: narrating with espeak-ng ({info.name}); {why}",
        )
    return Chosen(voice)


def _download_for(settings: Settings, language: str) -> tuple[Chosen | None, str]:
    """A Piper voice of the public repository for `language`, downloaded now, when one whose licence
    allows commercial use exists and the network answers; else (None, why not, for the notice)."""
    key, why = piper_fetch.pick_for_language(settings, language)
    if key is None:
        return None, f"{why}; `storybot voices pull NAME` adds one"
    try:
        voice = piper.ROW.make(settings, key)
    except (piper_fetch.VoiceDownloadError, BadInput) as exc:
        return None, f"downloading piper:{key} failed ({exc})"
    licence = piper_fetch.known_licence(settings, key)
    said = f", dataset licence {licence.text}" if licence else ""
    return Chosen(voice, f"note: no Piper voice for {language} was installed: downloaded piper:{key}{said}"), ""
