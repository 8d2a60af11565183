"""Stages 5 and 7-10 and the keyframe approval: from the voice to the finished video.

Each node checks a small manifest beside its outputs, so a re-run after a crash (or after a
re-roll) reuses what was already made from the same inputs instead of recomputing it. A stage whose
model is configured (STORYBOT_*_MODEL) runs on a GPU worker through `ctx.gpu`; otherwise its
offline default runs, and the job records which.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from langgraph.types import Command, interrupt

from graph.context import NodeContext, done, file_digest, fingerprint, remember, reusable, stage
from graph.state import Answer, JobState, KeyframeApproval, ShotCaption, ShotVerdict
from tools import compose, keyframes, motion, shots, subtitles, visuals
from tools.align import Recognised, align
from tools.files import write_json_atomic
from tools.finish import finish, finish_metadata, music_or_bed
from tools.gpu import (
    ClipResult,
    Family,
    GpuClient,
    GpuError,
    ImageResult,
    LtxParams,
    ProgressFn,
    SdxlParams,
    Transcript,
    Verdict,
    WhisperParams,
)
from tools.gpu import plan as gpu_plan
from tools.models import Aspect, Shot
from tools.render import collect_artifacts
from tools.vision import Judge, get_judge

log = logging.getLogger(__name__)
T = TypeVar("T")


def _gpu(ctx: NodeContext, family: Family) -> GpuClient | None:
    return ctx.gpu if ctx.gpu is not None and ctx.gpu.configured(family) else None


async def _call(
    ctx: NodeContext,
    family: str,
    model: str,
    call: Callable[[ProgressFn], Awaitable[T]],
    *,
    stage_name: str,
    what: str,
    span: tuple[float, float] = (0.0, 100.0),
) -> T:
    """One GPU (or vision API) request with progress mapped into `span` percent of the stage; a
    failure names the stage, the shot(s) and the model, and says out-of-memory plainly."""
    lo, hi = span

    def progress(step: int, total: int) -> None:
        ctx.progress(stage_name, lo + (hi - lo) * step / total, f"{what}: step {step}/{total}")

    try:
        return await call(progress)
    except GpuError as exc:
        label = "out of memory" if exc.kind == "oom" else "failed"
        raise GpuError(f"{stage_name} ({what}) {label} on {family} model {model}: {exc}", exc.kind) from None


def _language(state: JobState) -> str | None:
    """The script's language for Whisper (`en-us`, `en_US` → `en`); None lets it detect."""
    code = str(state.get("voice", {}).get("language") or "")
    return code.replace("_", "-").split("-")[0].lower() or None


@stage("subtitles")
async def subtitles_node(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    """With a Whisper model the recognised words lend their timings to the script's words when the
    voice came without timings (a recording); a TTS voice keeps its own, and ASR only checks it."""
    words, provider, asr = ctx.words(), "voice timings", None
    if state["voice"]["estimated"]:
        provider = "estimated timings"
    if (gpu := _gpu(ctx, "whisper")) is not None:
        s = ctx.settings
        params = WhisperParams(
            audio=str(ctx.path("voice.wav")),
            beam_size=s.whisper_beam_size,
            max_new_tokens=s.whisper_max_new_tokens,
            language=_language(state),
        )

        def hear(progress: ProgressFn, gpu: GpuClient = gpu) -> Awaitable[Transcript]:
            return gpu.run("whisper", params, progress)

        result = await _call(ctx, "whisper", gpu.model("whisper"), hear, stage_name="subtitles", what="voice")
        heard = [Recognised.model_validate(w.model_dump()) for w in result.words]
        aligned = align(words, heard, result.duration)
        asr = {
            "model": gpu.model("whisper"),
            "recognised": len(result.words),
            "matched": aligned.matched,
            "coverage": round(aligned.coverage, 3),
            "applied": bool(state["voice"]["estimated"]),
        }
        write_json_atomic(ctx.path("asr.json"), {**asr, "words": [w.model_dump() for w in result.words]})
        if state["voice"]["estimated"]:
            words, provider = aligned.words, "whisper alignment"
            write_json_atomic(ctx.path("words.json"), [w.model_dump() for w in words])
        else:
            provider = "voice timings (whisper checked)"
    result_files = await ctx.in_thread(
        subtitles.write_subtitles, ctx.script(), words, ctx.request(state).aspect, ctx.job_dir
    )
    return done(provider, subtitles={"cues": len(result_files.cues), "font_size": result_files.font_size, "asr": asr})


def _shot_seed(state: JobState, index: int) -> int:
    """The picture seed of a shot: the job's seed until a re-roll gives the shot its own."""
    return state.get("shot_seeds", {}).get(str(index), state["request"].get("seed", 0))


def _extras(ctx: NodeContext) -> dict[int, dict[str, Any]]:
    """The scene plan's per-shot extras (negative prompt, mood, beat) from `scenes.json`, by 0-based index."""
    path = ctx.path("scenes.json")
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    return {int(e["shot"]) - 1: e for e in entries if isinstance(e, dict) and "shot" in e}


def _picture_prompt(shot: Shot, extras: dict[int, dict[str, Any]]) -> str:
    prompt = shot.prompt or shot.key_phrase or shot.text
    mood = extras.get(shot.index, {}).get("mood")
    return f"{prompt}, {mood} mood" if mood else prompt


def _negative_prompt(ctx: NodeContext, shot: Shot, extras: dict[int, dict[str, Any]]) -> str:
    """The planner's negative prompt for this shot, then the configured one for every shot."""
    own = extras.get(shot.index, {}).get("negative_prompt")
    return ", ".join(p for p in (own, ctx.settings.sdxl_negative_prompt) if p)


async def _sdxl_draw(
    ctx: NodeContext,
    gpu: GpuClient,
    stage_name: str,
    aspect: Aspect,
    jobs: list[tuple[Shot, int, str, Path]],
    span: tuple[float, float] = (0.0, 100.0),
    negatives: list[str] | None = None,
) -> None:
    """Draw (shot, seed, prompt, png) in batches at SDXL's native size, then scale each to the output size;
    `negatives` (one per job) replace the planned negative prompts (a vision redraw's)."""
    s = ctx.settings
    extras = _extras(ctx)
    width, height = gpu_plan.sdxl_size(aspect, s.gpu_size_divisor)
    raw_dir = ctx.path("keyframes/.sdxl")
    raw_dir.mkdir(parents=True, exist_ok=True)
    lo, hi = span
    for b in range(0, len(jobs), s.sdxl_batch):
        batch = jobs[b : b + s.sdxl_batch]
        raws = [raw_dir / png.name for _, _, _, png in batch]
        params = SdxlParams(
            prompts=[p for _, _, p, _ in batch],
            seeds=[seed for _, seed, _, _ in batch],
            outputs=[str(r) for r in raws],
            width=width,
            height=height,
            steps=s.sdxl_steps,
            negative_prompts=negatives[b : b + s.sdxl_batch]
            if negatives
            else [_negative_prompt(ctx, shot, extras) for shot, _, _, _ in batch],
        )
        numbers = ", ".join(str(shot.index + 1) for shot, _, _, _ in batch)
        part = (hi - lo) / len(jobs)

        def draw(progress: ProgressFn, params: SdxlParams = params) -> Awaitable[ImageResult]:
            return gpu.run("sdxl", params, progress)

        await _call(
            ctx,
            "sdxl",
            gpu.model("sdxl"),
            draw,
            stage_name=stage_name,
            what=f"shot {numbers}",
            span=(lo + part * b, lo + part * (b + len(batch))),
        )
        for raw, (_, _, _, png) in zip(raws, batch, strict=True):
            image = await ctx.in_thread(keyframes.load_image_cover, raw, aspect.size)
            await ctx.in_thread(keyframes.save_png, image, png)


def _visual_source(ctx: NodeContext, state: JobState) -> visuals.SourceName:
    """The user's own media when the request brought some, else what `--visuals` resolves to."""
    request = ctx.request(state)
    if request.media:
        return "user"
    choice = request.visuals
    if choice == "gpu" and _gpu(ctx, "sdxl") is None:
        choice = "auto"  # the job was started with a model this process no longer has
    return visuals.resolve(choice, ctx.settings) if choice != "gpu" else "gpu"


def _label(name: visuals.SourceName, ctx: NodeContext, made: list[str]) -> str:
    """The provider the job records for the stage, e.g. "stock (pexels, pixabay)"."""
    if name == "cards":
        return "procedural art cards"
    if name == "gpu":
        gpu = _gpu(ctx, "sdxl")
        return f"sdxl ({gpu.model('sdxl')})" if gpu else "sdxl"
    used = ", ".join(dict.fromkeys(made)) or "none"
    return {"user": "your media", "images": f"images ({ctx.settings.image_model})"}.get(name, f"{name} ({used})")


@stage("keyframes")
async def keyframes_node(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    """Ask the visual source for every shot whose picture is missing or re-rolled; a shot it cannot
    serve gets a card and a notice. A re-roll asks the same source again, with the shot's earlier
    media excluded (the next search hit) and a new seed."""
    request = ctx.request(state)
    aspect = request.aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    folder = ctx.path("keyframes")
    folder.mkdir(exist_ok=True)
    name = _visual_source(ctx, state)
    gpu = _gpu(ctx, "sdxl") if name == "gpu" else None
    extras = _extras(ctx)
    title = state.get("idea", {}).get("title")
    before = visuals.read_records(ctx.job_dir)
    rerolled = set(state.get("reroll", []))
    pinned = {int(k): Path(v) for k, v in state.get("shot_media", {}).items()}  # the user's replacements
    kept: dict[int, visuals.ShotRecord] = {}
    todo: list[tuple[visuals.ShotBrief, Path, str]] = []
    names, seeds = [], {}
    for shot in plan:
        seed = _shot_seed(state, shot.index)
        extra = extras.get(shot.index, {})
        brief = visuals.brief(
            shot,
            _picture_prompt(shot, extras),
            _negative_prompt(ctx, shot, extras),
            extra.get("search_terms"),
            seed,
            title,
        )
        png = folder / keyframes.keyframe_name(shot)
        manifest = folder / f".{png.stem}.json"
        label = f"sdxl:{gpu.model('sdxl')}:{ctx.settings.sdxl_steps}" if gpu else name
        key = fingerprint(
            label,
            brief.model_dump(exclude={"title"} if shot.index else set()),
            aspect.value,
            request.media,
            str(pinned.get(shot.index, "")),
        )
        names.append(f"keyframes/{png.name}")
        seeds[str(shot.index + 1)] = seed
        old = before.get(shot.index + 1)
        footage = visuals.clips_of(ctx.job_dir, old)
        if old and reusable(manifest, key, png) is not None and all(c.is_file() for c in footage):
            kept[shot.index] = old
        else:
            todo.append((brief, manifest, key))
    exclude = {m for r in kept.values() for m in r.media_ids}
    exclude |= {m for b, _, _ in todo if b.index in rerolled and (r := before.get(b.index + 1)) for m in r.media_ids}
    job = visuals.Job(aspect=aspect, folder=ctx.job_dir, shots=len(plan), exclude=exclude)

    async def draw(jobs: list[tuple[visuals.ShotBrief, Path]]) -> None:
        assert gpu is not None
        await _sdxl_draw(ctx, gpu, "keyframes", aspect, [(plan[b.index], b.seed, b.prompt, png) for b, png in jobs])

    vision = get_judge(ctx.settings, ctx.gpu) if name == "stock" else None  # GPU or OpenAI-compatible vision

    async def rank(frame: Path, text: str) -> float | None:
        """A stock candidate's frame scored against the shot's words by the vision model."""
        assert vision is not None
        return (await _judge(ctx, vision, frame, text, None, "stock candidate")).value

    own = [b for b, _, _ in todo if b.index in pinned]
    rest = [b for b, _, _ in todo if b.index not in pinned]
    with ctx.metered("keyframes"):
        async with visuals.open_source(
            name,
            ctx.settings,
            draw=draw,
            gpu_label=f"sdxl:{gpu.model('sdxl')}" if gpu else "sdxl",
            user_files=[Path(m) for m in request.media],
            rank=rank if vision is not None else None,
        ) as source:
            by_shot = {v.shot: v for v in await visuals.make_visuals(source, rest, job)}
        async with visuals.open_source("user", ctx.settings, pinned=pinned) as replacing:
            by_shot |= {v.shot: v for v in await visuals.make_visuals(replacing, own, job)}
    made = [by_shot[b.index] for b, _, _ in todo]
    notices = []
    for n, ((brief, manifest, key), visual) in enumerate(zip(todo, made, strict=True)):
        rec = visuals.record(visual, ctx.job_dir)
        kept[visual.shot] = rec
        remember(manifest, key, seed=brief.seed, source=rec.source)
        if rec.notice:
            notices.append(rec.notice)
        ctx.progress("keyframes", 100 * (n + 1) / len(todo))
    records = [kept[s.index] for s in plan]
    visuals.write_records(ctx.job_dir, records)
    write_json_atomic(folder / "seeds.json", seeds)
    return done(_label(name, ctx, [r.source for r in records]), keyframes=names, reroll=[], notices=notices)


def _best(attempts: list[dict[str, Any]]) -> int:
    """The attempt to keep: the highest score; unparsed verdicts rank below any parsed one."""

    def value(i: int) -> float:
        verdict = Verdict.model_validate(attempts[i]["verdict"])
        return verdict.value if verdict.value is not None else -1.0

    return max(range(len(attempts)), key=lambda i: (value(i), -i))


async def _judge(ctx: NodeContext, judge: Judge, png: Path, prompt: str, previous: Path | None, what: str) -> Verdict:
    return await _call(
        ctx,
        "vision",
        judge.model,
        lambda p: judge.judge(png, prompt, previous, p),
        stage_name="vision_guidance",
        what=what,
    )


@stage("vision_guidance")
async def vision_guidance(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    """Judge each keyframe; a shot scored below the threshold is redrawn (new seed) with what the
    judge found missing put first in its prompt and what it found unwanted in its negative prompt,
    at most `vision_rounds` times, and the best attempt is kept. An unparsed verdict never
    triggers a redraw (see docs/GPU.md). Every round goes to `vision.json`."""
    s = ctx.settings
    judge = get_judge(s, ctx.gpu)
    if judge is None:
        reason = "no vision model configured (STORYBOT_VISION_MODEL)"
        write_json_atomic(ctx.path("vision.json"), {"skipped": True, "reason": reason})
        return done("skipped", notices=[f"vision guidance skipped: {reason}"])
    try:
        records = await _judge_all(state, ctx, judge)
    finally:
        await judge.close()
    verdicts = [Verdict.model_validate(a["verdict"]) for r in records for a in r["attempts"]]
    unparsed = sum(not Verdict.model_validate(r["verdict"]).parsed for r in records)
    parse_rate = round(sum(v.parsed for v in verdicts) / len(verdicts), 3) if verdicts else 1.0
    log.info("job %s: %s vision verdicts parsed %.0f%% of %d", ctx.job_id, judge.model, 100 * parse_rate, len(verdicts))
    write_json_atomic(
        ctx.path("vision.json"),
        {
            "skipped": False,
            "provider": judge.provider,
            "model": judge.model,
            "threshold": s.vision_threshold,
            "rounds": s.vision_rounds,
            "unparsed": unparsed,
            "parse_rate": parse_rate,
            "shots": records,
        },
    )
    notices = (
        [f"vision guidance: {unparsed} of {len(records)} verdicts did not parse; those shots were kept"]
        if unparsed
        else []
    )
    return done(f"{judge.provider} ({judge.model})", notices=notices)


async def _judge_all(state: JobState, ctx: NodeContext, judge: Judge) -> list[dict[str, Any]]:
    s = ctx.settings
    extras = _extras(ctx)
    sdxl = _gpu(ctx, "sdxl")
    aspect = ctx.request(state).aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    records: list[dict[str, Any]] = []
    previous = None
    for n, shot in enumerate(plan):
        png = ctx.path(state["keyframes"][n])
        manifest = png.with_name(f".{png.stem}.vision.json")
        key = fingerprint(
            judge.model, file_digest(png), s.vision_threshold, s.vision_rounds, previous and file_digest(previous)
        )
        if (kept := reusable(manifest, key, png)) is not None:
            records.append(kept["record"])
            previous = png
            continue
        what = f"shot {shot.index + 1}"
        seed, prompt = _shot_seed(state, shot.index), _picture_prompt(shot, extras)
        negative = _negative_prompt(ctx, shot, extras)
        first = await _judge(ctx, judge, png, prompt, previous, what)
        attempts: list[dict[str, Any]] = [
            {
                "round": 0,
                "seed": seed,
                "prompt": prompt,
                "negative_prompt": negative,
                "file": png.name,
                "verdict": first.model_dump(),
            }
        ]
        verdict = first
        for round_ in range(1, s.vision_rounds + 1 if sdxl else 1):
            if not gpu_plan.needs_retry(verdict, s.vision_threshold):
                break
            assert sdxl is not None
            retry = png.with_name(f".{png.stem}.try{round_}.png")
            new_seed = seed + 7919 * round_
            new_prompt, new_negative = gpu_plan.redraw_prompts(prompt, negative, verdict)
            await _sdxl_draw(
                ctx, sdxl, "vision_guidance", aspect, [(shot, new_seed, new_prompt, retry)], negatives=[new_negative]
            )
            verdict = await _judge(ctx, judge, retry, prompt, previous, what)  # judged against the shot, always
            attempts.append(
                {
                    "round": round_,
                    "seed": new_seed,
                    "prompt": new_prompt,
                    "negative_prompt": new_negative,
                    "file": retry.name,
                    "verdict": verdict.model_dump(),
                }
            )
        best = _best(attempts)
        if best:  # every round's picture stays on disk beside vision.json; the best becomes the keyframe
            first_file = png.with_name(f".{png.stem}.try0.png")
            shutil.copyfile(png, first_file)
            attempts[0]["file"] = first_file.name
            shutil.copyfile(png.with_name(attempts[best]["file"]), png)
        record = {"shot": shot.index + 1, "kept": best, "verdict": attempts[best]["verdict"], "attempts": attempts}
        records.append(record)
        remember(
            manifest,
            fingerprint(
                judge.model, file_digest(png), s.vision_threshold, s.vision_rounds, previous and file_digest(previous)
            ),
            record=record,
        )
        previous = png
        ctx.progress("vision_guidance", 100 * (n + 1) / len(plan))
    return records


def _verdicts(ctx: NodeContext) -> list[ShotVerdict]:
    """The vision verdicts to show beside the keyframes at approval (empty when vision was skipped)."""
    path = ctx.path("vision.json")
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    shown = ("parsed", "score", "missing", "unwanted", "adherence", "quality", "critique", "consistent")
    return [
        ShotVerdict.model_validate(
            {"shot": r["shot"], **Verdict.model_validate(r["verdict"]).model_dump(include=set(shown))}
        )
        for r in data.get("shots", [])
    ]


@stage("approve_keyframes")
async def approve_keyframes(
    state: JobState, ctx: NodeContext
) -> Command[Literal["animate", "keyframes", "revise_script", "__end__"]]:
    if ctx.auto_approve:
        return Command(update=done("auto"), goto="animate")
    plan = shots.read_shots(ctx.path("shots.json"))
    answer = Answer.model_validate(
        interrupt(
            KeyframeApproval(
                keyframes=[str(ctx.path(k)) for k in state["keyframes"]],
                shots=[ShotCaption(number=s.index + 1, text=s.text) for s in plan],
                verdicts=_verdicts(ctx),
            )
        )
    )
    if answer.action == "cancel":
        return Command(update=done("user", outcome="cancelled"), goto="__end__")
    if answer.action == "replace":  # a new script: back to its approval, then voice and pictures again
        return Command(update=done("user", revision={"text": answer.text or ""}), goto="revise_script")
    if answer.action == "reroll":
        seeds = dict(state.get("shot_seeds", {}))
        for number in answer.shots:
            index = number - 1
            seeds[str(index)] = _shot_seed(state, index) + 7919  # a new picture, still deterministic
        own = dict(state.get("shot_media", {}))
        for number in answer.shots:
            own.pop(str(number - 1), None)  # a plain re-roll goes back to the job's source
        own |= {str(n - 1): path for n, path in zip(answer.shots, answer.media, strict=False)}
        return Command(
            update=done("user", shot_seeds=seeds, reroll=[n - 1 for n in answer.shots], shot_media=own),
            goto="keyframes",
        )
    return Command(update=done("user"), goto="animate")


@stage("animate")
async def animate(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    """What each shot shows, written to `clips/media.json` for the final cut: the keyframe (Ken Burns)
    or an LTX image-to-video clip at its native size and 8k+1 frames. Nothing is encoded here: the
    final cut fits clips (scale, crop, 30 fps, trim or extend) and moves stills in its one graph, so
    the only costly work left is LTX generation, which its manifest keeps across a crash."""
    aspect = ctx.request(state).aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    cut = compose.plan_cut(plan)
    folder = ctx.path("clips")
    folder.mkdir(exist_ok=True)
    gpu, s = _gpu(ctx, "ltx"), ctx.settings
    extras = _extras(ctx)
    width, height = gpu_plan.ltx_size(aspect, s.gpu_size_divisor)
    records = visuals.read_records(ctx.job_dir)
    names: list[str] = []
    media: list[motion.StillShot | motion.ClipShot] = []
    for n, (shot, frames) in enumerate(zip(plan, cut.clip_frames, strict=True)):
        keyframe = ctx.path(state["keyframes"][n])
        footage = (rec := records.get(shot.index + 1)) and rec.clips
        if footage:  # stock or the user's clips, fitted and chained in the final cut
            media.append(
                motion.ClipShot(
                    sources=[
                        (await ctx.in_thread(motion.clip_source, ctx.job_dir / c)).model_copy(update={"path": Path(c)})
                        for c in footage
                    ]
                )
            )
            names.append(footage[0])
            continue
        if gpu is None:
            media.append(motion.StillShot(image=Path(state["keyframes"][n]), motion=shot.motion))
            names.append(state["keyframes"][n])
            continue
        clip = folder / f"shot_{shot.index + 1:02d}.mp4"
        manifest = folder / f".{clip.stem}.json"
        ltx_frames = gpu_plan.ltx_frames(frames / motion.FPS)
        ltx_prompt = gpu_plan.ltx_prompt(
            _picture_prompt(shot, extras), shot.motion, extras.get(shot.index, {}).get("beat")
        )
        key = fingerprint(
            "ltx",
            gpu.model("ltx"),
            await ctx.in_thread(file_digest, keyframe),
            ltx_prompt,
            frames,
            ltx_frames,
            s.ltx_max_frames,
            width,
            height,
            s.ltx_steps,
            s.ltx_guidance,
            aspect.value,
        )
        if reusable(manifest, key, clip) is None:
            params = LtxParams(
                image=str(keyframe),
                prompt=ltx_prompt,
                output=str(clip),
                width=width,
                height=height,
                num_frames=ltx_frames,
                fps=gpu_plan.LTX_FPS,
                max_frames=gpu_plan.frame_cap(s.ltx_max_frames),
                steps=s.ltx_steps,
                guidance=s.ltx_guidance,
                seed=_shot_seed(state, shot.index),
                negative_prompt=_negative_prompt(ctx, shot, extras),
            )

            def animate_one(
                progress: ProgressFn, gpu: GpuClient = gpu, params: LtxParams = params
            ) -> Awaitable[ClipResult]:
                return gpu.run("ltx", params, progress)

            await _call(
                ctx,
                "ltx",
                gpu.model("ltx"),
                animate_one,
                stage_name="animate",
                what=f"shot {shot.index + 1}",
                span=(100 * n / len(plan), 100 * (n + 1) / len(plan)),
            )
            remember(manifest, key)
        source = await ctx.in_thread(motion.clip_source, clip)
        media.append(motion.ClipShot(sources=[source.model_copy(update={"path": Path(f"clips/{clip.name}")})]))
        names.append(f"clips/{clip.name}")
        ctx.progress("animate", 100 * (n + 1) / len(plan))
    motion.write_media(ctx.path("clips/media.json"), media)
    footage_shots = sum(bool(r.clips) for r in records.values())
    kind = f"ltx ({gpu.model('ltx')})" if gpu else "ken burns (in the final cut)"
    if footage_shots:
        kind = "footage (in the final cut)" + (f" + {kind}" if footage_shots < len(plan) else "")
    return done(kind, clips=names)


@stage("post_produce")
async def post_produce(state: JobState, ctx: NodeContext) -> dict[str, Any]:
    request = ctx.request(state)
    s = ctx.settings
    plan = shots.read_shots(ctx.path("shots.json"))
    cut = compose.plan_cut(plan)
    sheet = ctx.path("clips/media.json")
    media = motion.read_media(sheet, ctx.job_dir)
    enc = compose.VideoEncoding(preset=s.video_preset, crf=s.video_crf)
    inputs = [sheet, *motion.media_files(media), ctx.path("voice.wav"), ctx.path("subtitles.ass")]
    key = fingerprint([await ctx.in_thread(file_digest, p) for p in inputs], enc.model_dump(), s.upload_limit_bytes)
    manifest = ctx.path(".final.json")
    if (kept := reusable(manifest, key, ctx.path("final.mp4"), ctx.path("metadata.json"))) is not None:
        return done("ffmpeg", artifacts=kept["artifacts"])
    music = await music_or_bed(None, ctx.job_dir, cut.total, request.seed)
    finished = await finish(
        ctx.job_dir,
        media,
        cut,
        ctx.path("voice.wav"),
        music,
        ctx.path("subtitles.ass"),
        request.aspect,
        enc,
        s.upload_limit_bytes,
    )
    title = state.get("idea", {}).get("title") or request.prompt
    with ctx.metered("post_produce"):
        platforms = await ctx.writer.platform_meta(title, ctx.script())
    metadata = {
        **finish_metadata(finished, enc, cut, False, s.upload_limit_bytes),
        "job_id": ctx.job_id,
        "prompt": request.prompt,
        "aspect": request.aspect.value,
        "voice": state["voice"],
        "shots": len(plan),
        "visuals": [
            r.model_dump(include={"shot", "source", "media_ids", "notice"})
            for r in visuals.read_records(ctx.job_dir).values()
        ],
        "script_version": state["script_version"],
        "platforms": platforms.model_dump(),
        "providers": state.get("providers", {}),
        "usage": ctx.store.usage_totals(ctx.job_id),
        "stages": {
            r.name: {"runs": r.runs, "seconds": r.seconds, "provider": r.provider}
            for r in ctx.store.stage_list(ctx.job_id)
        },
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
