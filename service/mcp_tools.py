"""MCP: storybot's jobs and approvals as tools an AI assistant can use (official SDK, `MCPServer`).

Over streamable HTTP at `/mcp` with the same bearer tokens as the REST API, and over stdio as
`storybot mcp` for a desktop assistant (acting as the local identity, or `--as NAME`). The tools
are the REST routes' own functions, so ownership, limits and answers follow the same rules; a
refusal comes back as a tool error whose text says what to do instead. A job's script and
subtitles are resources.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException
from mcp.server.mcpserver import Context as ToolContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from graph.api import FINAL_EVENTS, JobRecord, VoiceInfo, voice_catalogue
from service.deps import Context, bearer, visible
from service.jobs import act, request_of, start_job
from service.problems import Refused
from service.schemas import Answer, JobCreate, JobSummary, JobView, Visuals
from service.tokens import Identity
from service.views import job_view, summary

INSTRUCTIONS = """storybot makes short narrated videos (vertical by default) from a prompt.
A job stops at approvals: first the script (approve it, or revise it with a note, or replace it
with your own text), then the keyframes (approve, or reroll named shots). Start with make_video,
then call get_job to see what it waits for and answer_approval to answer. Use wait=true to block
until the next approval or the end, with progress notifications. Show the user the script before
approving it unless they asked you to decide."""


def _identity(ctx: Context, tool: ToolContext[Any, Any] | None, local: Identity | None) -> Identity:
    """The caller: the bearer token of the HTTP request, else the stdio server's identity."""
    request = tool.request_context.request if tool is not None else None
    if isinstance(request, Request):
        token = bearer(request)
        found = ctx.tokens.identify(token) if token else None
        if found is None:
            raise ToolError("a valid API token is needed")
        return found
    if local is None:
        raise ToolError("no identity: run `storybot mcp --as NAME` with a token's name")
    return local


def _base(ctx: Context, tool: ToolContext[Any, Any] | None) -> str:
    request = tool.request_context.request if tool is not None else None
    if ctx.settings.public_url:
        return ctx.settings.public_url.rstrip("/")
    if isinstance(request, Request):
        return str(request.base_url).rstrip("/")
    return f"http://{ctx.settings.http_host}:{ctx.settings.http_port}"


def _view(ctx: Context, tool: ToolContext[Any, Any] | None, record: JobRecord) -> JobView:
    return job_view(ctx, _base(ctx, tool), record, ctx.service.store.stage_list(record.job_id))


def _refusal(exc: HTTPException) -> ToolError:
    return ToolError(exc.problem.error if isinstance(exc, Refused) else str(exc.detail))


async def _wait(ctx: Context, tool: ToolContext[Any, Any] | None, record: JobRecord) -> JobRecord:
    """Until the job waits for an answer or ends, reporting progress notifications on the way."""
    if record.status not in ("queued", "running"):
        return record
    seen = 0
    async for event in ctx.service.follow(record.job_id, ctx.service.store.last_event(record.job_id)):
        if tool is not None and event.kind in ("stage_finished", "progress", "stage_started"):
            seen += 1
            await tool.report_progress(seen, None, f"{event.stage}: {event.kind.replace('_', ' ')}")
        if event.kind == "waiting" or event.kind in FINAL_EVENTS:
            break
    return ctx.service.get(record.job_id)


def mcp_server(ctx: Context, local: Identity | None = None) -> MCPServer:
    """The MCP server over the service's context; `local` is the stdio caller (HTTP uses tokens)."""
    mcp = MCPServer(name="storybot", instructions=INSTRUCTIONS)

    @mcp.tool(
        description="Start making a video from a prompt (or the user's own script). Returns the job at "
        "once; with wait=true, reports progress until the job needs an approval or ends. Then use "
        "get_job / answer_approval."
    )
    async def make_video(
        prompt: Annotated[str, Field(description="What the video is about, in the user's words.")] = "",
        script: Annotated[str | None, Field(description="The user's own narration text, if they gave one.")] = None,
        duration: Annotated[float, Field(ge=5, le=180, description="Target length in seconds.")] = 45,
        aspect: Literal["9:16", "16:9", "1:1"] = "9:16",
        voice: Annotated[str | None, Field(description="A name from list_voices; omit for the default.")] = None,
        language: Annotated[str | None, Field(description="ISO 639-1 code of the script's language.")] = None,
        visuals: Visuals = "auto",
        auto_approve: Annotated[bool, Field(description="Skip every approval (only if the user asked).")] = False,
        wait: Annotated[bool, Field(description="Block until the first approval or the end.")] = False,
        tool: ToolContext[Any, Any] | None = None,
    ) -> JobView:
        who = _identity(ctx, tool, local)
        body = JobCreate(
            prompt=prompt,
            script=script,
            duration=duration,
            aspect=aspect,
            voice=voice,
            language=language,
            visuals=visuals,
            auto_approve=auto_approve,
        )
        try:
            job_request = request_of(body, ctx)
            async with ctx.starting(who.requester.id):
                job_id = await start_job(ctx, job_request, who.requester, "mcp", auto_approve)
        except HTTPException as exc:
            raise _refusal(exc) from None
        record = ctx.service.get(job_id)
        return _view(ctx, tool, await _wait(ctx, tool, record) if wait else record)

    @mcp.tool(
        description="A job's status, its stages, and what it waits for: the script to approve (with its "
        "word count and spoken length), the ideas to pick from, or the keyframes to check (image URLs)."
    )
    async def get_job(job_id: str, tool: ToolContext[Any, Any] | None = None) -> JobView:
        who = _identity(ctx, tool, local)
        try:
            return _view(ctx, tool, visible(ctx, who, job_id))
        except HTTPException as exc:
            raise _refusal(exc) from None

    @mcp.tool(description="The user's jobs, newest first.")
    async def list_jobs(
        limit: Annotated[int, Field(ge=1, le=100)] = 20, tool: ToolContext[Any, Any] | None = None
    ) -> list[JobSummary]:
        who = _identity(ctx, tool, local)
        records = ctx.service.jobs(limit) if who.admin else ctx.service.jobs_of(who.requester.id, limit)
        return [summary(r) for r in records]

    @mcp.tool(
        description="Answer the approval a job waits for. action: approve; revise (note: what to change); "
        "replace (text: the user's own script); regenerate (a fresh draft); pick (idea: number from 1); "
        "reroll (shots: keyframe numbers to draw again); cancel. With wait=true, blocks until the next "
        "approval or the end, reporting progress."
    )
    async def answer_approval(
        job_id: str,
        action: Literal["approve", "revise", "replace", "regenerate", "pick", "reroll", "cancel"],
        note: str | None = None,
        text: str | None = None,
        idea: int | None = None,
        shots: list[int] | None = None,
        wait: bool = False,
        tool: ToolContext[Any, Any] | None = None,
    ) -> JobView:
        who = _identity(ctx, tool, local)
        try:
            record = visible(ctx, who, job_id)
            answer = Answer(action=action, note=note, text=text, idea=idea, shots=shots or [])
            await act(ctx, record, answer, who.requester)
        except HTTPException as exc:
            raise _refusal(exc) from None
        except ValueError as exc:  # the answer's own bounds
            raise ToolError(str(exc).splitlines()[0]) from None
        record = ctx.service.get(job_id)
        return _view(ctx, tool, await _wait(ctx, tool, record) if wait else record)

    @mcp.tool(description="Voices to narrate with (pass a name as make_video's voice), optionally for a language.")
    async def list_voices(language: str | None = None, tool: ToolContext[Any, Any] | None = None) -> list[VoiceInfo]:
        _identity(ctx, tool, local)
        return await asyncio.to_thread(voice_catalogue, ctx.settings, language)

    @mcp.tool(
        description="Links to a finished job's files (video, subtitles, thumbnail) and its web page, where "
        "the user can watch it and answer approvals."
    )
    async def get_artifact_links(job_id: str, tool: ToolContext[Any, Any] | None = None) -> dict[str, str]:
        who = _identity(ctx, tool, local)
        try:
            view = _view(ctx, tool, visible(ctx, who, job_id))
        except HTTPException as exc:
            raise _refusal(exc) from None
        return {**view.artifacts, "page": view.links.page}

    @mcp.resource("storybot://jobs/{job_id}/script", mime_type="text/plain", description="A job's approved script.")
    async def script(job_id: str, tool: ToolContext[Any, Any] | None = None) -> str:
        return await _job_text(ctx, _identity(ctx, tool, local), job_id, "script.txt")

    @mcp.resource("storybot://jobs/{job_id}/subtitles", mime_type="text/plain", description="A job's subtitles (SRT).")
    async def subtitles(job_id: str, tool: ToolContext[Any, Any] | None = None) -> str:
        return await _job_text(ctx, _identity(ctx, tool, local), job_id, "subtitles.srt")

    return mcp


async def _job_text(ctx: Context, who: Identity, job_id: str, name: str) -> str:
    """A text file of a job the caller may see (the same rule as the tools)."""
    try:
        visible(ctx, who, job_id)
    except HTTPException:
        raise ResourceNotFoundError(f"no job {job_id[:40]!r}") from None
    path = await ctx.job_file(job_id, name)
    if path is None:
        raise ResourceNotFoundError(f"job {job_id} has no {name} yet")
    return path.read_text(encoding="utf-8")


class _TokenGuard:
    """401 before the MCP machinery for a request without a live token (the tools check it again)."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            token = bearer(Request(scope))
            if not token or self.ctx.tokens.identify(token) is None:
                reply = JSONResponse({"error": "a valid API token is needed"}, 401, {"WWW-Authenticate": "Bearer"})
                await reply(scope, receive, send)
                return
        await self.app(scope, receive, send)


def mount_mcp(app: FastAPI, mcp: MCPServer, ctx: Context) -> None:
    """`/mcp` (streamable HTTP) in the service's app; its session manager runs in the app's lifespan."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    if ctx.settings.public_url:
        hosts.append(ctx.settings.public_url.split("://", 1)[-1].split("/", 1)[0])
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False, allowed_hosts=hosts)
    inner = mcp.streamable_http_app(streamable_http_path="/mcp", transport_security=security, json_response=False)
    for route in inner.routes:
        if isinstance(route, Route) and route.path == "/mcp":
            app.router.routes.append(Route("/mcp", _TokenGuard(route.endpoint, ctx), methods=route.methods))
