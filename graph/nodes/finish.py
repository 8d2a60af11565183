"""Stages 9-10 and delivery: what each shot shows (LTX clips on a GPU, otherwise stills and footage
moved in the final cut), the one-pass final cut, `metadata.json`, and the job's typed result."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

from graph.context import NodeContext, StageUpdate, done, file_digest, fingerprint, recall, remember, reusable, stage
from graph.events import Event
from graph.nodes.gpu import gpu_call, on_gpu
from graph.nodes.prompts import negative_prompt, picture_prompt, shot_seed
from graph.state import JobResult, JobState
from tools import provenance, visuals
from tools.gpu import ClipResult, GpuClient, LtxParams, ProgressFn
from tools.gpu import plan as gpu_plan
from tools.media import compose, motion, shots
from tools.media.finish import Finished, finish, finish_metadata, music_or_bed, signed_sizes
from tools.media.outputs import Metadata, StageMeta, VisualMeta, collect_artifacts


@stage("animate")
async def animate(state: JobState, ctx: NodeContext) -> StageUpdate:
    """What each shot shows, written to `clips/media.json` for the final cut: the keyframe (Ken Burns)
    or an LTX image-to-video clip at its native size and 8k+1 frames. Nothing is encoded here: the
    final cut fits clips (scale, crop, 30 fps, trim or extend) and moves stills in its one graph, so
    the only costly work left is LTX generation, which its manifest keeps across a crash."""
    request = ctx.request(state)
    aspect = request.aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    cut = compose.plan_cut(plan)
    folder = ctx.path("clips")
    folder.mkdir(exist_ok=True)
    gpu, s = on_gpu(ctx, "ltx"), ctx.settings
    scenes = shots.read_scenes(ctx.path("scenes.json"))
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
            media.append(visuals.still_of(ctx.job_dir, rec, state["keyframes"][n], shot.motion))
            names.append(state["keyframes"][n])
            continue
        clip = folder / f"shot_{shot.index + 1:02d}.mp4"
        manifest = folder / f".{clip.stem}.json"
        ltx_frames = gpu_plan.ltx_frames(frames / motion.FPS)
        scene = scenes.get(shot.index)
        ltx_prompt = gpu_plan.ltx_prompt(picture_prompt(shot, scenes), shot.motion, scene.beat if scene else None)
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
        if not reusable(manifest, key, clip):
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
                seed=shot_seed(state.get("shot_seeds", {}), request.seed, shot.index),
                negative_prompt=negative_prompt(ctx, shot, scenes),
            )

            def animate_one(
                progress: ProgressFn, gpu: GpuClient = gpu, params: LtxParams = params
            ) -> Awaitable[ClipResult]:
                return gpu.run("ltx", params, progress)

            await gpu_call(
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
async def post_produce(state: JobState, ctx: NodeContext) -> StageUpdate:
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
    if (kept := recall(manifest, key, JobResult, ctx.path("final.mp4"), ctx.path("metadata.json"))) is not None:
        return done("ffmpeg", result=kept)
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
    with ctx.metered("post_produce"):
        platforms = await ctx.writer.platform_meta(ctx.title(state), ctx.script())
    records = visuals.read_records(ctx.job_dir).values()
    stages = ctx.store.stage_list(ctx.job_id)
    signed = await ctx.in_thread(_sign, ctx, finished, ctx.voice(state).provider, list(records))
    finished = signed_sizes(finished)
    if signed.notice:
        ctx.emit(Event(job_id=ctx.job_id, kind="notice", message=signed.notice))
    Metadata(
        **dict(finish_metadata(finished, enc, cut, False, s.upload_limit_bytes)),
        job_id=ctx.job_id,
        prompt=request.prompt,
        aspect=request.aspect.value,
        shots=len(plan),
        voice=ctx.voice(state),
        visuals=[VisualMeta.model_validate(r.model_dump()) for r in records],
        sources=[m.kind for m in media],
        notices=state.get("notices", []),
        provenance=signed,
        subtitles=state["subtitles"],
        script_version=state["script_version"],
        platforms=platforms,
        providers=state.get("providers", {}),
        usage=ctx.store.usage_totals(ctx.job_id),
        stages={r.name: StageMeta(runs=r.runs, seconds=r.seconds, provider=r.provider) for r in stages},
        stage_seconds={r.name: r.seconds for r in stages if r.runs},
    ).write(ctx.path("metadata.json"))
    result = JobResult(
        artifacts=collect_artifacts(ctx.job_dir),
        platforms=platforms,
        credits=[c for r in records for c in r.credits],
    )
    remember(manifest, key, result)
    return done("ffmpeg", result=result)


def _sign(
    ctx: NodeContext, finished: Finished, voice: str, records: list[visuals.ShotRecord]
) -> provenance.ProvenanceMeta:
    """C2PA manifests on the master and the upload copy: the last write to either (a rewrite after
    signing breaks the manifest's hash)."""
    videos = [p for p in (finished.final, finished.discord) if p is not None]
    credits = [c for r in records for c in r.credits]
    return provenance.sign_finished(ctx.settings, videos, voice, [r.source for r in records], credits)


@stage("deliver")
async def deliver(state: JobState, ctx: NodeContext) -> StageUpdate:
    artifacts = JobResult.model_validate(state["result"]).artifacts
    missing = [p for p in (artifacts.final_video, artifacts.thumbnail, artifacts.metadata) if not Path(p).is_file()]
    if missing:
        raise RuntimeError(f"cannot deliver: missing {', '.join(Path(p).name for p in missing)}")
    return done("headless" if not ctx.settings.discord_token else "discord", outcome="done")
