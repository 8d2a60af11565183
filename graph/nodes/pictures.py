"""Stage 8 and the keyframe approval: a picture (and maybe footage) for every shot, from the visual
source the request resolves to, and the requester's approve or re-roll."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from langgraph.types import Command, interrupt

from graph.context import NodeContext, StageUpdate, done, fingerprint, remember, reusable, stage
from graph.nodes.gpu import on_gpu, sdxl_draw
from graph.nodes.prompts import negative_prompt, picture_prompt, shot_seed
from graph.nodes.vision import judge_all, shown_verdicts
from graph.state import Answer, JobState, KeyframeApproval, ShotCaption
from tools import visuals
from tools.files import write_json_atomic
from tools.media import keyframes, shots
from tools.vision import Question, get_judge

REROLL_SEED_STEP = 7919  # a re-roll's new seed: a new picture, still deterministic


def _source(ctx: NodeContext, state: JobState) -> visuals.SourceName:
    """The user's own media when the request brought some, else what `--visuals` resolves to."""
    request = ctx.request(state)
    if request.media:
        return "user"
    choice = request.visuals
    if choice == "gpu" and on_gpu(ctx, "sdxl") is None:
        choice = "auto"  # the job was started with a model this process no longer has
    return visuals.resolve(choice, ctx.settings) if choice != "gpu" else "gpu"


@stage("keyframes")
async def keyframes_node(state: JobState, ctx: NodeContext) -> StageUpdate:
    """Ask the visual source for every shot whose picture is missing or re-rolled; a shot it cannot
    serve gets a card and a notice. A re-roll asks the same source again, with the shot's earlier
    media excluded (the next search hit) and a new seed."""
    request = ctx.request(state)
    aspect = request.aspect
    plan = shots.read_shots(ctx.path("shots.json"))
    folder = ctx.path("keyframes")
    folder.mkdir(exist_ok=True)
    name = _source(ctx, state)
    gpu = on_gpu(ctx, "sdxl") if name == "gpu" else None
    scenes = shots.read_scenes(ctx.path("scenes.json"))
    title = ctx.title(state) if "idea" in state else None
    before = visuals.read_records(ctx.job_dir)
    rerolled = set(state.get("reroll", []))
    pinned = {int(k): Path(v) for k, v in state.get("shot_media", {}).items()}  # the user's replacements
    kept: dict[int, visuals.ShotRecord] = {}
    todo: list[tuple[visuals.ShotBrief, Path, str]] = []
    names, seeds = [], {}
    for shot in plan:
        seed = shot_seed(state.get("shot_seeds", {}), request.seed, shot.index)
        scene = scenes.get(shot.index)
        brief = visuals.brief(
            shot,
            picture_prompt(shot, scenes),
            negative_prompt(ctx, shot, scenes),
            scene.search_terms if scene else None,
            seed,
            title,
            topic=request.prompt or title,
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
        if old and reusable(manifest, key, png) and all(c.is_file() for c in footage):
            kept[shot.index] = old
        else:
            todo.append((brief, manifest, key))
    exclude = {m for r in kept.values() for m in r.media_ids}
    exclude |= {m for b, _, _ in todo if b.index in rerolled and (r := before.get(b.index + 1)) for m in r.media_ids}
    job = visuals.Job(aspect=aspect, folder=ctx.job_dir, shots=len(plan), exclude=exclude)

    async def draw(jobs: list[tuple[visuals.ShotBrief, Path]]) -> None:
        assert gpu is not None
        drawn = [(plan[b.index], b.seed, b.prompt, png) for b, png in jobs]
        await sdxl_draw(ctx, gpu, "keyframes", aspect, drawn, [b.negative_prompt for b, _ in jobs])

    vision = get_judge(ctx.settings, ctx.gpu) if name == "stock" else None  # GPU or OpenAI-compatible vision

    async def rank(frame: Path, text: str) -> float | None:
        """A stock candidate's frame scored against the shot's words by the vision model."""
        assert vision is not None
        return (await judge_all(ctx, vision, [Question(frame, text)], "stock candidate"))[0].value

    own = [b for b, _, _ in todo if b.index in pinned]
    rest = [b for b, _, _ in todo if b.index not in pinned]
    with ctx.metered("keyframes"):
        opening = visuals.Opening(
            draw=draw,
            gpu_label=f"sdxl:{gpu.model('sdxl')}" if gpu else "sdxl",
            user_files=[Path(m) for m in request.media],
            rank=rank if vision is not None else None,
        )
        async with visuals.open_source(name, ctx.settings, opening) as source:
            by_shot = {v.shot: v for v in await visuals.make_visuals(source, rest, job)}
        async with visuals.open_source("user", ctx.settings, visuals.Opening(pinned=pinned)) as replacing:
            by_shot |= {v.shot: v for v in await visuals.make_visuals(replacing, own, job)}
    made = [by_shot[b.index] for b, _, _ in todo]
    notices = []
    for n, ((_, manifest, key), visual) in enumerate(zip(todo, made, strict=True)):
        rec = visuals.record(visual, ctx.job_dir)
        kept[visual.shot] = rec
        remember(manifest, key, rec)
        if rec.notice:
            notices.append(rec.notice)
        ctx.progress("keyframes", 100 * (n + 1) / len(todo))
    records = [kept[s.index] for s in plan]
    visuals.write_records(ctx.job_dir, records)
    write_json_atomic(folder / "seeds.json", seeds)
    provider = visuals.label(name, ctx.settings, [r.source for r in records])
    return done(provider, keyframes=names, reroll=[], notices=notices)


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
                verdicts=shown_verdicts(ctx),
            )
        )
    )
    if answer.action == "cancel":
        return Command(update=done("user", outcome="cancelled"), goto="__end__")
    if answer.action == "replace":  # a new script: back to its approval, then voice and pictures again
        return Command(update=done("user", revision={"text": answer.text or ""}), goto="revise_script")
    if answer.action == "reroll":
        job_seed = ctx.request(state).seed
        seeds = dict(state.get("shot_seeds", {}))
        for number in answer.shots:
            index = number - 1
            seeds[str(index)] = shot_seed(seeds, job_seed, index) + REROLL_SEED_STEP
        own = dict(state.get("shot_media", {}))
        for number in answer.shots:
            own.pop(str(number - 1), None)  # a plain re-roll goes back to the job's source
        own |= {str(n - 1): path for n, path in zip(answer.shots, answer.media, strict=False)}
        return Command(
            update=done("user", shot_seeds=seeds, reroll=[n - 1 for n in answer.shots], shot_media=own),
            goto="keyframes",
        )
    return Command(update=done("user"), goto="animate")
