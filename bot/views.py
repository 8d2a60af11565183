"""Persistent buttons, selects and the revise modal.

Every component is a `DynamicItem` whose custom_id carries the job id and the id of the approval
(interrupt) it answers, never user text; discord.py rebuilds it from the custom_id on every click,
so buttons keep working after a restart, and an old button names an approval that is no longer
pending, which JobService refuses. `interaction_check` refuses everyone but the requester and the
approver role with an ephemeral message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, cast

import discord
from discord import ui

from bot.publishing import PUBLISH_ITEMS
from graph.api import JOB_ID_PATTERN, LONGER, SHORTER, Answer, Approval, IdeaApproval, KeyframeApproval, ScriptApproval

if TYPE_CHECKING:
    from bot.conductor import Conductor

JOB = rf"(?P<job>{JOB_ID_PATTERN})"
IID = r"(?P<iid>[0-9a-f]{1,64})"
ButtonAction = Literal["approve", "revise", "regen", "longer", "shorter", "cancel"]
LABELS: dict[str, tuple[str, discord.ButtonStyle, str]] = {
    "approve": ("Approve", discord.ButtonStyle.success, "✅"),
    "revise": ("Revise", discord.ButtonStyle.primary, "✏️"),
    "regen": ("Regenerate", discord.ButtonStyle.secondary, "🔄"),
    "longer": ("Make it longer", discord.ButtonStyle.primary, "➕"),
    "shorter": ("Make it shorter", discord.ButtonStyle.primary, "➖"),
    "cancel": ("Cancel", discord.ButtonStyle.danger, "✖️"),
}


def conductor_of(interaction: discord.Interaction[Any]) -> Conductor:
    return cast("Conductor", interaction.client.conductor)


class JobGuard:
    """`interaction_check` of every job component: only the requester or the approver role may act."""

    job_id: str

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await conductor_of(interaction).authorize(interaction, self.job_id)


class ApprovalButton(
    JobGuard,
    ui.DynamicItem[ui.Button[Any]],
    template=rf"sb:(?P<action>approve|revise|regen|longer|shorter|cancel):{JOB}:{IID}",
):
    def __init__(self, action: ButtonAction, job_id: str, interrupt_id: str) -> None:
        label, style, emoji = LABELS[action]
        super().__init__(
            ui.Button(label=label, style=style, emoji=emoji, custom_id=f"sb:{action}:{job_id}:{interrupt_id}")
        )
        self.action, self.job_id, self.interrupt_id = action, job_id, interrupt_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> ApprovalButton:
        return cls(cast(ButtonAction, match["action"]), match["job"], match["iid"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        if self.action == "revise":  # a modal must be the first response
            await interaction.response.send_modal(ReviseModal(self.job_id, self.interrupt_id))
            return
        answer = {
            "approve": Answer(action="approve"),
            "regen": Answer(action="regenerate"),
            "longer": Answer(action="revise", note=LONGER),
            "shorter": Answer(action="revise", note=SHORTER),
            "cancel": Answer(action="cancel"),
        }[self.action]
        await conductor_of(interaction).answer_click(interaction, self.job_id, self.interrupt_id, answer)


class IdeaSelect(JobGuard, ui.DynamicItem[ui.Select[Any]], template=rf"sb:pick:{JOB}:{IID}"):
    def __init__(self, job_id: str, interrupt_id: str, approval: IdeaApproval | None = None) -> None:
        ideas = approval.ideas if approval else []
        options = [
            discord.SelectOption(
                label=f"{n}. {i.title[:90]}", value=str(n - 1), description=(i.logline or i.hook)[:100] or None
            )
            for n, i in enumerate(ideas[:25], start=1)
        ]
        super().__init__(
            ui.Select(
                custom_id=f"sb:pick:{job_id}:{interrupt_id}",
                placeholder="Pick an idea",
                options=options or [discord.SelectOption(label="1", value="0")],
            )
        )
        self.job_id, self.interrupt_id = job_id, interrupt_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> IdeaSelect:
        return cls(match["job"], match["iid"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = _values(interaction)
        # a forged value (not one of our option numbers) picks nothing; JobService refuses index -1 in words
        answer = Answer(action="pick", index=_number(values[0], -1)) if values else Answer(action="approve")
        await conductor_of(interaction).answer_click(interaction, self.job_id, self.interrupt_id, answer)


class RerollSelect(JobGuard, ui.DynamicItem[ui.Select[Any]], template=rf"sb:reroll:{JOB}:{IID}"):
    def __init__(self, job_id: str, interrupt_id: str, shots: int = 1) -> None:
        count = max(1, min(shots, 25))
        super().__init__(
            ui.Select(
                custom_id=f"sb:reroll:{job_id}:{interrupt_id}",
                min_values=1,
                max_values=count,
                placeholder="Re-roll shots…",
                options=[discord.SelectOption(label=f"Shot {n}", value=str(n)) for n in range(1, count + 1)],
            )
        )
        self.job_id, self.interrupt_id = job_id, interrupt_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> RerollSelect:
        return cls(match["job"], match["iid"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        shots = sorted({_number(v, 0) for v in _values(interaction)})  # forged: 0, refused by JobService
        await conductor_of(interaction).answer_click(
            interaction, self.job_id, self.interrupt_id, Answer(action="reroll", shots=shots)
        )


class JobButton(JobGuard, ui.DynamicItem[ui.Button[Any]], template=rf"sb:(?P<action>retry|stop):{JOB}"):
    """Buttons that act on the job rather than on one approval: Retry after a failure, Stop while running."""

    def __init__(self, action: Literal["retry", "stop"], job_id: str) -> None:
        label, style, emoji = (
            ("Retry", discord.ButtonStyle.primary, "🔁")
            if action == "retry"
            else ("Stop", discord.ButtonStyle.danger, "⏹️")
        )
        super().__init__(ui.Button(label=label, style=style, emoji=emoji, custom_id=f"sb:{action}:{job_id}"))
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        return cls(cast(Literal["retry", "stop"], match["action"]), match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        conductor = conductor_of(interaction)
        if self.action == "retry":
            await conductor.retry(interaction, self.job_id)
        else:
            await conductor.stop(interaction, self.job_id)


class ReviseModal(ui.Modal):
    """The reviewer's note. Its custom_id names the job and approval, like the buttons'; submissions
    are answered by `VideoCommands.on_interaction` from that custom_id alone, so a form left open
    while the bot restarts still works (discord.py keeps modals only in memory)."""

    note: ui.TextInput[Any] = ui.TextInput(
        label="What should change?",
        style=discord.TextStyle.paragraph,
        placeholder="e.g. make the ending happier, and shorter",
        min_length=3,
        max_length=1000,
        custom_id="note",
    )

    def __init__(self, job_id: str, interrupt_id: str) -> None:
        super().__init__(title="Revise the script", timeout=None, custom_id=f"sb:note:{job_id}:{interrupt_id}")


NOTE_MODAL = re.compile(rf"^sb:note:{JOB}:{IID}$")


def modal_note(interaction: discord.Interaction[Any]) -> tuple[str, str, str] | None:
    """(job id, interrupt id, note) of a submitted revise form; None for any other interaction."""
    data = cast(dict[str, Any], interaction.data or {})  # Discord's payload, read as it came
    match = NOTE_MODAL.match(str(data.get("custom_id", "")))
    if interaction.type is not discord.InteractionType.modal_submit or match is None:
        return None
    fields = [c for row in data.get("components", []) for c in row.get("components", [])]
    note = next((str(c.get("value", "")) for c in fields if c.get("custom_id") == "note"), "")
    return match["job"], match["iid"], note


def _number(value: str, invalid: int) -> int:
    """A select value as we wrote it (a short ASCII number); anything else a client sent is `invalid`."""
    return int(value) if re.fullmatch(r"[0-9]{1,4}", value) else invalid


def _values(interaction: discord.Interaction[Any]) -> list[str]:
    data = cast(dict[str, Any], interaction.data or {})  # Discord's payload, read as it came
    return [str(v) for v in data.get("values", [])]


def approval_view(job_id: str, interrupt_id: str, approval: Approval) -> ui.View:
    """The components under an approval message, by kind of approval."""
    view = ui.View(timeout=None)
    if isinstance(approval, IdeaApproval):
        view.add_item(IdeaSelect(job_id, interrupt_id, approval))
        view.add_item(ApprovalButton("approve", job_id, interrupt_id))
    elif isinstance(approval, ScriptApproval):
        view.add_item(ApprovalButton("approve", job_id, interrupt_id))
        view.add_item(ApprovalButton("revise", job_id, interrupt_id))
        if approval.off_length:  # the fix for this draft's length, one click away
            view.add_item(
                ApprovalButton("longer" if approval.off_length == "short" else "shorter", job_id, interrupt_id)
            )
        if not approval.own_script:
            view.add_item(ApprovalButton("regen", job_id, interrupt_id))
    elif isinstance(approval, KeyframeApproval):
        view.add_item(RerollSelect(job_id, interrupt_id, len(approval.shots)))
        view.add_item(ApprovalButton("approve", job_id, interrupt_id))
    view.add_item(ApprovalButton("cancel", job_id, interrupt_id))
    return view


DYNAMIC_ITEMS = (ApprovalButton, IdeaSelect, RerollSelect, JobButton, *PUBLISH_ITEMS)
