"""Delivering a finished video once, under the upload limit Discord reported, and finishing a delivery
a restart cut short.

The limit is the one the job's interaction reported (`attachment_size_limit`, stored with the job), or
the delivery channel's server limit. The master goes up when it fits; else a copy fitted to the limit
(the render's, or one fitted here); a 413 (40005) from Discord falls back to a copy fitted smaller, then
to a signed link to the master, then to a note saying where it is. The delivery is claimed with a
compare-and-set in `Records`; a claim left unfinished (a crash, a failed post) is settled on the next
start from the channel's recent history, so a video is posted exactly once. With remote storage the
master comes from the store when this machine did not run the job (`graph.stored.local_copy`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import discord
from discord.ext import commands

from bot.links import Links
from bot.messages import NO_MENTIONS, credits_text, delivery_text, link_line, too_big_text
from bot.publishing import publish_view
from bot.records import Post, Records
from bot.text import mib
from graph.api import (
    DEFAULT_LIMIT,
    JobRecord,
    JobService,
    Settings,
    StorybotError,
    fit_for_upload,
    is_remote,
    local_copy,
)

log = logging.getLogger("storybot.bot")
TOO_LARGE = 413  # with code 40005: the upload is over the limit, whatever the limit was said to be
SHRINK = 0.8  # after a 413, the next copy aims this much under the file Discord refused
FITTED = "final.fitted.mp4"


class Delivery:
    def __init__(
        self, bot: commands.Bot, service: JobService, records: Records, settings: Settings, links: Links | None
    ) -> None:
        self.bot, self.service, self.records, self.settings, self.links = bot, service, records, settings, links

    async def deliver(self, job_id: str) -> None:
        """Post the video once; a post that fails is left claimed-but-unfinished for the next start."""
        post = self.records.post(job_id)
        if post is None or not self.records.claim_delivery(job_id):
            return
        try:
            message_id = await self._post(post)
        except (discord.HTTPException, OSError) as exc:
            log.warning("job %s: delivery failed (%s); the bot tries again when it next starts", job_id, exc)
            return
        self.records.update(job_id, delivered_message_id=message_id)

    async def _post(self, post: Post) -> int:
        job_id = post.job_id
        record = self.service.get(job_id)
        target_id = self.settings.delivery_channel_id or post.channel_id
        limit = self._upload_limit(post, target_id)
        channel = self.bot.get_partial_messageable(target_id)
        name = await self._name(record.requester)
        result = record.result
        platforms = result.platforms if result else None
        credits = credits_text(result.credits if result else [])
        master, copy = await self._local_files(record)
        size = mib(master.stat().st_size) if master.is_file() else "unknown size"
        expires = self.links.expiry() if self.links else 0
        link = self.links.url(job_id, "final.mp4", expires) if self.links and master.is_file() else None
        for _attempt in range(2):  # the best file under the limit; after a 413, one copy fitted smaller
            video = await self._fitting(record, master, copy, limit)
            if video is None:
                break
            extra = "\n".join(
                filter(None, [link_line(job_id, link, size, expires) if link and video != master else "", credits])
            )
            try:
                message = await channel.send(
                    delivery_text(job_id, platforms, name, extra),
                    file=discord.File(video, f"storybot-{job_id}.mp4"),
                    allowed_mentions=NO_MENTIONS,
                    view=publish_view(self.settings, job_id),
                )
                return message.id
            except discord.HTTPException as exc:
                if exc.status != TOO_LARGE:
                    raise
                refused = video.stat().st_size
                limit = int(min(limit, refused) * SHRINK)
                self.records.update(job_id, upload_limit=limit)  # a restart starts from what Discord took
                log.warning(
                    "job %s: Discord refused %s as too large (%s); trying under %s",
                    job_id,
                    mib(refused),
                    exc.code,
                    mib(limit),
                )
        where = link_line(job_id, link, size, expires) if link else f"The master is kept at `{master}`."
        note = "\n".join(filter(None, [too_big_text(size, mib(limit), where), credits]))
        message = await channel.send(
            delivery_text(job_id, platforms, name, note),
            allowed_mentions=NO_MENTIONS,
            view=publish_view(self.settings, job_id),
        )
        return message.id

    async def _local_files(self, record: JobRecord) -> tuple[Path, Path | None]:
        """The master and the render's upload copy on this machine: with remote storage, fetched from
        it when another machine ran the job (the data folder's `jobs/<id>/`)."""
        artifacts = record.result.artifacts if record.result else None
        master = Path(artifacts.final_video if artifacts else "")
        copy = Path(artifacts.discord_video) if artifacts and artifacts.discord_video else None
        if artifacts is not None and is_remote(self.settings):
            if not master.is_file():
                master = await local_copy(self.settings, record.job_id, "final.mp4") or master
            if copy is not None and not copy.is_file():
                copy = await local_copy(self.settings, record.job_id, "final.discord.mp4")
        return master, copy

    async def _fitting(self, record: JobRecord, master: Path, copy: Path | None, limit: int) -> Path | None:
        """The master if it fits, else the render's fitted copy if it fits, else a copy fitted here."""
        for candidate in (master, copy):
            if candidate and candidate.is_file() and candidate.stat().st_size <= limit:
                return candidate
        if not master.is_file():
            return None
        try:
            fitted = await fit_for_upload(master, master.with_name(FITTED), limit)
        except StorybotError as exc:
            log.warning("job %s: no copy fits %s: %s", record.job_id, mib(limit), exc)
            return None
        return Path(fitted.path) if fitted is not None else master

    def _upload_limit(self, post: Post, channel_id: int) -> int:
        """What Discord reported for the job's interaction; for a delivery channel elsewhere, its server's."""
        if channel_id == post.channel_id:
            return post.upload_limit
        guild = getattr(self.bot.get_channel(channel_id), "guild", None)
        return guild.filesize_limit if guild is not None else DEFAULT_LIMIT

    async def _name(self, requester: str) -> str:
        user_id = requester.removeprefix("discord:")
        user = self.bot.get_user(int(user_id)) if user_id.isdigit() else None
        return str(user.display_name) if user else "you"

    async def recover(self, post: Post) -> None:
        """A finished job not yet delivered after a restart: settle a claim cut short, else deliver now."""
        if post.delivered_message_id == 0 and (found := await self._find_delivery(post)):
            self.records.update(post.job_id, delivered_message_id=found)  # it was posted after all
            return
        self.records.update(post.job_id, delivered_message_id=None)
        await self.deliver(post.job_id)

    async def _find_delivery(self, post: Post) -> int | None:
        """After a crash in the middle of a delivery: the message, if it got posted (the recent history)."""
        channel = self.bot.get_partial_messageable(self.settings.delivery_channel_id or post.channel_id)
        mark = f"job {post.job_id}"
        async for message in channel.history(limit=50):
            if self.bot.user is not None and message.author.id == self.bot.user.id and mark in message.content:
                return message.id
        return None
