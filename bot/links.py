"""Signed, expiring links to a finished job's full-quality files, and the small HTTP server behind them.

A Discord upload is capped (10 MiB by default), so a master over the limit is offered as a link:
`{STORYBOT_PUBLIC_URL}/files/{job id}/{name}?expires={unix time}&sig={HMAC}`. The signature covers the
job id, the name and the expiry, under `STORYBOT_LINK_SECRET` (generated once into the data folder with
mode 0600 when unset). Nothing from the URL reaches the filesystem except through a job id and a name from
`ARTIFACTS`, looked up in the job's own record; only finished jobs are served. Anything wrong (an unknown
name, a bad or expired signature, an unfinished job, a missing file) is the same bare 404: no detail, no
listing. aiohttp's `FileResponse` answers range requests (206), so players can seek.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from graph.api import (
    LINK_SECRET_FILE,
    Artifacts,
    BadInput,
    JobRecord,
    JobService,
    Settings,
    StorybotError,
    valid_job_id,
)

log = logging.getLogger("storybot.bot")
# the names a link may carry, each the artifact of the job record it serves
ARTIFACTS: dict[str, Callable[[Artifacts], str]] = {
    "final.mp4": lambda a: a.final_video,
    "subtitles.srt": lambda a: a.subtitles_srt,
    "subtitles.vtt": lambda a: a.subtitles_vtt,
    "thumbnail.png": lambda a: a.thumbnail,
}


class Links:
    """Makes and checks signed links; knows nothing about files."""

    def __init__(self, secret: bytes, public_url: str, ttl: int) -> None:
        self.secret, self.base, self.ttl = secret, public_url.rstrip("/"), ttl

    def _sign(self, job_id: str, name: str, expires: int) -> str:
        digest = hmac.new(self.secret, f"{job_id}/{name}/{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def url(self, job_id: str, name: str, expires: int | None = None) -> str:
        expires = self.expiry() if expires is None else expires
        return f"{self.base}/files/{job_id}/{quote(name)}?expires={expires}&sig={self._sign(job_id, name, expires)}"

    def expiry(self, now: float | None = None) -> int:
        return int(time.time() if now is None else now) + self.ttl

    def valid(self, job_id: str, name: str, expires: str, sig: str, now: float | None = None) -> bool:
        # ASCII digits only: `str.isdigit` also takes "²", which `int` refuses (a 500, not the bare 404)
        if not valid_job_id(job_id) or name not in ARTIFACTS or not re.fullmatch(r"[0-9]{1,12}", expires):
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self._sign(job_id, name, int(expires)).encode(), sig.encode("utf-8", "replace"))


def link_secret(settings: Settings) -> bytes:
    """`STORYBOT_LINK_SECRET`, else the one generated on first use into the data folder (owner-only)."""
    if settings.link_secret is not None and settings.link_secret.get_secret_value():
        return settings.link_secret.get_secret_value().encode()
    path = settings.data_dir / LINK_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{LINK_SECRET_FILE}.{os.getpid()}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_urlsafe(32).encode())
        try:
            os.link(scratch, path)  # whole or not at all; a second bot starting at once keeps the first key
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    secret = path.read_bytes().strip()
    if len(secret) < 16:
        raise BadInput(f"{path} holds no usable link secret: delete it to have a new one made")
    return secret


def job_links(links: Links, record: JobRecord) -> list[tuple[str, str]]:
    """(name, signed URL) of each file a finished job has that links may serve."""
    if record.status != "done" or record.result is None:
        return []
    return [(name, links.url(record.job_id, name)) for name in ARTIFACTS]


def links_from(settings: Settings) -> Links | None:
    """The link maker, when the bot has a public address to put in links."""
    if not settings.public_url:
        return None
    return Links(link_secret(settings), settings.public_url, settings.link_ttl)


class LinkServer:
    """Serves the files of finished jobs under signed links (`storybot bot` runs one beside the client)."""

    def __init__(self, links: Links, service: JobService, settings: Settings) -> None:
        self.links, self.service, self.settings = links, service, settings
        self.app = web.Application(middlewares=[_bare_404])
        self.app.router.add_get("/files/{job_id}/{name}", self._file)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        host, port = self.settings.http_host, self.settings.http_port
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as exc:
            await self.close()
            raise StorybotError(
                f"cannot serve links on {host}:{port} (STORYBOT_HTTP_HOST/PORT): {exc.strerror or exc}"
            ) from None
        log.info("serving signed links on %s:%s", host, self.port)

    @property
    def port(self) -> int:
        """The port bound (STORYBOT_HTTP_PORT, or the one the system chose for 0)."""
        addresses = self._runner.addresses if self._runner is not None else []
        return int(addresses[0][1]) if addresses else self.settings.http_port

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def path(self, job_id: str, name: str) -> Path | None:
        """The file a valid link names: an artifact of a finished job, inside the data folder."""
        try:
            record = self.service.get(job_id)
        except BadInput:
            return None
        if record.status != "done" or record.result is None:
            return None
        path = Path(ARTIFACTS[name](record.result.artifacts)).resolve()
        if not path.is_file() or not path.is_relative_to(self.settings.data_dir.resolve()):
            return None
        return path

    async def _file(self, request: web.Request) -> web.StreamResponse:
        job_id, name = request.match_info["job_id"], request.match_info["name"]
        expires, sig = request.query.get("expires", ""), request.query.get("sig", "")
        path = self.path(job_id, name) if self.links.valid(job_id, name, expires, sig) else None
        if path is None:
            return web.Response(status=404, text="Not found")
        return web.FileResponse(
            path,
            headers={
                "Cache-Control": "private, max-age=3600",
                "Content-Disposition": f'inline; filename="storybot-{job_id}-{name}"',
                "X-Content-Type-Options": "nosniff",
            },
        )


@web.middleware
async def _bare_404(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal aiohttp would explain (no route, wrong method) is the same bare 404."""
    try:
        return await handler(request)
    except web.HTTPException:
        return web.Response(status=404, text="Not found")
