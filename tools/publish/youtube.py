"""YouTube Data API v3: a resumable upload (`videos.insert`) with the AI-content disclosure.

The session is opened with the video resource (title, description, `status.privacyStatus`,
`status.selfDeclaredMadeForKids` sent explicitly, `status.containsSyntheticMedia`, `status.publishAt`
only while private) and `X-Upload-Content-*`; its URI comes back in `Location` and is recorded
before any byte goes up. Bytes are PUT in chunks of a multiple of 256 KiB; after any fault (or a
kill), `PUT` with `Content-Range: bytes */TOTAL` asks the server what it holds (`308` with `Range`,
or `200`/`201` with the video when the upload had already finished), so the upload continues from
the server's offset and a finished one is never sent twice. A square or vertical video up to three
minutes becomes a Short by itself (there is no API flag). OAuth: installed-app loopback flow
(`accounts add youtube`), the refresh token kept, access tokens refreshed before they expire.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import secrets
import time
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from PIL import Image
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

log = logging.getLogger("storybot.publish")

TITLE_MAX = 100  # characters; no < or >
DESCRIPTION_MAX_BYTES = 5000
SHORT_MAX_SECONDS = 180
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024
QUANTUM = 256 * 1024  # chunk sizes are multiples of this
AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
SCOPES = ["https://www.googleapis.com/auth/youtube.upload", "https://www.googleapis.com/auth/youtube.readonly"]
REFUSALS = {"quotaExceeded", "uploadLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded"}
LOCKED_PRIVATE = "YouTube locks uploads from unverified API projects to private until the project passes its audit"


def _clean(text: str) -> str:
    return text.replace("<", "").replace(">", "")


def _cut_bytes(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def plan(texts: Texts, choice: Choice, video: Video) -> Post:
    """YouTube's rules, offline: title and description limits, privacy, publishAt only while private."""
    if choice.title is not None:
        if "<" in choice.title or ">" in choice.title:
            raise BadInput("a YouTube title cannot contain < or >")
        if len(choice.title) > TITLE_MAX:
            raise BadInput(f"a YouTube title is at most {TITLE_MAX} characters (this one has {len(choice.title)})")
    title = choice.title.strip() if choice.title is not None else _clean(texts.title).strip()[:TITLE_MAX].strip()
    if not title:
        raise BadInput("a YouTube title cannot be empty")
    body = _clean(choice.description if choice.description is not None else texts.description).strip()
    tags = " ".join(texts.hashtags)
    description = _cut_bytes(f"{body}\n\n{tags}".strip() if tags else body, DESCRIPTION_MAX_BYTES)
    notices: list[str] = []
    privacy = choice.privacy or "private"
    if choice.publish_at is not None:
        if choice.privacy not in (None, "private"):
            raise BadInput(
                f"--at publishes a private video at that time: it cannot be combined with --privacy {choice.privacy}"
            )
        if choice.publish_at <= datetime.now(UTC):
            raise BadInput("--at must be in the future")
        notices.append(f"YouTube: private until {choice.publish_at.isoformat(timespec='minutes')}, then public")
    vertical = video.height >= video.width
    if vertical and video.seconds <= SHORT_MAX_SECONDS:
        notices.append("YouTube: a Short (vertical or square, up to 3 minutes)")
    else:
        notices.append("YouTube: a regular video, not a Short (Shorts are vertical or square, up to 3 minutes)")
    if privacy != "private":
        notices.append(f"YouTube: {LOCKED_PRIVATE}")
    if not choice.ai_label:
        notices.append(f"YouTube: {AI_LABEL_OFF_WARNING}")
    return Post(
        video=video,
        title=title,
        description=description,
        privacy=privacy,
        publish_at=choice.publish_at,
        made_for_kids=choice.made_for_kids,
        ai_label=choice.ai_label,
        notices=notices,
    )


class _Token(BaseModel):
    access_token: SecretStr
    expires_in: float = 3600
    refresh_token: SecretStr | None = None
    scope: str = ""


class _Reason(BaseModel):
    reason: str = ""


class _ErrorBody(BaseModel):
    message: str = ""
    errors: list[_Reason] = []


class _Error(BaseModel):
    """Google's error body: the API's `{"error": {...}}` or OAuth's `{"error": "...", "error_description"}`."""

    error: _ErrorBody | str | None = None
    error_description: str = ""


class _Video(BaseModel):
    id: str = ""


class _VideoSnippet(BaseModel):
    title: str
    description: str
    categoryId: str = "24"  # Entertainment


class _VideoStatus(BaseModel):
    """The disclosure and audience fields: made-for-kids is always sent, false unless asked."""

    privacyStatus: str
    selfDeclaredMadeForKids: bool
    containsSyntheticMedia: bool
    publishAt: str | None = None  # RFC 3339; only with privacyStatus private


class _VideoResource(BaseModel):
    """The `video` resource that opens the upload session (`part=snippet,status`)."""

    snippet: _VideoSnippet
    status: _VideoStatus


class _Snippet(BaseModel):
    title: str = ""


class _Channel(BaseModel):
    id: str
    snippet: _Snippet = _Snippet()


class _Channels(BaseModel):
    items: list[_Channel] = []


def describe(reply: Reply) -> str:
    """The reason and message of Google's error body, in a few words."""
    body = reply.parsed(_Error)
    if body is None or body.error is None:
        return text_of(reply.text() or "no details")
    if isinstance(body.error, str):
        return text_of(f"{body.error}: {body.error_description}")
    reason = next((r.reason for r in body.error.errors if r.reason), "")
    return text_of(f"{reason}: {body.error.message}" if reason else body.error.message)


def _is_refusal(reply: Reply) -> bool:
    """A 403/429 for quota is the platform saying no (retrying it burns the day's quota)."""
    return any(r in describe(reply) for r in REFUSALS)


class GoogleAuth:
    """Bearer tokens from the refresh token, refreshed a minute before they expire (or after a 401)."""

    def __init__(self, settings: Settings, account: Account, client: httpx.AsyncClient) -> None:
        self.settings, self.account, self.client = settings, account, client
        self.token = account.access_token
        self.expires = account.expires_at or 0.0

    async def headers(self) -> dict[str, str]:
        if self.token is None or self.expires - 60 < time.time():
            await self._refresh()
        assert self.token is not None
        return {"Authorization": f"Bearer {self.token.get_secret_value()}"}

    async def refresh(self) -> bool:
        await self._refresh()
        return True

    def secrets(self) -> list[str]:
        values = [self.token, self.account.refresh_token, self.account.client_secret]
        return [v.get_secret_value() for v in values if v is not None]

    async def _refresh(self) -> None:
        a = self.account
        if a.refresh_token is None or a.client_id is None or a.client_secret is None:
            raise PlatformRefused("the YouTube account has no refresh token: run `storybot accounts add youtube`")
        token = await exchange(
            self.settings,
            self.client,
            {
                "grant_type": "refresh_token",
                "refresh_token": a.refresh_token.get_secret_value(),
                "client_id": a.client_id,
                "client_secret": a.client_secret.get_secret_value(),
            },
            self.secrets(),
        )
        self.token, self.expires = token.access_token, time.time() + token.expires_in


class _NoAuth:
    async def headers(self) -> dict[str, str]:
        return {}

    async def refresh(self) -> bool:
        return False

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = secrets

    def secrets(self) -> list[str]:
        return self._secrets


async def exchange(settings: Settings, client: httpx.AsyncClient, form: dict[str, str], secrets: list[str]) -> _Token:
    """A token from Google's token endpoint (a code or a refresh token); a refusal is one line."""
    api = Api(client, "Google's token endpoint", _NoAuth(secrets), [settings.google_token_url], describe, 2)
    reply = await api.call("POST", settings.google_token_url, data=form, authed=False)
    token = reply.parsed(_Token)
    if token is None:
        raise PlatformRefused("Google's token endpoint answered without an access token")
    return token


class YouTube:
    def __init__(self, settings: Settings, account: Account, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.base = settings.youtube_base_url.rstrip("/")
        self.chunk = max(QUANTUM, settings.publish_chunk_bytes // QUANTUM * QUANTUM)
        self.api = Api(
            client,
            "YouTube",
            GoogleAuth(settings, account, client),
            [settings.youtube_base_url],
            describe,
            settings.provider_retries,
            refused=_is_refusal,
        )

    async def prepare(self, post: Post) -> Post:
        return post

    @staticmethod
    def _resource(post: Post) -> _VideoResource:
        publish_at = post.publish_at.astimezone(UTC).isoformat().replace("+00:00", "Z") if post.publish_at else None
        return _VideoResource(
            snippet=_VideoSnippet(title=post.title, description=post.description),
            status=_VideoStatus(
                privacyStatus=post.privacy,
                selfDeclaredMadeForKids=post.made_for_kids,
                containsSyntheticMedia=post.ai_label,
                publishAt=publish_at,
            ),
        )

    async def _open(self, post: Post, record: Publication, save: Save) -> Publication:
        reply = await self.api.call(
            "POST",
            f"{self.base}/upload/youtube/v3/videos",
            params={"uploadType": "resumable", "part": "snippet,status"},
            json=self._resource(post).model_dump(exclude_none=True),
            headers={"X-Upload-Content-Length": str(post.video.size), "X-Upload-Content-Type": "video/mp4"},
        )
        session = reply.headers.get("location", "")
        if not session:
            raise PlatformRefused("YouTube opened no upload session (no Location header)")
        record = record.touch(session=session, state="uploading", confirmed_bytes=0)
        save(record)
        return record

    async def publish(self, post: Post, record: Publication, save: Save, progress: Progress) -> Publication:
        where: int | _Video = 0
        if record.session is None:
            record = await self._open(post, record, save)
        else:
            try:
                where = await self._offset(record)
            except PlatformRefused as exc:
                if exc.status != 404:
                    raise
                # the session expired (Google keeps one about a week); a finished upload would have
                # answered with its video, so nothing was published: a new session, from byte 0
                record = await self._open(post, record.touch(session=None), save)
        total, faults = post.video.size, UploadFaults("YouTube", self.settings.provider_retries)
        with post.video.path.open("rb") as f:
            while isinstance(where, int):
                if where != record.confirmed_bytes:
                    record = record.touch(confirmed_bytes=where)
                    save(record)
                    await report(progress, record)
                if where >= total:  # all bytes held, yet no video: ask again
                    where = await self._offset(record)
                    if isinstance(where, int):
                        raise PlatformRefused("YouTube holds every byte but created no video")
                    break
                f.seek(where)
                data = f.read(self.chunk)
                end = where + len(data) - 1
                record = record.touch(sent_bytes=record.sent_bytes + len(data))
                try:
                    reply = await self.api.call(
                        "PUT",
                        record.session or "",
                        content=data,
                        headers={"Content-Range": f"bytes {where}-{end}/{total}", "Content-Type": "video/mp4"},
                        expect=(200, 201, 308),
                        retry=False,
                    )
                except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                    await faults.after(exc, record, save)
                    where = await self._offset(record)
                    continue
                faults.clear()
                where = self._where(reply)
        vid = where.id
        if not vid:
            raise PlatformRefused("YouTube finished the upload without a video id")
        record = record.touch(
            state="done", remote_id=vid, post_id=vid, confirmed_bytes=total, link=f"https://youtu.be/{vid}"
        )
        save(record)
        await self._thumbnail(post, vid)
        return record

    async def _thumbnail(self, post: Post, video_id: str) -> None:
        """`thumbnails.set` with the job's thumbnail; a refusal (an unverified channel may not set
        custom thumbnails) leaves YouTube's own frame and is logged, never failing the upload."""
        if post.video.thumbnail is None:
            return
        image, kind = await asyncio.to_thread(_thumbnail_bytes, post.video.thumbnail)
        try:
            await self.api.call(
                "POST",
                f"{self.base}/upload/youtube/v3/thumbnails/set",
                params={"videoId": video_id, "uploadType": "media"},
                content=image,
                headers={"Content-Type": kind},
            )
        except (PlatformRefused, Unreachable) as exc:
            log.warning("YouTube kept its own thumbnail for %s: %s", video_id, exc)

    async def _offset(self, record: Publication) -> int | _Video:
        """What the server holds: the next byte to send, or the video when the upload is complete."""
        reply = await self.api.call(
            "PUT",
            record.session or "",
            content=b"",
            headers={"Content-Range": f"bytes */{record.total_bytes}"},
            expect=(200, 201, 308),
        )
        return self._where(reply)

    @staticmethod
    def _where(reply: Reply) -> int | _Video:
        if reply.status != 308:
            return reply.parsed(_Video) or _Video()
        held = reply.headers.get("range", "")  # bytes=0-N; none: nothing held yet
        try:
            return int(held.rsplit("-", 1)[1]) + 1 if held else 0
        except (IndexError, ValueError):
            raise PlatformRefused(f"YouTube reported a range it holds that does not read: {held[:40]!r}") from None


def _thumbnail_bytes(path: Path) -> tuple[bytes, str]:
    """The PNG as it is, or a JPEG of it when it is over YouTube's 2 MB thumbnail limit."""
    data = path.read_bytes()
    if len(data) <= THUMBNAIL_MAX_BYTES:
        return data, "image/png"
    out = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue(), "image/jpeg"


def env_account(settings: Settings) -> Account | None:
    if given(settings.youtube_refresh_token) is None:
        return None
    return Account(
        platform="youtube",
        name="from STORYBOT_YOUTUBE_REFRESH_TOKEN",
        scopes=SCOPES,
        refresh_token=settings.youtube_refresh_token,
        client_id=settings.youtube_client_id,
        client_secret=settings.youtube_client_secret,
        source="env",
    )


async def add_account(
    settings: Settings,
    client: httpx.AsyncClient,
    say: Callable[[str], None],
    client_id: str | None = None,
    client_secret: str | None = None,
    open_browser: bool = True,
    wait: float = 300.0,
    **_: object,
) -> Account:
    """The installed-app flow: a loopback redirect on 127.0.0.1, PKCE, the code exchanged for a
    refresh token, the channel read back for its name."""
    cid = client_id or settings.youtube_client_id
    secret = client_secret or (
        settings.youtube_client_secret.get_secret_value() if settings.youtube_client_secret else None
    )
    if not cid or not secret:
        raise BadInput(
            "YouTube needs an OAuth client: set STORYBOT_YOUTUBE_CLIENT_ID and STORYBOT_YOUTUBE_CLIENT_SECRET "
            "(a Desktop app client from the Google Cloud console)"
        )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    got: asyncio.Future[dict[str, list[str]]] = asyncio.get_running_loop().create_future()

    async def on_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
            query = parse_qs(urlsplit(line.split(" ")[1] if " " in line else "/").query)
            ok = query.get("state") == [state]
            if ok and not got.done():
                got.set_result(query)
            text = "storybot: done, you can close this tab." if ok else "storybot: this link is not the one it opened."
            writer.write(
                f"HTTP/1.1 {200 if ok else 400} OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                f"Content-Length: {len(text)}\r\n\r\n{text}".encode()
            )
            await writer.drain()
        except (TimeoutError, OSError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_request, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redirect = f"http://127.0.0.1:{port}"
    url = (
        AUTH_URL
        + "?"
        + urlencode(
            {
                "client_id": cid,
                "redirect_uri": redirect,
                "response_type": "code",
                "scope": " ".join(SCOPES),
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "access_type": "offline",
                "prompt": "consent",
            }
        )
    )
    say(f"Open this address to let storybot upload to your channel (waiting {wait:.0f} s):\n{url}")
    if open_browser:
        webbrowser.open(url)
    try:
        async with server:
            query = await asyncio.wait_for(got, wait)
    except TimeoutError:
        raise BadInput("no answer from the browser in time; nothing was saved") from None
    if "code" not in query:
        raise BadInput(
            f"Google did not grant access ({text_of(query.get('error', ['no code'])[0])}); nothing was saved"
        )
    token = await exchange(
        settings,
        client,
        {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "client_id": cid,
            "client_secret": secret,
            "redirect_uri": redirect,
            "code_verifier": verifier,
        },
        [secret],
    )
    if token.refresh_token is None:
        raise PlatformRefused("Google gave no refresh token; remove storybot's access in your Google account and retry")
    account = Account(
        platform="youtube",
        name="",
        scopes=token.scope.split() or SCOPES,
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        client_id=cid,
        client_secret=SecretStr(secret),
        expires_at=time.time() + token.expires_in,
    )
    channel = await channel_of(settings, account, client)
    return account.model_copy(update={"name": channel[1], "user_id": channel[0]})


async def channel_of(settings: Settings, account: Account, client: httpx.AsyncClient) -> tuple[str, str]:
    """(channel id, title) of the account's own channel."""
    api = Api(client, "YouTube", GoogleAuth(settings, account, client), [settings.youtube_base_url], describe, 2)
    reply = await api.call(
        "GET",
        f"{settings.youtube_base_url.rstrip('/')}/youtube/v3/channels",
        params={"part": "snippet", "mine": "true"},
    )
    channels = reply.parsed(_Channels)
    if channels is None or not channels.items:
        raise PlatformRefused("this Google account has no YouTube channel to upload to")
    return channels.items[0].id, channels.items[0].snippet.title or "YouTube channel"


ROW = PlatformRow(
    name="youtube",
    label="YouTube",
    meta_key="youtube_shorts",
    plan=plan,
    open=YouTube,
    add_account=add_account,
    env_account=env_account,
    remote_label="video id",
)
