"""A job record as the service shows it: typed, with URLs where the record has paths."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import Request

from graph.api import PAGE, IdeaApproval, JobRecord, KeyframeApproval, ScriptApproval, StageRecord
from service.deps import Context
from service.schemas import (
    IdeasWaiting,
    JobLinks,
    JobSummary,
    JobView,
    Keyframe,
    KeyframesWaiting,
    ScriptWaiting,
    Waiting,
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def base_url(ctx: Context, request: Request) -> str:
    """Where callers reach us: STORYBOT_PUBLIC_URL, else the address this request came to."""
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


def job_links(ctx: Context, base: str, job_id: str) -> JobLinks:
    return JobLinks(
        self=f"{base}/v1/jobs/{job_id}",
        events=f"{base}/v1/jobs/{job_id}/events",
        answer=f"{base}/v1/jobs/{job_id}/answer",
        page=f"{base}/jobs/{job_id}?{ctx.links.query(job_id, PAGE)}",
    )


def artifact_name(ctx: Context, job_id: str, path: str) -> str:
    """A job file's name relative to its folder (`keyframes/shot_01.png`), as the artifact routes take it."""
    return Path(path).resolve().relative_to((ctx.service.jobs_dir / job_id).resolve()).as_posix()


def waiting(ctx: Context, record: JobRecord, files: str) -> Waiting | None:
    """The approval the job waits for, typed; `files` is the URL prefix of its files."""
    shown = record.approval
    if shown is None or record.status != "waiting":
        return None
    actions = sorted(shown.actions)
    if isinstance(shown, IdeaApproval):
        return IdeasWaiting(question=shown.question(), actions=actions, ideas=shown.ideas)
    if isinstance(shown, ScriptApproval):
        return ScriptWaiting(
            question=shown.question(),
            actions=actions,
            version=shown.version,
            script=shown.script,
            words=shown.words,
            spoken_seconds=shown.spoken_seconds,
            target_seconds=shown.target_seconds,
            own_script=shown.own_script,
        )
    assert isinstance(shown, KeyframeApproval)
    scores = {v.shot: v.score for v in shown.verdicts}
    return KeyframesWaiting(
        question=shown.question(),
        actions=actions,
        keyframes=[
            Keyframe(
                shot=caption.number,
                caption=caption.text,
                url=f"{files}/{artifact_name(ctx, record.job_id, path)}",
                score=scores.get(caption.number),
            )
            for caption, path in zip(shown.shots, shown.keyframes, strict=False)
        ],
    )


def finished_files(ctx: Context, record: JobRecord, files: str) -> dict[str, str]:
    """name -> URL of every file a finished job hands over (video, subtitles, thumbnail, ...)."""
    if record.status != "done" or record.result is None:
        return {}
    paths = record.result.artifacts.model_dump(exclude={"keyframes", "clips"})
    out: dict[str, str] = {}
    for path in [*paths.values(), *record.result.artifacts.keyframes]:
        if isinstance(path, str) and Path(path).is_file():
            name = artifact_name(ctx, record.job_id, path)
            out[name] = f"{files}/{name}"
    return out


def job_view(ctx: Context, base: str, record: JobRecord, stages: list[StageRecord]) -> JobView:
    """The job as callers see it; `base` is where they reach us (`base_url`)."""
    links = job_links(ctx, base, record.job_id)
    files = f"{links.self}/artifacts"
    return JobView(
        job_id=record.job_id,
        status=record.status,
        stage=record.stage,
        created=iso(record.created),
        updated=iso(record.updated),
        prompt=record.prompt,
        error=record.error,
        waiting_for=record.waiting_for if record.status == "waiting" else None,
        waiting=waiting(ctx, record, files),
        stages=stages,
        artifacts=finished_files(ctx, record, files),
        links=links,
        page_url=links.page,
        queue_position=ctx.service.queue_position(record.job_id),
    )


def summary(record: JobRecord) -> JobSummary:
    return JobSummary(
        job_id=record.job_id,
        status=record.status,
        stage=record.stage,
        created=iso(record.created),
        prompt=record.prompt,
    )
