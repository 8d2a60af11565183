"""Stage 7: vision guidance. A judge scores each keyframe against its shot; a shot under the
threshold is redrawn (new seed) with what the judge found missing put first in its prompt and
what it found unwanted in its negative prompt, at most `vision_rounds` times, and the best attempt
is kept. An unparsed verdict never triggers a redraw (docs/GPU.md). Every round goes to `vision.json`."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pydantic import BaseModel

from graph.context import NodeContext, StageUpdate, done, file_digest, fingerprint, recall, remember, stage
from graph.nodes.gpu import gpu_call, on_gpu, sdxl_draw
from graph.nodes.prompts import negative_prompt, picture_prompt, shot_seed
from graph.state import JobState, ShotVerdict
from tools.files import write_json_atomic
from tools.gpu import Verdict
from tools.gpu import plan as gpu_plan
from tools.media import shots
from tools.vision import Judge, get_judge

log = logging.getLogger(__name__)
REDRAW_SEED_STEP = 7919


class Attempt(BaseModel):
    """One picture of a shot and the judge's verdict on it (round 0 is the keyframe as drawn)."""

    round: int
    seed: int
    prompt: str
    negative_prompt: str
    file: str  # beside the keyframe
    verdict: Verdict


class ShotJudgement(BaseModel):
    shot: int  # 1-based
    kept: int  # the attempt that became the keyframe
    verdict: Verdict
    attempts: list[Attempt]


class VisionReport(BaseModel):
    """`vision.json`."""

    skipped: bool
    reason: str | None = None
    provider: str | None = None
    model: str | None = None
    threshold: float | None = None
    rounds: int | None = None
    unparsed: int = 0
    parse_rate: float = 1.0
    shots: list[ShotJudgement] = []


def best_attempt(attempts: list[Attempt]) -> int:
    """The attempt to keep: the highest score; unparsed verdicts rank below any parsed one."""

    def value(i: int) -> float:
        score = attempts[i].verdict.value
        return score if score is not None else -1.0

    return max(range(len(attempts)), key=lambda i: (value(i), -i))


async def judge_once(
    ctx: NodeContext, judge: Judge, png: Path, prompt: str, previous: Path | None, what: str
) -> Verdict:
    return await gpu_call(
        ctx,
        "vision",
        judge.model,
        lambda p: judge.judge(png, prompt, previous, p),
        stage_name="vision_guidance",
        what=what,
    )


@stage("vision_guidance")
async def vision_guidance(state: JobState, ctx: NodeContext) -> StageUpdate:
    s = ctx.settings
    judge = get_judge(s, ctx.gpu)
    if judge is None:
        reason = "no vision model configured (STORYBOT_VISION_MODEL)"
        write_json_atomic(ctx.path("vision.json"), VisionReport(skipped=True, reason=reason).model_dump(mode="json"))
        return done("skipped", notices=[f"vision guidance skipped: {reason}"])
    try:
        judged = await _judge_all(state, ctx, judge)
    finally:
        await judge.close()
    verdicts = [a.verdict for r in judged for a in r.attempts]
    unparsed = sum(not r.verdict.parsed for r in judged)
    parse_rate = round(sum(v.parsed for v in verdicts) / len(verdicts), 3) if verdicts else 1.0
    log.info("job %s: %s vision verdicts parsed %.0f%% of %d", ctx.job_id, judge.model, 100 * parse_rate, len(verdicts))
    report = VisionReport(
        skipped=False,
        provider=judge.provider,
        model=judge.model,
        threshold=s.vision_threshold,
        rounds=s.vision_rounds,
        unparsed=unparsed,
        parse_rate=parse_rate,
        shots=judged,
    )
    write_json_atomic(ctx.path("vision.json"), report.model_dump(mode="json"))
    notices = (
        [f"vision guidance: {unparsed} of {len(judged)} verdicts did not parse; those shots were kept"]
        if unparsed
        else []
    )
    return done(f"{judge.provider} ({judge.model})", notices=notices)


async def _judge_all(state: JobState, ctx: NodeContext, judge: Judge) -> list[ShotJudgement]:
    s = ctx.settings
    scenes = shots.read_scenes(ctx.path("scenes.json"))
    sdxl = on_gpu(ctx, "sdxl")
    request = ctx.request(state)
    plan = shots.read_shots(ctx.path("shots.json"))
    judged: list[ShotJudgement] = []
    previous = None
    for n, shot in enumerate(plan):
        png = ctx.path(state["keyframes"][n])
        manifest = png.with_name(f".{png.stem}.vision.json")

        def key(png: Path = png, previous: Path | None = previous) -> str:
            return fingerprint(
                judge.model, file_digest(png), s.vision_threshold, s.vision_rounds, previous and file_digest(previous)
            )

        if (kept := recall(manifest, key(), ShotJudgement, png)) is not None:
            judged.append(kept)
            previous = png
            continue
        what = f"shot {shot.index + 1}"
        seed = shot_seed(state.get("shot_seeds", {}), request.seed, shot.index)
        prompt, negative = picture_prompt(shot, scenes), negative_prompt(ctx, shot, scenes)
        verdict = await judge_once(ctx, judge, png, prompt, previous, what)
        attempts = [
            Attempt(round=0, seed=seed, prompt=prompt, negative_prompt=negative, file=png.name, verdict=verdict)
        ]
        for round_ in range(1, s.vision_rounds + 1 if sdxl else 1):
            if not gpu_plan.needs_retry(verdict, s.vision_threshold):
                break
            assert sdxl is not None
            retry = png.with_name(f".{png.stem}.try{round_}.png")
            new_seed = seed + REDRAW_SEED_STEP * round_
            new_prompt, new_negative = gpu_plan.redraw_prompts(prompt, negative, verdict)
            await sdxl_draw(
                ctx, sdxl, "vision_guidance", request.aspect, [(shot, new_seed, new_prompt, retry)], [new_negative]
            )
            verdict = await judge_once(ctx, judge, retry, prompt, previous, what)  # judged against the shot, always
            attempts.append(
                Attempt(
                    round=round_,
                    seed=new_seed,
                    prompt=new_prompt,
                    negative_prompt=new_negative,
                    file=retry.name,
                    verdict=verdict,
                )
            )
        best = best_attempt(attempts)
        if best:  # every round's picture stays on disk beside vision.json; the best becomes the keyframe
            first_file = png.with_name(f".{png.stem}.try0.png")
            shutil.copyfile(png, first_file)
            attempts[0].file = first_file.name
            shutil.copyfile(png.with_name(attempts[best].file), png)
        judgement = ShotJudgement(shot=shot.index + 1, kept=best, verdict=attempts[best].verdict, attempts=attempts)
        judged.append(judgement)
        remember(manifest, key(), judgement)
        previous = png
        ctx.progress("vision_guidance", 100 * (n + 1) / len(plan))
    return judged


def shown_verdicts(ctx: NodeContext) -> list[ShotVerdict]:
    """The vision verdicts to show beside the keyframes at approval (empty when vision was skipped)."""
    path = ctx.path("vision.json")
    if not path.is_file():
        return []
    report = VisionReport.model_validate_json(path.read_bytes())
    shown = {"parsed", "score", "missing", "unwanted", "adherence", "quality", "critique", "consistent"}
    return [ShotVerdict(shot=r.shot, **r.verdict.model_dump(include=shown)) for r in report.shots]
