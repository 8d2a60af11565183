"""Publishing a finished job: the job's own words per site, its master file, and who may publish it.

The front ends (CLI, bot, service) call `publish_job`; the sites, rules, ledger and uploads are
`tools.publish`'s. A job publishes its master (`final.mp4`), never the fitted Discord copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from graph.database import engine_for, is_postgres
from graph.store import JobRecord, JobStore, valid_job_id
from graph.stored import local_copy
from tools.errors import BadInput
from tools.publish import Choice, Outcome, Texts, measure, plan_all, publish_all, targets
from tools.publish.base import PlatformRow, Progress
from tools.publish.ledger import Ledger
from tools.publish.run import Planned
from tools.settings import Settings
from tools.storage import is_remote


async def finished_job(settings: Settings, job_id: str) -> tuple[JobRecord, Path, Path | None]:
    """The job, which must be done, with its master and thumbnail on this machine (fetched from object
    storage when another machine made them)."""
    record = JobStore.of(settings).get(job_id) if valid_job_id(job_id) else None
    if record is None:
        raise BadInput(f"unknown job id: {job_id!r}")
    if record.status != "done" or record.result is None:
        raise BadInput(f"job {job_id} is not finished (it is {record.status}); only a finished video can be published")
    artifacts = record.result.artifacts
    video: Path | None = Path(artifacts.final_video)
    thumbnail = Path(artifacts.thumbnail) if artifacts.thumbnail else None
    if is_remote(settings):
        video = await local_copy(settings, job_id, "final.mp4")
        thumbnail = await local_copy(settings, job_id, thumbnail.name) if thumbnail else None
    if video is None or not video.is_file():
        raise BadInput(f"job {job_id}'s final.mp4 is missing")
    return record, video, thumbnail


def may_publish(record: JobRecord, requester_id: str, publisher: bool) -> bool:
    """The requester, or someone holding the publisher role (STORYBOT_PUBLISHER_ROLE_ID)."""
    return publisher or record.requester == requester_id


def texts_for(record: JobRecord) -> Callable[[PlatformRow], Texts]:
    """The job's title, description and each site's hashtags (the prompt when it has none)."""
    meta = record.result.platforms if record.result else None

    def texts(row: PlatformRow) -> Texts:
        if meta is None:
            return Texts(title=record.prompt.strip() or "A short story", description="", hashtags=[])
        return Texts(title=meta.title, description=meta.description, hashtags=meta.hashtags.get(row.meta_key, []))

    return texts


async def plan_job(settings: Settings, job_id: str, to: str, choice: Choice) -> list[Planned]:
    """Every target's account and rules checked (BadInput before anything is sent anywhere)."""
    record, master, thumbnail = await finished_job(settings, job_id)
    rows = targets(to)
    video = await asyncio.to_thread(measure, master, thumbnail)  # hashing: off the loop
    return plan_all(settings, rows, texts_for(record), choice, video)


async def publish_planned(
    settings: Settings, job_id: str, planned: list[Planned], progress: Progress, say: Callable[[str], None]
) -> list[Outcome]:
    """Publish (or resume, or answer from the ledger) each planned target."""
    return await publish_all(settings, ledger_of(settings), job_id, planned, progress, say)


async def publish_job(
    settings: Settings,
    job_id: str,
    to: str,
    choice: Choice,
    progress: Progress,
    say: Callable[[str], None],
) -> list[Outcome]:
    """Check every target's rules, then publish (or resume, or answer from the ledger) each."""
    planned = await plan_job(settings, job_id, to, choice)
    return await publish_planned(settings, job_id, planned, progress, say)


def ledger_of(settings: Settings) -> Ledger:
    """The configured ledger: the shared database's `publications` table, else `publications.sqlite`."""
    return Ledger(settings.data_dir, engine_for(settings) if is_postgres(settings) else None)


def publications(settings: Settings, job_id: str) -> list[Outcome]:
    """What the ledger holds for a job (for /job and status pages)."""
    from tools.publish.registry import platform

    return [
        Outcome(
            platform=r.platform,
            label=platform(r.platform).label,
            account=r.account,
            state=r.state,
            privacy=r.privacy,
            link=r.link,
            post_id=r.post_id,
            remote_id=r.remote_id,
            total_bytes=r.total_bytes,
            confirmed_bytes=r.confirmed_bytes,
            sent_bytes=r.sent_bytes,
            error=r.error,
        )
        for r in ledger_of(settings).of_job(job_id)
    ]


class Linked(BaseModel):
    """A site with an account to publish to (what the Publish button offers)."""

    platform: str
    label: str
    account: str
    public_only: bool  # the site posts publicly only (Instagram Reels)


def linked_platforms(settings: Settings) -> list[Linked]:
    """The sites that have an account (environment or `accounts add`), in registry order."""
    from tools.publish import PLATFORMS, accounts

    found = []
    for row in PLATFORMS.values():
        try:
            account = row.env_account(settings) or accounts.load(settings.data_dir, row.name)
        except BadInput:  # an unreadable or too-open file is reported by `publish`, not offered
            continue
        if account is not None:
            found.append(Linked(platform=row.name, label=row.label, account=account.name, public_only=row.public_only))
    return found
