"""The one shape every narration voice has, and what the catalogue says about each voice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from tools.settings import Settings
from tools.tts.speech import Speech

ESTIMATOR = "en-us"  # the espeak-ng voice whose pause-aware estimates pace voices that have no own


@runtime_checkable
class Voice(Protocol):
    """A voice that can narrate a script: every provider returns the same `Speech`.

    `name` is the catalogue name (`provider:id`); `rate_key` is where its measured speaking rate is
    kept, so the next script for it is sized by how fast it really speaks.
    """

    provider: str  # as metadata.json records it: piper, edge, elevenlabs, espeak-ng, recording
    name: str
    language: str  # lower-case BCP 47: en-us, es, ja
    rate_key: str
    fingerprint: tuple[object, ...]  # what, besides the text, decides the audio (a narration is reused on it)
    estimator: str  # the espeak-ng voice whose duration estimates, scaled to this voice's rate, size a draft

    async def synthesize(self, text: str, wav: Path) -> Speech: ...

    async def speaking_rate(self) -> float | None:
        """Words per minute measured on a fixed paragraph, or None when only a narration can tell."""
        ...


class VoiceInfo(BaseModel):
    """One row of `storybot voices --json` (DESIGN.md): the voice and what using it needs."""

    name: str
    provider: str
    language: str
    offline: bool
    needs_key: bool
    default: bool = False
    description: str = ""
    installed: bool = True  # False: downloaded when first used (Piper voices of the public repository)
    licence: str = ""  # the dataset licence, where the provider says (a Piper voice's model card)


@dataclass(frozen=True)
class Provider:
    """One row of the voice registry (`catalogue.PROVIDERS`): a provider's voices, listed and opened."""

    prefix: str  # the part before ":" in a voice name
    label: str  # as `storybot voices` and metadata.json name it
    listing: Callable[[Settings], list[VoiceInfo]]
    make: Callable[[Settings, str], Voice]  # a voice from an id the listing has (or one `unlisted` accepts)
    available: Callable[[Settings], bool] = lambda settings: True  # configured (a key set), so usable
    # for a provider whose voices cannot be listed offline: None when it serves this id unlisted, else why not
    unlisted: Callable[[str], str | None] | None = None
    configured: Callable[[Settings], str | None] = lambda settings: None  # the voice its settings make the default
