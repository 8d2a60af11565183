"""The one retry loop of the clients that talk to services: exponential backoff with jitter, or the
wait the server asked for.

Jitter keeps clients that failed together from retrying together. A server's Retry-After (delta
seconds or an HTTP date) replaces the backoff; one asking for longer than the caller will wait is
taken at its word, and the error is raised. Each caller keeps its own policy (what is retried, how
often, how errors read); this loop only decides when to try again. Our own loop rather than
tenacity's: the Retry-After rule (wait it, or give up when it is too long) is one line here and a
custom wait, retry and stop there.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

T = TypeVar("T")


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    retryable: Callable[[Exception], bool],
    backoff: float,
    jitter: tuple[float, float] = (1.0, 1.25),
    max_wait: float = math.inf,
) -> T:
    """`attempt()`, tried up to `retries` more times while `retryable(error)` says so; the last error
    is raised as it is, for the caller to word.

    Waits `backoff` seconds times 2**n times a random factor in `jitter` before retry n + 1, or the
    Retry-After of an httpx status error; a Retry-After over `max_wait` raises at once.
    """
    for n in range(retries):
        try:
            return await attempt()
        except Exception as exc:
            asked = retry_after(exc.response.headers) if isinstance(exc, httpx.HTTPStatusError) else None
            if not retryable(exc) or (asked or 0) > max_wait:
                raise
        await asyncio.sleep(asked if asked is not None else backoff * 2**n * random.uniform(*jitter))
    return await attempt()


def transient_http(exc: Exception) -> bool:
    """A fault worth another try: 429, 5xx, or the network (connection errors, httpx timeouts)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    # a URL of a scheme httpx does not speak (file://, ftp://) fails the same way every time
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a Retry-After header asks for (delta seconds or an HTTP date, never below 0); None
    when there is none or it does not parse."""
    value = headers.get("retry-after", "").strip()
    if re.fullmatch(r"[0-9]{1,9}", value):  # ASCII only: "²".isdigit() is true and float("²") fails
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def network_failure(exc: BaseException) -> str:
    """A network fault in words that say what happened: a timeout is 'no answer in time', but a refused
    connection, a cut reply or a URL of another scheme is not (the message never carries the URL)."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return f"{type(exc).__name__} (no answer in time)"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the URL is not http or https"
    if isinstance(exc, httpx.ConnectError):
        return "ConnectError (could not connect)"
    if isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)):
        return f"{type(exc).__name__} (the connection broke off)"
    return type(exc).__name__
