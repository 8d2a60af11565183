"""The Publish button under a delivered video: pick linked accounts, fill the form, follow the upload.

Only the person who asked for the video or a holder of STORYBOT_PUBLISHER_ROLE_ID may publish it (the
approver role alone is not enough: publishing speaks for someone in public). The button opens a
private menu of the linked sites; choosing opens a form with the job's title and description and
the privacy (private unless changed; Instagram Reels are public, and the form says so); the upload
then runs with its progress in that private reply, and each site's link (or its refusal, in one
line) is posted in the channel. A second click on a finished publication answers with the same link:
the ledger never publishes twice.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import TYPE_CHECKING, Any, cast, get_args

import discord
from discord import ui

from bot.messages import NO_MENTIONS
from graph.api import (
    JOB_ID_PATTERN,
    BadInput,
    Choice,
    Event,
    Outcome,
    Privacy,
    Publication,
    Settings,
    StorybotError,
    linked_platforms,
    may_publish,
    publish_job,
    redact,
)

if TYPE_CHECKING:
    from bot.conductor import Conductor

log = logging.getLogger("storybot.bot")
JOB = rf"(?P<job>{JOB_ID_PATTERN})"
SITES = r"(?P<sites>[a-z]+(?:,[a-z]+){0,5})"
NOT_YOURS = "Only the person who asked for this video, or someone with the publisher role, can publish it."
NONE_LINKED = "No accounts are linked: run `storybot accounts add youtube|tiktok|instagram` where the bot runs."
EDIT_EVERY = 2.0  # seconds between progress edits


def conductor_of(interaction: discord.Interaction[Any]) -> Conductor:
    return cast("Conductor", interaction.client.conductor)


def allowed(conductor: Conductor, user: discord.abc.User, job_id: str) -> bool:
    """The requester, or a holder of the publisher role."""
    role = conductor.settings.publisher_role_id
    holds = role is not None and any(r.id == role for r in getattr(user, "roles", []))
    try:
        record = conductor.service.get(job_id)
    except BadInput:
        return False
    return may_publish(record, f"discord:{user.id}", holds)


class PublishGuard:
    job_id: str

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if allowed(conductor_of(interaction), interaction.user, self.job_id):
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False


class PublishButton(PublishGuard, ui.DynamicItem[ui.Button[Any]], template=rf"sb:publish:{JOB}"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            ui.Button(label="Publish", style=discord.ButtonStyle.primary, emoji="📤", custom_id=f"sb:publish:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> PublishButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        linked = linked_platforms(conductor_of(interaction).settings)
        if not linked:
            await interaction.response.send_message(NONE_LINKED, ephemeral=True)
            return
        view = ui.View(timeout=None)
        view.add_item(PublishSelect(self.job_id, [(s.platform, f"{s.label}: {s.account}"[:100]) for s in linked]))
        await interaction.response.send_message("Where should it go?", view=view, ephemeral=True)


class PublishSelect(PublishGuard, ui.DynamicItem[ui.Select[Any]], template=rf"sb:pubto:{JOB}"):
    def __init__(self, job_id: str, sites: list[tuple[str, str]] | None = None) -> None:
        # rebuilt from a custom_id only to run its callback: the options then are a placeholder
        options = [discord.SelectOption(label=label, value=name) for name, label in sites or [("-", "-")]]
        super().__init__(
            ui.Select(
                custom_id=f"sb:pubto:{job_id}",
                placeholder="Choose the accounts",
                min_values=1,
                max_values=len(options),
                options=options,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> PublishSelect:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        conductor = conductor_of(interaction)
        known = {s.platform: s for s in linked_platforms(conductor.settings)}
        data = cast(dict[str, Any], interaction.data or {})  # Discord's payload, read as it came
        chosen = [v for v in dict.fromkeys(str(v) for v in data.get("values", [])) if v in known]  # forged: dropped
        if not chosen:
            await interaction.response.send_message(NONE_LINKED, ephemeral=True)
            return
        record = conductor.service.get(self.job_id)
        meta = record.result.platforms if record.result else None
        title = meta.title if meta else record.prompt
        description = meta.description if meta else ""
        public = {name: known[name].label for name in chosen if known[name].public_only}
        await interaction.response.send_modal(PublishModal(self.job_id, chosen, title, description, public))


class PublishModal(ui.Modal):
    """Title, description and privacy for the chosen sites (their own limits are applied on top)."""

    def __init__(
        self, job_id: str, sites: list[str], title: str, description: str, public_only: dict[str, str] | None = None
    ) -> None:
        public_only = public_only or {}  # name -> label; said in the title: Discord's labels are short
        title_line = f"Publish ({' and '.join(public_only.values())}: public)" if public_only else "Publish the video"
        super().__init__(title=title_line[:45], timeout=None, custom_id=f"sb:pubform:{job_id}:{','.join(sites)}")
        self.job_id, self.sites, self.public_only = job_id, sites, list(public_only)
        self.video_title: ui.TextInput[Any] = ui.TextInput(
            label="Title", default=title[:100], max_length=100, custom_id="title"
        )
        self.description: ui.TextInput[Any] = ui.TextInput(
            label="Description",
            style=discord.TextStyle.paragraph,
            default=description[:4000],
            max_length=4000,
            required=False,
            custom_id="description",
        )
        self.privacy: ui.TextInput[Any] = ui.TextInput(
            label="Privacy: private, unlisted or public",
            default="public" if len(public_only) == len(sites) else "private",
            max_length=8,
            custom_id="privacy",
        )
        for item in (self.video_title, self.description, self.privacy):
            self.add_item(item)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if allowed(conductor_of(interaction), interaction.user, self.job_id):
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        privacy = self.privacy.value.strip().lower()
        if privacy not in get_args(Privacy):
            await interaction.response.send_message("⚠️ Privacy is private, unlisted or public.", ephemeral=True)
            return
        choice = Choice(
            title=self.video_title.value.strip() or None,
            description=self.description.value,
            privacy=cast(Privacy, privacy),
        )
        await interaction.response.defer(ephemeral=True, thinking=True)
        # a public-only site (Instagram) goes public whatever the others get: its own default, not a refusal
        chosen = [s for s in self.sites if s not in self.public_only]
        groups = [(chosen, choice), (self.public_only, choice.model_copy(update={"privacy": None}))]
        await publish_from_discord(interaction, self.job_id, [(sites, c) for sites, c in groups if sites])


async def publish_from_discord(
    interaction: discord.Interaction[Any], job_id: str, groups: list[tuple[list[str], Choice]]
) -> None:
    """Run the publication, with its progress in the private reply and the outcome in the channel."""
    conductor = conductor_of(interaction)
    settings = conductor.settings
    last = 0.0
    notices: list[str] = []

    async def progress(record: Publication) -> None:
        nonlocal last
        if time.monotonic() - last < EDIT_EVERY:
            return
        last = time.monotonic()
        share = 100 * record.confirmed_bytes / record.total_bytes if record.total_bytes else 0
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(content=f"📤 {record.platform}: {record.state}, {share:.0f}%")

    await _board(conductor, job_id, f"📤 publishing to {', '.join(s for sites, _ in groups for s in sites)}")
    outcomes: list[Outcome] = []
    try:
        for sites, choice in groups:
            outcomes += await publish_job(settings, job_id, ",".join(sites), choice, progress, notices.append)
    except StorybotError as exc:  # bad input (a site's rule), found before anything was sent to that group
        await interaction.followup.send(f"⚠️ {redact(str(exc), settings)}", ephemeral=True)
        if not outcomes:
            return
    for o in outcomes:
        await _board(conductor, job_id, f"📤 {o.label}: {o.link or o.remote_id or ''} ({o.state})")
    lines = [outcome_line(o) for o in outcomes]
    text = f"📤 Job {job_id}, published by {interaction.user.display_name}:\n" + "\n".join(lines)
    extra = "\n".join(f"ℹ️ {n}" for n in dict.fromkeys(notices))
    with contextlib.suppress(discord.HTTPException):
        await interaction.edit_original_response(content="\n".join(filter(None, ["Done.", extra])))
    channel = interaction.channel_id or 0
    await conductor.bot.get_partial_messageable(channel).send(
        redact(text, settings)[:2000], allowed_mentions=NO_MENTIONS
    )


async def _board(conductor: Conductor, job_id: str, line: str) -> None:
    """A note on the job's status message (its last three notes show), edited as the board allows."""
    conductor.status.note(job_id, Event(job_id=job_id, kind="notice", message=line))
    try:
        await conductor.refresh(job_id)
    except (discord.HTTPException, OSError) as exc:  # the board is a courtesy: publishing goes on
        log.warning("job %s: status message not updated: %s", job_id, exc)


def outcome_line(o: Outcome) -> str:
    """One line per site: its link, its id when a private post has no link, or its refusal."""
    if o.state == "done":
        where = f"<{o.link}>" if o.link else f"{o.remote_label} `{o.remote_id}` (a {o.privacy} post has no public link)"
        return f"• {o.label}: {where} ({o.privacy}{', published earlier' if o.already else ''})"
    return f"• {o.label}: not published: {o.error or o.state}"


def publish_view(settings: Settings, job_id: str) -> ui.View:
    """The components of the delivered video: the Publish button when an account is linked, else none."""
    view = ui.View(timeout=None)
    if linked_platforms(settings):
        view.add_item(PublishButton(job_id))
    return view


PUBLISH_ITEMS = (PublishButton, PublishSelect)
