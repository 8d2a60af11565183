"""Hostile chat input to the bot: replacement scripts that are empty, invisible or huge, Markdown and
mentions in user text, simultaneous requests past the per-user limit, and forged select values. The job
is left as it was and the user is answered in words.

The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bot.text import quote
from bot.views import IdeaSelect, RerollSelect
from tools.errors import BadInput
from tools.text import clean_replacement

# --- 4, 8, 15, 16. the bot -------------------------------------------------------------------------


def test_replacement_text_is_cleaned_and_validated() -> None:
    assert clean_replacement("  Hello\u200b  world.\x07 ") == "Hello world."
    for text in ("", "   \n\u200b\u3164", "word " * 10_000):
        with pytest.raises(BadInput, match="the replacement script"):
            clean_replacement(text)


async def test_an_empty_or_huge_replacement_is_refused_and_the_job_unchanged(tmp_path: Path) -> None:
    from graph.service import JobService, Requester
    from graph.state import Answer, JobRequest
    from tools.settings import get_settings

    alice = Requester(id="discord:1", name="alice")
    async with JobService.open(get_settings().model_copy(update={"data_dir": tmp_path})) as svc:
        job = await svc.start(
            JobRequest(prompt="keeper", script_text="The lamp went dark. It came back.", duration=8), alice
        )
        record = await svc.wait(job)
        assert record.status == "waiting" and record.interrupt_id
        for text in ("", " \u200b ", "word " * 10_000):
            with pytest.raises(BadInput, match="replacement script"):
                await svc.answer(job, alice, Answer(action="replace", text=text), record.interrupt_id)
            after = svc.get(job)
            assert (after.status, after.interrupt_id, after.approval) == (
                "waiting",
                record.interrupt_id,
                record.approval,
            )
        await svc.answer(job, alice, Answer(action="replace", text="Mine\u200b now.  Two words."), record.interrupt_id)
        record = await svc.wait(job)
        assert record.approval and record.approval.script == "Mine now. Two words."  # type: ignore[union-attr]
        await svc.cancel(job, alice)


def test_markdown_in_user_text_stays_text() -> None:
    shown = quote("[free nitro](https://evil.example)\n# HEADING\n-# small\n- item\n1. first\n**b** @everyone")
    assert "\\[free nitro\\](https://evil.example)" in shown
    lines = shown.splitlines()
    assert lines[1].startswith("\\#") and lines[2].startswith("\\-\\#") and lines[3].startswith("\\-")
    assert lines[4].startswith("1\\.") and "\\*\\*b\\*\\*" in lines[5]


def _fake_interaction(uid: int, conductor: Any, **data: Any) -> Any:
    fake = MagicMock(spec=discord.Interaction)
    fake.user = SimpleNamespace(id=uid, display_name=f"user{uid}", roles=[], bot=False)
    fake.client = SimpleNamespace(conductor=conductor)
    fake.data = data
    fake.guild_id, fake.channel_id = 5, 6
    fake.token, fake.application_id, fake.filesize_limit = "token", 7, 10 * 2**20

    async def slow_defer(**_: Any) -> None:
        await asyncio.sleep(0.05)  # Discord's round trip: other requests run meanwhile

    fake.response = SimpleNamespace(
        defer=AsyncMock(side_effect=slow_defer), send_message=AsyncMock(), send_modal=AsyncMock(), is_done=lambda: False
    )
    fake.followup = SimpleNamespace(send=AsyncMock())
    fake.edit_original_response = AsyncMock(return_value=SimpleNamespace(id=99))
    return fake


@pytest.fixture
async def conductor(tmp_path: Path) -> Any:
    from bot.conductor import Conductor
    from bot.records import Records
    from graph.api import JobService
    from tools.settings import get_settings

    settings = get_settings().model_copy(update={"data_dir": tmp_path, "max_active_jobs_per_user": 1})
    async with JobService.open(settings) as service:
        records = Records(tmp_path / "bot.sqlite")
        bot = SimpleNamespace(service=service, records=records, place_allowed=lambda g, c: True)
        c = Conductor(bot, service, records, settings)  # type: ignore[arg-type]
        bot.conductor = c  # type: ignore[attr-defined]
        yield c
        await c.close()


async def test_simultaneous_video_requests_respect_the_per_user_limit(conductor: Any) -> None:
    from bot.commands import VideoCommands

    cog = VideoCommands(conductor.bot)
    calls = [_fake_interaction(111, conductor) for _ in range(4)]
    await asyncio.gather(*(cog.video.callback(cog, call, prompt=f"a fox {n}") for n, call in enumerate(calls)))
    assert len(conductor.service.jobs()) == 1
    refusals = [c for c in calls if c.response.send_message.await_count]
    assert len(refusals) == 3
    assert all("You already have 1 videos in progress" in c.response.send_message.call_args.args[0] for c in refusals)


async def test_forged_select_values_are_refused_in_words(conductor: Any) -> None:
    from graph.api import JobRequest, Requester

    service = conductor.service
    job_id = await service.start(JobRequest(prompt="a lost whale", duration=8, ideas=True), Requester(id="discord:111"))
    record = await service.wait(job_id)
    assert record.waiting_for == "pick_idea" and record.interrupt_id
    for forged in (["abc"], ["-1"], ["99"], ["²"], ["1e3"]):
        call = _fake_interaction(111, conductor, values=forged)
        await IdeaSelect(job_id, record.interrupt_id).callback(call)
        sent = call.response.send_message.call_args or call.followup.send.call_args
        assert sent is not None and "pick a number from 1 to" in str(sent), (forged, sent)
        assert service.get(job_id).interrupt_id == record.interrupt_id and service.get(job_id).status == "waiting"
    call = _fake_interaction(111, conductor, values=["²", "7"])
    await RerollSelect(job_id, record.interrupt_id, 3).callback(call)  # wrong approval and forged: refused
    assert service.get(job_id).interrupt_id == record.interrupt_id
    await service.cancel(job_id, Requester(id="discord:111"))
