"""Stages 5 and 7-10 and the keyframe approval: from the voice to the finished video.

Each node checks a small manifest beside its outputs, so a re-run after a crash (or after a
re-roll) reuses what was already made from the same inputs instead of recomputing it.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.types import Command, interrupt

from graph.context import NodeContext, done, file_digest, fingerprint, remember, reusable, stage
from graph.events import Event
from graph.state import Answer, JobState
from tools import compose, keyframes, motion, shots, subtitles
from tools.files import write_json_atomic
from tools.finish import finish, finish_metadata, music_or_bed
from tools.render import collect_artifacts


def _not_built(ctx: NodeContext, setting: str | None, name: str, fallback: str) -> list[str]:
    """Say so when a model is configured whose worker does not exist yet: never fall back silently."""
    if not setting:
        return []
    message = f"{name} is set but its GPU worker is not built yet; used {fallback}"
    ctx.emit(Event(job_id=ctx.job_id, kind="notice", message=message))
    return [message]


@stage("subtitles")
async def subtitles_node(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    notices = _not_built(ctx, ctx.settings.whisper_model, "STORYBOT_WHISPER_MODEL", "the voice's own timings")
    result = await ctx.in_thread(subtitles.write_subtitles, ctx.script(), ctx.words(), ctx.request(state).aspect,
                                 ctx.job_dir)
    return done("voice timings" if not state["voice"]["estimated"] else "estimated timings",
                subtitles={"cues": len(result.cues), "font_size": result.font_size}, notices=notices)


def _shot_seed(state: JobState, index: int) -> int:
    """The picture seed of a shot: the job's seed until a re-roll gives the shot its own."""
    return state.get("shot_seeds", {}).get(str(index), state["request"].get("seed", 0))


@stage("keyframes")
async def keyframes_node(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    aspect = ctx.request(state).aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    folder = ctx.path("keyframes")
    folder.mkdir(exist_ok=True)
    names = []
    for n, shot in enumerate(plan):
        seed = _shot_seed(state, shot.index)
        png = folder / keyframes.keyframe_name(shot)
        manifest = folder / f".{png.stem}.json"
        key = fingerprint("procedural", shot.key_phrase, seed, aspect.value)
        if reusable(manifest, key, png) is None:
            card = await ctx.in_thread(keyframes.draw_art_card, shot, aspect.size, seed)
            await ctx.in_thread(keyframes.save_png, card, png)
            remember(manifest, key, seed=seed)
        names.append(f"keyframes/{png.name}")
        ctx.progress("keyframes", 100 * (n + 1) / len(plan))
    notices = _not_built(ctx, ctx.settings.sdxl_model, "STORYBOT_SDXL_MODEL", "procedural art cards")
    return done("procedural art cards", keyframes=names, reroll=[], notices=notices)


@stage("vision_guidance")
async def vision_guidance(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    reason = ("STORYBOT_VISION_MODEL is set but its GPU worker is not built yet" if ctx.settings.vision_model
              else "no vision model configured (STORYBOT_VISION_MODEL)")
    write_json_atomic(ctx.path("vision.json"), {"skipped": True, "reason": reason})
    return done("skipped", notices=[f"vision guidance skipped: {reason}"])


@stage("approve_keyframes")
async def approve_keyframes(state: JobState, ctx: NodeContext) -> Command[Any]:
    if ctx.auto_approve:
        return Command(update=done("auto"), goto="animate")
    plan = shots.read_shots(ctx.path("shots.json"))
    answer = Answer.model_validate(interrupt({
        "approval": "approve_keyframes",
        "question": f"Approve these {len(plan)} keyframes, or re-roll some shots?",
        "keyframes": [str(ctx.path(k)) for k in state["keyframes"]],
        "shots": [{"number": s.index + 1, "text": s.text} for s in plan],
        "answers": ["approve", "reroll N[,M]", "cancel"],
    }))
    if answer.action == "cancel":
        return Command(update=done("user", outcome="cancelled"), goto=END)
    if answer.action == "reroll":
        seeds = dict(state.get("shot_seeds", {}))
        for number in answer.shots:
            index = number - 1
            seeds[str(index)] = _shot_seed(state, index) + 7919  # a new picture, still deterministic
        return Command(update=done("user", shot_seeds=seeds, reroll=[n - 1 for n in answer.shots]),
                       goto="keyframes")
    return Command(update=done("user"), goto="animate")


@stage("animate")
async def animate(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    aspect = ctx.request(state).aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    cut = compose.plan_cut(plan)
    folder = ctx.path("clips")
    folder.mkdir(exist_ok=True)
    names = []
    for n, (shot, frames) in enumerate(zip(plan, cut.clip_frames, strict=True)):
        keyframe = ctx.path(state["keyframes"][n])
        clip = folder / f"shot_{shot.index + 1:02d}.mp4"
        manifest = folder / f".{clip.stem}.json"
        key = fingerprint("ken-burns", await ctx.in_thread(file_digest, keyframe), shot.motion, frames, aspect.value)
        if reusable(manifest, key, clip) is None:
            await motion.ken_burns(keyframe, shot.motion, frames, aspect, clip)
            remember(manifest, key)
        names.append(f"clips/{clip.name}")
        ctx.progress("animate", 100 * (n + 1) / len(plan))
    notices = _not_built(ctx, ctx.settings.ltx_model, "STORYBOT_LTX_MODEL", "Ken Burns motion")
    return done("ken burns (ffmpeg)", clips=names, notices=notices)


@stage("post_produce")
async def post_produce(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    s = ctx.settings
    plan = shots.read_shots(ctx.path("shots.json"))
    cut = compose.plan_cut(plan)
    clips = [ctx.path(c) for c in state["clips"]]
    enc = compose.VideoEncoding(preset=s.video_preset, crf=s.video_crf)
    inputs = [*clips, ctx.path("voice.wav"), ctx.path("subtitles.ass")]
    key = fingerprint([await ctx.in_thread(file_digest, p) for p in inputs], enc.model_dump(), s.upload_limit_bytes)
    manifest = ctx.path(".final.json")
    if (kept := reusable(manifest, key, ctx.path("final.mp4"), ctx.path("metadata.json"))) is not None:
        return done("ffmpeg", artifacts=kept["artifacts"])
    music = await music_or_bed(None, ctx.job_dir, cut.total, request.seed)
    finished = await finish(ctx.job_dir, clips, cut, ctx.path("voice.wav"), music, ctx.path("subtitles.ass"),
                            request.aspect, enc, s.upload_limit_bytes)
    title = state.get("idea", {}).get("title") or request.prompt
    platforms = await ctx.writer.platform_meta(title, ctx.script())
    metadata = {
        **finish_metadata(finished, enc, cut, False, s.upload_limit_bytes),
        "job_id": ctx.job_id,
        "prompt": request.prompt,
        "aspect": request.aspect.value,
        "voice": state["voice"],
        "shots": len(plan),
        "script_version": state["script_version"],
        "platforms": platforms.model_dump(),
        "providers": state.get("providers", {}),
        "stages": {r.name: {"runs": r.runs, "seconds": r.seconds, "provider": r.provider}
                   for r in ctx.store.stage_list(ctx.job_id)},
    }
    write_json_atomic(ctx.path("metadata.json"), metadata)
    artifacts = collect_artifacts(ctx.job_dir).model_dump()
    remember(manifest, key, artifacts=artifacts)
    return done("ffmpeg", artifacts=artifacts)


@stage("deliver")
async def deliver(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    artifacts = state["artifacts"]
    missing = [k for k in ("final_video", "thumbnail", "metadata") if not artifacts.get(k)]
    if missing:
        raise RuntimeError(f"cannot deliver: missing {', '.join(missing)}")
    return done("headless" if not ctx.settings.discord_token else "discord", outcome="done")
