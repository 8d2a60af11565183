"""Idea sources: the request, a local seeds file, and headlines from RSS and Atom feeds.

Feeds are optional inspiration, so a feed that is down, slow, huge or not XML is logged and
skipped, never fatal. Each feed is read with a hard cap (1 MB) and a deadline, and parsed with the
standard library: expat (2.4.1 and later) refuses entity-expansion bombs and ElementTree never
fetches external entities.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tools.llm.hygiene import plain_text
from tools.llm.schemas import IdeaSource

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 1_000_000
MAX_SEEDS_BYTES = 1_000_000
FEED_TIMEOUT = httpx.Timeout(10.0, connect=5.0)  # per read/connect, for the client made here
FEED_DEADLINE = 20.0  # whole download, against servers that trickle bytes
MAX_TEXT_CHARS = 300


async def collect_sources(request: str, seeds_file: Path | None, feeds: list[str],
                          client: httpx.AsyncClient | None = None, limit: int = 10) -> list[IdeaSource]:
    """The request first, then seed lines, then feed headlines taken in turn from each feed.

    Texts are cleaned, deduplicated (case and punctuation aside) and capped at `limit`.
    """
    found = [IdeaSource(kind="request", text=text) for text in [plain_text(request, MAX_TEXT_CHARS)] if text]
    if seeds_file is not None:
        found = _unique([*found, *(IdeaSource(kind="seed", text=line) for line in _seed_lines(seeds_file))])
    if feeds and len(found) < limit:
        async with _client(client) as http:
            per_feed = await asyncio.gather(*(_feed_items(http, url) for url in feeds))
        found += [item for round_ in itertools.zip_longest(*per_feed) for item in round_ if item]
    return _unique(found)[:limit]


@asynccontextmanager
async def _client(given: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's client (its timeouts apply), or one of our own, closed afterwards."""
    if given is not None:
        yield given
        return
    async with httpx.AsyncClient(timeout=FEED_TIMEOUT, follow_redirects=True,
                                 headers={"User-Agent": "storybot (+ideas)"}) as own:
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
    lines = (plain_text(line, MAX_TEXT_CHARS) for line in data.decode("utf-8", "replace").splitlines()
             if not line.lstrip().startswith("#"))
    return [line for line in lines if line]


async def _feed_items(client: httpx.AsyncClient, url: str) -> list[IdeaSource]:
    shown = _redacted(url)
    if urlsplit(url).scheme not in ("http", "https"):
        log.warning("feed %s skipped: only http and https feeds are read", shown)
        return []
    try:
        async with asyncio.timeout(FEED_DEADLINE):
            body = await _download(client, url)
        items = [IdeaSource(kind="rss", text=title, url=link) for title, link in parse_feed(body)]
    except httpx.HTTPStatusError as exc:  # its message repeats the full URL
        log.warning("feed %s skipped: HTTP %d", shown, exc.response.status_code)
        return []
    except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, ValueError, ET.ParseError) as exc:
        reason = type(exc).__name__ + (f": {str(exc)[:200]}" if str(exc) else "")
        log.warning("feed %s skipped: %s", shown, reason)
        return []
    log.info("feed %s: %d items", shown, len(items))
    return items


async def _download(client: httpx.AsyncClient, url: str) -> bytes:
    """The body, refusing more than MAX_FEED_BYTES whether or not the server says so upfront."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FEED_BYTES:
            raise ValueError(f"{declared} bytes is over the {MAX_FEED_BYTES}-byte limit")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_FEED_BYTES:
                raise ValueError(f"more than {MAX_FEED_BYTES} bytes")
        return bytes(body)


def parse_feed(data: bytes) -> list[tuple[str, str | None]]:
    """(title, link) of each item of an RSS 0.9x/1.0/2.0 or Atom feed, in feed order.

    Matching by local name keeps every namespace flavour working; titles may hold escaped HTML.
    """
    root = ET.fromstring(data)
    items = []
    for element in root.iter():
        if _local(element.tag) not in ("item", "entry"):
            continue
        title, link = "", None
        for child in element:
            name = _local(child.tag)
            if name == "title":
                title = plain_text(html.unescape("".join(child.itertext())), MAX_TEXT_CHARS)
            elif name == "link" and link is None:
                href = child.get("href") or (child.text or "").strip()
                link = href if urlsplit(href).scheme in ("http", "https") else None
        if title:
            items.append((title, link))
    return items


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _unique(sources: list[IdeaSource]) -> list[IdeaSource]:
    seen: set[str] = set()
    out = []
    for source in sources:
        key = re.sub(r"\W+", " ", source.text.casefold()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(source)
    return out


def _redacted(url: str) -> str:
    """Scheme, host and path: feed URLs can carry tokens in the query or user info."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"[:200] if parts.scheme else url[:80]
