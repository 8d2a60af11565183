"""The one way the platform clients talk HTTP: bounded replies, Retry-After-aware retries, and
credentials that go only where they belong.

An `Api` attaches its bearer (or other) authorisation only to URLs on the origins it was given (the
configured base URLs); a session or upload URL a reply names elsewhere is refused before anything is
sent with a token, and an unauthenticated upload URL must pass `tools.net.guard` (public https, or a
configured origin). A 401 refreshes the token once (where the site has a refresh flow); 429 and 5xx
are retried with the server's Retry-After; any other error is the site's refusal, in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from tools.errors import StorybotError
from tools.net.bounded import TooLarge, read_bounded
from tools.net.guard import Guard, RefusedURL, Target, origin, parse
from tools.net.redact import one_line, redact
from tools.net.retry import retry_after, retrying, transient_http
from tools.publish.base import PlatformRefused, Progress, Publication, Save

BACKOFF = 1.0  # seconds before the first retry of a network fault (doubled each time, with jitter)
MAX_WAIT = 300.0  # a Retry-After longer than this is reported instead of waited out
TIMEOUT = httpx.Timeout(60.0, connect=15.0)


class Unreachable(StorybotError):
    """The site kept failing (network, 5xx, 429) through every retry: the upload resumes next time."""


class Auth(Protocol):
    async def headers(self) -> dict[str, str]:
        """The authorisation headers for the next request (refreshed first when about to expire)."""
        ...

    async def refresh(self) -> bool:
        """After a 401: get a new token; False when the site has no way to (the caller reports it)."""
        ...

    def secrets(self) -> list[str]:
        """Every token this auth holds, for redaction."""
        ...


class Reply:
    """A finished reply: status, headers and the (bounded) body."""

    def __init__(self, response: httpx.Response, body: bytes) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.body = body

    def parsed(self, model: type[M]) -> M | None:
        """The body as `model`, or None when it is not that (an HTML error page, another shape)."""
        try:
            return model.model_validate_json(self.body or b"{}")
        except ValidationError:
            return None

    def text(self, limit: int = 200) -> str:
        return self.body[:limit].decode("utf-8", "replace")


M = TypeVar("M", bound=BaseModel)
Describe = Callable[[Reply], str]  # a site's error body in a few words


class Api:
    def __init__(
        self,
        client: httpx.AsyncClient,
        label: str,
        auth: Auth,
        origins: Iterable[str],
        describe: Describe,
        retries: int,
        refused: Callable[[Reply], bool] | None = None,
    ) -> None:
        self.client, self.label, self.auth, self.describe, self.retries = client, label, auth, describe, retries
        self.origins = frozenset(origin(o) for o in origins)
        self.guard = Guard(self.origins)
        self.refused = refused or (lambda reply: False)  # a 429 or 5xx that is really a refusal (quota)

    def own(self, url: str) -> bool:
        """Whether `url` is on one of the configured origins (where the token may go)."""
        try:
            return origin(url) in self.origins
        except RefusedURL:
            return False

    async def call(
        self,
        method: str,
        url: str,
        *,
        expect: Iterable[int] = (200, 201),
        authed: bool = True,
        retry: bool = True,
        headers: Mapping[str, str] | None = None,
        **send: Any,
    ) -> Reply:
        """One request; `expect`ed statuses come back, transient faults are retried (unless `retry` is
        false: an upload chunk is re-planned from the site's offset instead), the rest is refused."""
        wanted = frozenset(expect)
        if authed and not self.own(url):
            raise PlatformRefused(f"{self.label} named an upload address outside its configured origin; not sent")
        try:  # an address a reply named is pinned to the public address checked (no token goes there)
            target = await self.guard.check(url) if not authed else Target(parse(url))
        except RefusedURL as exc:
            raise PlatformRefused(f"{self.label} named an upload address storybot will not use ({exc})") from None
        refreshed = False

        async def attempt() -> Reply:
            nonlocal refreshed
            while True:
                extra = await self.auth.headers() if authed else {}
                request = self.client.build_request(
                    method,
                    target.url,
                    headers={**target.headers, **(headers or {}), **extra},
                    extensions=target.extensions,
                    **send,
                )
                response = await self.client.send(request, stream=True)
                try:
                    body = await read_bounded(response)
                except TooLarge as exc:
                    raise PlatformRefused(f"{self.label} sent {exc}") from None
                finally:
                    await response.aclose()
                reply = Reply(response, body)
                if reply.status in wanted:
                    return reply
                if reply.status == 401 and authed and not refreshed:
                    refreshed = True
                    if await self.auth.refresh():
                        continue
                if (reply.status == 429 or reply.status >= 500) and not self.refused(reply):
                    raise httpx.HTTPStatusError(self._words(reply), request=request, response=response)
                raise PlatformRefused(self._words(reply), reply.status)

        if not retry:  # the caller's own loop reads the raw fault (an upload re-plans from the site's offset)
            return await attempt()
        try:
            return await retrying(
                attempt, retries=self.retries, retryable=transient_http, backoff=BACKOFF, max_wait=MAX_WAIT
            )
        except httpx.HTTPStatusError as exc:
            wait = retry_after(exc.response.headers)
            later = f" (it asked to wait {wait:.0f} s)" if wait and wait > MAX_WAIT else ""
            raise Unreachable(self._clean(f"{exc}{later}; run the same command later to resume")) from None
        except httpx.TransportError as exc:
            raise Unreachable(
                self._clean(
                    f"{self.label} could not be reached ({type(exc).__name__}: {exc});"
                    " run the same command later to resume"
                )
            ) from None

    def _words(self, reply: Reply) -> str:
        return self._clean(f"{self.label} refused ({reply.status}): {self.describe(reply)}")

    def _clean(self, text: str) -> str:
        return redact(" ".join(text.split()), extra=self.auth.secrets())[:400]


class UploadFaults:
    """Counts one upload's network faults in a row: past `retries` the upload stops, saved and
    resumable, in one line naming the site; below it, waits (the server's Retry-After first)."""

    def __init__(self, site: str, retries: int) -> None:
        self.site, self.retries, self.count = site, retries, 0

    async def after(self, exc: Exception, record: Publication, save: Save) -> None:
        self.count += 1
        if self.count > self.retries:
            save(record)
            raise Unreachable(
                f"{self.site} kept failing mid-upload ({type(exc).__name__}); run the same command later to resume"
            ) from None
        await asyncio.sleep(fault_wait(exc, self.count - 1))

    def clear(self) -> None:
        self.count = 0


async def report(progress: Progress, record: Publication) -> None:
    """Tell a front end how the upload stands (its callback may be sync or async)."""
    result = progress(record)
    if result is not None:
        await result


def fault_wait(exc: Exception, attempt: int) -> float:
    """Seconds to wait before re-planning an upload after a fault (the server's Retry-After first)."""
    if isinstance(exc, httpx.HTTPStatusError):
        asked = retry_after(exc.response.headers)
        if asked is not None:
            return min(asked, MAX_WAIT)
    return BACKOFF * 2**attempt


def text_of(value: object, limit: int = 200) -> str:
    """A site's error words, flattened to one short line."""
    return one_line(Exception(str(value)), limit=limit)
