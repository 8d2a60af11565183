"""`/v1`: jobs (create, list, read, answer, events, files) and voices, for the caller's token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from graph.api import Answer as Reply
from graph.api import (
    Aspect,
    BadInput,
    Event,
    JobRecord,
    JobRequest,
    LimitReached,
    OverLimit,
    Requester,
    VoiceInfo,
    resolve_visuals,
    resolve_voice,
    voice_catalogue,
)
from service.deps import Caller, Context, Ctx, OwnJob, visible
from service.problems import conflict, invalid
from service.schemas import Answer, JobCreate, JobCreated, JobPage, JobView, Problem
from service.views import base_url, job_links, job_view, summary
from service.webhooks import check_url

router = APIRouter(prefix="/v1", tags=["jobs"])
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
    429: {"model": Problem},
}


def _alone(field: str, **values: Any) -> None:
    """Check one field by itself, so a refusal names it (JobRequest's checks raise BadInput)."""
    try:
        JobRequest(**values)
    except BadInput as exc:
        raise invalid(field, str(exc)) from None


def request_of(body: JobCreate, ctx: Context) -> JobRequest:
    """The job request, checked as `storybot make` checks it; 422 naming the field otherwise."""
    _alone("prompt", prompt=body.prompt, ideas=True)
    if body.script is not None:
        _alone("script", prompt="your script", script_text=body.script)
    if body.voice is not None:
        try:
            resolve_voice(ctx.settings, body.voice)
        except BadInput as exc:
            raise invalid("voice", str(exc)) from None
    try:
        resolve_visuals(body.visuals, ctx.settings)
    except BadInput as exc:
        raise invalid("visuals", str(exc)) from None
    try:
        return JobRequest(
            prompt=body.prompt,
            script_text=body.script,
            duration=body.duration,
            aspect=Aspect(body.aspect),
            voice=body.voice,
            language=body.language,
            ideas=body.ideas,
            visuals=body.visuals,
        )
    except BadInput as exc:  # what is left: nothing to write from (no prompt, no script, no ideas)
        raise invalid("prompt", str(exc)) from None


def too_many(over: OverLimit) -> HTTPException:
    if over.limit == "active":
        why = f"{len(over.active)} jobs in progress ({', '.join(over.active)}); the limit is {over.allowed}"
        return HTTPException(429, why)
    return HTTPException(
        429,
        f"{over.recent} jobs in the last hour; the limit is {over.allowed}",
        headers={"Retry-After": str(max(1, round(over.retry_after)))},
    )


async def start_job(ctx: Context, job_request: JobRequest, who: Requester, channel: str, auto_approve: bool) -> str:
    """Start a job within the caller's per-user limits, which are counted in the insert's own
    transaction (another front end or replica starting one at the same moment cannot slip past)."""
    if (over := ctx.service.over_limit(who)) is not None:
        raise too_many(over)
    try:
        return await ctx.service.start(job_request, who, channel=channel, auto_approve=auto_approve, within_limits=True)
    except LimitReached as exc:
        raise too_many(exc.over) from None


@router.post("/jobs", status_code=201, responses=ERRORS)
async def create_job(body: JobCreate, request: Request, ctx: Ctx, who: Caller) -> JobCreated:
    """Start a job from a prompt or your own script; it runs until its first approval (or to the end
    with `auto_approve`). Follow it with the events stream, the webhook, or by reading it."""
    job_request = request_of(body, ctx)
    try:
        hook = await check_url(body.webhook_url, ctx.settings) if body.webhook_url else None
    except BadInput as exc:
        raise invalid("webhook_url", str(exc)) from None
    async with ctx.starting(who.requester.id):  # the limit check and the start are one step
        job_id = await start_job(ctx, job_request, who.requester, "api", body.auto_approve)
        if hook is not None:  # before the job's first event: its task runs at our next await
            ctx.webhooks.attach(job_id, hook, who.name)
    secret = who.webhook_secret.get_secret_value() if hook and who.webhook_secret else None
    links = job_links(ctx, base_url(ctx, request), job_id)
    return JobCreated(job_id=job_id, status=ctx.service.get(job_id).status, links=links, webhook_secret=secret)


@router.get("/jobs", responses=ERRORS)
async def list_jobs(
    ctx: Ctx,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[str | None, Query(max_length=40, description="`next_before` of the previous page")] = None,
) -> JobPage:
    """Your jobs, newest first, a page at a time (an admin token sees every job)."""
    records = ctx.service.jobs(1000) if who.admin else ctx.service.jobs_of(who.requester.id, 1000)
    if before is not None:
        ids = [r.job_id for r in records]
        records = records[ids.index(before) + 1 :] if before in ids else []
    page = records[:limit]
    more = len(records) > limit
    return JobPage(jobs=[summary(r) for r in page], next_before=page[-1].job_id if more and page else None)


@router.get("/jobs/{job_id}", responses=ERRORS)
async def get_job(job_id: str, request: Request, ctx: Ctx, who: Caller) -> JobView:
    """A job: status, stages with seconds and provider, what it waits for (with the approval's
    payload), and its files once done."""
    record = visible(ctx, who, job_id)
    return job_view(ctx, base_url(ctx, request), record, ctx.service.store.stage_list(job_id))


def reply_of(record: JobRecord, body: Answer) -> Reply:
    """The typed answer, when the waiting approval takes it: 409 naming what it takes, 422 naming a bad value."""
    shown = record.approval
    if record.status != "waiting" or shown is None:
        ended = record.status in ("done", "cancelled")
        why = f"job {record.job_id} is not waiting for an answer (it is {record.status})"
        raise conflict(why, [] if ended else ["cancel"])
    if body.action not in shown.actions:
        raise conflict(f"{record.waiting_for} does not take {body.action}", sorted(shown.actions))
    field = {"pick": "idea", "revise": "note", "replace": "text", "reroll": "shots"}.get(body.action)
    reply = Reply(
        action=body.action,
        index=body.idea - 1 if body.idea is not None else None,
        note=body.note,
        text=body.text,
        shots=body.shots,
    )
    if body.action == "pick" and body.idea is None:
        raise invalid("idea", "pick needs the idea's number")
    try:
        return shown.check(reply)
    except BadInput as exc:
        raise invalid(field or "action", str(exc)) from None


@router.post("/jobs/{job_id}/answer", responses=ERRORS)
async def answer_job(job_id: str, body: Answer, request: Request, ctx: Ctx, who: Caller) -> JobView:
    """Answer the approval the job waits for (the same actions as `storybot answer`); `cancel`
    also stops a running job."""
    record = visible(ctx, who, job_id)
    await act(ctx, record, body, who.requester)
    return job_view(ctx, base_url(ctx, request), ctx.service.get(job_id), ctx.service.store.stage_list(job_id))


async def act(ctx: Context, record: JobRecord, body: Answer, who: Requester) -> None:
    """One answer from any front end of the service (REST, MCP, the job page)."""
    if body.action == "cancel" and record.status in ("queued", "running", "failed"):
        await ctx.service.cancel(record.job_id, who)
        return
    reply = reply_of(record, body)
    try:
        await ctx.service.answer(record.job_id, who, reply, record.interrupt_id)
    except BadInput as exc:  # answered by someone else a moment ago: stale
        raise conflict(str(exc), sorted(record.approval.actions) if record.approval else []) from None


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse, responses=ERRORS)
async def job_events(
    job_id: str,
    ctx: Ctx,
    record: OwnJob,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int, Query(ge=0, description="Resume after this event id (Last-Event-ID wins).")] = 0,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: progress, notices, waiting, done, failed. Ids are increasing integers per
    job; reconnect with `Last-Event-ID` to miss nothing. The stream ends after done, failed or cancelled."""
    start = resume_point(last_event_id, after)
    async for event in ctx.service.follow(job_id, start):
        yield sse(event)


def resume_point(last_event_id: str | None, after: int) -> int:
    """Where a stream starts: the reconnecting browser's `Last-Event-ID`, else `?after=`."""
    text = (last_event_id or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else after


def sse(event: Event) -> ServerSentEvent:
    data = event.model_dump(mode="json", exclude_none=True, exclude={"approval"})
    return ServerSentEvent(data=data, event=event.kind, id=str(event.id))


@router.get("/jobs/{job_id}/artifacts/{name:path}", responses=ERRORS)
async def artifact(job_id: str, name: str, ctx: Ctx, who: Caller) -> FileResponse:
    """A file of the job folder by name (`final.mp4`, `subtitles.srt`, `keyframes/shot_01.png`);
    range requests are answered, so players seek."""
    visible(ctx, who, job_id)
    path = await ctx.job_file(job_id, name)
    if path is None:
        raise HTTPException(404, f"job {job_id} has no file {name[:80]!r}")
    return FileResponse(path, headers={"X-Content-Type-Options": "nosniff"})


@router.get("/voices", tags=["voices"], responses=ERRORS)
async def voices(
    ctx: Ctx, who: Caller, language: Annotated[str | None, Query(max_length=35)] = None
) -> list[VoiceInfo]:
    """The voice catalogue (`storybot voices --json`): names to pass as `voice`."""
    return await asyncio.to_thread(voice_catalogue, ctx.settings, language)
