"""Stage 5: word-level subtitles, timed by the voice (or by Whisper when the voice had no timings)."""

from __future__ import annotations

from collections.abc import Awaitable

from graph.context import NodeContext, StageUpdate, done, stage
from graph.nodes.gpu import gpu_call, on_gpu
from graph.state import JobState
from tools.files import write_json_atomic
from tools.gpu import GpuClient, ProgressFn, Transcript, WhisperParams
from tools.media import subtitles
from tools.media.align import Recognised, align
from tools.media.outputs import AsrMeta, SubtitleMeta


def whisper_language(language: str) -> str | None:
    """The script's language for Whisper (`en-us`, `en_US` → `en`); None lets it detect."""
    return language.replace("_", "-").split("-")[0].lower() or None


@stage("subtitles")
async def subtitles_node(state: JobState, ctx: NodeContext) -> StageUpdate:
    """With a Whisper model the recognised words lend their timings to the script's words when the
    voice came without timings (a recording); a TTS voice keeps its own, and ASR only checks it."""
    voice = ctx.voice(state)
    words, asr = ctx.words(), None
    provider = "estimated timings" if voice.timings_estimated else "voice timings"
    if (gpu := on_gpu(ctx, "whisper")) is not None:
        s = ctx.settings
        params = WhisperParams(
            audio=str(ctx.path("voice.wav")),
            beam_size=s.whisper_beam_size,
            max_new_tokens=s.whisper_max_new_tokens,
            language=whisper_language(voice.language),
        )

        def hear(progress: ProgressFn, gpu: GpuClient = gpu) -> Awaitable[Transcript]:
            return gpu.run("whisper", params, progress)

        result = await gpu_call(ctx, "whisper", gpu.model("whisper"), hear, stage_name="subtitles", what="voice")
        heard = [Recognised.model_validate(w.model_dump()) for w in result.words]
        aligned = align(words, heard, result.duration)
        asr = AsrMeta(
            model=gpu.model("whisper"),
            recognised=len(result.words),
            matched=aligned.matched,
            coverage=round(aligned.coverage, 3),
            applied=voice.timings_estimated,
        )
        write_json_atomic(ctx.path("asr.json"), {**asr.model_dump(), "words": [w.model_dump() for w in result.words]})
        if voice.timings_estimated:
            words, provider = aligned.words, "whisper alignment"
            write_json_atomic(ctx.path("words.json"), [w.model_dump() for w in words])
        else:
            provider = "voice timings (whisper checked)"
    made = await ctx.in_thread(subtitles.write_subtitles, ctx.script(), words, ctx.request(state).aspect, ctx.job_dir)
    return done(provider, subtitles=SubtitleMeta(cues=len(made.cues), font_size=made.font_size, asr=asr))
