"""The fake Discord in tests/fake_discord.py against a real, tiny discord.py bot in this event loop."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from tests.fake_discord import Channel, FakeDiscord, Guild, MiB, User

GUILD, CHANNEL, BIG_GUILD, BIG_CHANNEL = 1000, 2000, 1001, 2001
ALICE = User(id=42, name="alice", roles=[77])


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:(?P<job>\d+):cancel"):
    def __init__(self, job: int) -> None:
        super().__init__(discord.ui.Button(label="Cancel", custom_id=f"job:{job}:cancel"))
        self.job = job

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> JobButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.edit_message(content=f"cancelled job {self.job}", view=None)


class Persistent(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Stop", custom_id="persistent:stop")
    async def stop_button(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await interaction.response.defer()
        await interaction.followup.send("stopping", ephemeral=True, wait=True)

    @discord.ui.select(custom_id="persistent:pick", options=[discord.SelectOption(label=x) for x in "123"])
    async def pick(self, interaction: discord.Interaction[Any], select: discord.ui.Select[Any]) -> None:
        await interaction.response.edit_message(content=f"picked {select.values[0]}")


class NoteModal(discord.ui.Modal, title="Note"):
    note: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Note", custom_id="note", max_length=4000)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(f"noted: {self.note.value}", ephemeral=True)


class EchoBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(
            command_prefix="!",
            intents=intents,
            guild_ready_timeout=0.05,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.seen: list[discord.Message] = []
        self.downloads: list[bytes] = []
        self.errors: list[BaseException] = []

    async def setup_hook(self) -> None:
        self.add_dynamic_items(JobButton)
        self.add_view(Persistent())

        @self.tree.command(name="video", description="Make a video")
        async def video(interaction: discord.Interaction[Any], prompt: str, duration: int = 10) -> None:
            await interaction.response.defer(thinking=True)
            view = discord.ui.View(timeout=None)
            view.add_item(JobButton(7))
            await interaction.edit_original_response(content=f"{prompt} ({duration}s)", view=view)
            await interaction.followup.send("followup", file=discord.File(io.BytesIO(b"\x00\x01data"), "a.bin"))

        @self.tree.command(name="panel", description="A persistent panel")
        async def panel(interaction: discord.Interaction[Any]) -> None:
            await interaction.response.send_message("panel", view=Persistent())

        @self.tree.command(name="note", description="Ask for a note")
        async def note(interaction: discord.Interaction[Any]) -> None:
            await interaction.response.send_modal(NoteModal())

        @self.tree.command(name="twice", description="Acknowledge twice")
        async def twice(interaction: discord.Interaction[Any]) -> None:
            await interaction.response.send_message("one")
            try:
                await interaction.response.send_message("two")
            except discord.InteractionResponded:  # discord.py guards this itself; hit the API directly
                try:
                    await self.http.request(
                        discord.http.Route(
                            "POST", "/interactions/{id}/{token}/callback", id=interaction.id, token=interaction.token
                        ),
                        json={"type": 4, "data": {"content": "two"}},
                    )
                except discord.HTTPException as e:
                    self.errors.append(e)

        @self.tree.command(name="limit", description="Upload limit")
        async def limit(interaction: discord.Interaction[Any]) -> None:
            await interaction.response.send_message(f"limit {interaction.guild and interaction.guild.filesize_limit}")

        await self.tree.sync()
        await self.tree.sync(guild=discord.Object(GUILD))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen.append(message)
        for att in message.attachments:
            self.downloads.append(await att.read())
        if message.reference and message.reference.message_id:
            await message.reply(f"got {len(message.attachments)} file(s)")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    guilds = [
        Guild(GUILD, "main", [Channel(CHANNEL)], [ALICE], roles=[77]),
        Guild(BIG_GUILD, "boosted", [Channel(BIG_CHANNEL)], [ALICE], premium_tier=2),
    ]
    old_base, old_gw = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord(token="t0ken", guilds=guilds) as f:
        discord.http.Route.BASE = f.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f.gateway_url)
        try:
            yield f
        finally:
            discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gw


async def started(b: EchoBot, task: asyncio.Task[None]) -> None:
    """Wait for on_ready, surfacing a crash of the client task instead of a bare timeout."""
    ready = asyncio.create_task(b.wait_until_ready())
    await asyncio.wait({ready, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    assert ready.done(), "client did not get ready in 5 s"


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[EchoBot]:
    b = EchoBot()
    task = asyncio.create_task(b.start("t0ken"))
    await started(b, task)
    yield b
    await b.close()
    await asyncio.wait_for(task, 5)
    assert not fake.errors


async def test_connect_ready_and_sync(fake: FakeDiscord, bot: EchoBot) -> None:
    assert bot.user is not None and bot.user.id == fake.app_id
    assert {g.id for g in bot.guilds} == {GUILD, BIG_GUILD}
    assert bot.get_guild(BIG_GUILD).filesize_limit == 50 * MiB  # type: ignore[union-attr]
    assert bot.get_guild(GUILD).filesize_limit == 10 * MiB  # type: ignore[union-attr]
    assert {c["name"] for c in fake.commands[None]} == {"video", "note", "twice", "limit", "panel"}
    video = next(c for c in fake.commands[None] if c["name"] == "video")
    assert [(o["name"], o["type"], o.get("required")) for o in video["options"]] == [
        ("prompt", 3, True),
        ("duration", 4, False),
    ]
    assert fake.commands[GUILD] == []
    assert ("GET", "/users/@me") in [(r.method, r.path) for r in fake.requests]


async def test_slash_defer_edit_followup_and_click(fake: FakeDiscord, bot: EchoBot) -> None:
    i = await fake.slash(ALICE, CHANNEL, "video", {"prompt": "a cat", "duration": 20})
    follow = await fake.wait_for(lambda: [m for m in fake.messages if m.via == "webhook"], 3)
    assert i.responses[0][0] == 5 and i.response_delay is not None and i.response_delay < 3
    original = fake.message(i.message_id)  # type: ignore[arg-type]
    assert original.content == "a cat (20s)" and len(original.edits) == 1 and not original.flags & 128
    assert original.components[0]["components"][0]["custom_id"] == "job:7:cancel"
    assert original.allowed_mentions == {"parse": []}
    assert follow[0].content == "followup" and follow[0].attachments[0].data == b"\x00\x01data"
    assert follow[0].allowed_mentions == {"parse": []}

    click = await fake.click(ALICE, original, "job:7:cancel")
    await fake.wait_for(lambda: click.responses, 3)
    assert click.responses[0][0] == 7
    assert original.content == "cancelled job 7" and original.components == [] and len(original.edits) == 2


async def test_persistent_view_button_and_select(fake: FakeDiscord, bot: EchoBot) -> None:
    i = await fake.slash(ALICE, CHANNEL, "panel")
    await fake.wait_for(lambda: i.message_id, 3)
    panel = fake.message(i.message_id)  # type: ignore[arg-type]
    assert i.responses[0][0] == 4 and panel.content == "panel" and len(panel.components) == 2

    click = await fake.click(ALICE, panel, "persistent:stop")
    ephemeral = await fake.wait_for(lambda: [m for m in fake.messages if m.interaction_id == click.id], 3)
    assert click.responses[0][0] == 6 and ephemeral[0].content == "stopping" and ephemeral[0].ephemeral

    pick = await fake.select(ALICE, panel, "persistent:pick", ["2"])
    await fake.wait_for(lambda: pick.responses, 3)
    assert panel.content == "picked 2" and len(panel.edits) == 1


async def test_modal_and_second_ack(fake: FakeDiscord, bot: EchoBot) -> None:
    i = await fake.slash(ALICE, CHANNEL, "note")
    await fake.wait_for(lambda: i.responses, 3)
    assert i.responses[0][0] == 9 and i.responses[0][1]["data"]["custom_id"]
    m = await fake.submit_modal(ALICE, i.responses[0][1]["data"]["custom_id"], {"note": "hello"}, CHANNEL)
    reply = await fake.wait_for(lambda: [x for x in fake.messages if x.interaction_id == m.id], 3)
    assert reply[0].content == "noted: hello" and reply[0].ephemeral

    t = await fake.slash(ALICE, CHANNEL, "twice")
    await fake.wait_for(lambda: bot.errors, 3)
    err = bot.errors[0]
    assert isinstance(err, discord.HTTPException) and err.status == 400 and err.code == 40060
    assert len(t.responses) == 1


async def test_reply_with_attachment_and_upload_limits(fake: FakeDiscord, bot: EchoBot) -> None:
    first = await fake.say(ALICE, CHANNEL, "hello")
    await fake.say(ALICE, CHANNEL, "see file", reply_to=first, attachments=[("script.txt", b"line 1\nline 2")])
    reply = await fake.wait_for(lambda: [m for m in fake.messages if m.via == "channel"], 3)
    assert bot.downloads == [b"line 1\nline 2"] and bot.seen[1].reference.message_id == first.id  # type: ignore
    assert reply[0].content == "got 1 file(s)" and reply[0].allowed_mentions == {"parse": []}

    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    sent = await channel.send("file", file=discord.File(io.BytesIO(blob), "clip.mp4"))
    stored = fake.message(sent.id)
    assert stored.attachments[0].filename == "clip.mp4" and stored.attachments[0].data == blob
    with pytest.raises(discord.HTTPException) as too_big:
        await channel.send(file=discord.File(io.BytesIO(b"\0" * (10 * MiB + 1)), "big.mp4"))
    assert too_big.value.status == 413 and too_big.value.code == 40005
    big_channel = bot.get_channel(BIG_CHANNEL)
    assert isinstance(big_channel, discord.TextChannel)
    await big_channel.send(file=discord.File(io.BytesIO(b"\0" * (10 * MiB + 1)), "big.mp4"))  # 50 MiB there
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.code == 50035 and "content" in too_long.value.text

    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=CHANNEL)
    with pytest.raises(discord.HTTPException) as too_many:  # discord.py itself refuses 11 embeds: send raw
        await bot.http.request(route, json={"embeds": [{"description": "x"}] * 11, "allowed_mentions": {"parse": []}})
    assert too_many.value.code == 50035 and "embeds" in too_many.value.text
    rows = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "c" * 101}]}]
    with pytest.raises(discord.HTTPException) as long_id:
        await bot.http.request(route, json={"content": "x", "components": rows})
    assert "components.0.components.0.custom_id" in long_id.value.text
    with pytest.raises(discord.HTTPException) as long_embed:
        await channel.send(embed=discord.Embed(description="x" * 4097))
    assert "embeds.0.description" in long_embed.value.text
    with pytest.raises(discord.HTTPException) as total:
        await channel.send(embeds=[discord.Embed(description="x" * 4000), discord.Embed(description="y" * 2001)])
    assert "6000" in total.value.text
    assert (await bot.fetch_channel(CHANNEL)).id == CHANNEL

    edited = await sent.edit(content="edited")
    assert edited.content == "edited" and len(stored.edits) == 1


async def test_expired_token_and_reconnect(fake: FakeDiscord, bot: EchoBot) -> None:
    i = await fake.slash(ALICE, BIG_CHANNEL, "limit")
    await fake.wait_for(lambda: i.message_id, 3)
    assert fake.message(i.message_id).content == f"limit {50 * MiB}"  # type: ignore[arg-type]
    webhook = discord.Webhook.partial(fake.app_id, i.token, client=bot)
    await webhook.edit_message(
        i.message_id,
        content="with file",  # type: ignore[arg-type]
        attachments=[discord.File(io.BytesIO(b"mp4 bytes"), "out.mp4")],
    )
    stored = fake.message(i.message_id)  # type: ignore[arg-type]
    assert [(a.filename, a.data) for a in stored.attachments] == [("out.mp4", b"mp4 bytes")]
    assert stored.content == "with file" and stored.edits[-1][1]["allowed_mentions"] == {"parse": []}
    fake.expire_tokens()
    with pytest.raises(discord.HTTPException) as expired:
        await webhook.edit_message(i.message_id, content="late")  # type: ignore[arg-type]
    assert expired.value.status == 401 and expired.value.code == 50027

    await fake.disconnect()  # server drops the socket: the client reconnects and RESUMEs
    await fake.wait_for(lambda: fake.resumes == 1 and fake.connected, 5)
    i = await fake.slash(ALICE, CHANNEL, "limit")
    await fake.wait_for(lambda: i.message_id, 3)
    assert len(fake.identifies) == 1


async def test_invalid_session_reidentifies(fake: FakeDiscord, bot: EchoBot, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(shard_id: int | None, *, initial: bool = False) -> None:
        return None

    monkeypatch.setattr(bot, "before_identify_hook", no_wait)  # skip discord.py's 5 s pause before re-IDENTIFY
    fake.invalidate_sessions()
    await fake.disconnect()
    await fake.wait_for(lambda: len(fake.identifies) == 2 and fake.connected, 5)
    assert fake.resumes == 1
    i = await fake.slash(ALICE, CHANNEL, "limit")
    await fake.wait_for(lambda: i.message_id, 3)


async def test_restart_new_client(fake: FakeDiscord) -> None:
    for _ in range(2):
        b = EchoBot()
        task = asyncio.create_task(b.start("t0ken"))
        await started(b, task)
        await b.close()
        await asyncio.wait_for(task, 5)
    assert len(fake.identifies) == 2 and not fake.errors


async def test_subprocess_bot_and_restart(fake: FakeDiscord) -> None:
    """The real bot runs in its own process (like `storybot bot`); a restart is a fresh IDENTIFY."""
    env = {**os.environ, "DISCORD_TOKEN": "t0ken", "DISCORD_API_BASE": fake.api_base}
    for run in (1, 2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.discord_echo_bot", env=env, cwd=Path(__file__).resolve().parent.parent
        )
        try:
            await fake.wait_connected(15)
            await fake.wait_for(lambda: fake.commands.get(None), 5)
            i = await fake.slash(ALICE, CHANNEL, "echo", {"text": f"run {run}"})
            await fake.wait_for(lambda: i.message_id and fake.message(i.message_id).edits, 5)  # noqa: B023
            assert fake.message(i.message_id).content == f"echo: run {run}"  # type: ignore[arg-type]
            assert i.response_delay is not None and i.response_delay < 3
        finally:
            proc.terminate()
            await proc.wait()
        await fake.wait_for(lambda: not fake.connected, 5)
    assert len(fake.identifies) == 2
    assert [r.path for r in fake.requests if r.method == "GET"][:3] == [
        "/users/@me",
        "/oauth2/applications/@me",
        "/gateway/bot",
    ]


async def test_a_smaller_reported_limit_and_a_refusal_under_it(fake: FakeDiscord, bot: EchoBot) -> None:
    guild = fake.guild_of(CHANNEL)
    assert guild is not None
    guild.attachment_size_limit = 64 * 1024  # what Discord says for this server now
    i = await fake.slash(ALICE, CHANNEL, "note")
    assert i.payload["attachment_size_limit"] == 64 * 1024  # discord.py: Interaction.filesize_limit
    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    await channel.send(file=discord.File(io.BytesIO(b"\1" * 64 * 1024), "fits.mp4"))
    with pytest.raises(discord.HTTPException) as over:
        await channel.send(file=discord.File(io.BytesIO(b"\1" * (64 * 1024 + 1)), "over.mp4"))
    assert over.value.status == 413 and over.value.code == 40005
    guild.refuse_over = 1000  # refuses what it reported as fitting
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(file=discord.File(io.BytesIO(b"\1" * 2000), "small.mp4"))
    assert refused.value.status == 413 and refused.value.code == 40005
