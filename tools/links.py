"""Signed, expiring links to a job's files and page, shared by every front end that hands them out.

A Discord upload is capped (10 MiB by default), so a master over the limit is offered as a link:
`{STORYBOT_PUBLIC_URL}/files/{job id}/{name}?expires={unix time}&sig={HMAC}`; the service's job page
is `/jobs/{job id}?expires=...&sig=...` (signed for the name `page`). The signature covers the job id,
the name and the expiry, under `STORYBOT_LINK_SECRET` (generated once into the data folder with mode
0600 when unset). The HTTP side (service/files.py) serves only names in `ARTIFACTS`, looked up in the
job's own record, and answers anything wrong with the same bare 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from urllib.parse import quote

from tools.errors import BadInput
from tools.media.outputs import Artifacts
from tools.net.redact import LINK_SECRET_FILE
from tools.settings import Settings
from tools.storage import Storage, get_storage, is_remote, job_key

PAGE = "page"  # the name a job page's signature covers
JOB_ID = r"[0-9a-f]{12}"  # graph.store.JOB_ID_PATTERN
# the names a link may carry, each the artifact of the job record it serves
ARTIFACTS: dict[str, Callable[[Artifacts], str]] = {
    "final.mp4": lambda a: a.final_video,
    "subtitles.srt": lambda a: a.subtitles_srt,
    "subtitles.vtt": lambda a: a.subtitles_vtt,
    "thumbnail.png": lambda a: a.thumbnail,
}


class Links:
    """Makes and checks signed links; knows nothing about files. With remote storage
    (`STORYBOT_STORAGE_URL`) a file's link is the store's presigned URL, with the same expiry."""

    def __init__(self, secret: bytes, public_url: str, ttl: int, storage: Storage | None = None) -> None:
        self.secret, self.base, self.ttl = secret, public_url.rstrip("/"), ttl
        self.storage = storage if storage is not None and storage.remote else None

    def _sign(self, job_id: str, name: str, expires: int) -> str:
        digest = hmac.new(self.secret, f"{job_id}/{name}/{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def url(self, job_id: str, name: str, expires: int | None = None) -> str:
        expires = self.expiry() if expires is None else expires
        if self.storage is not None and name in ARTIFACTS:
            presigned = self.storage.presign(job_key(job_id, name), expires - int(time.time()))
            if presigned:
                return presigned
        return f"{self.base}/files/{job_id}/{quote(name)}?{self.query(job_id, name, expires)}"

    def page(self, job_id: str, expires: int | None = None) -> str:
        """The job page, whose holder may see the job and answer its approvals."""
        return f"{self.base}/jobs/{job_id}?{self.query(job_id, PAGE, expires)}"

    def query(self, job_id: str, name: str, expires: int | None = None) -> str:
        expires = self.expiry() if expires is None else expires
        return f"expires={expires}&sig={self._sign(job_id, name, expires)}"

    def expiry(self, now: float | None = None) -> int:
        return int(time.time() if now is None else now) + self.ttl

    def valid(self, job_id: str, name: str, expires: str, sig: str, now: float | None = None) -> bool:
        # ASCII digits only: `str.isdigit` also takes "²", which `int` refuses (a 500, not the bare 404)
        if not re.fullmatch(JOB_ID, job_id) or name not in (*ARTIFACTS, PAGE):
            return False
        if not re.fullmatch(r"[0-9]{1,12}", expires):
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self._sign(job_id, name, int(expires)).encode(), sig.encode("utf-8", "replace"))


def links_storage(settings: Settings) -> Storage | None:
    """The store whose presigned URLs a `Links` hands out: the remote one, else None (HMAC links)."""
    return get_storage(settings) if is_remote(settings) else None


MIN_SECRET_BYTES = 16  # an HMAC key shorter than this can be guessed; a generated one is 43
MAX_SECRET_BYTES = 4096  # the generated file holds 43: anything much larger is not ours


def link_secret(settings: Settings) -> bytes:
    """`STORYBOT_LINK_SECRET`, else the one generated on first use into the data folder (owner-only).
    With a shared database (STORYBOT_DATABASE_URL) it must be configured: replicas on several machines
    would each generate their own, and one's links would not open on another. A short configured
    secret, and a file that is not a small owner-only regular file (a symlink to /dev/zero, a FIFO, one
    others can read), are refused in one line: nothing unbounded is read."""
    if settings.link_secret is None or not settings.link_secret.get_secret_value():
        if settings.database_url is not None:
            raise BadInput(
                "STORYBOT_LINK_SECRET is not set: with a shared database (STORYBOT_DATABASE_URL) every bot and "
                "service replica must sign links with the same secret; set it to one value everywhere (e.g. the "
                "output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
    else:
        given = settings.link_secret.get_secret_value().encode()
        if len(given) < MIN_SECRET_BYTES:
            raise BadInput(
                f"STORYBOT_LINK_SECRET is {len(given)} bytes; use at least {MIN_SECRET_BYTES} (e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or unset it to have one generated"
            )
        return given
    path = settings.data_dir / LINK_SECRET_FILE
    if not os.path.lexists(path):
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
    secret = _read_secret_file(path)
    if len(secret) < MIN_SECRET_BYTES:
        raise BadInput(f"{path} holds no usable link secret: delete it to have a new one made")
    return secret


def _read_secret_file(path: os.PathLike[str]) -> bytes:
    """The generated secret, opened without following links or waiting on a FIFO, checked before reading."""
    again = "delete it to have a new one made (links signed with it stop working)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        why = "is a symbolic link" if os.path.islink(path) else f"cannot be read ({exc.strerror})"
        raise BadInput(f"the link secret {path} {why}: {again}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"the link secret {path} is not a regular file: {again}")
        if info.st_size > MAX_SECRET_BYTES:
            raise BadInput(f"the link secret {path} is {info.st_size} bytes, not a generated secret: {again}")
        if info.st_mode & 0o077 or info.st_uid != os.getuid():
            raise BadInput(
                f"the link secret {path} can be read by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"`chmod 600` it if no one else could have read it, or {again}"
            )
        return file.read(MAX_SECRET_BYTES + 1).strip()
