"""The one shape every narration voice has, and what the catalogue says about each voice."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from tools.tts.speech import Speech


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
