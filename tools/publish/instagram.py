"""Instagram Reels through the Instagram Graph API's resumable upload (Facebook Login for Business).

A container is made with `media_type=REELS`, `upload_type=resumable`, the caption and
`is_ai_generated`; its id and upload `uri` are recorded before any byte goes up. The bytes are POSTed
to that rupload URI with `offset` and `file_size` headers; after a fault or a kill, the container's
`video_status.uploading_phase.bytes_transferred` says where to continue. Then the container's
`status_code` is polled until `FINISHED`, and `media_publish` posts it (state `publishing` is recorded
first; a container already `PUBLISHED` is not published again). Reels published through the API are
public: there is no private option, and storybot says so before uploading.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from pydantic import BaseModel, SecretStr

from tools.errors import BadInput
from tools.publish.accounts import Account, given
from tools.publish.base import (
    AI_LABEL_OFF_WARNING,
    Choice,
    PlatformRefused,
    PlatformRow,
    Post,
    Progress,
    Publication,
    Save,
    Texts,
    Video,
)
from tools.publish.http import Api, Reply, Unreachable, UploadFaults, report, text_of
from tools.settings import Settings

CAPTION_MAX = 2200
HASHTAGS_MAX = 30
MIN_SECONDS, MAX_SECONDS = 3, 15 * 60
PUBLIC_NOTICE = "Instagram: Reels published through the API are public (there is no private option)"


class _ErrorBody(BaseModel):
    message: str = ""
    code: int = 0
    error_subcode: int = 0
    fbtrace_id: str = ""


class _Error(BaseModel):
    error: _ErrorBody | None = None


class _ContainerRequest(BaseModel):
    """A Reel container for a resumable upload, with the AI label."""

    media_type: str = "REELS"
    upload_type: str = "resumable"
    caption: str
    share_to_feed: bool = True
    is_ai_generated: bool


class _Container(BaseModel):
    id: str
    uri: str = ""


class _Phase(BaseModel):
    status: str = ""
    bytes_transferred: int = 0


class _VideoStatus(BaseModel):
    uploading_phase: _Phase = _Phase()


class _ContainerStatus(BaseModel):
    status_code: str = ""
    status: str = ""
    video_status: _VideoStatus = _VideoStatus()


class _Media(BaseModel):
    id: str
    permalink: str = ""


class _User(BaseModel):
    id: str = ""
    username: str = ""


def describe(reply: Reply) -> str:
    body = reply.parsed(_Error)
    if body is None or body.error is None:
        return text_of(reply.text() or "no details")
    e = body.error
    return text_of(f"{e.message} (code {e.code}{f'/{e.error_subcode}' if e.error_subcode else ''})")


def plan(texts: Texts, choice: Choice, video: Video) -> Post:
    """Instagram's rules, offline: public only, no scheduling, caption and hashtag limits, 3 s to 15 min."""
    if choice.privacy not in (None, "public"):
        raise BadInput("Instagram Reels published through the API are public: there is no private or unlisted option")
    if choice.publish_at is not None:
        raise BadInput("--at schedules YouTube uploads only: an Instagram Reel is published when it is ready")
    if not MIN_SECONDS <= video.seconds <= MAX_SECONDS:
        raise BadInput(f"an Instagram Reel is 3 s to 15 min long (this video is {video.seconds:.1f} s)")
    title = choice.title if choice.title is not None else texts.title
    body = choice.description if choice.description is not None else texts.description
    tags = texts.hashtags[:HASHTAGS_MAX]
    words = "\n\n".join(p for p in (title.strip(), body.strip()) if p)
    if choice.title is not None or choice.description is not None:
        if len(words) > CAPTION_MAX:
            raise BadInput(f"an Instagram caption is at most {CAPTION_MAX} characters")
        if sum(w.startswith("#") for w in words.split()) > HASHTAGS_MAX:
            raise BadInput(f"an Instagram caption has at most {HASHTAGS_MAX} hashtags")
    tag_line = " ".join(tags)
    room = CAPTION_MAX - len(tag_line) - 2
    caption = f"{words[:room]}\n\n{tag_line}".strip() if tag_line else words[:CAPTION_MAX]
    notices = [PUBLIC_NOTICE]
    if not choice.ai_label:
        notices.append(f"Instagram: {AI_LABEL_OFF_WARNING}")
    if choice.made_for_kids:
        notices.append("Instagram has no made-for-kids setting: its own age rules apply")
    return Post(video=video, title=caption, description="", privacy="public", ai_label=choice.ai_label, notices=notices)


class _Bearer:
    def __init__(self, token: SecretStr | None, scheme: str = "Bearer") -> None:
        self.token, self.scheme = token, scheme

    async def headers(self) -> dict[str, str]:
        if self.token is None:
            raise PlatformRefused("the Instagram account has no access token: run `storybot accounts add instagram`")
        return {"Authorization": f"{self.scheme} {self.token.get_secret_value()}"}

    async def refresh(self) -> bool:
        return False

    def secrets(self) -> list[str]:
        return [self.token.get_secret_value()] if self.token else []


class Instagram:
    def __init__(self, settings: Settings, account: Account, client: httpx.AsyncClient) -> None:
        self.settings, self.account = settings, account
        self.base = settings.instagram_base_url.rstrip("/")
        self.user = account.user_id or ""
        retries = settings.provider_retries
        token = account.access_token
        self.graph = Api(client, "Instagram", _Bearer(token), [settings.instagram_base_url], describe, retries)
        self.rupload = Api(
            client, "Instagram", _Bearer(token, "OAuth"), [settings.instagram_upload_base_url], describe, retries
        )

    async def prepare(self, post: Post) -> Post:
        if not self.user:
            raise BadInput("the Instagram account has no user id: set STORYBOT_INSTAGRAM_USER_ID or add it again")
        return post

    async def publish(self, post: Post, record: Publication, save: Save, progress: Progress) -> Publication:
        if record.remote_id is None or record.session is None:
            record = await self._container(post, record, save)
            offset: int | None = 0
        else:
            offset = await self._offset(record) if record.state == "uploading" else None
        total, faults = post.video.size, UploadFaults("Instagram", self.settings.provider_retries)
        with post.video.path.open("rb") as f:
            while offset is not None and offset < total:
                if offset != record.confirmed_bytes:
                    record = record.touch(confirmed_bytes=offset)
                    save(record)
                    await report(progress, record)
                f.seek(offset)
                data = f.read()
                record = record.touch(sent_bytes=record.sent_bytes + len(data))
                try:
                    await self.rupload.call(
                        "POST",
                        record.session or "",
                        content=data,
                        headers={"offset": str(offset), "file_size": str(total)},
                        retry=False,
                    )
                except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                    await faults.after(exc, record, save)
                    offset = await self._offset(record)
                    continue
                offset = total
        if record.state == "uploading":
            record = record.touch(state="processing", confirmed_bytes=total)
            save(record)
            await report(progress, record)
        return await self._finish(record, save)

    async def _container(self, post: Post, record: Publication, save: Save) -> Publication:
        reply = await self.graph.call(
            "POST",
            f"{self.base}/{self.user}/media",
            json=_ContainerRequest(caption=post.title, is_ai_generated=post.ai_label).model_dump(),
        )
        made = reply.parsed(_Container)
        if made is None or not made.uri:
            raise PlatformRefused("Instagram made no upload container (no id and uri in its reply)")
        record = record.touch(remote_id=made.id, session=made.uri, state="uploading", confirmed_bytes=0)
        save(record)
        return record

    async def _status(self, record: Publication) -> _ContainerStatus:
        reply = await self.graph.call(
            "GET", f"{self.base}/{record.remote_id}", params={"fields": "status_code,status,video_status"}
        )
        return reply.parsed(_ContainerStatus) or _ContainerStatus()

    async def _offset(self, record: Publication) -> int | None:
        """Where to continue: the bytes Instagram holds; None once the upload is complete."""
        status = await self._status(record)
        if status.status_code in ("FINISHED", "PUBLISHED") or status.video_status.uploading_phase.status == "complete":
            return None
        if status.status_code in ("ERROR", "EXPIRED"):
            raise PlatformRefused(f"Instagram's container is {status.status_code}: {text_of(status.status)}")
        return status.video_status.uploading_phase.bytes_transferred

    async def _finish(self, record: Publication, save: Save) -> Publication:
        deadline = time.monotonic() + self.settings.publish_timeout
        while True:
            status = await self._status(record)
            if status.status_code in ("ERROR", "EXPIRED"):
                raise PlatformRefused(f"Instagram's container is {status.status_code}: {text_of(status.status)}")
            if status.status_code == "PUBLISHED":  # published before a crash: never twice
                record = record.touch(state="done", link=record.link)
                save(record)
                return record
            if status.status_code == "FINISHED":
                break
            if time.monotonic() > deadline:
                raise Unreachable("Instagram is still processing the Reel; run the same command later to check")
            await asyncio.sleep(self.settings.publish_poll_seconds)
        record = record.touch(state="publishing")
        save(record)
        reply = await self.graph.call(
            "POST", f"{self.base}/{self.user}/media_publish", params={"creation_id": record.remote_id}
        )
        media = reply.parsed(_Media)
        if media is None:
            raise PlatformRefused("Instagram published without naming the media")
        link = await self._permalink(media.id)
        record = record.touch(state="done", post_id=media.id, link=link)
        save(record)
        return record

    async def _permalink(self, media_id: str) -> str | None:
        reply = await self.graph.call("GET", f"{self.base}/{media_id}", params={"fields": "permalink"})
        media = reply.parsed(_Media)
        return media.permalink if media and media.permalink else None


def env_account(settings: Settings) -> Account | None:
    if given(settings.instagram_access_token) is None:
        return None
    return Account(
        platform="instagram",
        name="from STORYBOT_INSTAGRAM_ACCESS_TOKEN",
        user_id=settings.instagram_user_id,
        scopes=["instagram_basic", "instagram_content_publish"],
        access_token=settings.instagram_access_token,
        source="env",
    )


async def add_account(
    settings: Settings,
    client: httpx.AsyncClient,
    say: Callable[[str], None],
    token: str | None = None,
    user_id: str | None = None,
    **_: object,
) -> Account:
    """A pasted Facebook Login for Business token and the Instagram user id, checked by reading the
    user's name."""
    if not token or not user_id:
        raise BadInput("Instagram needs --user-id and a Facebook Login for Business token on standard input")
    account = Account(
        platform="instagram",
        name="",
        user_id=user_id.strip(),
        scopes=["instagram_basic", "instagram_content_publish"],
        access_token=SecretStr(token.strip()),
    )
    ig = Instagram(settings, account, client)
    reply = await ig.graph.call("GET", f"{ig.base}/{ig.user}", params={"fields": "id,username"})
    user = reply.parsed(_User)
    return account.model_copy(update={"name": (user.username if user else "") or "Instagram user"})


ROW = PlatformRow(
    name="instagram",
    label="Instagram",
    meta_key="instagram_reels",
    plan=plan,
    open=Instagram,
    add_account=add_account,
    env_account=env_account,
    pasted_token=True,
    public_only=True,
    remote_label="container id",
)
