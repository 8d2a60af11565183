"""The job page: `/jobs/{id}?expires=&sig=`, for people who are not on Discord.

Plain server-rendered HTML with no external assets. The signed link is the key: whoever holds it
sees the job (status, stages, the script, the keyframes, the video) and may answer its approvals
as the job's requester, so the service hands it only to the job's owner (`page_url`). The page
follows the job's events stream and re-renders its body when the job moves on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html import escape
from importlib import resources
from string import Template
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from graph.api import PAGE, BadInput, JobRecord, Requester
from service.deps import Context, Ctx
from service.jobs import act, resume_point, sse
from service.schemas import Answer, IdeasWaiting, JobView, KeyframesWaiting, ScriptWaiting
from service.views import base_url, job_view

router = APIRouter(include_in_schema=False)
Sig = Annotated[str, Query(max_length=200)]
Expires = Annotated[str, Query(max_length=20)]


def signed(ctx: Context, job_id: str, expires: str, sig: str) -> JobRecord:
    """The job a valid page link names; the same bare 404 for anything else."""
    if not ctx.links.valid(job_id, PAGE, expires, sig):
        raise HTTPException(404, "Not found")
    try:
        return ctx.service.get(job_id)
    except BadInput:
        raise HTTPException(404, "Not found") from None


def page_view(ctx: Context, request: Request, record: JobRecord, expires: str, sig: str) -> JobView:
    """The job as the page shows it: its files reached through the page's own signed routes."""
    view = job_view(ctx, base_url(ctx, request), record, ctx.service.store.stage_list(record.job_id))
    api_files, query = f"{view.links.self}/artifacts/", f"?expires={expires}&sig={sig}"
    page_files = f"{base_url(ctx, request)}/jobs/{record.job_id}/files/"

    def moved(url: str) -> str:
        return url.replace(api_files, page_files, 1) + query

    if isinstance(view.waiting, KeyframesWaiting):
        for frame in view.waiting.keyframes:
            frame.url = moved(frame.url)
    view.artifacts = {name: moved(url) for name, url in view.artifacts.items()}
    return view


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(job_id: str, request: Request, ctx: Ctx, expires: Expires = "", sig: Sig = "") -> HTMLResponse:
    record = signed(ctx, job_id, expires, sig)
    view = page_view(ctx, request, record, expires, sig)
    after = ctx.service.store.last_event(job_id)  # the page shows the job as of this event
    return HTMLResponse(page_html(escape(record.prompt[:80] or "storybot job"), body(view), after))


@router.get("/jobs/{job_id}/body", response_class=HTMLResponse)
async def job_body(job_id: str, request: Request, ctx: Ctx, expires: Expires = "", sig: Sig = "") -> HTMLResponse:
    """The page's body alone: what the page swaps in when an event says the job moved on."""
    record = signed(ctx, job_id, expires, sig)
    return HTMLResponse(body(page_view(ctx, request, record, expires, sig)))


async def page_job(job_id: str, ctx: Ctx, expires: Expires = "", sig: Sig = "") -> JobRecord:
    """The page's job, checked before a response starts (a stream cannot turn into a 404 later)."""
    return signed(ctx, job_id, expires, sig)


@router.get("/jobs/{job_id}/stream", response_class=EventSourceResponse)
async def job_stream(
    job_id: str,
    ctx: Ctx,
    record: Annotated[JobRecord, Depends(page_job)],
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int, Query(ge=0, le=10**12)] = 0,
) -> AsyncIterator[ServerSentEvent]:
    async for event in ctx.service.follow(job_id, resume_point(last_event_id, after)):
        yield sse(event)


@router.post("/jobs/{job_id}/answer")
async def page_answer(
    job_id: str, answer: Answer, request: Request, ctx: Ctx, expires: Expires = "", sig: Sig = ""
) -> Response:
    """A button of the page: answered as the job's requester (the link's holder)."""
    record = signed(ctx, job_id, expires, sig)
    await act(ctx, record, answer, Requester(id=record.requester, name="job page"))
    return HTMLResponse(body(page_view(ctx, request, ctx.service.get(job_id), expires, sig)))


@router.get("/jobs/{job_id}/files/{name:path}")
async def page_file(job_id: str, name: str, ctx: Ctx, expires: Expires = "", sig: Sig = "") -> FileResponse:
    signed(ctx, job_id, expires, sig)
    path = await ctx.job_file(job_id, name)
    if path is None:
        raise HTTPException(404, "Not found")
    return FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private"})


# rendering ----------------------------------------------------------------------------------------


def body(view: JobView) -> str:
    stages = "".join(
        f'<tr class="{escape(s.status)}"><td>{escape(s.name)}</td><td>{escape(s.status)}</td>'
        f"<td>{s.seconds:.1f} s</td><td>{escape(s.provider or '')}</td></tr>"
        for s in view.stages
        if s.status != "skipped"
    )
    parts = [
        f'<p id="status" data-status="{escape(view.status)}">Status: <b>{escape(view.status)}</b>'
        + (f" · {escape(view.stage)}" if view.stage and view.status == "running" else "")
        + "</p>",
    ]
    if view.error:
        parts.append(f'<p class="error">{escape(view.error)}</p>')
    parts.append(waiting_html(view))
    if "final.mp4" in view.artifacts:
        poster = view.artifacts.get("thumbnail.png", "")
        parts.append(
            f'<video id="video" controls playsinline preload="auto" poster="{escape(poster)}" '
            f'src="{escape(view.artifacts["final.mp4"])}"></video>'
            + "".join(
                f'<a class="file" href="{escape(url)}" download>{escape(name)}</a>'
                for name, url in view.artifacts.items()
                if name in ("final.mp4", "subtitles.srt", "subtitles.vtt", "thumbnail.png")
            )
        )
    parts.append(f"<table><tr><th>stage</th><th>status</th><th>time</th><th>by</th></tr>{stages}</table>")
    return "".join(parts)


def _button(label: str, answer: str, kind: str = "") -> str:
    return f"<button class=\"{kind}\" data-answer='{escape(answer)}'>{escape(label)}</button>"


def waiting_html(view: JobView) -> str:
    shown = view.waiting
    if shown is None:
        return ""
    out = [f'<section id="waiting"><h2>{escape(shown.question)}</h2>']
    if isinstance(shown, IdeasWaiting):
        for n, idea in enumerate(shown.ideas, 1):
            out.append(
                f'<div class="idea"><b>{escape(idea.title)}</b> {escape(idea.logline)} '
                + _button(f"Pick {n}", f'{{"action": "pick", "idea": {n}}}')
                + "</div>"
            )
    elif isinstance(shown, ScriptWaiting):
        out.append(f'<pre id="script">{escape(shown.script)}</pre><p>{shown.words} words</p>')
        out.append('<textarea id="note" placeholder="What should change?" maxlength="2000"></textarea>')
        out.append('<button data-revise="1">Revise</button>')
    elif isinstance(shown, KeyframesWaiting):
        out.append('<div class="sheet">')
        for frame in shown.keyframes:
            score = f" · {frame.score:.0f}/10" if frame.score is not None else ""
            out.append(
                f'<label class="frame"><img src="{escape(frame.url)}" alt="shot {frame.shot}">'
                f'<input type="checkbox" name="shot" value="{frame.shot}"> {frame.shot}. '
                f"{escape(frame.caption[:120])}{score}</label>"
            )
        out.append('</div><button data-reroll="1">Re-roll the ticked shots</button>')
    if "approve" in shown.actions:
        out.append(_button("Approve", '{"action": "approve"}', "approve"))
    out.append(_button("Cancel", '{"action": "cancel"}', "cancel"))
    out.append('<p id="said"></p></section>')
    return "".join(out)


def page_html(title: str, content: str, after: int) -> str:
    template = resources.files("service").joinpath("job.html").read_text(encoding="utf-8")
    return Template(template).substitute(title=title, body=content, after=after)
