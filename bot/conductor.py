"""The bot's service layer: starts and steers jobs through JobService and keeps Discord in step.

One `Conductor` per bot. For each job it follows JobService's events, has its status message
edited in place (`status.py`), has each approval posted once (`approvals.py`) and the video
delivered once (`delivery.py`), and reports failures with a Retry button. The command, component
and reply handlers are thin and all end up here, so authorisation and the answer protocol live in
one place.

With a shared database the jobs run on `storybot runner`s, not here: the bot enqueues, then follows
each job's event log until the job ends (one follower per job, whoever answers it, on any machine);
after a restart, or when this replica takes the gateway over, it follows the active jobs again and
delivers what finished meanwhile, but never resumes a job itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import discord
from discord.ext import commands

from bot.approvals import Approvals
from bot.delivery import Delivery
from bot.held import HeldReplies
from bot.links import links_from
from bot.messages import NO_MENTIONS, REFUSAL, answered_text, failure_text
from bot.records import Post, Records
from bot.status import StatusBoards
from bot.views import JobButton
from graph.api import (
    ACTIVE,
    Answer,
    Approval,
    BadInput,
    Event,
    Events,
    JobRequest,
    JobService,
    JobStatus,
    LimitReached,
    OverLimit,
    Requester,
    Settings,
    redact,
    was_interrupted,
)

log = logging.getLogger("storybot.bot")


class Conductor:
    def __init__(self, bot: commands.Bot, service: JobService, records: Records, settings: Settings) -> None:
        self.bot, self.service, self.records, self.settings = bot, service, records, settings
        self.links = links_from(settings)
        self.approvals = Approvals(bot, service, records)
        self.delivery = Delivery(bot, service, records, settings, self.links)
        self.guild_ids = _ids(settings.guild_ids)
        self.channel_ids = _ids(settings.allowed_channel_ids)
        self.status = StatusBoards(bot, service, records)
        self._tasks: set[asyncio.Task[None]] = set()
        self.remote = getattr(service, "steps", None) is not None  # runners run the jobs; the bot follows logs
        self._watched: dict[str, asyncio.Task[None]] = {}  # remote: the one follower of each job
        self._starting: dict[str, asyncio.Lock] = {}  # per user: the limit check and the start are one step
        self.held = HeldReplies()  # replies that came while their job was still working on the last answer

    # who may act ----------------------------------------------------------

    def place_allowed(self, guild_id: int | None, channel_id: int | None) -> bool:
        """The optional guild and channel allow-lists."""
        if self.guild_ids and guild_id not in self.guild_ids:
            return False
        return not self.channel_ids or channel_id in self.channel_ids

    def requester(self, user: discord.abc.User) -> Requester:
        role = self.settings.approver_role_id
        roles = getattr(user, "roles", [])
        return Requester(
            id=f"discord:{user.id}",
            name=str(user.display_name),
            approver=role is not None and any(r.id == role for r in roles),
        )

    def allowed(self, user: discord.abc.User, job_id: str) -> bool:
        who = self.requester(user)
        try:
            return who.approver or self.service.get(job_id).requester == who.id
        except BadInput:
            return False

    async def authorize(self, interaction: discord.Interaction[Any], job_id: str) -> bool:
        """`interaction_check` of every component: others get an ephemeral refusal, the job is untouched."""
        if self.allowed(interaction.user, job_id):
            return True
        await interaction.response.send_message(REFUSAL, ephemeral=True)
        return False

    def limit_message(self, who: Requester) -> str | None:
        """A polite refusal when the person has too many jobs going or asked too often this hour."""
        over = self.service.over_limit(who)
        return None if over is None else _refusal(over)

    # starting -------------------------------------------------------------

    async def start(self, interaction: discord.Interaction[Any], request: JobRequest, auto_approve: bool) -> None:
        """`/video` and `/ideas` after validation: defer, start the job, make its status message."""
        who = self.requester(interaction.user)
        async with self._starting.setdefault(who.id, asyncio.Lock()):  # simultaneous requests see each other
            refusal = self.limit_message(who)  # before deferring: the refusal is then ephemeral
            if refusal is None:
                if not interaction.response.is_done():  # /video with attachments deferred while downloading them
                    await interaction.response.defer(thinking=True)
                try:  # the limit again, in the job's insert: another replica or the API may have been first
                    job_id = await self.service.start(
                        request, who, channel=str(interaction.channel_id), auto_approve=auto_approve, within_limits=True
                    )
                except LimitReached as exc:
                    refusal = _refusal(exc.over)
            if refusal is not None:
                done = interaction.response.is_done()
                send = interaction.followup.send if done else interaction.response.send_message
                await send(refusal, ephemeral=True)
                return
        # nothing has run yet here (the job's task starts at our next await); a runner's job is read
        # from its log's start
        events = None if self.remote else self.service.events(job_id)
        post = Post(
            job_id=job_id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0,
            application_id=interaction.application_id,
            token=interaction.token,
            token_issued=time.time(),
            upload_limit=interaction.filesize_limit,
            auto_approve=auto_approve,
        )
        self.records.save(post)
        try:
            message = await interaction.edit_original_response(**self.status.message(job_id))
            self.records.update(job_id, status_message_id=message.id)
            self.status.edited(job_id)
        finally:
            if events is None:
                self.watch(job_id, after=0)
            else:
                self.follow(job_id, events)

    # answering ------------------------------------------------------------

    async def _steer(self, job_id: str, act: Callable[[], Awaitable[None]]) -> str | None:
        """Subscribe, then act on the job (answer, resume) and follow it; the refusal, if it is refused."""
        if self.remote:  # its log from before the act on, unless someone follows the job already
            after = self.service.store.last_event(job_id)
            try:
                await act()
            except BadInput as exc:
                return f"⚠️ {exc}"
            self.watch(job_id, after)
            return None
        events = self.service.events(job_id)  # before acting, so no event is missed
        try:
            await act()
        except BadInput as exc:
            events.close()
            return f"⚠️ {exc}"
        self.follow(job_id, events)
        return None

    async def answer_click(
        self, interaction: discord.Interaction[Any], job_id: str, interrupt_id: str, answer: Answer
    ) -> None:
        """A button, select or modal: acknowledge at once, then answer exactly the approval it was made for."""
        await interaction.response.defer()
        who = self.requester(interaction.user)
        refusal = await self._steer(job_id, lambda: self.service.answer(job_id, who, answer, interrupt_id))
        if refusal:
            await interaction.followup.send(refusal, ephemeral=True)
            return
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(
                content=answered_text(answer, interaction.user.display_name), view=None, allowed_mentions=NO_MENTIONS
            )

    async def answer_reply(self, message: discord.Message, job_id: str, interrupt_id: str, answer: Answer) -> None:
        """A chat reply to an approval message; the reply itself is the acknowledgement."""
        who = self.requester(message.author)
        refusal = await self._steer(job_id, lambda: self.service.answer(job_id, who, answer, interrupt_id))
        await message.reply(refusal or answered_text(answer, message.author.display_name), allowed_mentions=NO_MENTIONS)

    async def reply_while_busy(self, message: discord.Message, job_id: str, answer: Answer) -> bool:
        """Keep a reply that came while the job works on its last approval's answer, for the next one
        (True); False when the job is not doing that, so the reply is answered as usual."""
        record = self.service.get(job_id)
        if record.approval is None or not self.held.holds(record):
            return False
        if answer.action == "cancel":  # waits for nothing: the job stops before its next step
            try:
                await self.service.cancel(job_id, self.requester(message.author))
            except BadInput as exc:
                await message.reply(f"⚠️ {exc}", allowed_mentions=NO_MENTIONS)
                return True
            await message.reply(answered_text(answer, message.author.display_name), allowed_mentions=NO_MENTIONS)
            await self.held.drop(job_id, "cancelled")
            return True
        await self.held.keep(job_id, message, record.approval.approval, answer)
        now = self.service.get(job_id)  # the job may have asked again, or ended, while the reply was sent
        if now.status == "waiting" and now.approval is not None and now.interrupt_id != record.interrupt_id:
            await self._apply_held(job_id, now.approval, now.interrupt_id or "")
        elif now.status in ("done", "failed", "cancelled"):
            await self.held.drop(job_id, now.status)
        return True

    async def _apply_held(self, job_id: str, approval: Approval, interrupt_id: str) -> None:
        await self.held.apply(
            job_id, approval, lambda message, answer: self.answer_reply(message, job_id, interrupt_id, answer)
        )

    async def retry(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        await interaction.response.defer()
        who = self.requester(interaction.user)
        refusal = await self._steer(job_id, lambda: self.service.resume(job_id, who, self._auto(job_id)))
        if refusal:
            await interaction.followup.send(refusal, ephemeral=True)
            return
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(view=None)

    async def stop(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await self.service.cancel(job_id, self.requester(interaction.user))
        except BadInput as exc:
            await interaction.followup.send(f"⚠️ {exc}", ephemeral=True)
            return
        await interaction.followup.send("Stopping: the job ends before its next step.", ephemeral=True)
        await self.refresh(job_id)

    # following a job ------------------------------------------------------

    def follow(self, job_id: str, events: Events) -> None:
        task = asyncio.create_task(self._follow(job_id, events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def watch(self, job_id: str, after: int) -> None:
        """A job run by the runners: follow its log from event `after` until the job ends, past its
        approvals (answered here or on any machine); once per job."""
        running = self._watched.get(job_id)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._follow(job_id, self.service.follow(job_id, after=after, poll=0.5)))
        self._watched[job_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(partial(self._unwatch, job_id))

    def _unwatch(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._watched.get(job_id) is task:
            del self._watched[job_id]

    async def _follow(self, job_id: str, events: AsyncIterator[Event]) -> None:
        place = asyncio.create_task(self.status.keep_place(job_id)) if self.remote else None
        try:
            await self._on_events(job_id, events)
        finally:
            if place is not None:
                place.cancel()
        if self.service.get(job_id).status not in ACTIVE:
            self.status.forget(job_id)

    async def _on_events(self, job_id: str, events: AsyncIterator[Event]) -> None:
        async for event in events:
            self.status.note(job_id, event)
            try:
                await self.refresh(job_id)
                if event.kind == "waiting" and event.approval and event.interrupt_id:
                    await self.approvals.post(job_id, event.approval, event.interrupt_id)
                    await self._apply_held(job_id, event.approval, event.interrupt_id)
                elif event.kind == "done":
                    await self.delivery.deliver(job_id)
                elif event.kind == "failed":
                    await self.post_failure(job_id, event.message or "unknown error")
                if event.kind in ("done", "failed", "cancelled"):
                    await self.held.drop(job_id, event.kind)
            except Exception:
                log.exception("job %s: could not update Discord after %s", job_id, event.kind)

    async def refresh(self, job_id: str) -> None:
        await self.status.refresh(job_id)

    def job_embed(self, job_id: str, status: JobStatus | None = None) -> discord.Embed:
        return self.status.embed(job_id, status)

    # the end of a job -----------------------------------------------------

    async def post_failure(self, job_id: str, reason: str) -> None:
        post = self.records.post(job_id)
        if post is None:
            return
        record = self.service.status(job_id)
        failed = next((s.name for s in record.stages if s.status == "failed"), record.job.stage)
        view = discord.ui.View(timeout=None)
        view.add_item(JobButton("retry", job_id))
        log.error("job %s failed at %s: %s", job_id, failed, redact(reason, self.settings))
        await self.bot.get_partial_messageable(post.channel_id).send(
            failure_text(failed, redact(reason, self.settings)), view=view, allowed_mentions=NO_MENTIONS
        )

    # restarts -------------------------------------------------------------

    async def recover(self) -> None:
        """After a restart: resume jobs that were running, deliver finished ones that were not delivered.
        With runners (a shared database), a job is never resumed here: its log is followed again from
        its latest event (a pending approval is posted if it was not, the end is delivered), so two
        replicas of the bot never both act on a job, and a job that ended meanwhile is delivered once."""
        for post in self.records.undelivered():
            try:
                record = self.service.get(post.job_id)
            except BadInput:
                continue
            if self.remote and record.status in ACTIVE:
                self.watch(post.job_id, after=max(0, self.service.store.last_event(post.job_id) - 1))
                log.info("job %s after a restart: following it again (%s)", post.job_id, record.status)
            elif not self.remote and (record.status in ("queued", "running") or was_interrupted(record)):
                resume = partial(
                    self.service.resume, post.job_id, Requester(id=record.requester, approver=True), post.auto_approve
                )
                refusal = await self._steer(post.job_id, resume)
                log.info("job %s after a restart: %s", post.job_id, refusal or "resumed")
            elif record.status == "done" and not post.delivered_message_id:
                try:
                    await self.delivery.recover(post)
                except discord.HTTPException as exc:  # the history cannot be read: settled at the next start
                    log.warning("job %s: delivery left for the next start: %s", post.job_id, exc)

    def _auto(self, job_id: str) -> bool:
        post = self.records.post(job_id)
        return bool(post and post.auto_approve)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.status.close()


def conductor_of(client: object) -> Conductor:
    """The bot's conductor (the cog and the views find it on the client)."""
    conductor = getattr(client, "conductor", None)
    if not isinstance(conductor, Conductor):
        raise TypeError("this client has no storybot Conductor")
    return conductor


def _refusal(over: OverLimit) -> str:
    if over.limit == "active":
        return (
            f"You already have {len(over.active)} videos in progress ({', '.join(over.active)}). Finish or "
            f"`/cancel` one first; the limit is {over.allowed}."
        )
    return (
        f"You have asked for {over.recent} videos in the last hour (the limit is {over.allowed}). "
        f"Try again in {max(1, round(over.retry_after / 60))} min."
    )


def _ids(text: str) -> set[int]:
    try:
        return {int(part) for part in text.replace(" ", "").split(",") if part}
    except ValueError:
        raise BadInput(f"not a comma-separated list of ids: {text!r}") from None
