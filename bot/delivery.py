"""Delivering a finished video once, and finishing a delivery a restart cut short.

The delivery is claimed with a compare-and-set in `Records`; a claim found unfinished after a crash is
settled from the channel's recent history, so a video is posted exactly once.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import discord
from discord.ext import commands

from bot.messages import NO_MENTIONS, delivery_text, too_big_text
from bot.records import Post, Records
from bot.text import mib
from graph.api import JobService, Settings


class Delivery:
    def __init__(self, bot: commands.Bot, service: JobService, records: Records, settings: Settings) -> None:
        self.bot, self.service, self.records, self.settings = bot, service, records, settings

    async def deliver(self, job_id: str) -> None:
        """Post the video once: the master if it fits the upload limit, else the fitted copy, else say why."""
        post = self.records.post(job_id)
        if post is None or not self.records.claim_delivery(job_id):
            return
        record = self.service.get(job_id)
        artifacts = record.artifacts
        target_id = self.settings.delivery_channel_id or post.channel_id
        limit = self._upload_limit(post, target_id)
        platforms: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            platforms = json.loads(Path(artifacts["metadata"]).read_text(encoding="utf-8")).get("platforms", {})
        text = delivery_text(job_id, platforms, await self._name(record.requester))
        channel = self.bot.get_partial_messageable(target_id)
        video = next((Path(p) for p in (artifacts.get("final_video"), artifacts.get("discord_video"))
                      if p and Path(p).is_file() and Path(p).stat().st_size <= limit), None)
        if video is None:
            master = Path(str(artifacts.get("final_video", "")))
            size = mib(master.stat().st_size) if master.is_file() else "unknown size"
            message = await channel.send(too_big_text(text, size, mib(limit), master), allowed_mentions=NO_MENTIONS)
        else:
            message = await channel.send(text, file=discord.File(video, f"storybot-{job_id}.mp4"),
                                         allowed_mentions=NO_MENTIONS)
        self.records.update(job_id, delivered_message_id=message.id)

    def _upload_limit(self, post: Post, channel_id: int) -> int:
        limit = post.upload_limit
        channel = self.bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None) or (self.bot.get_guild(post.guild_id) if post.guild_id else None)
        if guild is not None and channel_id != post.channel_id:
            limit = guild.filesize_limit  # a delivery channel elsewhere: its own server's limit
        elif guild is not None:
            limit = max(limit, guild.filesize_limit)
        return limit

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
