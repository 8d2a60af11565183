"""The publishing seam: one `Platform` per site (YouTube, TikTok, Instagram), all behind these types.

A `Post` is what to publish (the file and the words, already cut to the site's limits by its row);
a `Publication` is the durable record of one upload to one account (the session or publish id, the
bytes the site confirmed, the state), saved after every step so a killed process resumes the same
upload and a finished one is never repeated. Nothing outside a platform's own module asks its name.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel

from tools.errors import StorybotError
from tools.publish.accounts import Account
from tools.settings import Settings

Privacy = Literal["private", "unlisted", "public"]
State = Literal["started", "uploading", "processing", "publishing", "done", "refused"]
AI_LABEL_OFF_WARNING = (
    "the AI-content label is off: the narration (and usually the pictures) are synthetic, and the"
    " platforms' rules ask for the label on such videos"
)


class PlatformRefused(StorybotError):
    """The site said no (quota, an unaudited app, policy, a failed upload): one line, exit 1; the same
    command can try again later. `status` is the HTTP status when the refusal was a reply."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Choice(BaseModel):
    """What the person chose (the CLI's options, the Discord form); None means the site's default."""

    title: str | None = None
    description: str | None = None
    privacy: Privacy | None = None
    publish_at: datetime | None = None
    made_for_kids: bool = False
    ai_label: bool = True  # the site's AI-generated flag; off only when asked, with a warning
    inbox: bool = False  # TikTok only: send to the creator's inbox instead of posting


class Texts(BaseModel):
    """The job's own words for a site: its title, description and that site's hashtags."""

    title: str
    description: str
    hashtags: list[str]


class Video(BaseModel):
    """The file to publish and what was measured of it (rules such as a Short's length need them)."""

    path: Path
    size: int
    sha256: str
    seconds: float
    width: int
    height: int
    thumbnail: Path | None = None  # the job's thumbnail.png, for the sites that take one


class Post(BaseModel):
    """One upload, checked against the site's rules and cut to its limits."""

    video: Video
    title: str
    description: str
    privacy: str  # the site's own word: private, SELF_ONLY, PUBLIC...
    publish_at: datetime | None = None
    made_for_kids: bool = False
    ai_label: bool = True
    inbox: bool = False
    notices: list[str] = []  # said before uploading


class Publication(BaseModel):
    """The durable record of one publication (tools.publish.ledger keeps it)."""

    job_id: str
    platform: str
    account: str
    state: State = "started"
    privacy: str = ""
    session: str | None = None  # YouTube's session URI, TikTok's upload URL, Instagram's upload URI
    remote_id: str | None = None  # TikTok's publish_id, Instagram's container id, YouTube's video id
    chunk_size: int | None = None
    total_bytes: int = 0
    confirmed_bytes: int = 0  # what the site reported holding
    sent_bytes: int = 0  # every byte this side sent, resends included
    sha256: str = ""
    link: str | None = None
    post_id: str | None = None
    error: str | None = None
    created: float = 0.0
    updated: float = 0.0

    def touch(self, **fields: object) -> Publication:
        return self.model_copy(update={**fields, "updated": time.time()})


Save = Callable[[Publication], None]
Progress = Callable[[Publication], Awaitable[None] | None]


class Platform(Protocol):
    """One site's client, bound to an account and an HTTP client."""

    async def prepare(self, post: Post) -> Post:
        """Online checks before any byte goes up (TikTok's creator_info); may add notices."""
        ...

    async def publish(self, post: Post, record: Publication, save: Save, progress: Progress) -> Publication:
        """Start or resume the upload in `record`, saving it after each step; returns it done."""
        ...


@dataclass(frozen=True)
class PlatformRow:
    """A site in the registry: its names, how its words and rules apply, how to reach it."""

    name: str  # youtube, tiktok, instagram
    label: str  # YouTube, TikTok, Instagram
    meta_key: str  # its key in the job's PlatformMeta hashtags
    plan: Callable[[Texts, Choice, Video], Post]  # the offline rules: BadInput for what cannot be sent
    open: Callable[[Settings, Account, httpx.AsyncClient], Platform]
    add_account: Callable[..., Awaitable[Account]]  # `accounts add`: the site's own flow
    env_account: Callable[[Settings], Account | None]  # the STORYBOT_* override, when set
    remote_label: str = "id"  # what the site calls its id for an upload (shown when there is no link)
    pasted_token: bool = False  # `accounts add` takes a token on stdin (no local OAuth flow for this site)
    public_only: bool = False  # the site's API posts publicly only (forms say so, privacy is fixed)
