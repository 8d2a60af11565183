"""Signed links and the file server behind them, over a real JobService store and real HTTP."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.links import links_from
from bot.messages import delivery_text, link_line
from graph.api import (
    BadInput,
    JobRequest,
    JobResult,
    JobService,
    Links,
    PlatformMeta,
    Settings,
    StorybotError,
    link_secret,
)
from service.app import serving
from tools.media.outputs import collect_artifacts
from tools.settings import get_settings

JOB = "0123456789ab"
BODY = bytes(range(256)) * 400  # 100 KiB that are not all the same byte


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Links, JobService, str]]:
    settings = get_settings().model_copy(
        update={"data_dir": tmp_path, "public_url": "http://127.0.0.1:1/", "http_port": 0, "link_secret": None}
    )
    async with JobService.open(settings) as service:
        folder = tmp_path / "jobs" / JOB
        folder.mkdir(parents=True)
        (folder / "final.mp4").write_bytes(BODY)
        (folder / "subtitles.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHi\n", encoding="utf-8")
        service.store.create(JOB, "discord:1", None, JobRequest(prompt="a fox"), ["post_produce"])
        service.store.update(JOB, status="done", result=JobResult(artifacts=collect_artifacts(folder)))
        links = links_from(settings)
        assert links is not None
        async with serving(service, settings) as port:
            yield links, service, f"http://127.0.0.1:{port}"


def local(url: str, base: str) -> str:
    return base + url.removeprefix("http://127.0.0.1:1")


def test_signatures_cover_job_name_and_expiry() -> None:
    links = Links(b"k" * 32, "https://v.example/", ttl=3600)
    url = links.url(JOB, "final.mp4", expires=links.expiry(now=1000))
    assert url.startswith(f"https://v.example/files/{JOB}/final.mp4?expires=4600&sig=")
    sig = url.rsplit("sig=", 1)[1]
    assert links.valid(JOB, "final.mp4", "4600", sig, now=4600)
    assert not links.valid(JOB, "final.mp4", "4600", sig, now=4601)  # expired
    assert not links.valid(JOB, "final.mp4", "4700", sig, now=1000)  # expiry pushed out
    assert not links.valid("0123456789ac", "final.mp4", "4600", sig, now=1000)  # another job
    assert not links.valid(JOB, "subtitles.srt", "4600", sig, now=1000)  # another file
    assert not links.valid(JOB, "final.mp4", "4600", sig[:-1] + ("A" if sig[-1] != "A" else "B"), now=1000)
    assert not Links(b"x" * 32, "https://v.example", 3600).valid(JOB, "final.mp4", "4600", sig, now=1000)
    assert not links.valid(JOB, "../jobs.sqlite", "4600", sig, now=1000)


def test_the_generated_secret_is_kept_owner_only(tmp_path: Path) -> None:
    settings = get_settings().model_copy(update={"data_dir": tmp_path, "link_secret": None})
    first = link_secret(settings)
    assert len(first) >= 32 and link_secret(settings) == first  # generated once, then read back
    assert stat.S_IMODE(os.stat(tmp_path / "link_secret").st_mode) == 0o600
    given = Settings.model_validate({"STORYBOT_DATA_DIR": str(tmp_path), "STORYBOT_LINK_SECRET": "s3cret-of-16-byte"})
    assert link_secret(given) == b"s3cret-of-16-byte"
    assert links_from(settings) is None  # no public URL: no links


async def test_a_signed_link_downloads_the_file_and_seeks(served: tuple[Links, JobService, str]) -> None:
    links, _service, base = served
    url = local(links.url(JOB, "final.mp4"), base)
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == BODY
        assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
        part = await http.get(url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == BODY[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(BODY)}"
        tail = await http.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == BODY[-10:]
        srt = await http.get(local(links.url(JOB, "subtitles.srt"), base))
        assert srt.status_code == 200 and b"Hi" in srt.content


async def test_every_wrong_link_is_the_same_bare_404(served: tuple[Links, JobService, str]) -> None:
    links, service, base = served
    good = local(links.url(JOB, "final.mp4"), base)
    expired = Links(links.secret, links.base, ttl=-120)
    async with httpx.AsyncClient() as http:
        wrong = [
            good.replace("sig=", "sig=x"),  # tampered signature
            good.replace("expires=", "expires=9"),  # tampered expiry
            good.replace(JOB, "0123456789ac"),  # another job
            local(expired.url(JOB, "final.mp4"), base),  # expired
            local(links.url(JOB, "voice.wav"), base),  # not a served name
            good.split("?")[0],  # unsigned
            f"{base}/files/{JOB}/",
            f"{base}/files/",
            f"{base}/",  # listings
            f"{base}/files/{JOB}/..%2Fjobs.sqlite?expires=1&sig=x",  # a path
            local(links.url(JOB, "thumbnail.png"), base),  # signed, but the job has none
            good.split("expires=")[0] + "expires=%C2%B2&sig=x",  # issue 23 #11: '²' is no number
            good.split("expires=")[0] + "expires=%D9%A3&sig=x",  # nor an Arabic-Indic 3
        ]
        for url in wrong:
            answer = await http.get(url)
            assert (answer.status_code, answer.text) == (404, "Not found"), url
        posted = await http.post(good)
        assert posted.status_code == 404
        service.store.update(JOB, status="running")  # only finished jobs are served
        assert (await http.get(good)).status_code == 404


async def test_a_port_in_use_is_one_clear_error(served: tuple[Links, JobService, str], tmp_path: Path) -> None:
    _links, service, base = served
    port = int(base.rsplit(":", 1)[1])
    settings = service.settings.model_copy(update={"http_port": port})
    with pytest.raises(StorybotError, match=rf"cannot serve on 127\.0\.0\.1:{port} "):
        async with serving(service, settings):
            pass


def test_a_long_description_gives_way_to_the_link_and_the_job_mark() -> None:
    url = Links(b"k" * 32, "https://v.example", 3600).url(JOB, "final.mp4")
    platforms = PlatformMeta.model_construct(
        title="The Keeper", description="A keeper and a whale. " * 200, hashtags={"tiktok": ["#whale", "#sea"]}
    )
    text = delivery_text(JOB, platforms, "alice", link_line(JOB, url, "12.3 MiB", 1765000000))
    assert len(text) <= 2000 and url in text and text.endswith(f"-# made for alice · job {JOB}")
    assert "A keeper and a whale." in text and "#whale #sea" in text


def test_a_short_link_secret_is_refused_naming_the_variable(tmp_path: Path) -> None:
    """Issue 23 #11: a 1-byte STORYBOT_LINK_SECRET was accepted (an HMAC key anyone can guess)."""
    for short in ("x", "fifteen-bytes!!"):
        given = Settings.model_validate({"STORYBOT_DATA_DIR": str(tmp_path), "STORYBOT_LINK_SECRET": short})
        with pytest.raises(BadInput) as refused:
            link_secret(given)
        said = str(refused.value)
        assert said.startswith(f"STORYBOT_LINK_SECRET is {len(short)} bytes; use at least 16") and short not in said
    assert not (tmp_path / "link_secret").exists()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "world-readable", "huge", "dangling"])
def test_a_generated_secret_file_that_is_not_ours_is_refused_without_reading_it(tmp_path: Path, kind: str) -> None:
    """Issue 23 #11: a secret linked to /dev/zero was read until memory ran out; a world-readable one
    was used. Each is one line that says what to do, within a second, and the file is left as it was."""
    path = tmp_path / "link_secret"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path, 0o600)  # no writer: a blocking open would wait forever
    elif kind == "world-readable":
        path.write_text("a" * 43)
        path.chmod(0o644)
    else:
        path.write_bytes(b"a" * 2**20)
        path.chmod(0o600)
    settings = get_settings().model_copy(update={"data_dir": tmp_path, "link_secret": None})
    started = time.monotonic()
    with pytest.raises(BadInput) as refused:
        link_secret(settings)
    said = str(refused.value)
    assert time.monotonic() - started < 1 and "\n" not in said and str(path) in said
    assert {
        "dev-zero": "symbolic link",
        "dangling": "symbolic link",
        "fifo": "not a regular file",
        "world-readable": "can be read by others (mode 0644)",
        "huge": "1048576 bytes",
    }[kind] in said, said
    assert "delete it to have a new one made" in said
    assert os.path.lexists(path) and not (tmp_path / "nowhere").exists()


def test_storybot_serve_refuses_a_short_secret_or_a_linked_file_in_one_line(tmp_path: Path) -> None:
    from tests.cli import storybot

    short = storybot(
        "serve", data=tmp_path, env={"STORYBOT_LINK_SECRET": "short", "STORYBOT_HTTP_PORT": "0"}, timeout=60
    )
    assert short.returncode == 2 and short.stdout == "", short.stderr
    assert short.stderr.startswith("storybot: error: STORYBOT_LINK_SECRET is 5 bytes; use at least 16")
    assert short.stderr.count("\n") == 1 and "Traceback" not in short.stderr and "short " not in short.stderr
    (tmp_path / "link_secret").symlink_to("/dev/zero")
    zero = storybot("serve", data=tmp_path, env={"STORYBOT_LINK_SECRET": "", "STORYBOT_HTTP_PORT": "0"}, timeout=60)
    assert zero.returncode == 2 and zero.stderr.count("\n") == 1 and "is a symbolic link" in zero.stderr, zero.stderr


async def test_a_half_sent_request_is_closed_and_real_ones_still_served(
    served: tuple[Links, JobService, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23 #11: a request head sent in part was never timed out (uvicorn waits on it forever),
    so enough of them left no descriptor for a real link request."""
    import asyncio

    from tools.net.head_deadline import HeadDeadlineH11

    monkeypatch.setattr(HeadDeadlineH11, "head_seconds", 0.5)
    links, _service, base = served
    port = int(base.rsplit(":", 1)[1])
    stalled = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /files/" + JOB.encode() + b"/final.mp4 HTTP/1.1\r\nHost: x\r\n")  # no blank line
        stalled.append((reader, writer))
    started = time.monotonic()
    async with httpx.AsyncClient() as http:  # a real request meanwhile is answered at once
        whole = await http.get(local(links.url(JOB, "final.mp4"), base))
    assert whole.status_code == 200 and whole.content == BODY
    for reader, writer in stalled:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, with nothing sent
        writer.close()
    assert time.monotonic() - started < 3
    # a whole request on a kept-alive connection is not cut by the deadline of the one before
    async with httpx.AsyncClient() as http:
        first = await http.get(local(links.url(JOB, "final.mp4"), base))
        await asyncio.sleep(0.8)
        second = await http.get(local(links.url(JOB, "final.mp4"), base))
    assert first.status_code == second.status_code == 200
