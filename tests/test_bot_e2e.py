"""The real bot process (`storybot bot`, the real discord.py client) against the fake Discord service.

A person asks with `/video`, picks an idea from the select, revises the script by replying, approves
with 👍, re-rolls a keyframe, the bot is killed and restarted while the keyframes wait, the old
button still approves them, and the delivered file is a valid MP4 under the upload limit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from tests.fake_discord import Channel, FakeDiscord, FakeInteraction, FakeMessage, Guild, User

pytestmark = pytest.mark.slow

STORYBOT = Path(sys.executable).with_name("storybot")
GUILD, CHANNEL, APPROVER_ROLE = 900001, 900002, 900003
ALICE = User(id=111, name="alice")
MALLORY = User(id=222, name="mallory")
APPROVER = User(id=333, name="carol", roles=[APPROVER_ROLE])
DEADLINE = 3.0


class BotProcess:
    """`storybot bot` as a child process with its own data folder; kill -9 and start again at will."""

    def __init__(self, fake: FakeDiscord, data: Path) -> None:
        self.fake, self.data = fake, data
        self.proc: asyncio.subprocess.Process | None = None
        self.log = data / "bot.log"

    async def start(self, **extra_env: str) -> None:
        ready = self.tail().count("connected as")
        env = {**os.environ, "DISCORD_TOKEN": self.fake.token, "DISCORD_API_BASE": self.fake.api_base,
               "STORYBOT_DATA_DIR": str(self.data), "STORYBOT_GUILD_IDS": str(GUILD),
               "STORYBOT_APPROVER_ROLE_ID": str(APPROVER_ROLE), "STORYBOT_MAX_ACTIVE_JOBS_PER_USER": "3"}
        for name in ("OPENAI_API_KEY", "ELEVENLABS_API_KEY", "STORYBOT_CRASH_AT", "STORYBOT_FFMPEG"):
            env.pop(name, None)
        env.update(extra_env)
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(str(STORYBOT), "bot", cwd=self.data, env=env,
                                                             stdout=log, stderr=log)
        await self.fake.wait_for(lambda: self.tail().count("connected as") > ready, timeout=60)  # on_ready

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-20000:] if self.log.exists() else ""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeDiscord, BotProcess]]:
    guild = Guild(id=GUILD, channels=[Channel(id=CHANNEL)], members=[ALICE, MALLORY, APPROVER],
                  roles=[APPROVER_ROLE])
    async with FakeDiscord(guilds=[guild]) as fake:
        bot = BotProcess(fake, tmp_path)
        await bot.start()
        try:
            yield fake, bot
        finally:
            if bot.proc and bot.proc.returncode is None:
                await bot.kill()
            print(bot.tail())


def custom_ids(message: FakeMessage) -> list[str]:
    return [c.get("custom_id", "") for row in message.components for c in row.get("components", [])]


def prompt_with(fake: FakeDiscord, prefix: str, after: FakeMessage | None = None) -> FakeMessage | None:
    """The newest bot message still offering a component whose custom_id starts with `prefix`."""
    for message in reversed(fake.messages):
        if after is not None and message.id <= after.id:
            return None
        if message.author is None and any(c.startswith(prefix) for c in custom_ids(message)):
            return message
    return None


def component(message: FakeMessage, prefix: str) -> str:
    return next(c for c in custom_ids(message) if c.startswith(prefix))


async def wait_prompt(fake: FakeDiscord, prefix: str, after: FakeMessage | None = None,
                      timeout: float = 120) -> FakeMessage:  # noqa: ASYNC109
    found = await fake.wait_for(lambda: prompt_with(fake, prefix, after), timeout=timeout)
    assert isinstance(found, FakeMessage)
    return found


async def acknowledged(fake: FakeDiscord, interaction: FakeInteraction) -> tuple[int, dict[str, Any]]:
    await fake.wait_for(lambda: interaction.responses, timeout=DEADLINE + 2)
    assert interaction.response_delay is not None and interaction.response_delay < DEADLINE
    kind, body = interaction.responses[0]
    return kind, body.get("data") or {}


def delivered(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in fake.messages if m.author is None and any(a.filename.endswith(".mp4") for a in m.attachments)]


def check_video(data: bytes, folder: Path, limit: int = 10 * 1024 * 1024) -> float:
    assert 0 < len(data) <= limit
    path = folder / "delivered.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (1080, 1920)
        assert video.codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        return float(container.duration or 0) / 1_000_000


async def test_request_to_delivery_with_replies_clicks_refusals_and_a_restart(
        world: tuple[FakeDiscord, BotProcess], tmp_path: Path) -> None:
    fake, bot = world
    names = {c["name"] for c in fake.commands[GUILD]}
    assert {"video", "ideas", "jobs", "job", "cancel"} <= names

    ask = await fake.slash(ALICE, CHANNEL, "video", {"prompt": "A lighthouse keeper befriends a lost whale @everyone",
                                                     "duration": 6}, guild_id=GUILD)
    kind, _ = await acknowledged(fake, ask)
    assert kind == 5  # deferred: the status message follows

    pick = await wait_prompt(fake, "sb:pick:")
    refused = await fake.click(MALLORY, pick, component(pick, "sb:approve:"))
    kind, body = await acknowledged(fake, refused)
    assert kind == 4 and body.get("flags", 0) & 64 and "Only the person" in body["content"]
    chosen = await fake.select(ALICE, pick, component(pick, "sb:pick:"), ["1"])
    await acknowledged(fake, chosen)

    script = await wait_prompt(fake, "sb:revise:", after=pick)
    old_approve = component(script, "sb:approve:")
    await fake.say(MALLORY, CHANNEL, "make it about pirates", reply_to=script)
    await fake.say(ALICE, CHANNEL, "end on a hopeful note", reply_to=script)
    second = await wait_prompt(fake, "sb:revise:", after=script)
    assert "version 2" in second.embeds[0]["title"]
    # the old script's buttons are stale: they approve nothing
    stale = await fake.click(ALICE, script, old_approve)
    await acknowledged(fake, stale)
    await fake.wait_for(lambda: any(m.ephemeral and "no longer pending" in m.content for m in fake.messages), 10)
    await fake.say(ALICE, CHANNEL, "👍", reply_to=second)

    frames = await wait_prompt(fake, "sb:reroll:", after=second)
    assert any(a.filename == "keyframes.png" for a in frames.attachments)
    options = next(c["options"] for row in frames.components for c in row["components"] if c["type"] == 3)
    reroll = await fake.select(ALICE, frames, component(frames, "sb:reroll:"), [options[-1]["value"]])
    await acknowledged(fake, reroll)
    frames = await wait_prompt(fake, "sb:reroll:", after=frames)

    warnings = [m.content for m in fake.messages if m.ephemeral and "⚠️" in m.content]
    assert len(warnings) == 1 and "no longer pending" in warnings[0], warnings
    await bot.kill()  # a crash while the keyframes wait for approval
    await bot.start()
    button = component(frames, "sb:approve:")
    approve = await fake.click(APPROVER, frames, button)
    again = await fake.click(ALICE, frames, button)  # a double click: both arrive before the buttons go
    await acknowledged(fake, approve)
    await acknowledged(fake, again)

    await fake.wait_for(lambda: delivered(fake), timeout=180)
    await asyncio.sleep(3)  # nothing more is delivered
    assert len(delivered(fake)) == 1, bot.tail()
    video = delivered(fake)[0]
    seconds = check_video(video.attachments[0].data, tmp_path)
    assert 4 < seconds < 12

    bot_messages = [m for m in fake.messages if m.author is None and m.via != "callback"]
    assert all(m.allowed_mentions == {"parse": []} for m in bot_messages if m.allowed_mentions is not None)
    assert all(m.allowed_mentions is not None for m in bot_messages if not m.ephemeral), \
        [m.content for m in bot_messages if m.allowed_mentions is None]
    status = next(m for m in fake.messages if m.interaction_id == ask.id)
    times = [t for t, _ in status.edits]
    assert len(times) >= 3
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(times)), times
    assert "Done" in str(status.embeds)
    assert not fake.errors


async def test_three_jobs_at_once_never_miss_the_deadline(world: tuple[FakeDiscord, BotProcess],
                                                          tmp_path: Path) -> None:
    fake, bot = world
    asks = [await fake.slash(user, CHANNEL, "video", {"prompt": f"Story number {n} about a brave fox",
                                                      "duration": 5, "auto_approve": True}, guild_id=GUILD)
            for n, user in enumerate((ALICE, MALLORY, APPROVER))]
    for ask in asks:
        await acknowledged(fake, ask)
    probes = []
    while len(delivered(fake)) < 3:
        probe = await fake.slash(ALICE, CHANNEL, "jobs", guild_id=GUILD)
        kind, body = await acknowledged(fake, probe)
        assert kind == 4 and body.get("flags", 0) & 64
        probes.append(probe.response_delay or 0)
        await asyncio.sleep(1.5)
        assert len(probes) < 200, bot.tail()
    assert max(i.response_delay or 0 for i in fake.interactions) < DEADLINE
    for message in delivered(fake):
        check_video(message.attachments[0].data, tmp_path)
    print(f"/jobs answered in at most {max(probes) * 1000:.0f} ms while three jobs ran")


async def test_modal_revision_txt_replacement_and_an_expired_token(world: tuple[FakeDiscord, BotProcess],
                                                                   tmp_path: Path) -> None:
    fake, bot = world
    ask = await fake.slash(ALICE, CHANNEL, "video", {"prompt": "A robot learns to paint", "duration": 5},
                           guild_id=GUILD)
    await acknowledged(fake, ask)
    pick = await wait_prompt(fake, "sb:pick:")
    await fake.say(ALICE, CHANNEL, "ok", reply_to=pick)

    script = await wait_prompt(fake, "sb:revise:", after=pick)
    opened = await fake.click(ALICE, script, component(script, "sb:revise:"))
    kind, modal = await acknowledged(fake, opened)
    assert kind == 9 and modal["custom_id"].startswith("sb:note:")
    await bot.kill()  # the form is still open in the user's client while the bot restarts
    await bot.start()
    submitted = await fake.submit_modal(ALICE, modal["custom_id"], {"note": "shorter, and funnier"}, message=script)
    await acknowledged(fake, submitted)

    second = await wait_prompt(fake, "sb:revise:", after=script)
    assert "version 2" in second.embeds[0]["title"]
    own = "The robot mixed every colour it had. The canvas turned brown. It laughed, and started again."
    await fake.say(ALICE, CHANNEL, "", reply_to=second, attachments=[("mine.txt", own.encode())])
    third = await wait_prompt(fake, "sb:revise:", after=second)
    assert "The robot mixed every colour" in third.embeds[0]["description"]

    fake.expire_tokens()  # from here on the status message is edited with the bot token
    await fake.click(ALICE, third, component(third, "sb:approve:"))
    frames = await wait_prompt(fake, "sb:reroll:", after=third)
    assert "canvas turned brown" in str(frames.embeds)
    await fake.click(ALICE, frames, component(frames, "sb:approve:"))
    await fake.wait_for(lambda: delivered(fake), timeout=180)
    check_video(delivered(fake)[0].attachments[0].data, tmp_path)

    status = next(m for m in fake.messages if m.interaction_id == ask.id)
    await fake.wait_for(lambda: "Done" in str(status.embeds), timeout=10)
    path = f"/channels/{CHANNEL}/messages/{status.id}"
    by_bot_token = [r for r in fake.requests if r.method == "PATCH" and r.path == path]
    assert by_bot_token and all(r.status == 200 for r in by_bot_token)


async def test_a_crash_mid_render_resumes_and_the_status_message_carries_on(
        world: tuple[FakeDiscord, BotProcess], tmp_path: Path) -> None:
    fake, bot = world
    await bot.kill()
    await bot.start(STORYBOT_CRASH_AT="animate:start")  # this process dies by SIGKILL when animate starts
    ask = await fake.slash(ALICE, CHANNEL, "video", {"prompt": "A kite that will not land", "duration": 5,
                                                     "auto_approve": True}, guild_id=GUILD)
    await acknowledged(fake, ask)
    assert bot.proc is not None
    await asyncio.wait_for(bot.proc.wait(), timeout=120)
    status = next(m for m in fake.messages if m.interaction_id == ask.id)
    edits_before = len(status.edits)
    await bot.start()
    await fake.wait_for(lambda: delivered(fake), timeout=180)
    await fake.wait_for(lambda: "Done" in str(status.embeds), timeout=10)
    assert len(status.edits) > edits_before
    await asyncio.sleep(2)
    assert len(delivered(fake)) == 1
    check_video(delivered(fake)[0].attachments[0].data, tmp_path)


async def test_a_failure_is_explained_and_retry_finishes_the_job(world: tuple[FakeDiscord, BotProcess],
                                                                 tmp_path: Path) -> None:
    fake, bot = world
    await bot.kill()
    await bot.start(STORYBOT_FFMPEG=str(tmp_path / "no-such-ffmpeg"), OPENAI_API_KEY="sk-secret-should-not-show")
    ask = await fake.slash(ALICE, CHANNEL, "video", {"prompt": "A snail wins a race", "duration": 5,
                                                     "auto_approve": True}, guild_id=GUILD)
    await acknowledged(fake, ask)
    failure = await wait_prompt(fake, "sb:retry:", timeout=120)
    assert "stopped at" in failure.content and "Retry" in failure.content
    assert "sk-secret" not in str([m.content for m in fake.messages] + [m.embeds for m in fake.messages])
    await bot.kill()
    await bot.start()  # FFmpeg is back
    refused = await fake.click(MALLORY, failure, component(failure, "sb:retry:"))
    kind, body = await acknowledged(fake, refused)
    assert kind == 4 and body["flags"] & 64
    await fake.click(ALICE, failure, component(failure, "sb:retry:"))
    await fake.wait_for(lambda: delivered(fake), timeout=180)
    check_video(delivered(fake)[0].attachments[0].data, tmp_path)


def test_bot_without_a_token_or_a_reachable_api_says_so_in_one_line(tmp_path: Path) -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"} | {"STORYBOT_DATA_DIR": str(tmp_path)}
    run = subprocess.run([str(STORYBOT), "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [
        "storybot: error: DISCORD_TOKEN is not set: put the bot's token in the environment or .env"]
    env |= {"DISCORD_TOKEN": "x", "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"}
    run = subprocess.run([str(STORYBOT), "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert run.returncode == 1 and len(errors) == 1
    assert "cannot reach the Discord API at http://127.0.0.1:9/api/v10" in errors[0]
