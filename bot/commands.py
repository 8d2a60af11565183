"""Slash commands and chat replies: a thin layer that validates input and hands over to the Conductor."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.conductor import Conductor, conductor_of
from bot.text import duration, is_approval, one_line, quote, shot_numbers, visible
from bot.views import modal_note
from graph.api import Answer, BadInput, JobRequest, resolve_voice, voice_catalogue

log = logging.getLogger("storybot.bot")
NO_MENTIONS = discord.AllowedMentions.none()
VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+:\-]{0,79}$")
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_SCRIPT_BYTES = 64 * 1024
SURPRISE = "a short, surprising story with a twist at the end"
ASPECTS = [app_commands.Choice(name="9:16 vertical (Shorts, TikTok, Reels)", value="9:16"),
           app_commands.Choice(name="16:9 wide", value="16:9"),
           app_commands.Choice(name="1:1 square", value="1:1")]


class VideoCommands(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.conductor: Conductor = conductor_of(bot)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Optional guild and channel allow-lists, for every command of this cog."""
        if self.conductor.place_allowed(interaction.guild_id, interaction.channel_id):
            return True
        await interaction.response.send_message("storybot is not enabled in this channel.", ephemeral=True)
        return False

    @app_commands.command(name="video", description="Make a short video from a prompt")
    @app_commands.describe(prompt="What the video is about", duration="Length in seconds (5 to 180)",
                           aspect="Frame shape", voice="Voice, e.g. piper:en_US-joe-medium (see /voices)",
                           auto_approve="Skip the approvals and go straight to the video")
    @app_commands.choices(aspect=ASPECTS)
    async def video(self, interaction: discord.Interaction[Any], prompt: app_commands.Range[str, 1, 1000],
                    duration: app_commands.Range[int, 5, 180] = 45, aspect: str = "9:16",
                    voice: str | None = None, auto_approve: bool = False) -> None:
        if voice is not None and not VOICE_NAME.match(voice):
            await interaction.response.send_message("That voice name is not valid: use letters, digits, - or _.",
                                                    ephemeral=True)
            return
        if voice is not None:
            try:
                resolve_voice(self.conductor.settings, voice)
            except BadInput as exc:
                await interaction.response.send_message(f"⚠️ {_reason(exc)}", ephemeral=True)
                return
        await self._start(interaction, prompt, float(duration), aspect, voice, auto_approve)

    @video.autocomplete("voice")
    async def voice_names(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        """Catalogue names containing what was typed, the default first (Discord shows 25 at most)."""
        typed = current.strip().lower()
        rows = sorted(voice_catalogue(self.conductor.settings), key=lambda v: not v.default)
        return [app_commands.Choice(name=f"{v.name} ({v.language}{', online' if not v.offline else ''})"[:100],
                                    value=v.name) for v in rows if typed in v.name.lower()][:25]

    @app_commands.command(name="voices", description="The voices /video can use")
    @app_commands.describe(language="Only voices for this language, e.g. en, es, ja")
    async def voices(self, interaction: discord.Interaction[Any],
                     language: app_commands.Range[str, 2, 16] | None = None) -> None:
        try:
            rows = voice_catalogue(self.conductor.settings, language.strip() if language else None)
        except BadInput:
            rows = []
        if not rows:
            await interaction.response.send_message(f"No voice speaks {one_line(language or '', 16)!r}.",
                                                    ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        lines = [f"`{v.name}` {v.language}{' · online' if not v.offline else ''}"
                 f"{' · needs a key' if v.needs_key else ''}{' · **default**' if v.default else ''}" for v in rows]
        shown, size = [], 0
        for line in lines:
            if size + len(line) + 1 > 1900:
                break
            shown.append(line)
            size += len(line) + 1
        more = len(lines) - len(shown)
        tail = f"\n…and {more} more: try `/voices language:es`" if more else ""
        await interaction.response.send_message("\n".join(shown) + tail, ephemeral=True,
                                                allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="ideas", description="Get scored story ideas to pick from, then a video")
    @app_commands.describe(topic="A theme to start from (optional)")
    async def ideas(self, interaction: discord.Interaction[Any],
                    topic: app_commands.Range[str, 1, 1000] | None = None) -> None:
        await self._start(interaction, topic or SURPRISE, 45.0, "9:16", None, False)

    async def _start(self, interaction: discord.Interaction[Any], prompt: str, seconds: float, aspect: str,
                     voice: str | None, auto_approve: bool) -> None:
        try:
            request = JobRequest(prompt=visible(prompt), duration=seconds, aspect=aspect, voice=voice)
        except (BadInput, ValueError) as exc:
            await interaction.response.send_message(f"⚠️ {_reason(exc)}", ephemeral=True)
            return
        await self.conductor.start(interaction, request, auto_approve)

    @app_commands.command(name="jobs", description="Your videos, newest first")
    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        mine = self.conductor.service.jobs_of(self.conductor.requester(interaction.user).id)[:15]
        if not mine:
            await interaction.response.send_message("You have no videos yet: try `/video`.", ephemeral=True)
            return
        lines = [f"`{j.job_id}` **{j.status}**{f' ({j.stage})' if j.status == 'running' and j.stage else ''}"
                 f" · {one_line(quote(j.prompt), 60)} · <t:{int(j.created)}:R>" for j in mine]
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True,
                                                allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="job", description="The status of one of your videos")
    @app_commands.describe(id="The job id (from /jobs)")
    async def job(self, interaction: discord.Interaction[Any], id: str) -> None:
        if (job_id := await self._own(interaction, id)) is None:
            return
        embed = self.conductor.job_embed(job_id)
        record = self.conductor.service.get(job_id)
        if record.status == "done" and record.wall_seconds:
            embed.add_field(name="Made in", value=duration(record.wall_seconds))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="cancel", description="Stop one of your videos")
    @app_commands.describe(id="The job id (from /jobs)")
    async def cancel(self, interaction: discord.Interaction[Any], id: str) -> None:
        if (job_id := await self._own(interaction, id)) is None:
            return
        try:
            await self.conductor.service.cancel(job_id, self.conductor.requester(interaction.user))
        except BadInput as exc:
            await interaction.response.send_message(f"⚠️ {_reason(exc)}", ephemeral=True)
            return
        await interaction.response.send_message(f"Job `{job_id}` is cancelled (or stops before its next step).",
                                                ephemeral=True)
        await self.conductor.refresh(job_id)

    async def _own(self, interaction: discord.Interaction[Any], job_id: str) -> str | None:
        """The job id as stored, if it names a job of this person's (or they are an approver)."""
        job_id = job_id.strip().lower()
        if not JOB_ID.match(job_id) or not self.conductor.allowed(interaction.user, job_id):
            await interaction.response.send_message("No job of yours has that id: see `/jobs`.", ephemeral=True)
            return None
        return job_id

    async def cog_app_command_error(self, interaction: discord.Interaction[Any],
                                    error: app_commands.AppCommandError) -> None:
        log.error("command %s failed", interaction.command and interaction.command.name, exc_info=error)
        text = "⚠️ Something went wrong on my side; it is logged. Please try again."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """The revise form, answered from its custom_id (see `ReviseModal`)."""
        if (submitted := modal_note(interaction)) is None:
            return
        job_id, interrupt_id, note = submitted
        if await self.conductor.authorize(interaction, job_id):
            await self.conductor.answer_click(interaction, job_id, interrupt_id, Answer(action="revise", note=note))

    # replies ------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A reply to an approval message steers its job: approve, a note to revise, a .txt to replace."""
        if message.author.bot or message.reference is None or message.reference.message_id is None:
            return
        found = self.conductor.records.prompt(message.reference.message_id)
        if found is None:
            return
        job_id, interrupt_id = found
        if not self.conductor.allowed(message.author, job_id):
            await message.reply("Only the person who asked for this video, or an approver, can answer it.",
                                allowed_mentions=NO_MENTIONS, delete_after=30)
            return
        try:
            answer = await self._answer_from(message, self.conductor.service.get(job_id).waiting_for)
        except BadInput as exc:
            await message.reply(f"⚠️ {_reason(exc)}", allowed_mentions=NO_MENTIONS)
            return
        await self.conductor.answer_reply(message, job_id, interrupt_id, answer)

    async def _answer_from(self, message: discord.Message, approval: str | None) -> Answer:
        text = visible(message.content).strip()
        scripts = [a for a in message.attachments if a.filename.lower().endswith(".txt")]
        if scripts:
            if scripts[0].size > MAX_SCRIPT_BYTES:
                raise BadInput(f"that file is too big for a script (at most {MAX_SCRIPT_BYTES // 1024} KiB)")
            try:
                body = (await scripts[0].read()).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise BadInput("that file is not UTF-8 text") from None
            return Answer(action="replace", text=visible(body))
        if text.lower() in ("cancel", "stop"):
            return Answer(action="cancel")
        if is_approval(text):
            return Answer(action="approve")
        if approval == "pick_idea":
            numbers = shot_numbers(text)
            if not numbers:
                raise BadInput("reply with the number of the idea you want, or approve")
            return Answer(action="pick", index=numbers[0] - 1)
        if approval == "approve_keyframes":
            numbers = shot_numbers(text)
            if not numbers:
                raise BadInput("reply with the shot numbers to draw again (e.g. `2, 4`), or approve")
            return Answer(action="reroll", shots=numbers)
        if not text:
            raise BadInput("reply with what to change, approve, or attach a .txt script")
        return Answer(action="revise", note=text)


def _reason(exc: Exception) -> str:
    if isinstance(exc, BadInput):
        return one_line(str(exc), 300)
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return one_line(str(first.get("msg", exc)).removeprefix("Value error, "), 300)
    return one_line(str(exc), 300)


async def setup(bot: commands.Bot) -> None:
    """The extension's entry point (`bot.load_extension("bot.commands")`)."""
    await bot.add_cog(VideoCommands(bot))
