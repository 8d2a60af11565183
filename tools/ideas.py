"""Idea sources: the request, a local seeds file, Reddit's public JSON listings and RSS/Atom feeds.

Online sources are optional inspiration, so a listing or feed that is down, slow, huge or malformed
is logged and skipped, never fatal. Each is read over httpx with the configured user agent, a hard
cap (1 MB), a deadline, at most one request a second per host (Reddit asks unauthenticated clients
for little more), and a couple of retries on 429 (after its Retry-After), 5xx and network errors.
Feeds are parsed by feedparser (strict XML first; a feed only its loose parser could read is
skipped: expat refuses entity-expansion bombs, external entities are off). Items carry their
headline as the idea, their own text as inspiration, and their link; items seen by an earlier job
are dropped when the caller passes what it has seen (the job store, in SQLite).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx

from tools.llm.hygiene import plain_text
from tools.llm.schemas import IdeaSource
from tools.net.bounded import read_bounded
from tools.net.retry import retrying, transient_http

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 1_000_000
MAX_SEEDS_BYTES = 1_000_000
FEED_TIMEOUT = httpx.Timeout(10.0, connect=5.0)  # per read/connect, for the client made here
FEED_DEADLINE = 20.0  # whole download, against servers that trickle bytes
MAX_TEXT_CHARS = 300
HOST_INTERVAL = 1.0  # seconds between two requests to one host
RETRIES = 2  # more tries of a source on 429, 5xx and network errors, within FEED_DEADLINE
BACKOFF = 0.5  # seconds before the first retry without Retry-After, doubled each time, plus jitter
MAX_RETRY_AFTER = 10.0  # a source that asks for a longer wait is skipped: it is only inspiration
DEFAULT_USER_AGENT = "storybot/0.1 (short story videos)"
REDDIT = "https://www.reddit.com"
_SUBREDDIT = re.compile(r"[A-Za-z0-9_]{2,21}")
_TAGS = re.compile(r"<[^>]*>")


class HostPacer:
    """At most one request per `interval` seconds to each host, however many run at once."""

    def __init__(self, interval: float = HOST_INTERVAL) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, url: str) -> None:
        host = urlsplit(url).netloc
        async with self._locks.setdefault(host, asyncio.Lock()):
            delay = self._next.get(host, 0.0) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next[host] = time.monotonic() + self.interval


def source_key(source: IdeaSource) -> str:
    """What makes two sources the same: the link, else the words (case and punctuation aside)."""
    return source.url or re.sub(r"\W+", " ", source.text.casefold()).strip()


async def collect_sources(
    request: str,
    seeds_file: Path | None,
    feeds: list[str],
    client: httpx.AsyncClient | None = None,
    limit: int = 10,
    *,
    subreddits: Iterable[str] = (),
    reddit_url: str = REDDIT,
    user_agent: str = DEFAULT_USER_AGENT,
    pacer: HostPacer | None = None,
    seen: Callable[[list[str]], set[str]] | None = None,
) -> list[IdeaSource]:
    """The request first, then seed lines, then online items taken in turn from each source.

    Texts are cleaned, deduplicated (case and punctuation aside) and capped at `limit`; `seen`
    names the keys (`source_key`) of online items used before, which are left out.
    """
    found = [IdeaSource(kind="request", text=text) for text in [plain_text(request, MAX_TEXT_CHARS)] if text]
    if seeds_file is not None:
        found = _unique([*found, *(IdeaSource(kind="seed", text=line) for line in _seed_lines(seeds_file))])
    urls = [*(reddit_listing(reddit_url, name) for name in subreddits), *feeds]
    if urls and len(found) < limit:
        pace = pacer or HostPacer()
        async with _client(client, user_agent) as http:
            per_source = await asyncio.gather(*(_online_items(http, url, pace) for url in urls))
        online = [item for round_ in itertools.zip_longest(*per_source) for item in round_ if item]
        old = seen([source_key(s) for s in online]) if seen and online else set()
        found += [s for s in online if source_key(s) not in old]
    return _unique(found)[:limit]


def reddit_listing(base: str, subreddit: str) -> str:
    """The public JSON listing of a subreddit's top posts of the week; the name cannot change the path."""
    if not _SUBREDDIT.fullmatch(subreddit):
        raise ValueError(f"{subreddit!r} is not a subreddit name")
    return f"{base.rstrip('/')}/r/{subreddit}/top.json?t=week&limit=25&raw_json=1"


@asynccontextmanager
async def _client(given: httpx.AsyncClient | None, user_agent: str) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's client (its timeouts apply), or one of our own, closed afterwards."""
    if given is not None:
        yield given
        return
    async with httpx.AsyncClient(
        timeout=FEED_TIMEOUT, follow_redirects=True, headers={"User-Agent": user_agent}
    ) as own:
        yield own


def _seed_lines(path: Path) -> list[str]:
    """Non-blank, non-comment lines of a UTF-8 text file; a missing file has none."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SEEDS_BYTES)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("seeds file %s skipped: %s", path, exc.strerror or type(exc).__name__)
        return []
    lines = (
        plain_text(line, MAX_TEXT_CHARS)
        for line in data.decode("utf-8", "replace").splitlines()
        if not line.lstrip().startswith("#")
    )
    return [line for line in lines if line]


async def _online_items(client: httpx.AsyncClient, url: str, pacer: HostPacer) -> list[IdeaSource]:
    shown = _redacted(url)
    if urlsplit(url).scheme not in ("http", "https"):
        log.warning("source %s skipped: only http and https are read", shown)
        return []
    try:
        async with asyncio.timeout(FEED_DEADLINE):  # the whole budget, retries included
            body = await _fetch(client, url, pacer)
        items = parse_listing(body) if url.split("?", 1)[0].endswith(".json") else parse_feed(body)
    except httpx.HTTPStatusError as exc:  # its message repeats the full URL
        log.warning("source %s skipped: HTTP %d", shown, exc.response.status_code)
        return []
    except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, ValueError) as exc:
        reason = type(exc).__name__ + (f": {str(exc)[:200]}" if str(exc) else "")
        log.warning("source %s skipped: %s", shown, reason)
        return []
    log.info("source %s: %d items", shown, len(items))
    return items


async def _fetch(client: httpx.AsyncClient, url: str, pacer: HostPacer) -> bytes:
    """The body, after up to RETRIES more tries on 429, 5xx and network errors: after the server's
    Retry-After when it gives one (at most MAX_RETRY_AFTER), else exponential backoff with jitter."""

    async def once() -> bytes:
        await pacer.wait(url)
        return await _download(client, url)

    return await retrying(once, retries=RETRIES, retryable=transient_http, backoff=BACKOFF, max_wait=MAX_RETRY_AFTER)


async def _download(client: httpx.AsyncClient, url: str) -> bytes:
    """The body, refusing more than MAX_FEED_BYTES (after decompression) whether or not the server says so."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        return await read_bounded(response, MAX_FEED_BYTES)


def parse_feed(data: bytes) -> list[IdeaSource]:
    """The items of an RSS 0.9x/1.0/2.0 or Atom feed, in feed order; ValueError if it is not a feed."""
    parsed = feedparser.parse(data, sanitize_html=True, resolve_relative_uris=False)
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, feedparser.CharacterEncodingOverride):
        raise ValueError(f"not a well-formed feed ({type(problem).__name__}: {str(problem)[:120]})")
    items = []
    for entry in parsed.entries:
        title = _text(entry.get("title", ""))
        if title:
            link = entry.get("link") or ""
            items.append(
                IdeaSource(
                    kind="rss",
                    text=title,
                    url=link if _web(link) else None,
                    inspiration=_text(entry.get("summary", "")),
                )
            )
    return items


def parse_listing(data: bytes) -> list[IdeaSource]:
    """The posts of a Reddit JSON listing (`{"data": {"children": [{"data": {...}}]}}`), without
    pinned and over-18 posts; ValueError if it is not one."""
    try:
        children = json.loads(data)["data"]["children"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a Reddit listing ({type(exc).__name__})") from None
    items = []
    for child in children if isinstance(children, list) else []:
        post: dict[str, Any] = child.get("data", {}) if isinstance(child, dict) else {}
        if post.get("over_18") or post.get("stickied"):
            continue
        title = _text(str(post.get("title", "")))
        permalink = str(post.get("permalink", ""))
        link = f"https://www.reddit.com{permalink}" if permalink.startswith("/r/") else None
        if title:
            items.append(
                IdeaSource(kind="reddit", text=title, url=link, inspiration=_text(str(post.get("selftext", ""))))
            )
    return items


def _text(value: str) -> str:
    return plain_text(_TAGS.sub(" ", html.unescape(value)), MAX_TEXT_CHARS)


def _web(link: str) -> bool:
    return urlsplit(link).scheme in ("http", "https")


def _unique(sources: list[IdeaSource]) -> list[IdeaSource]:
    seen: set[str] = set()
    out = []
    for source in sources:
        key = re.sub(r"\W+", " ", source.text.casefold()).strip()  # by text: a link may repeat a seed
        if key and key not in seen:
            seen.add(key)
            out.append(source)
    return out


def _redacted(url: str) -> str:
    """Scheme, host and path: feed URLs can carry tokens in the query or user info."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"[:200] if parts.scheme else url[:80]
