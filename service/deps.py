"""What every route needs: the running service, the caller's identity, and the job it may see.

A job that is not the caller's is a 404, the same as one that does not exist: a token learns
nothing about another's jobs. An admin token sees and steers every job.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from graph.api import BadInput, JobRecord, JobService, Links, Settings, is_remote, local_copy, valid_job_id
from service.tokens import Identity, TokenStore
from service.webhooks import Webhooks

FILE_NAME = r"(?:[A-Za-z0-9][A-Za-z0-9_-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,100}"  # no dot-files, one folder deep


@dataclass
class Context:
    """The service's parts, made once by `create_app` and shared by its routes."""

    service: JobService
    settings: Settings
    tokens: TokenStore
    links: Links
    webhooks: Webhooks
    _starting: dict[str, asyncio.Lock] = field(default_factory=dict)
    publishing: dict[str, asyncio.Task[Any]] = field(default_factory=dict)  # job -> its uploads running here

    def starting(self, requester: str) -> asyncio.Lock:
        """Per person: the limit check and the start are one step, so two requests see each other."""
        return self._starting.setdefault(requester, asyncio.Lock())

    async def job_file(self, job_id: str, name: str) -> Path | None:
        """A regular file inside the job's folder named by `name` (`final.mp4`, `keyframes/shot_01.png`);
        None for anything else: other folders, links out, hidden or half-written files. With object
        storage, a file this machine lacks (a runner elsewhere made it) is fetched first."""
        if not valid_job_id(job_id) or not re.fullmatch(FILE_NAME, name):
            return None
        folder = (self.service.jobs_dir / job_id).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder):
            return None
        if not path.is_file() and is_remote(self.settings):
            await local_copy(self.settings, job_id, name)
        return path if path.is_file() else None


async def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def identity(request: Request, ctx: Annotated[Context, Depends(context)]) -> Identity:
    token = bearer(request)
    found = ctx.tokens.identify(token) if token else None
    if found is None:
        why = "a valid API token is needed" if token else "an API token is needed: Authorization: Bearer TOKEN"
        raise HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})
    return found


def visible(ctx: Context, who: Identity, job_id: str) -> JobRecord:
    """The job, when it exists and `who` may see it; else 404 with the same words either way."""
    record = None
    if valid_job_id(job_id):
        try:
            record = ctx.service.get(job_id)
        except BadInput:
            record = None
    if record is None or not (who.admin or record.requester == who.requester.id):
        raise HTTPException(404, f"no job {job_id[:40]!r}")
    return record


async def own_job(
    job_id: str, ctx: Annotated[Context, Depends(context)], who: Annotated[Identity, Depends(identity)]
) -> JobRecord:
    """The path's job, checked before a response starts (a stream cannot turn into a 404 later)."""
    return visible(ctx, who, job_id)


Ctx = Annotated[Context, Depends(context)]
Caller = Annotated[Identity, Depends(identity)]
OwnJob = Annotated[JobRecord, Depends(own_job)]
