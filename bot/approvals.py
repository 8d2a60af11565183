"""Posting approvals: the question once per interrupt, with the script split under Discord's limits and
the keyframes as a contact sheet plus small previews. Replies and clicks are answered in `conductor.py`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import discord
from discord.ext import commands
from PIL import Image

from bot.contact_sheet import contact_sheet
from bot.messages import (
    ASK_IDEA,
    ASK_KEYFRAMES,
    NO_MENTIONS,
    idea_embed,
    keyframes_embed,
    script_embeds,
    script_question,
)
from bot.records import Records
from bot.views import approval_view
from graph.api import Approval, IdeaApproval, JobService, KeyframeApproval, ScriptApproval

PREVIEW_SIZE = (540, 960)


class Approvals:
    def __init__(self, bot: commands.Bot, service: JobService, records: Records) -> None:
        self.bot, self.service, self.records = bot, service, records

    async def post(self, job_id: str, approval: Approval, interrupt_id: str) -> None:
        """Post the question once per approval (a repeated `waiting` event or a restart posts nothing)."""
        post = self.records.post(job_id)
        if post is None or self.records.prompt_posted(interrupt_id):
            return
        channel = self.bot.get_partial_messageable(post.channel_id)
        view = approval_view(job_id, interrupt_id, approval)

        def keep(message: discord.Message) -> None:  # at once: a quick reply to it must find its approval
            self.records.remember_prompt(message.id, job_id, interrupt_id)

        if isinstance(approval, IdeaApproval):
            keep(await channel.send(ASK_IDEA, embed=idea_embed(approval), view=view, allowed_mentions=NO_MENTIONS))
        elif isinstance(approval, ScriptApproval):
            groups = script_embeds(approval)
            for n, embeds in enumerate(groups):
                last = n == len(groups) - 1
                keep(
                    await channel.send(
                        script_question(approval) if n == 0 else None,
                        embeds=embeds,
                        view=view if last else discord.utils.MISSING,
                        allowed_mentions=NO_MENTIONS,
                    )
                )
        else:
            await self._post_keyframes(channel, approval, view, keep)

    async def _post_keyframes(
        self,
        channel: discord.PartialMessageable,
        approval: KeyframeApproval,
        view: discord.ui.View,
        keep: Callable[[discord.Message], None],
    ) -> None:
        images = [Path(p) for p in approval.keyframes]
        captions = [s.text for s in approval.shots]
        with tempfile.TemporaryDirectory(prefix="storybot-sheet-") as tmp:
            folder = Path(tmp)
            sheet = await asyncio.to_thread(contact_sheet, images, captions[: len(images)], folder / "keyframes.png")
            previews = await asyncio.to_thread(_previews, images, folder)
            keep(
                await channel.send(
                    ASK_KEYFRAMES,
                    embed=keyframes_embed(approval).set_image(url="attachment://keyframes.png"),
                    file=discord.File(sheet, "keyframes.png"),
                    view=view,
                    allowed_mentions=NO_MENTIONS,
                )
            )
            for start in range(0, len(previews), 10):
                batch = [discord.File(p, p.name) for p in previews[start : start + 10]]
                keep(await channel.send(files=batch, allowed_mentions=NO_MENTIONS))


def _previews(images: list[Path], folder: Path) -> list[Path]:
    """Small JPEG copies of the keyframes, so ten of them fit in one upload."""
    out = []
    for n, path in enumerate(images, start=1):
        with Image.open(path) as img:
            preview = img.convert("RGB")
            preview.thumbnail(PREVIEW_SIZE)
            target = folder / f"shot_{n:02d}.jpg"
            preview.save(target, quality=85)
            out.append(target)
    return out
