"""Stage 4: the approved script spoken, with a timing for every word (ElevenLabs or espeak-ng)."""

from __future__ import annotations

from typing import Any

from graph.context import NodeContext, done, fingerprint, remember, reusable, stage
from graph.state import JobRequest, JobState
from tools.files import write_json_atomic
from tools.settings import Settings
from tools.tts import Speech, synthesize, synthesize_elevenlabs


def elevenlabs_voice(settings: Settings, request: JobRequest) -> str | None:
    """The ElevenLabs voice id that will narrate, or None when espeak-ng does (no key, or no voice id)."""
    if settings.elevenlabs_api_key is None:
        return None
    return request.voice or settings.elevenlabs_voice_id or None


@stage("voice")
async def voice(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    text = ctx.script()
    request = ctx.request(state)
    s = ctx.settings
    eleven_voice = elevenlabs_voice(s, request)
    eleven = eleven_voice is not None
    provider = "elevenlabs" if eleven else "espeak-ng"
    name = eleven_voice if eleven else (request.voice or "en-us")
    model = s.elevenlabs_model_id if eleven else None
    key = fingerprint(text, provider, name, *([model, s.elevenlabs_voice_settings] if eleven else []))
    wav, words_file, manifest = ctx.path("voice.wav"), ctx.path("words.json"), ctx.path(".voice.json")
    if (kept := reusable(manifest, key, wav, words_file)) is not None:
        return done(provider, voice=kept["voice"])
    if eleven:
        assert s.elevenlabs_api_key is not None and model is not None
        with ctx.metered("voice"):
            speech: Speech = await synthesize_elevenlabs(
                text, wav, api_key=s.elevenlabs_api_key.get_secret_value(), voice_id=str(name),
                base_url=s.elevenlabs_base_url, model_id=model, voice_settings=s.elevenlabs_voice_settings or None,
                retries=s.provider_retries)
    else:
        speech = await synthesize(text, wav, voice=str(name))
    write_json_atomic(words_file, [w.model_dump() for w in speech.words])
    if eleven and speech.words_per_minute > 0:  # the next script for this voice is sized by it
        ctx.store.set_voice_rate(f"elevenlabs:{name}", speech.words_per_minute)
    summary = {"wav": "voice.wav", "duration": speech.duration, "words_per_minute": speech.words_per_minute,
               "provider": speech.provider, "voice": name, "estimated": speech.estimated}
    remember(manifest, key, voice=summary)
    return done(provider, voice=summary)
