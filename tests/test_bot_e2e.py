"""The real bot process (`storybot bot`, the real discord.py client) against the fake Discord service.

A person asks with `/video`, picks an idea from the select, revises the script by replying, approves
with 👍, re-rolls a keyframe, the bot is killed and restarted while the keyframes wait, the old
button still approves them, and the delivered file is a valid MP4 under the upload limit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path
from typing import Any

import av
import pytest

from tests.conftest import ALICE, APPROVER, CHANNEL, GUILD, MALLORY, STORYBOT, BotProcess, asked_words
from tests.fake_discord import FakeDiscord, FakeInteraction, FakeMessage

pytestmark = pytest.mark.slow

DEADLINE = 3.0
FIRST_ACK = 0.5  # /video is acknowledged this fast
SCRIPT_SHOWN = 5.0  # and its script is on screen this soon (offline writer)


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


async def wait_prompt(
    fake: FakeDiscord,
    prefix: str,
    after: FakeMessage | None = None,
    timeout: float = 120,  # noqa: ASYNC109
) -> FakeMessage:
    found = await fake.wait_for(lambda: prompt_with(fake, prefix, after), timeout=timeout)
    assert isinstance(found, FakeMessage)
    return found


async def acknowledged(fake: FakeDiscord, interaction: FakeInteraction) -> tuple[int, dict[str, Any]]:
    await fake.wait_for(lambda: interaction.responses, timeout=DEADLINE + 2)
    assert interaction.response_delay is not None and interaction.response_delay < DEADLINE
    kind, body = interaction.responses[0]
    return kind, body.get("data") or {}


async def ask_video(
    fake: FakeDiscord, options: dict[str, Any], channel: int = CHANNEL, guild_id: int = GUILD
) -> FakeInteraction:
    """Alice's `/video` with these options, acknowledged within Discord's deadline."""
    ask = await fake.slash(ALICE, channel, "video", options, guild_id=guild_id)
    await acknowledged(fake, ask)
    return ask


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
    world: tuple[FakeDiscord, BotProcess], tmp_path: Path
) -> None:
    fake, bot = world
    names = {c["name"] for c in fake.commands[GUILD]}
    assert {"video", "ideas", "jobs", "job", "cancel"} <= names

    ask = await fake.slash(
        ALICE,
        CHANNEL,
        "video",
        {"prompt": "A lighthouse keeper befriends a lost whale @everyone", "duration": 6, "ideas": True},
        guild_id=GUILD,
    )
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
    assert all(m.allowed_mentions is not None for m in bot_messages if not m.ephemeral), [
        m.content for m in bot_messages if m.allowed_mentions is None
    ]
    status = next(m for m in fake.messages if m.interaction_id == ask.id)
    times = [t for t, _ in status.edits]
    assert len(times) >= 3
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(times)), times
    assert "Done" in str(status.embeds)
    assert not fake.errors


async def test_three_jobs_at_once_never_miss_the_deadline(
    world: tuple[FakeDiscord, BotProcess], tmp_path: Path
) -> None:
    fake, bot = world
    asks = [
        await fake.slash(
            user,
            CHANNEL,
            "video",
            {"prompt": f"Story number {n} about a brave fox", "duration": 5, "auto_approve": True},
            guild_id=GUILD,
        )
        for n, user in enumerate((ALICE, MALLORY, APPROVER))
    ]
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


async def test_modal_revision_txt_replacement_and_an_expired_token(
    world: tuple[FakeDiscord, BotProcess], tmp_path: Path
) -> None:
    fake, bot = world
    ask = await ask_video(fake, {"prompt": "A robot learns to paint", "duration": 5})
    script = await wait_prompt(fake, "sb:revise:")
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
    world: tuple[FakeDiscord, BotProcess], tmp_path: Path
) -> None:
    fake, bot = world
    await bot.kill()
    await bot.start(STORYBOT_CRASH_AT="animate:start")  # this process dies by SIGKILL when animate starts
    ask = await ask_video(fake, {"prompt": "A kite that will not land", "duration": 5, "auto_approve": True})
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


async def test_a_failure_is_explained_and_retry_finishes_the_job(
    world: tuple[FakeDiscord, BotProcess], tmp_path: Path
) -> None:
    fake, bot = world
    await bot.kill()
    await bot.start(STORYBOT_FFMPEG=str(tmp_path / "no-such-ffmpeg"), OPENAI_API_KEY="sk-secret-should-not-show")
    await ask_video(fake, {"prompt": "A snail wins a race", "duration": 5, "auto_approve": True})
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
        "storybot: error: DISCORD_TOKEN is not set: put the bot's token in the environment or .env"
    ]
    env |= {"DISCORD_TOKEN": "x", "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"}
    run = subprocess.run([str(STORYBOT), "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert run.returncode == 1 and len(errors) == 1
    assert "cannot reach the Discord API at http://127.0.0.1:9/api/v10" in errors[0]


def replies_to(fake: FakeDiscord, message: FakeMessage) -> list[str]:
    """What the bot wrote in reply to a user's message."""
    return [m.content for m in fake.messages if m.author is None and m.reference_id == message.id]


async def answered(fake: FakeDiscord, said: FakeMessage) -> str:
    """The bot's one-line answer to a reply: every reply gets one."""
    found = await fake.wait_for(lambda: replies_to(fake, said), timeout=30)
    assert len(found) == 1 and "\n" not in found[0], found
    return str(found[0])


OWN_SCRIPT = (
    "The old keeper counted ships every night from the top of the tower. One, two, three lights "
    "crossed the black water before midnight. On the last night of winter a fourth light appeared, "
    "small and steady, and it did not move. He climbed down to the rocks with his lamp and found a "
    "little boat, and a child inside it, counting ships too."
)


async def test_video_goes_straight_to_the_script_and_every_reply_is_answered(
    world: tuple[FakeDiscord, Any], tmp_path: Path
) -> None:
    fake, _ = world
    asked = time.monotonic()
    ask = await fake.slash(
        ALICE,
        CHANNEL,
        "video",
        {"prompt": "A lighthouse keeper who counts ships at night", "duration": 6},
        guild_id=GUILD,
    )
    kind, _ = await acknowledged(fake, ask)
    assert kind == 5 and ask.response_delay is not None and ask.response_delay < FIRST_ACK, ask.response_delay
    script = await wait_prompt(fake, "sb:revise:", timeout=SCRIPT_SHOWN)
    shown_after = script.created_at - asked
    assert shown_after < SCRIPT_SHOWN
    print(f"/video acknowledged in {ask.response_delay * 1000:.0f} ms, script on screen after {shown_after:.2f} s")
    assert not any(c.startswith("sb:pick:") for m in fake.messages for c in custom_ids(m))  # no idea step
    assert "version 1" in script.embeds[0]["title"] and "about" in script.embeds[-1]["footer"]["text"]

    wrong = await fake.say(ALICE, CHANNEL, "2", reply_to=script)  # a number picks nothing here
    refusal = await answered(fake, wrong)
    assert refusal.startswith("⚠️") and "what to change" in refusal and ".txt" in refusal

    note = await fake.say(ALICE, CHANNEL, "end on a hopeful note", reply_to=script)
    assert "Revising the script" in await answered(fake, note)
    second = await wait_prompt(fake, "sb:revise:", after=script)
    assert "version 2" in second.embeds[0]["title"]

    own = await fake.say(ALICE, CHANNEL, OWN_SCRIPT, reply_to=second)  # 40+ words: a script, not a note
    assert "Using your own script (63 words)" in await answered(fake, own)
    third = await wait_prompt(fake, "sb:revise:", after=second)
    assert "version 3" in third.embeds[0]["title"] and "counting ships too" in third.embeds[-1]["description"]

    ok = await fake.say(ALICE, CHANNEL, "👍", reply_to=third)
    assert "Approved" in await answered(fake, ok)
    frames = await wait_prompt(fake, "sb:reroll:", after=third)
    newer = "The tower went dark for one night only. " * 3 + "Then the keeper lit it again."
    txt = await fake.say(ALICE, CHANNEL, "", reply_to=frames, attachments=[("new.txt", newer.encode())])
    assert "Using your own script" in await answered(fake, txt)
    fourth = await wait_prompt(fake, "sb:revise:", after=frames)
    assert "version 4" in fourth.embeds[0]["title"] and "went dark for one night" in fourth.embeds[0]["description"]
    stop = await fake.say(ALICE, CHANNEL, "cancel", reply_to=fourth)
    assert "Cancelled" in await answered(fake, stop)
    assert not fake.errors


async def test_ideas_offers_a_select_and_a_txt_reply_skips_the_pick(world: tuple[FakeDiscord, Any]) -> None:
    fake, _ = world
    ask = await fake.slash(ALICE, CHANNEL, "ideas", {"topic": "a lighthouse keeper"}, guild_id=GUILD)
    await acknowledged(fake, ask)
    pick = await wait_prompt(fake, "sb:pick:", timeout=30)
    options = next(c["options"] for row in pick.components for c in row["components"] if c["type"] == 3)
    assert len(options) >= 2
    mine = "My own story. The keeper sang to the ships. The ships sang back."
    txt = await fake.say(ALICE, CHANNEL, "", reply_to=pick, attachments=[("mine.txt", mine.encode())])
    assert "Using your own script (13 words)" in await answered(fake, txt)
    script = await wait_prompt(fake, "sb:revise:", after=pick)
    assert "version 1" in script.embeds[0]["title"] and "The ships sang back." in script.embeds[0]["description"]

    again = await fake.slash(ALICE, CHANNEL, "ideas", {"topic": "a lost whale"}, guild_id=GUILD)
    await acknowledged(fake, again)
    second_pick = await wait_prompt(fake, "sb:pick:", after=script, timeout=30)
    title = next(
        o["label"]
        for row in second_pick.components
        for c in row["components"]
        if c["type"] == 3
        for o in c["options"]
        if o["value"] == "1"
    )
    chosen = await fake.select(ALICE, second_pick, component(second_pick, "sb:pick:"), ["1"])
    await acknowledged(fake, chosen)
    written = await wait_prompt(fake, "sb:revise:", after=second_pick)
    assert "version 1" in written.embeds[0]["title"]
    assert title.startswith("2. ")
    assert not fake.errors


def thirty_words(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
    """A model that writes 30 words whatever it is asked for."""
    assert name in ("ScriptDraft", "RevisionDraft"), name
    script = (
        "The old keeper climbed the tower. He counted the ships. One, two, three. The sea was calm and dark. "
        "He smiled, lit the lamp, and went back down to sleep."
    )
    assert len(script.split()) == 30
    return {"script": script, "summary": "Tried again."}


@pytest.mark.parametrize("llm_answer", [thirty_words])
async def test_a_short_draft_reaches_the_approval_with_its_length(
    world: tuple[FakeDiscord, BotProcess], llm: Any
) -> None:
    fake, bot = world
    await bot.kill()
    await bot.start(OPENAI_BASE_URL=llm.url, OPENAI_API_KEY="sk-test", STORYBOT_LLM_MODEL="tiny")
    await ask_video(fake, {"prompt": "A keeper counts ships", "duration": 60})
    script = await wait_prompt(fake, "sb:revise:", timeout=60)
    targets = [asked_words(r.json()) for r in llm.requests]
    assert targets and max(targets) >= 150  # asked for 150+ words, got 30, and the job did not fail
    footer = script.embeds[-1]["footer"]["text"]
    assert "30 words" in footer and "you asked for 60 s" in footer, footer
    assert "Make it longer" in script.content
    longer = await fake.click(ALICE, script, component(script, "sb:longer:"))
    await acknowledged(fake, longer)
    second = await wait_prompt(fake, "sb:revise:", after=script, timeout=60)
    assert "version 2" in second.embeds[0]["title"] and "you asked for 60 s" in second.embeds[-1]["footer"]["text"]
    assert "make it longer" in str([r.json() for r in llm.requests][-1])
    assert not [m for m in fake.messages if "stopped at" in m.content]
    assert not fake.errors
