"""Delivery over the upload limit, end to end: the real `storybot bot` against the fake Discord, with
signed links served by the bot and downloaded over HTTP.

Two servers in one run: one reports a small `attachment_size_limit` (the master is over it), one
reports the usual 10 MiB but answers 413 40005 to anything over a few KiB (the fallback chain).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import av
import httpx
import pytest

from bot.links import Links
from tests.conftest import ALICE, BotProcess
from tests.fake_discord import Channel, FakeDiscord, FakeMessage, Guild
from tests.test_bot_e2e import acknowledged, ask_video

pytestmark = pytest.mark.slow

SMALL, SMALL_CHANNEL = 910001, 910002  # reports a 300 KiB limit
REFUSING, REFUSING_CHANNEL = 920001, 920002  # reports 10 MiB, refuses anything over 4 KiB
LIMIT = 300 * 1024  # under the 5 s offline master (about 395 KB), over what a fitted copy needs
LINK = re.compile(r"http://127\.0\.0\.1:\d+/files/[0-9a-f]{12}/final\.mp4\?expires=\d+&sig=[\w-]+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def two_servers(tmp_path: Path) -> AsyncIterator[tuple[FakeDiscord, BotProcess, int]]:
    guilds = [
        Guild(id=SMALL, channels=[Channel(id=SMALL_CHANNEL)], members=[ALICE], attachment_size_limit=LIMIT),
        Guild(id=REFUSING, channels=[Channel(id=REFUSING_CHANNEL)], members=[ALICE], refuse_over=4096),
    ]
    port = free_port()
    async with FakeDiscord(guilds=guilds) as fake:
        bot = BotProcess(fake, tmp_path, {})
        await bot.start(
            STORYBOT_GUILD_IDS=f"{SMALL},{REFUSING}",
            STORYBOT_PUBLIC_URL=f"http://127.0.0.1:{port}",
            STORYBOT_HTTP_HOST="127.0.0.1",
            STORYBOT_HTTP_PORT=str(port),
        )
        try:
            yield fake, bot, port
        finally:
            if bot.proc and bot.proc.returncode is None:
                await bot.kill()
            print(bot.tail())


def final_post(fake: FakeDiscord, channel: int) -> FakeMessage | None:
    mine = (m for m in fake.messages if m.author is None and m.channel_id == channel and "-# made for" in m.content)
    return next(mine, None)


async def test_a_master_over_the_limit_comes_fitted_with_a_signed_link_and_a_413_falls_back(
    two_servers: tuple[FakeDiscord, BotProcess, int], tmp_path: Path
) -> None:
    fake, bot, port = two_servers
    for guild, channel in ((SMALL, SMALL_CHANNEL), (REFUSING, REFUSING_CHANNEL)):
        options = {"prompt": "A lighthouse keeper befriends a lost whale", "duration": 5, "auto_approve": True}
        await ask_video(fake, options, channel, guild)
    small = await fake.wait_for(lambda: final_post(fake, SMALL_CHANNEL), timeout=240)
    refused = await fake.wait_for(lambda: final_post(fake, REFUSING_CHANNEL), timeout=120)

    # the smaller reported limit: a copy fitted to it, posted inline, with a link to the full master
    job_id = re.findall(r"job ([0-9a-f]{12})", small.content)[-1]
    master = (tmp_path / "jobs" / job_id / "final.mp4").read_bytes()
    assert len(master) > LIMIT
    assert len(small.attachments) == 1 and small.attachments[0].filename == f"storybot-{job_id}.mp4"
    copy = small.attachments[0].data
    assert 0 < len(copy) <= LIMIT
    (tmp_path / "copy.mp4").write_bytes(copy)
    with av.open(str(tmp_path / "copy.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert 4 < float(container.duration or 0) / 1e6 < 8
    assert "Full quality" in small.content
    print(f"master {len(master)} bytes over a reported {LIMIT}: posted a fitted copy of {len(copy)} bytes")
    link = LINK.search(small.content)
    assert link is not None and link.group(0).startswith(f"http://127.0.0.1:{port}/files/{job_id}/")
    url = link.group(0)
    secret = (tmp_path / "link_secret").read_bytes().strip()
    expired = Links(secret, f"http://127.0.0.1:{port}", ttl=-60).url(job_id, "final.mp4")
    async with httpx.AsyncClient(timeout=10) as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == master  # byte-identical through the link
        # one HTTP server per deployment: the bot's is the service's app, API included
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).json() == {"status": "ok"}
        assert (await http.get(f"http://127.0.0.1:{port}/v1/jobs")).status_code == 401
        part = await http.get(url, headers={"Range": "bytes=100-4195"})
        assert part.status_code == 206 and part.content == master[100:4196]
        for wrong in (url.replace("sig=", "sig=A"), url.replace("expires=", "expires=1"), expired):
            answer = await http.get(wrong)
            assert (answer.status_code, answer.text) == (404, "Not found")

    small_uploads = [r for r in fake.requests if r.path == f"/channels/{SMALL_CHANNEL}/messages" and r.parts]
    assert [r.status for r in small_uploads] == [200]  # fitted before posting: no 413 at all

    # the 413: the master, then a copy fitted smaller, both refused; then the note with the link
    uploads = [
        r
        for r in fake.requests
        if r.method == "POST"
        and r.path == f"/channels/{REFUSING_CHANNEL}/messages"
        and any(name.startswith("files[") for name in r.parts)
    ]
    assert [r.status for r in uploads] == [413, 413]
    first, second = (
        len(next(data for name, (_, data) in r.parts.items() if name.startswith("files["))) for r in uploads
    )
    assert second <= first * 0.8
    print(f"413 chain: refused {first} bytes, then a copy of {second} bytes, then the link")
    assert not refused.attachments and "does not fit" in refused.content
    other = LINK.search(refused.content)
    assert other is not None
    async with httpx.AsyncClient(timeout=10) as http:
        job = re.findall(r"job ([0-9a-f]{12})", refused.content)[-1]
        assert (await http.get(other.group(0))).content == (tmp_path / "jobs" / job / "final.mp4").read_bytes()

    # /job shows the links; nothing died, and a restart posts nothing again
    probe = await fake.slash(ALICE, SMALL_CHANNEL, "job", {"id": job_id}, guild_id=SMALL)
    _, body = await acknowledged(fake, probe)
    assert any("final.mp4" in f["value"] and "/files/" in f["value"] for f in body["embeds"][0]["fields"])
    assert "Traceback" not in bot.tail()
    posted = len(fake.bot_messages)
    await bot.kill()
    await bot.start(
        STORYBOT_GUILD_IDS=f"{SMALL},{REFUSING}",
        STORYBOT_PUBLIC_URL=f"http://127.0.0.1:{port}",
        STORYBOT_HTTP_PORT=str(port),
    )
    await asyncio.sleep(3)  # recovery has run: both deliveries are recorded
    assert len(fake.bot_messages) == posted
    assert not fake.errors
