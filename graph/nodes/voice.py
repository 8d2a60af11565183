"""Stage 4: the approved script spoken, with a timing for every word (ElevenLabs or espeak-ng)."""

from __future__ import annotations

from typing import Any

from graph.context import NodeContext, done, fingerprint, remember, reusable, stage
from graph.state import JobState
from tools.files import write_json_atomic
from tools.tts import Speech, synthesize, synthesize_elevenlabs


@stage("voice")
async def voice(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    text = ctx.script()
    request = ctx.request(state)
    s = ctx.settings
    eleven = s.elevenlabs_api_key is not None and bool(s.elevenlabs_voice_id or request.voice)
    provider = "elevenlabs" if eleven else "espeak-ng"
    name = (request.voice or s.elevenlabs_voice_id) if eleven else (request.voice or "en-us")
    key = fingerprint(text, provider, name)
    wav, words_file, manifest = ctx.path("voice.wav"), ctx.path("words.json"), ctx.path(".voice.json")
    if (kept := reusable(manifest, key, wav, words_file)) is not None:
        return done(provider, voice=kept["voice"])
    if eleven:
        assert s.elevenlabs_api_key is not None
        speech: Speech = await synthesize_elevenlabs(text, wav, api_key=s.elevenlabs_api_key.get_secret_value(),
                                                     voice_id=str(name), base_url=s.elevenlabs_base_url)
    else:
        speech = await synthesize(text, wav, voice=str(name))
    write_json_atomic(words_file, [w.model_dump() for w in speech.words])
    summary = {"wav": "voice.wav", "duration": speech.duration, "words_per_minute": speech.words_per_minute,
               "provider": speech.provider, "voice": name, "estimated": speech.estimated}
    remember(manifest, key, voice=summary)
    return done(provider, voice=summary)
