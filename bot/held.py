"""Replies that arrive while a job is still working on the last answer (a revision, a redraw).

The job asks the same question again when it is done, so the reply is kept, the person is told so,
and it answers that next approval; a later reply replaces it. Kept in memory: a restart of the bot
drops them, as it drops the work in flight that they were waiting for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.messages import NEXT, NO_MENTIONS, held_text, unapplied_text
from graph.api import Answer, Approval, JobRecord

# the stages that run between an approval's answer and the same approval asked again
AGAIN = {
    "approve_script": frozenset({"approve_script", "revise_script", "write_script"}),
    "approve_keyframes": frozenset({"approve_keyframes", "keyframes", "vision_guidance"}),
}
Answering = Callable[[discord.Message, Answer], Awaitable[None]]
ENDED = {
    "done": "the job went on without asking again",
    "failed": "the job failed before asking again",
    "cancelled": "the job was cancelled",
}


@dataclass
class Held:
    message: discord.Message
    approval: str  # the kind of approval the reply was for ("approve_script")
    answer: Answer


class HeldReplies:
    def __init__(self) -> None:
        self._held: dict[str, Held] = {}

    @staticmethod
    def holds(record: JobRecord) -> bool:
        """True when the job is working on its last approval's answer and will ask that question again."""
        if record.status not in ("queued", "running") or record.approval is None:
            return False
        return (record.stage or "") in AGAIN.get(record.approval.approval, frozenset())

    async def keep(self, job_id: str, message: discord.Message, approval: str, answer: Answer) -> None:
        """Keep the person's latest reply for the job's next approval, and say so under it."""
        replaced = self._held.get(job_id)
        self._held[job_id] = Held(message, approval, answer)
        await message.reply(held_text(answer, approval, replaced is not None), allowed_mentions=NO_MENTIONS)

    async def apply(self, job_id: str, approval: Approval, answer: Answering) -> None:
        """Answer the job's new approval with the reply kept for it, if one was; a reply kept for another
        kind of approval is not used, and the person is told so."""
        held = self._held.pop(job_id, None)
        if held is None:
            return
        if held.approval != approval.approval:
            why = f"the job now asks about the {NEXT.get(approval.approval, 'idea')}: answer that instead"
            await held.message.reply(unapplied_text(held.answer, why), allowed_mentions=NO_MENTIONS)
            return
        await answer(held.message, held.answer)

    async def drop(self, job_id: str, ended: str) -> None:
        """The job ended before asking again: tell the person their kept reply was not used."""
        held = self._held.pop(job_id, None)
        if held is not None:
            why = ENDED.get(ended, f"the job is {ended}")
            await held.message.reply(unapplied_text(held.answer, why), allowed_mentions=NO_MENTIONS)
