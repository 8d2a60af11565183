"""Posting approvals: the question once per interrupt, with the script split under Discord's limits and
the keyframes as a contact sheet plus small previews. Replies and clicks are answered in `conductor.py`.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import discord
from discord.ext import commands
from PIL import Image

from bot.contact_sheet import contact_sheet
from bot.messages import (
    ASK_IDEA,
    ASK_KEYFRAMES,
    ASK_SCRIPT,
    NO_MENTIONS,
    idea_embed,
    keyframes_embed,
    script_embeds,
)
from bot.records import Records
from bot.views import approval_view
from graph.api import JobService

PREVIEW_SIZE = (540, 960)


class Approvals:
    def __init__(self, bot: commands.Bot, service: JobService, records: Records) -> None:
        self.bot, self.service, self.records = bot, service, records

    async def post(self, job_id: str, approval: dict[str, Any]) -> None:
        """Post the question once per approval (a repeated `waiting` event or a restart posts nothing)."""
        interrupt_id = str(approval.get("interrupt_id") or "")
        post = self.records.post(job_id)
        if post is None or not interrupt_id or self.records.prompt_posted(interrupt_id):
            return
        approval = {**approval, "own_script": bool(self.service.get(job_id).options.get("own_script"))}
        channel = self.bot.get_partial_messageable(post.channel_id)
        view = approval_view(job_id, interrupt_id, approval)
        kind = approval.get("approval")
        sent: list[discord.Message] = []
        if kind == "pick_idea":
            sent.append(await channel.send(ASK_IDEA, embed=idea_embed(approval), view=view,
                                           allowed_mentions=NO_MENTIONS))
        elif kind == "approve_script":
            groups = script_embeds(approval)
            for n, embeds in enumerate(groups):
                last = n == len(groups) - 1
                sent.append(await channel.send(ASK_SCRIPT if n == 0 else None, embeds=embeds,
                                               view=view if last else discord.utils.MISSING,
                                               allowed_mentions=NO_MENTIONS))
        elif kind == "approve_keyframes":
            sent.extend(await self._post_keyframes(channel, approval, view))
        for message in sent:
            self.records.remember_prompt(message.id, job_id, interrupt_id)

    async def _post_keyframes(self, channel: discord.PartialMessageable, approval: dict[str, Any],
                              view: discord.ui.View) -> list[discord.Message]:
        images = [Path(p) for p in approval.get("keyframes", [])]
        captions = [str(s.get("text", "")) for s in approval.get("shots", [])]
        with tempfile.TemporaryDirectory(prefix="storybot-sheet-") as tmp:
            folder = Path(tmp)
            sheet = await asyncio.to_thread(contact_sheet, images, captions[: len(images)], folder / "keyframes.png")
            previews = await asyncio.to_thread(_previews, images, folder)
            first = await channel.send(ASK_KEYFRAMES,
                                       embed=keyframes_embed(approval).set_image(url="attachment://keyframes.png"),
                                       file=discord.File(sheet, "keyframes.png"), view=view,
                                       allowed_mentions=NO_MENTIONS)
            sent = [first]
            for start in range(0, len(previews), 10):
                batch = [discord.File(p, p.name) for p in previews[start:start + 10]]
                sent.append(await channel.send(files=batch, allowed_mentions=NO_MENTIONS))
        return sent


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
