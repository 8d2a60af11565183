"""Each job's status message: one embed edited in place, at most every `EDIT_INTERVAL` seconds and
always ending on the latest state, through the interaction token while it lives, then through the
bot token with the stored ids."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import discord
from discord.ext import commands

from bot.messages import NO_MENTIONS, Live, status_embed
from bot.records import Records
from bot.text import one_line
from bot.views import JobButton
from graph.api import Event, JobRecord, JobService, JobStatus

log = logging.getLogger("storybot.bot")
EDIT_INTERVAL = 2.0  # seconds between two edits of one status message
TOKEN_LIFE = 14 * 60  # interaction tokens die after 15 minutes; stop using them a minute early
PLACE_POLL_S = 5.0  # with runners: how often a followed job's place in the shared queue is read


class StatusBoards:
    """The status messages of every job this bot follows, with what only events tell (progress
    percentages, queue position, notices)."""

    def __init__(self, bot: commands.Bot, service: JobService, records: Records) -> None:
        self.bot, self.service, self.records = bot, service, records
        self._live: dict[str, Live] = {}
        self._boards: dict[str, _Board] = {}

    def note(self, job_id: str, event: Event) -> None:
        live = self._live.setdefault(job_id, Live())
        if event.kind == "progress" and event.stage and event.percent is not None:
            live.percent[event.stage] = event.percent
        elif event.kind == "queued":
            live.queue_position = self.service.queue_position(job_id)
        elif event.kind == "stage_started":
            live.queue_position = None
        elif event.kind == "notice" and event.message:
            live.notices.append(one_line(event.message, 200))

    async def keep_place(self, job_id: str) -> None:
        """With runners, a job waiting in the shared queue hears no event until one takes it (and no
        `queued` event at all): its place is read every PLACE_POLL_S while it is followed, and the
        message edited when the place changed. Cancelled when the job is no longer followed."""
        while True:
            try:
                place = self.service.queue_position(job_id)
                live = self._live.setdefault(job_id, Live())
                if place != live.queue_position:
                    live.queue_position = place
                    await self.refresh(job_id)
            except Exception as exc:  # the database restarting: read it again next round
                log.warning("job %s: could not read its place in the queue: %s", job_id, one_line(str(exc), 200))
            await asyncio.sleep(PLACE_POLL_S)

    def forget(self, job_id: str) -> None:
        """The job stopped: its live details go (the status message keeps what it last showed)."""
        self._live.pop(job_id, None)

    async def refresh(self, job_id: str) -> None:
        await self._boards.setdefault(job_id, _Board(self, job_id)).show()

    def embed(self, job_id: str, status: JobStatus | None = None) -> discord.Embed:
        status = status or self.service.status(job_id)
        return status_embed(status.job, status.stages, self._live.get(job_id, Live()))

    async def edit(self, job_id: str) -> None:
        """Through the interaction token while it lives, then through the bot token (stored ids)."""
        post = self.records.post(job_id)
        if post is None or not post.status_message_id:
            return
        fields = self.message(job_id)
        if post.token and post.application_id and time.time() - post.token_issued < TOKEN_LIFE:
            hook = discord.Webhook.partial(post.application_id, post.token, client=self.bot)
            try:
                await hook.edit_message(post.status_message_id, **fields)
                return
            except discord.HTTPException as exc:
                if exc.status not in (401, 404):
                    raise
                self.records.update(job_id, token=None)  # dead token: the bot token from now on
        message = self.bot.get_partial_messageable(post.channel_id).get_partial_message(post.status_message_id)
        await message.edit(**fields)

    def message(self, job_id: str) -> dict[str, Any]:  # keywords passed untouched to discord.py
        """discord.py's send/edit keywords for the job's status message: the embed and its buttons."""
        status = self.service.status(job_id)  # one read for the embed and the buttons
        return {"embed": self.embed(job_id, status), "view": _buttons(status.job), "allowed_mentions": NO_MENTIONS}

    def edited(self, job_id: str) -> None:
        """The message was just written elsewhere (its first post): the next edit waits its turn."""
        self._boards.setdefault(job_id, _Board(self, job_id)).last = time.monotonic()

    def close(self) -> None:
        for board in self._boards.values():
            board.cancel()


def _buttons(record: JobRecord) -> discord.ui.View | None:
    if record.status not in ("queued", "running"):
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton("stop", record.job_id))
    return view


class _Board:
    """One job's message: an edit at most every EDIT_INTERVAL; one scheduled edit reads the newest state."""

    def __init__(self, boards: StatusBoards, job_id: str) -> None:
        self.boards, self.job_id = boards, job_id
        self.last = 0.0
        self._pending: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def show(self) -> None:
        if self._pending is not None and not self._pending.done():
            return  # an edit is already scheduled; it will read the newest state
        wait = self.last + EDIT_INTERVAL - time.monotonic()
        if wait <= 0:
            await self._edit()
        else:
            self._pending = asyncio.create_task(self._later(wait))

    async def _later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._edit()

    async def _edit(self) -> None:
        async with self._lock:
            self.last = time.monotonic()
            try:
                await self.boards.edit(self.job_id)
            except discord.HTTPException as exc:
                log.warning("job %s: status edit failed: %s", self.job_id, exc)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
