"""`/v1/jobs/{id}/publish` and `/publications`: a finished job to YouTube, TikTok and Instagram.

The same publishing as `storybot publish` (graph.publish): every target's rules are checked before
the answer (a 422 naming the field), then the uploads run in the background of the service and
are followed through the publications (state, bytes confirmed, the link). The ledger makes them
exactly once: asking again answers with what was published, and an upload cut by a restart
continues from where the site says it stopped when asked again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from graph.api import BadInput, Choice, Outcome, Privacy, plan_job, publications, publish_planned, publish_targets
from service.deps import Ctx, OwnJob
from service.problems import invalid
from service.schemas import Problem

router = APIRouter(prefix="/v1", tags=["publishing"])
log = logging.getLogger("storybot.service")
ERRORS: dict[int | str, dict[str, object]] = {401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}


class PublishBody(BaseModel):
    """`storybot publish`'s options."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(max_length=100, description="youtube, tiktok and/or instagram, comma-separated.")
    privacy: Privacy | None = Field(None, description="Default: private on YouTube, SELF_ONLY on TikTok.")
    at: datetime | None = Field(None, description="YouTube only: publish at this time (ISO 8601 with a zone).")
    made_for_kids: bool = False
    title: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=10_000)
    ai_label: bool = Field(True, description="The sites' AI-generated flag; turn off only if it is not.")
    inbox: bool = Field(False, description="TikTok: send to the creator's inbox instead of posting.")


class Publishing(BaseModel):
    job_id: str
    started: bool  # False: everything asked was already published (see publications)
    publications: list[Outcome]
    notices: list[str] = []


@router.post("/jobs/{job_id}/publish", status_code=202, responses=ERRORS)
async def publish(job_id: str, body: PublishBody, ctx: Ctx, record: OwnJob) -> Publishing:
    """Publish a finished job (its master, `final.mp4`) with the AI-content label set; answers once
    every rule is checked, while the uploads go on. Follow them with GET .../publications."""
    try:
        publish_targets(body.to)
    except BadInput as exc:
        raise invalid("to", str(exc)) from None
    choice = Choice(
        title=body.title,
        description=body.description,
        privacy=body.privacy,
        publish_at=body.at,
        made_for_kids=body.made_for_kids,
        ai_label=body.ai_label,
        inbox=body.inbox,
    )
    try:  # the job unfinished, an account missing, a site's rule broken: one line, nothing sent
        planned = await plan_job(ctx.settings, job_id, body.to, choice)
    except BadInput as exc:
        raise HTTPException(422, str(exc)) from None
    if ctx.publishing.get(job_id) is not None and not ctx.publishing[job_id].done():
        return Publishing(job_id=job_id, started=False, publications=publications(ctx.settings, job_id))
    notices: list[str] = []
    task = asyncio.create_task(publish_planned(ctx.settings, job_id, planned, lambda _: None, notices.append))
    task.add_done_callback(lambda t: _logged(job_id, t))
    ctx.publishing[job_id] = task
    await asyncio.sleep(0)  # the ledger rows exist once the task has begun
    return Publishing(job_id=job_id, started=True, publications=publications(ctx.settings, job_id), notices=notices)


def _logged(job_id: str, task: asyncio.Task[list[Outcome]]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("publishing job %s stopped: %s", job_id, exc)  # the ledger keeps the refusal


@router.get("/jobs/{job_id}/publications", responses=ERRORS)
async def job_publications(job_id: str, ctx: Ctx, record: OwnJob) -> list[Outcome]:
    """Each site's publication of the job: state, bytes confirmed, the link once published."""
    return publications(ctx.settings, job_id)
