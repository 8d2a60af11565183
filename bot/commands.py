"""Slash commands and chat replies: a thin layer that validates input and hands over to the Conductor."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.conductor import Conductor, conductor_of
from bot.links import job_links
from bot.text import duration, one_line, quote, visible
from bot.views import modal_note
from graph.api import (
    Answer,
    BadInput,
    JobRequest,
    KeyframeApproval,
    VoiceInfo,
    keep_uploads,
    media_kind,
    resolve_visuals,
    resolve_voice,
    valid_job_id,
    voice_catalogue,
)

log = logging.getLogger("storybot.bot")
NO_MENTIONS = discord.AllowedMentions.none()
VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+:\-]{0,79}$")
MAX_SCRIPT_BYTES = 64 * 1024
SURPRISE = "a short, surprising story with a twist at the end"
MAX_MEDIA = 10  # Discord's attachments per message
MAX_MEDIA_BYTES = 200 * 1024 * 1024
VISUALS = [
    app_commands.Choice(name="auto (the best configured)", value="auto"),
    app_commands.Choice(name="art cards (offline)", value="cards"),
    app_commands.Choice(name="stock footage (Pexels, Pixabay)", value="stock"),
    app_commands.Choice(name="hosted image model", value="images"),
    app_commands.Choice(name="SDXL on the GPU", value="gpu"),
]
ASPECTS = [
    app_commands.Choice(name="9:16 vertical (Shorts, TikTok, Reels)", value="9:16"),
    app_commands.Choice(name="16:9 wide", value="16:9"),
    app_commands.Choice(name="1:1 square", value="1:1"),
]


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
    @app_commands.describe(
        prompt="What the video is about",
        duration="Length in seconds (5 to 180)",
        aspect="Frame shape",
        voice="Voice, e.g. piper:en_US-joe-medium (see /voices)",
        auto_approve="Skip the approvals and go straight to the video",
        ideas="Offer scored story ideas from the prompt to pick from first",
        visuals="Where the pictures come from",
        media1="Your own picture or clip for shot 1",
        media2="... for shot 2",
        media3="... for shot 3",
        media4="... for shot 4",
    )
    @app_commands.choices(aspect=ASPECTS, visuals=VISUALS)
    async def video(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, 1000],
        duration: app_commands.Range[int, 5, 180] = 45,
        aspect: str = "9:16",
        voice: str | None = None,
        auto_approve: bool = False,
        ideas: bool = False,
        visuals: str = "auto",
        media1: discord.Attachment | None = None,
        media2: discord.Attachment | None = None,
        media3: discord.Attachment | None = None,
        media4: discord.Attachment | None = None,
    ) -> None:
        if voice is not None and not VOICE_NAME.match(voice):
            await interaction.response.send_message(
                "That voice name is not valid: see /voices for the names.", ephemeral=True
            )
            return
        if voice is not None:
            try:
                resolve_voice(self.conductor.settings, voice)
            except BadInput as exc:
                await interaction.response.send_message(f"⚠️ {_reason(exc)}", ephemeral=True)
                return
        attached = [a for a in (media1, media2, media3, media4) if a is not None]
        if (refusal := _not_media(attached)) is not None:
            await interaction.response.send_message(f"⚠️ {refusal}", ephemeral=True)
            return
        media: list[str] = []
        if attached:
            await interaction.response.defer(thinking=True)  # downloading can take longer than Discord waits
            try:
                media = [str(p) for p in await self._keep(attached)]
            except BadInput as exc:
                await interaction.followup.send(f"⚠️ {_reason(exc)}", ephemeral=True)
                return
        await self._start(interaction, prompt, float(duration), aspect, voice, auto_approve, ideas, visuals, media)

    @video.autocomplete("voice")
    async def voice_names(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        """Catalogue names containing what was typed, the default first (Discord shows 25 at most)."""
        typed = current.strip().lower()
        rows = sorted(voice_catalogue(self.conductor.settings), key=lambda v: not v.default)
        return [
            app_commands.Choice(name=f"{v.name} ({v.language}{_reach(v, ', ')})"[:100], value=v.name)
            for v in rows
            if typed in v.name.lower()
        ][:25]

    @app_commands.command(name="voices", description="The voices /video can use")
    @app_commands.describe(language="Only voices for this language, e.g. en, es, ja")
    async def voices(
        self, interaction: discord.Interaction[Any], language: app_commands.Range[str, 2, 16] | None = None
    ) -> None:
        try:
            rows = voice_catalogue(self.conductor.settings, language.strip() if language else None)
        except BadInput:
            rows = []
        if not rows:
            await interaction.response.send_message(
                f"No voice speaks {one_line(language or '', 16)!r}.", ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        lines = [
            f"`{v.name}` {v.language}{_reach(v, ' · ')}{' · ' + v.licence if v.licence else ''}"
            f"{' · needs a key' if v.needs_key else ''}{' · **default**' if v.default else ''}"
            for v in rows
        ]
        shown, size = [], 0
        for line in lines:
            if size + len(line) + 1 > 1900:
                break
            shown.append(line)
            size += len(line) + 1
        more = len(lines) - len(shown)
        tail = f"\n…and {more} more: try `/voices language:es`" if more else ""
        await interaction.response.send_message("\n".join(shown) + tail, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="ideas", description="Get scored story ideas to pick from, then a video")
    @app_commands.describe(topic="A theme to start from (optional)")
    async def ideas(
        self, interaction: discord.Interaction[Any], topic: app_commands.Range[str, 1, 1000] | None = None
    ) -> None:
        await self._start(interaction, topic or SURPRISE, 45.0, "9:16", None, False, True)

    async def _start(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        seconds: float,
        aspect: str,
        voice: str | None,
        auto_approve: bool,
        ideas: bool,
        visuals: str = "auto",
        media: list[str] | None = None,
    ) -> None:
        """`/video` goes straight to the script (the prompt is the idea); `/ideas` and `ideas:True` pick first."""
        try:
            request = JobRequest(
                prompt=visible(prompt),
                duration=seconds,
                aspect=aspect,
                voice=voice,
                ideas=ideas,
                visuals=visuals,
                media=media or [],
            )
            if not media:
                resolve_visuals(request.visuals, self.conductor.service.settings)
        except (BadInput, ValueError) as exc:
            send = interaction.followup.send if interaction.response.is_done() else interaction.response.send_message
            await send(f"⚠️ {_reason(exc)}", ephemeral=True)
            return
        await self.conductor.start(interaction, request, auto_approve)

    @app_commands.command(name="jobs", description="Your videos, newest first")
    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        mine = self.conductor.service.jobs_of(self.conductor.requester(interaction.user).id)[:15]
        if not mine:
            await interaction.response.send_message("You have no videos yet: try `/video`.", ephemeral=True)
            return
        lines = [
            f"`{j.job_id}` **{j.status}**{f' ({j.stage})' if j.status == 'running' and j.stage else ''}"
            f" · {one_line(quote(j.prompt), 60)} · <t:{int(j.created)}:R>"
            for j in mine
        ]
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="job", description="The status of one of your videos")
    @app_commands.describe(id="The job id (from /jobs)")
    async def job(self, interaction: discord.Interaction[Any], id: str) -> None:
        if (job_id := await self._own(interaction, id)) is None:
            return
        embed = self.conductor.job_embed(job_id)
        record = self.conductor.service.get(job_id)
        if record.status == "done" and record.wall_seconds:
            embed.add_field(name="Made in", value=duration(record.wall_seconds))
        if self.conductor.links is not None and (found := job_links(self.conductor.links, record)):
            embed.add_field(
                name="Full-quality files (signed links)",
                inline=False,
                value="\n".join(f"[{name}]({url})" for name, url in found)[:1024],
            )
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
        await interaction.response.send_message(
            f"Job `{job_id}` is cancelled (or stops before its next step).", ephemeral=True
        )
        await self.conductor.refresh(job_id)

    async def _own(self, interaction: discord.Interaction[Any], job_id: str) -> str | None:
        """The job id as stored, if it names a job of this person's (or they are an approver)."""
        job_id = job_id.strip().lower()
        if not valid_job_id(job_id) or not self.conductor.allowed(interaction.user, job_id):
            await interaction.response.send_message("No job of yours has that id: see `/jobs`.", ephemeral=True)
            return None
        return job_id

    async def cog_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
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
            await message.reply(
                "Only the person who asked for this video, or an approver, can answer it.",
                allowed_mentions=NO_MENTIONS,
                delete_after=30,
            )
            return
        record = self.conductor.service.get(job_id)
        try:
            if record.approval is None or record.interrupt_id != interrupt_id:
                raise BadInput("that approval is no longer pending: answer the current one")
            pictures = [a for a in message.attachments if not a.filename.lower().endswith(".txt")]
            if pictures and isinstance(record.approval, KeyframeApproval):
                answer = await self._replacement(pictures, visible(message.content), len(record.approval.shots))
            else:
                answer = record.approval.parse(visible(message.content), await _attached_script(message))
        except BadInput as exc:
            await message.reply(f"⚠️ {_reason(exc)}", allowed_mentions=NO_MENTIONS)
            return
        if await self.conductor.reply_while_busy(message, job_id, answer):  # kept for the next approval
            return
        await self.conductor.answer_reply(message, job_id, interrupt_id, answer)

    async def _replacement(self, pictures: list[discord.Attachment], text: str, shots: int) -> Answer:
        """Pictures or clips replying to the keyframes, with the shot numbers they replace ("3", "2,4")."""
        if (refusal := _not_media(pictures)) is not None:
            raise BadInput(refusal)
        said = re.findall(r"-?[0-9]+", text)  # "-1" is shot -1 (refused), never shot 1
        if too_long := [n for n in said if len(n) > 5]:
            raise BadInput(f"there is no shot {too_long[0][:8]}…: the shots are 1 to {shots}")
        numbers = [int(n) for n in said]
        if not numbers:
            raise BadInput("say which shot each picture replaces, e.g. `3`, or `2,4` for two pictures")
        if len(numbers) != len(pictures):
            raise BadInput(f"{len(pictures)} pictures and {len(numbers)} shot numbers: give one number per picture")
        if len(set(numbers)) != len(numbers):
            raise BadInput("each shot number once, please")
        if wrong := [n for n in numbers if not 1 <= n <= shots]:
            raise BadInput(f"there is no shot {wrong[0]}: the shots are 1 to {shots}")
        kept = await self._keep(pictures)
        return Answer(action="reroll", shots=numbers, media=[str(p) for p in kept])

    async def _keep(self, attachments: list[discord.Attachment]) -> list[Path]:
        """The attachments saved under the data folder, named by order (never by the sender's names)."""
        folder = self.conductor.service.settings.data_dir / "uploads" / secrets.token_hex(8)
        return keep_uploads([(a.filename, await a.read()) for a in attachments], folder)


async def _attached_script(message: discord.Message) -> str | None:
    """The text of a .txt attached to a reply (a script to use instead), or None."""
    scripts = [a for a in message.attachments if a.filename.lower().endswith(".txt")]
    if not scripts:
        return None
    if scripts[0].size > MAX_SCRIPT_BYTES:
        raise BadInput(f"that file is too big for a script (at most {MAX_SCRIPT_BYTES // 1024} KiB)")
    try:
        body = (await scripts[0].read()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput("that file is not UTF-8 text") from None
    return visible(body)


def _not_media(attachments: list[discord.Attachment]) -> str | None:
    """A refusal for an attachment that is plainly not a picture or clip (its bytes are checked later)."""
    if len(attachments) > MAX_MEDIA:
        return f"at most {MAX_MEDIA} pictures or clips at once"
    for a in attachments:
        kind = (a.content_type or "").split("/", 1)[0]
        if kind not in ("image", "video") and media_kind(Path(a.filename)) is None:
            return f"{one_line(a.filename, 80)}: not a picture or a video clip"
        if a.size > MAX_MEDIA_BYTES:
            return f"{one_line(a.filename, 80)}: over {MAX_MEDIA_BYTES // 2**20} MB"
    return None


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


def _reach(voice: VoiceInfo, sep: str) -> str:
    """What using a voice takes beyond this machine: the network each time, or one download."""
    if not voice.installed:
        return f"{sep}downloaded on first use"
    return f"{sep}online" if not voice.offline else ""
