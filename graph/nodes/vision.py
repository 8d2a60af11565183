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
from tools.models import Shot
from tools.vision import Judge, Question, get_judge

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


async def judge_all(ctx: NodeContext, judge: Judge, questions: list[Question], what: str) -> list[Verdict]:
    """Every question in one judge call (batched on the GPU, concurrent on an API)."""
    return await gpu_call(
        ctx, "vision", judge.model, lambda p: judge.judge(questions, p), stage_name="vision_guidance", what=what
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


class _Shot:
    """A shot being judged: its pictures so far and what they were drawn from."""

    def __init__(self, shot: Shot, png: Path, previous: Path | None, seed: int, prompt: str, negative: str) -> None:
        self.shot, self.png, self.previous = shot, png, previous
        self.seed, self.prompt, self.negative = seed, prompt, negative
        self.attempts: list[Attempt] = []

    @property
    def latest(self) -> Verdict:
        return self.attempts[-1].verdict


async def _judge_all(state: JobState, ctx: NodeContext, judge: Judge) -> list[ShotJudgement]:
    """Round by round over every shot: all keyframes judged in one call, then every shot under the
    threshold redrawn in one SDXL call (batched) and the redraws judged in one more, so a stage costs
    a few batched requests instead of two per shot. A redraw is judged against its shot's words and
    the previous shot's keyframe as first drawn."""
    s = ctx.settings
    scenes = shots.read_scenes(ctx.path("scenes.json"))
    sdxl = on_gpu(ctx, "sdxl")
    request = ctx.request(state)
    plan = shots.read_shots(ctx.path("shots.json"))
    pngs = [ctx.path(state["keyframes"][n]) for n in range(len(plan))]

    def key(n: int) -> str:
        previous = pngs[n - 1] if n else None
        return fingerprint(
            judge.model, file_digest(pngs[n]), s.vision_threshold, s.vision_rounds, previous and file_digest(previous)
        )

    def manifest(n: int) -> Path:
        return pngs[n].with_name(f".{pngs[n].stem}.vision.json")

    judged: dict[int, ShotJudgement] = {}
    for n in range(len(plan)):
        if (kept := recall(manifest(n), key(n), ShotJudgement, pngs[n])) is not None:
            judged[n] = kept
    todo = [
        _Shot(
            shot,
            pngs[n],
            pngs[n - 1] if n else None,
            shot_seed(state.get("shot_seeds", {}), request.seed, shot.index),
            picture_prompt(shot, scenes),
            negative_prompt(ctx, shot, scenes),
        )
        for n, shot in enumerate(plan)
        if n not in judged
    ]
    if todo:
        first = await judge_all(ctx, judge, [Question(t.png, t.prompt, t.previous) for t in todo], _shots(todo))
        for t, verdict in zip(todo, first, strict=True):
            t.attempts.append(
                Attempt(
                    round=0, seed=t.seed, prompt=t.prompt, negative_prompt=t.negative, file=t.png.name, verdict=verdict
                )
            )
    for round_ in range(1, s.vision_rounds + 1 if sdxl else 1):
        ctx.progress("vision_guidance", 100 * round_ / (s.vision_rounds + 1))
        redraw = [t for t in todo if gpu_plan.needs_retry(t.latest, s.vision_threshold)]
        if not redraw:
            break
        assert sdxl is not None
        tries = []
        for t in redraw:
            prompt, negative = gpu_plan.redraw_prompts(t.prompt, t.negative, t.latest)
            retry = t.png.with_name(f".{t.png.stem}.try{round_}.png")
            tries.append((t, t.seed + REDRAW_SEED_STEP * round_, prompt, negative, retry))
        await sdxl_draw(
            ctx,
            sdxl,
            "vision_guidance",
            request.aspect,
            [(t.shot, seed, prompt, retry) for t, seed, prompt, _, retry in tries],
            [negative for *_, negative, _ in tries],
        )
        # judged against the shot's own words, never the redraw's prompt
        verdicts = await judge_all(
            ctx, judge, [Question(r, t.prompt, t.previous) for t, *_, r in tries], _shots(redraw)
        )
        for (t, seed, prompt, negative, retry), verdict in zip(tries, verdicts, strict=True):
            t.attempts.append(
                Attempt(
                    round=round_, seed=seed, prompt=prompt, negative_prompt=negative, file=retry.name, verdict=verdict
                )
            )
    for t in todo:  # every round's picture stays on disk beside vision.json; the best becomes the keyframe
        best = best_attempt(t.attempts)
        if best:
            first_file = t.png.with_name(f".{t.png.stem}.try0.png")
            shutil.copyfile(t.png, first_file)
            t.attempts[0].file = first_file.name
            shutil.copyfile(t.png.with_name(t.attempts[best].file), t.png)
        judged[t.shot.index] = ShotJudgement(
            shot=t.shot.index + 1, kept=best, verdict=t.attempts[best].verdict, attempts=t.attempts
        )
    for t in todo:  # after every keyframe is final, since each shot's key names the previous one's
        remember(manifest(t.shot.index), key(t.shot.index), judged[t.shot.index])
    ctx.progress("vision_guidance", 100)
    return [judged[n] for n in range(len(plan))]


def _shots(todo: list[_Shot]) -> str:
    return "shot " + ", ".join(str(t.shot.index + 1) for t in todo)


def shown_verdicts(ctx: NodeContext) -> list[ShotVerdict]:
    """The vision verdicts to show beside the keyframes at approval (empty when vision was skipped)."""
    path = ctx.path("vision.json")
    if not path.is_file():
        return []
    report = VisionReport.model_validate_json(path.read_bytes())
    shown = {"parsed", "score", "missing", "unwanted", "adherence", "quality", "critique", "consistent"}
    return [ShotVerdict(shot=r.shot, **r.verdict.model_dump(include=shown)) for r in report.shots]
