"""Stage 4: the approved script spoken by the chosen voice, with a timing for every word."""

from __future__ import annotations

import asyncio

from graph.context import NodeContext, StageUpdate, done, fingerprint, recall, remember, stage
from graph.state import JobRequest, JobState
from tools.files import write_json_atomic
from tools.media.outputs import VoiceMeta
from tools.settings import Settings
from tools.tts import Chosen, VoiceRequest, get_voice


async def choose_voice(settings: Settings, request: JobRequest, text: str) -> Chosen:
    """The voice for this request and script (loading a Piper model takes a second: off the loop)."""
    wanted = VoiceRequest(name=request.voice, language=request.language, text=text)
    return await asyncio.to_thread(get_voice, settings, wanted)


@stage("voice")
async def voice(state: JobState, ctx: NodeContext) -> StageUpdate:
    text = ctx.script()
    chosen = await choose_voice(ctx.settings, ctx.request(state), text)
    narrator = chosen.voice
    key = fingerprint(text, narrator.provider, *narrator.fingerprint)
    wav, words_file, manifest = ctx.path("voice.wav"), ctx.path("words.json"), ctx.path(".voice.json")
    if (kept := recall(manifest, key, VoiceMeta, wav, words_file)) is not None:
        return done(narrator.provider, voice=kept)
    with ctx.metered("voice"):
        speech = await narrator.synthesize(text, wav)
    write_json_atomic(words_file, [w.model_dump() for w in speech.words])
    if speech.words_per_minute > 0 and not speech.estimated:  # the next script for this voice is sized by it
        ctx.store.set_voice_rate(narrator.rate_key, speech.words_per_minute)
    summary = VoiceMeta.of(speech, narrator, chosen.notice)
    remember(manifest, key, summary)
    return done(narrator.provider, voice=summary, notices=[speech.notice] if speech.notice else [])
