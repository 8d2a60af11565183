"""Publishing one finished video to several sites: every rule checked before any byte goes up, then
each upload started, resumed or answered from the ledger.

Order matters for "nothing changed on bad input": the offline rules of every target (`row.plan`),
then each site's online checks (`prepare`: TikTok's creator_info), and only then the uploads. A
site's refusal is recorded (`refused`, tried afresh next time) and the next site still goes; a
network failure through every retry leaves the record resumable; a `done` record is answered with
its link and never uploaded again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import BaseModel

from tools.errors import BadInput
from tools.media.probe import probe
from tools.net.redact import one_line
from tools.publish import accounts
from tools.publish.accounts import Account
from tools.publish.base import Choice, PlatformRefused, PlatformRow, Post, Progress, Publication, Texts, Video
from tools.publish.http import TIMEOUT, Unreachable
from tools.publish.ledger import Ledger
from tools.settings import Settings


class Outcome(BaseModel):
    """What one site did with the video, as the front ends show it."""

    platform: str
    label: str
    account: str
    state: str
    privacy: str
    link: str | None = None
    post_id: str | None = None
    remote_id: str | None = None  # the site's id for the upload (TikTok's publish_id: a SELF_ONLY post has no other)
    remote_label: str = "id"
    total_bytes: int = 0
    confirmed_bytes: int = 0
    sent_bytes: int = 0
    already: bool = False  # published before: answered from the ledger
    notices: list[str] = []
    error: str | None = None


def account_for(settings: Settings, row: PlatformRow) -> Account:
    """The site's account: its STORYBOT_* variables, else `storybot accounts add`'s file."""
    account = row.env_account(settings) or accounts.load(settings.data_dir, row.name)
    if account is None:
        raise BadInput(f"no {row.label} account is linked: run `storybot accounts add {row.name}`")
    return account


def measure(path: Path, thumbnail: Path | None = None) -> Video:
    """The file's size, digest, length and frame size (what the sites' rules are about)."""
    if not path.is_file():
        raise BadInput(f"the video {path} is missing")
    info = probe(path)
    if info.video is None:
        raise BadInput(f"{path.name} has no video stream")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return Video(
        path=path,
        size=path.stat().st_size,
        sha256=digest.hexdigest(),
        seconds=info.duration,
        width=info.video.width,
        height=info.video.height,
        thumbnail=thumbnail if thumbnail is not None and thumbnail.is_file() else None,
    )


class Planned(BaseModel):
    row_name: str
    account: Account
    post: Post


def plan_all(
    settings: Settings, rows: list[PlatformRow], texts: Callable[[PlatformRow], Texts], choice: Choice, video: Video
) -> list[Planned]:
    """Every target's account and offline rules (BadInput before anything is sent anywhere)."""
    if choice.publish_at is not None and choice.publish_at.tzinfo is None:
        raise BadInput("--at needs a time zone (e.g. 2027-01-31T18:00:00+00:00 or ...Z)")
    return [
        Planned(row_name=row.name, account=account_for(settings, row), post=row.plan(texts(row), choice, video))
        for row in rows
    ]


async def publish_all(
    settings: Settings,
    ledger: Ledger,
    job_id: str,
    planned: list[Planned],
    progress: Progress,
    say: Callable[[str], None],
) -> list[Outcome]:
    """Each site in turn, under the job's publishing lock (see `Ledger.exclusive`)."""
    with ledger.exclusive(job_id):
        return await _publish_all(settings, ledger, job_id, planned, progress, say)


async def _publish_all(
    settings: Settings,
    ledger: Ledger,
    job_id: str,
    planned: list[Planned],
    progress: Progress,
    say: Callable[[str], None],
) -> list[Outcome]:
    from tools.publish.registry import platform

    outcomes: list[Outcome] = []
    async with httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": settings.user_agent}) as client:
        sites = []
        for p in planned:  # the online checks of every site, still before any upload
            row = platform(p.row_name)
            done = ledger.get(job_id, row.name)
            site = row.open(settings, p.account, client)
            post = p.post if done is not None and done.state == "done" else await site.prepare(p.post)
            sites.append((row, site, post, p.account))
        for row, site, post, account in sites:
            record = ledger.get(job_id, row.name)
            if record is not None and record.state == "done":
                outcomes.append(_outcome(row, record, post, already=True))
                continue
            for line in post.notices:
                say(line)
            if record is not None and record.sha256 != post.video.sha256 and record.state != "refused":
                if record.state != "started" and record.confirmed_bytes:
                    raise BadInput(
                        f"job {job_id}'s video changed after its {row.label} upload began (that upload is of the"
                        " earlier file): put the earlier final.mp4 back to finish it"
                    )
                record = None  # nothing of the earlier file reached the site: start over with this one
            if record is None or record.state == "refused":
                record = ledger.start(job_id, row.name, account.name, post.video.size, post.video.sha256, post.privacy)
            try:
                record = await site.publish(post, record, ledger.save, progress)
            except (PlatformRefused, Unreachable) as exc:
                latest = ledger.get(job_id, row.name) or record
                state = "refused" if isinstance(exc, PlatformRefused) else latest.state
                record = latest.touch(state=state, error=one_line(exc, settings))
                ledger.save(record)
            outcomes.append(_outcome(row, record, post))
    return outcomes


def _outcome(row: PlatformRow, record: Publication, post: Post, already: bool = False) -> Outcome:
    return Outcome(
        platform=row.name,
        label=row.label,
        account=record.account,
        state=record.state,
        privacy=record.privacy,
        link=record.link,
        post_id=record.post_id,
        remote_id=record.remote_id,
        remote_label=row.remote_label,
        total_bytes=record.total_bytes,
        confirmed_bytes=record.confirmed_bytes,
        sent_bytes=record.sent_bytes,
        already=already,
        notices=[] if already else post.notices,
        error=record.error if record.state != "done" else None,
    )
