"""TikTok Content Posting API: direct post (scope `video.publish`) with `is_aigc`, from a file upload.

`creator_info` is asked first: the privacy levels this creator may use (an unaudited app gets
`SELF_ONLY` only), whether comments, duets and stitches are off, the longest video allowed. Then
`/v2/post/publish/video/init/` with `post_info` and `source_info` (`FILE_UPLOAD`, size, chunk size,
chunk count: chunks of 5-64 MB, the last one taking the remainder, a file under 5 MB in one piece);
its `publish_id` and `upload_url` are recorded before any byte goes up. Chunks are PUT in order
with `Content-Range`; after a fault or a kill, `status/fetch` reports `uploaded_bytes`, and the
upload continues at that chunk. Then `status/fetch` is polled until `PUBLISH_COMPLETE` or `FAILED`.
The inbox flow (`video.upload`) is an explicit option: it carries no `post_info`, so the AI label
must then be set in the app. A `SELF_ONLY` post has no public id: the `publish_id` is the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from tools.errors import BadInput
from tools.publish import accounts
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

MB = 1024 * 1024
MIN_CHUNK, MAX_CHUNK, CHUNK = 5 * MB, 64 * MB, 10 * MB
MAX_BYTES = 4 * 1024 * MB
CAPTION_MAX = 2200  # UTF-16 code units
PRIVACY = {"private": "SELF_ONLY", "unlisted": "MUTUAL_FOLLOW_FRIENDS", "public": "PUBLIC_TO_EVERYONE"}
INBOX_WARNING = "TikTok: sent to your inbox to finish in the app: set the AI-generated label there before posting"


class _Error(BaseModel):
    code: str = "ok"
    message: str = ""
    log_id: str = ""


class _CreatorInfo(BaseModel):
    creator_username: str = ""
    creator_nickname: str = ""
    privacy_level_options: list[str] = []
    comment_disabled: bool = False
    duet_disabled: bool = False
    stitch_disabled: bool = False
    max_video_post_duration_sec: float = 600


class _Init(BaseModel):
    publish_id: str
    upload_url: str


class _Status(BaseModel):
    status: str = ""
    fail_reason: str = ""
    publicaly_available_post_id: list[int | str] = []  # TikTok's own spelling
    uploaded_bytes: int = 0


class _PostInfo(BaseModel):
    """Direct post only: the caption, privacy, the creator's switches, and the AI label."""

    title: str
    privacy_level: str
    disable_comment: bool
    disable_duet: bool
    disable_stitch: bool
    is_aigc: bool
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False


class _SourceInfo(BaseModel):
    source: str = "FILE_UPLOAD"
    video_size: int
    chunk_size: int
    total_chunk_count: int


class _InitRequest(BaseModel):
    post_info: _PostInfo | None = None  # absent for the inbox flow
    source_info: _SourceInfo


class _Envelope(BaseModel):
    """Every reply: `{data, error: {code, message, log_id}}`."""

    error: _Error = _Error()


class _CreatorReply(_Envelope):
    data: _CreatorInfo = _CreatorInfo()


class _InitReply(_Envelope):
    data: _Init


class _StatusReply(_Envelope):
    data: _Status = _Status()


def describe(reply: Reply) -> str:
    body = reply.parsed(_Envelope)
    if body is None:
        return text_of(reply.text() or "no details")
    return text_of(f"{body.error.code}: {body.error.message} (log id {body.error.log_id})")


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut_units(text: str, limit: int) -> str:
    return text.encode("utf-16-le")[: limit * 2].decode("utf-16-le", "ignore")


def plan(texts: Texts, choice: Choice, video: Video) -> Post:
    """TikTok's rules, offline: no scheduling, the caption limit, the privacy names, the size."""
    if choice.publish_at is not None:
        raise BadInput("--at schedules YouTube uploads only: TikTok posts when its upload finishes")
    if video.size > MAX_BYTES:
        raise BadInput("TikTok takes files up to 4 GB")
    title = choice.title if choice.title is not None else texts.title
    body = choice.description if choice.description is not None else texts.description
    caption = " ".join(part for part in (title.strip(), body.strip(), " ".join(texts.hashtags)) if part)
    if choice.title is not None and _units(title) > CAPTION_MAX:
        raise BadInput(f"a TikTok caption is at most {CAPTION_MAX} characters")
    notices: list[str] = []
    if choice.inbox:
        notices.append(INBOX_WARNING)
    elif not choice.ai_label:
        notices.append(f"TikTok: {AI_LABEL_OFF_WARNING}")
    if choice.made_for_kids:
        notices.append("TikTok has no made-for-kids setting: its own age rules apply")
    privacy = PRIVACY[choice.privacy or "private"]
    return Post(
        video=video,
        title=_cut_units(caption, CAPTION_MAX),
        description="",
        privacy=privacy,
        made_for_kids=False,
        ai_label=choice.ai_label,
        inbox=choice.inbox,
        notices=notices,
    )


def chunking(size: int) -> tuple[int, int]:
    """(chunk size, chunk count) by TikTok's rule: one piece under 5 MB, else whole chunks with the
    remainder in the last (which may be up to 128 MB)."""
    if size < MIN_CHUNK:
        return size, 1
    chunk = min(max(CHUNK, MIN_CHUNK), MAX_CHUNK)
    return chunk, max(1, size // chunk)


class _Token(BaseModel):
    """TikTok's token reply (`/v2/oauth/token/`), also what `accounts add tiktok` accepts on stdin."""

    access_token: SecretStr
    expires_in: float | None = None
    refresh_token: SecretStr | None = None
    open_id: str | None = None
    scope: str = ""


class TokenAuth:
    """The user's bearer token, refreshed a minute before it expires (or after a 401) when the account
    holds a refresh token and the app's client key and secret are set; the rotated refresh token is
    saved back to the account file at once (TikTok invalidates the old one)."""

    def __init__(self, settings: Settings, account: Account, client: httpx.AsyncClient) -> None:
        self.settings, self.account, self.client = settings, account, client

    async def headers(self) -> dict[str, str]:
        a = self.account
        if a.expires_at is not None and a.expires_at - 60 < time.time():
            await self.refresh()
        if self.account.access_token is None:
            raise PlatformRefused("the TikTok account has no access token: run `storybot accounts add tiktok`")
        return {"Authorization": f"Bearer {self.account.access_token.get_secret_value()}"}

    async def refresh(self) -> bool:
        a, s = self.account, self.settings
        key, secret = s.tiktok_client_key, given(s.tiktok_client_secret)
        if a.refresh_token is None or not key or secret is None:
            return False
        api = Api(self.client, "TikTok's token endpoint", self, [s.tiktok_base_url], describe, 2)
        reply = await api.call(
            "POST",
            f"{s.tiktok_base_url.rstrip('/')}/v2/oauth/token/",
            data={
                "client_key": key,
                "client_secret": secret.get_secret_value(),
                "grant_type": "refresh_token",
                "refresh_token": a.refresh_token.get_secret_value(),
            },
            authed=False,
        )
        token = reply.parsed(_Token)
        if token is None:
            raise PlatformRefused("TikTok's token endpoint answered without an access token")
        self.account = a.model_copy(
            update={
                "access_token": token.access_token,
                "refresh_token": token.refresh_token or a.refresh_token,
                "expires_at": time.time() + token.expires_in if token.expires_in else None,
            }
        )
        if a.source == "file":
            accounts.save(s.data_dir, self.account)
        return True

    def secrets(self) -> list[str]:
        a = self.account
        values = [a.access_token, a.refresh_token, given(self.settings.tiktok_client_secret)]
        return [v.get_secret_value() for v in values if v is not None]


class TikTok:
    def __init__(self, settings: Settings, account: Account, client: httpx.AsyncClient) -> None:
        self.settings, self.account = settings, account
        self.base = settings.tiktok_base_url.rstrip("/")
        self.api = Api(
            client,
            "TikTok",
            TokenAuth(settings, account, client),
            [settings.tiktok_base_url],
            describe,
            settings.provider_retries,
        )
        self.creator = _CreatorInfo()

    async def prepare(self, post: Post) -> Post:
        """creator_info first: refuse what this creator may not post, keep the switches they turned off."""
        if post.inbox:
            return post
        reply = await self.api.call(
            "POST",
            f"{self.base}/v2/post/publish/creator_info/query/",
            json={},
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        info = reply.parsed(_CreatorReply)
        if info is None:
            raise PlatformRefused("TikTok's creator_info reply did not read")
        self.creator = info.data
        offered = self.creator.privacy_level_options
        if post.privacy not in offered:
            raise BadInput(
                f"TikTok offers this account {', '.join(offered) or 'no privacy level'}, not {post.privacy}"
                + (" (an unaudited app may post SELF_ONLY only)" if offered == ["SELF_ONLY"] else "")
            )
        if post.video.seconds > self.creator.max_video_post_duration_sec:
            raise BadInput(
                f"TikTok allows this account videos up to {self.creator.max_video_post_duration_sec:.0f} s"
                f" (this one is {post.video.seconds:.0f} s)"
            )
        return post

    async def publish(self, post: Post, record: Publication, save: Save, progress: Progress) -> Publication:
        if record.remote_id is None or record.session is None:
            record = await self._init(post, record, save)
            start: int | None = 0
        else:
            start = await self._next_chunk(record)
        chunk, count = record.chunk_size or post.video.size, self._count(record)
        total, faults = post.video.size, UploadFaults("TikTok", self.settings.provider_retries)
        with post.video.path.open("rb") as f:
            index: int | None = start
            while index is not None and index < count:
                first = index * chunk
                last = total - 1 if index == count - 1 else first + chunk - 1
                f.seek(first)
                data = f.read(last - first + 1)
                record = record.touch(sent_bytes=record.sent_bytes + len(data))
                try:
                    await self.api.call(
                        "PUT",
                        record.session or "",
                        content=data,
                        headers={"Content-Range": f"bytes {first}-{last}/{total}", "Content-Type": "video/mp4"},
                        expect=(200, 201, 206),
                        authed=False,
                        retry=False,
                    )
                except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                    await faults.after(exc, record, save)
                    index = await self._next_chunk(record)
                    continue
                faults.clear()
                index += 1
                record = record.touch(confirmed_bytes=last + 1)
                save(record)
                await report(progress, record)
        record = record.touch(state="processing", confirmed_bytes=total)
        save(record)
        return await self._wait(post, record, save)

    def _count(self, record: Publication) -> int:
        return max(1, record.total_bytes // (record.chunk_size or record.total_bytes or 1))

    async def _init(self, post: Post, record: Publication, save: Save) -> Publication:
        size = post.video.size
        chunk, count = chunking(size)
        source = _SourceInfo(video_size=size, chunk_size=chunk, total_chunk_count=count)
        if post.inbox:
            url, body = f"{self.base}/v2/post/publish/inbox/video/init/", _InitRequest(source_info=source)
        else:
            c = self.creator
            info = _PostInfo(
                title=post.title,
                privacy_level=post.privacy,
                disable_comment=c.comment_disabled,
                disable_duet=c.duet_disabled,
                disable_stitch=c.stitch_disabled,
                is_aigc=post.ai_label,
            )
            url, body = f"{self.base}/v2/post/publish/video/init/", _InitRequest(post_info=info, source_info=source)
        reply = await self.api.call(
            "POST",
            url,
            json=body.model_dump(exclude_none=True),
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        init = reply.parsed(_InitReply)
        if init is None:
            raise PlatformRefused("TikTok's init reply had no publish_id and upload_url")
        record = record.touch(
            remote_id=init.data.publish_id, session=init.data.upload_url, chunk_size=chunk, state="uploading"
        )
        save(record)
        return record

    async def _status(self, record: Publication) -> _Status:
        reply = await self.api.call(
            "POST",
            f"{self.base}/v2/post/publish/status/fetch/",
            json={"publish_id": record.remote_id},
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        status = reply.parsed(_StatusReply)
        if status is None:
            raise PlatformRefused("TikTok's status reply did not read")
        return status.data

    async def _next_chunk(self, record: Publication) -> int | None:
        """The chunk to send next, from the bytes TikTok reports holding (whole chunks); None once
        the upload is complete and TikTok is processing or done."""
        status = await self._status(record)
        if status.status == "FAILED":
            raise PlatformRefused(f"TikTok failed the post: {text_of(status.fail_reason or 'no reason given')}")
        if status.status != "PROCESSING_UPLOAD":
            return None
        return min(status.uploaded_bytes // (record.chunk_size or 1), self._count(record))

    async def _wait(self, post: Post, record: Publication, save: Save) -> Publication:
        deadline = time.monotonic() + self.settings.publish_timeout
        while True:
            status = await self._status(record)
            if status.status == "FAILED":
                raise PlatformRefused(f"TikTok failed the post: {text_of(status.fail_reason or 'no reason given')}")
            if status.status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX"):
                break
            if time.monotonic() > deadline:
                raise Unreachable("TikTok is still processing the post; run the same command later to check")
            await asyncio.sleep(self.settings.publish_poll_seconds)
        ids = [str(i) for i in status.publicaly_available_post_id]
        user = self.creator.creator_username or self.account.name
        link = f"https://www.tiktok.com/@{user}/video/{ids[0]}" if ids else None
        record = record.touch(state="done", post_id=ids[0] if ids else None, link=link)
        save(record)
        return record


def env_account(settings: Settings) -> Account | None:
    if given(settings.tiktok_access_token) is None:
        return None
    return Account(
        platform="tiktok",
        name="from STORYBOT_TIKTOK_ACCESS_TOKEN",
        scopes=["video.publish"],
        access_token=settings.tiktok_access_token,
        source="env",
    )


async def add_account(
    settings: Settings,
    client: httpx.AsyncClient,
    say: Callable[[str], None],
    token: str | None = None,
    **_: object,
) -> Account:
    """A pasted user access token, or TikTok's whole token reply as JSON (then it is refreshed with
    STORYBOT_TIKTOK_CLIENT_KEY/_SECRET); TikTok's OAuth needs a registered web redirect, not a
    loopback. Checked with creator_info, which names the creator."""
    if not token:
        raise BadInput("paste a TikTok user access token (scope video.publish) on standard input")
    try:
        parsed = _Token.model_validate_json(token)
    except ValidationError:
        parsed = _Token(access_token=SecretStr(token.strip()))
    account = Account(
        platform="tiktok",
        name="",
        user_id=parsed.open_id,
        scopes=parsed.scope.replace(",", " ").split() or ["video.publish"],
        access_token=parsed.access_token,
        refresh_token=parsed.refresh_token,
        expires_at=time.time() + parsed.expires_in if parsed.expires_in else None,
    )
    if parsed.refresh_token is not None and not settings.tiktok_client_key:
        say("TikTok: without STORYBOT_TIKTOK_CLIENT_KEY and _SECRET the token cannot be refreshed when it expires")
    tiktok = TikTok(settings, account, client)
    reply = await tiktok.api.call(
        "POST",
        f"{tiktok.base}/v2/post/publish/creator_info/query/",
        json={},
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )
    info = reply.parsed(_CreatorReply)
    name = info.data.creator_username if info else ""
    auth = tiktok.api.auth
    current = auth.account if isinstance(auth, TokenAuth) else account  # refreshed on the way, perhaps
    return current.model_copy(update={"name": name or "TikTok creator"})


ROW = PlatformRow(
    name="tiktok",
    label="TikTok",
    meta_key="tiktok",
    plan=plan,
    open=TikTok,
    add_account=add_account,
    env_account=env_account,
    pasted_token=True,
    remote_label="publish_id",
)
