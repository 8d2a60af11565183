"""Idea sources against real local feeds: good ones read, broken, slow or huge ones skipped."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.local_http import LocalServer, Reply, Request, local_server
from tools.ideas import collect_sources, parse_feed

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
    seeds.write_text("# saved ideas\n\nA robot who learns to paint\n  a lighthouse KEEPER befriends a whale!  \n"
                     "Penguins open a cafe\n", encoding="utf-8")
    found = await collect_sources("A lighthouse keeper who befriends a lost whale", seeds,
                                  [f"{server.url}/rss.xml", f"{server.url}/atom.xml"], client)
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


async def test_broken_feeds_are_skipped_not_fatal(server: LocalServer, client: httpx.AsyncClient,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tools.ideas")
    bad = ["/missing.xml", "/slow.xml", "/huge.xml", "/trickle.xml", "/bomb.xml", "/text"]
    started = time.monotonic()
    found = await collect_sources("a whale", None, [f"{server.url}{p}" for p in bad] + [
        f"{server.url}/rdf.xml", "file:///etc/passwd", "http://", "http://127.0.0.1:9/closed.xml"], client)
    assert time.monotonic() - started < 3
    assert [(s.kind, s.text) for s in found] == [("request", "a whale"), ("rss", "An RSS 1.0 headline")]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == len(bad) + 3
    assert any("404" in m for m in skipped) and any("1000000" in m for m in skipped)


async def test_limit_and_own_client(server: LocalServer, tmp_path: Path) -> None:
    found = await collect_sources("first", tmp_path / "no-such-file.txt",
                                  [f"{server.url}/rss.xml", f"{server.url}/atom.xml"], limit=3)
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
    assert [t for t, _ in parse_feed(RSS)] == [
        "A lighthouse keeper befriends a whale", "Dragons return to the valley", "A robot who learns to paint"]
    assert parse_feed(RDF) == [("An RSS 1.0 headline", "https://example.com/a")]
