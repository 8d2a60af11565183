"""Idea sources against real local servers: RSS/Atom feeds and a Reddit-style JSON listing; good ones
read, broken, slow or huge ones skipped; requests paced per host; items seen before left out."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from graph.store import JobStore
from tests.local_http import LocalServer, Reply, Request, local_server
from tools import ideas
from tools.ideas import HostPacer, collect_sources, parse_feed, reddit_listing, source_key
from tools.settings import Settings

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Tales</title><link>https://example.org/</link>
  <item><title>A lighthouse keeper befriends a whale</title><link>https://example.org/1</link></item>
  <item><title><![CDATA[Dragons <b>return</b> to the valley]]></title><link>https://example.org/2</link></item>
  <item><title>A robot who learns to paint</title></item>
  <item><description>no title here</description></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title>
  <entry><title type="html">Baker &amp;lt;@123&amp;gt; bakes bread for the moon</title>
    <link href="https://example.net/moon"/></entry>
  <entry><title>@everyone A fox guards an old library</title><link href="javascript:alert(1)"/></entry>
</feed>"""
RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <channel><title>Old</title></channel>
  <item><title>An RSS 1.0 headline</title><link>https://example.com/a</link></item>
</rdf:RDF>"""
BOMB = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<rss><channel><item><title>&h;</title></item></channel></rss>"""
FIVE_MB = 5 * 1024 * 1024
LISTING = {
    "kind": "Listing",
    "data": {
        "after": None,
        "children": [
            {
                "kind": "t3",
                "data": {"title": "Announcement: rules", "stickied": True, "permalink": "/r/WritingPrompts/x/"},
            },
            {
                "kind": "t3",
                "data": {
                    "title": "[WP] A dragon opens a bakery &amp; <@1> nobody notices",
                    "over_18": False,
                    "selftext": "**Every** morning the smoke... https://x.example",
                    "permalink": "/r/WritingPrompts/comments/abc/wp_a_dragon/",
                },
            },
            {"kind": "t3", "data": {"title": "Not for work", "over_18": True, "permalink": "/r/WritingPrompts/n/"}},
            {
                "kind": "t3",
                "data": {
                    "title": "[WP] The moon files a complaint",
                    "selftext": "",
                    "permalink": "/r/WritingPrompts/comments/def/wp_moon/",
                },
            },
        ],
    },
}
FAST = HostPacer(0.0)
SEEN_REQUESTS: list[Request] = []


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without Retry-After back off from 10 ms instead of 0.5 s: the same protocol, sooner."""
    monkeypatch.setattr(ideas, "BACKOFF", 0.01)
    SEEN_REQUESTS.clear()


def feeds(request: Request) -> Reply:
    xml = {"Content-Type": "application/xml"}
    if request.path == "/rss.xml":
        return Reply(200, RSS, xml)
    if request.path == "/atom.xml":
        return Reply(200, ATOM, xml)
    if request.path == "/rdf.xml":
        return Reply(200, RDF, xml)
    if request.path == "/slow.xml":
        time.sleep(1.0)
        return Reply(200, RSS, xml)
    if request.path == "/huge.xml":  # declares its size
        return Reply(200, b"<rss>" + b" " * FIVE_MB + b"</rss>", xml)
    if request.path == "/trickle.xml":  # no Content-Length: only counting the bytes stops it
        return Reply(200, (b" " * 65536 for _ in range(FIVE_MB // 65536)), xml)
    if request.path == "/bomb.xml":
        return Reply(200, BOMB, xml)
    if request.path.startswith("/r/WritingPrompts/top.json"):
        assert "storybot" in request.headers["User-Agent"]
        return Reply.json(LISTING)
    if request.path.startswith("/r/Broken/top.json"):
        return Reply(200, b"<html>", {"Content-Type": "text/html"})
    if request.path == "/busy.xml":  # busy once, then fine
        if sum(r.path == "/busy.xml" for r in SEEN_REQUESTS) == 0:
            SEEN_REQUESTS.append(request)
            return Reply(429, b"slow down", {"Retry-After": "1"})
        return Reply(200, RSS, xml)
    if request.path == "/down.xml":
        return Reply(503, b"down")
    if request.path == "/later.xml":
        return Reply(429, b"come back tomorrow", {"Retry-After": "86400"})
    if request.path == "/text":
        return Reply(200, b"not a feed", {"Content-Type": "text/plain"})
    return Reply(404, b"missing")


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with local_server(feeds) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as c:
        yield c


async def test_request_seeds_and_feeds_in_order(server: LocalServer, client: httpx.AsyncClient, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(
        "# saved ideas\n\nA robot who learns to paint\n  a lighthouse KEEPER befriends a whale!  \n"
        "Penguins open a cafe\n",
        encoding="utf-8",
    )
    found = await collect_sources(
        "A lighthouse keeper who befriends a lost whale",
        seeds,
        [f"{server.url}/rss.xml", f"{server.url}/atom.xml"],
        client,
        pacer=FAST,
    )
    assert [(s.kind, s.text) for s in found] == [
        ("request", "A lighthouse keeper who befriends a lost whale"),
        ("seed", "A robot who learns to paint"),
        ("seed", "a lighthouse KEEPER befriends a whale!"),
        ("seed", "Penguins open a cafe"),
        # feeds alternate; duplicates of seeds (case and punctuation aside) are dropped
        ("rss", "Baker bakes bread for the moon"),
        ("rss", "Dragons return to the valley"),
        ("rss", "A fox guards an old library"),
    ]
    links = {s.text: s.url for s in found}
    assert links["Baker bakes bread for the moon"] == "https://example.net/moon"
    assert links["Dragons return to the valley"] == "https://example.org/2"
    assert links["A fox guards an old library"] is None  # a javascript: link is no link


async def test_broken_feeds_are_skipped_not_fatal(
    server: LocalServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tools.ideas")
    bad = ["/missing.xml", "/slow.xml", "/huge.xml", "/trickle.xml", "/bomb.xml", "/text"]
    started = time.monotonic()
    found = await collect_sources(
        "a whale",
        None,
        [f"{server.url}{p}" for p in bad]
        + [f"{server.url}/rdf.xml", "file:///etc/passwd", "http://", "http://127.0.0.1:9/closed.xml"],
        client,
        pacer=FAST,
    )
    assert time.monotonic() - started < 3
    assert [(s.kind, s.text) for s in found] == [("request", "a whale"), ("rss", "An RSS 1.0 headline")]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == len(bad) + 3
    assert any("404" in m for m in skipped) and any("1000000" in m for m in skipped)


async def test_limit_and_own_client(server: LocalServer, tmp_path: Path) -> None:
    found = await collect_sources(
        "first", tmp_path / "no-such-file.txt", [f"{server.url}/rss.xml", f"{server.url}/atom.xml"], limit=3, pacer=FAST
    )
    assert [s.kind for s in found] == ["request", "rss", "rss"]
    # enough sources without feeds: the network is not touched
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("one\ntwo\nthree\n", encoding="utf-8")
    requests_before = len(server.requests)
    found = await collect_sources("zero", seeds, [f"{server.url}/rss.xml"], limit=2)
    assert [s.text for s in found] == ["zero", "one"] and len(server.requests) == requests_before


async def test_hostile_texts_are_cleaned(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_bytes("<@123> @everyone \u200bhidden\x07 [x]:y\n".encode() + b"\xff\xfe broken utf8 line\n")
    found = await collect_sources("@here " + "w" * 400 + " a fox", seeds, [])
    assert [s.text for s in found] == ["a fox", "hidden x:y", "broken utf8 line"]
    # the request itself may be cleaned to nothing
    assert await collect_sources("<@1> @everyone", None, []) == []


def test_parse_feed_reads_every_flavour() -> None:
    assert [i.text for i in parse_feed(RSS)] == [
        "A lighthouse keeper befriends a whale",
        "Dragons return to the valley",
        "A robot who learns to paint",
    ]
    [rdf] = parse_feed(RDF)
    assert (rdf.text, rdf.url) == ("An RSS 1.0 headline", "https://example.com/a")


async def test_reddit_listing_with_user_agent_and_inspiration(server: LocalServer) -> None:
    found = await collect_sources(
        "a whale",
        None,
        [],
        subreddits=["WritingPrompts"],
        reddit_url=server.url,
        user_agent="storybot/test (+contact)",
        pacer=FAST,
    )
    assert [(s.kind, s.text) for s in found] == [
        ("request", "a whale"),
        ("reddit", "WP A dragon opens a bakery & nobody notices"),  # pinned and over-18 posts left out
        ("reddit", "WP The moon files a complaint"),
    ]
    dragon = found[1]
    assert dragon.url == "https://www.reddit.com/r/WritingPrompts/comments/abc/wp_a_dragon/"
    assert dragon.inspiration == "Every morning the smoke..."  # the post kept as inspiration, cleaned
    (request,) = server.requests
    assert request.path == "/r/WritingPrompts/top.json?t=week&limit=25&raw_json=1"
    assert request.headers["User-Agent"] == "storybot/test (+contact)"
    with pytest.raises(ValueError):
        reddit_listing(server.url, "../../etc")  # configuration never chooses a path


async def test_broken_listing_is_skipped(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tools.ideas")
    found = await collect_sources("a whale", None, [], subreddits=["Broken"], reddit_url=server.url, pacer=FAST)
    assert [s.kind for s in found] == ["request"] and "not a Reddit listing" in caplog.text


async def test_requests_to_one_host_are_paced(server: LocalServer) -> None:
    started = time.monotonic()
    await collect_sources(
        "x", None, [f"{server.url}/rss.xml", f"{server.url}/atom.xml", f"{server.url}/rdf.xml"], pacer=HostPacer(0.25)
    )
    assert time.monotonic() - started >= 0.5  # three requests, two waits


async def test_items_seen_by_earlier_jobs_are_left_out(server: LocalServer, tmp_path: Path) -> None:
    store = JobStore.of(Settings(STORYBOT_DATA_DIR=tmp_path))

    async def run(job: str) -> list[str]:
        found = await collect_sources(
            "a whale",
            None,
            [f"{server.url}/rss.xml"],
            subreddits=["WritingPrompts"],
            reddit_url=server.url,
            pacer=FAST,
            seen=store.seen_sources,
        )
        online = [s for s in found if s.kind != "request"]
        store.mark_sources_seen(job, [source_key(s) for s in online])
        return [s.text for s in online]

    first = await run("job-1")
    assert len(first) == 5
    assert await run("job-2") == []  # every item was used by job-1
    assert JobStore.of(Settings(STORYBOT_DATA_DIR=tmp_path)).seen_sources([source_key(s) for s in parse_feed(RSS)]) == {
        "https://example.org/1",
        "https://example.org/2",
        "a robot who learns to paint",
    }


async def test_busy_sources_are_retried_within_a_budget(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tools.ideas")
    started = time.monotonic()
    found = await collect_sources("x", None, [f"{server.url}/busy.xml"], pacer=FAST)
    assert time.monotonic() - started >= 0.95  # the server's Retry-After: 1
    assert [s.text for s in found][1:] == [i.text for i in parse_feed(RSS)]
    found = await collect_sources("x", None, [f"{server.url}/down.xml", f"{server.url}/later.xml"], pacer=FAST)
    assert [s.kind for s in found] == ["request"]
    paths = [r.path for r in server.requests]
    assert paths.count("/down.xml") == ideas.RETRIES + 1  # 5xx: retried, then skipped
    assert paths.count("/later.xml") == 1  # a day's wait is not worth it for inspiration
    assert "HTTP 503" in caplog.text and "HTTP 429" in caplog.text
