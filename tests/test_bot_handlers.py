"""The bot's handlers called directly with fake interactions and messages, over a real JobService.

Discord itself is replaced by `MagicMock(spec=...)` objects with awaitable responses (LAB_NOTES:
dpytest has no slash commands, views or clicks); everything behind them is the real thing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
from PIL import Image
from pydantic import SecretStr

from bot.commands import VideoCommands
from bot.conductor import Conductor
from bot.contact_sheet import contact_sheet
from bot.messages import script_embeds
from bot.records import Post
from bot.text import split_text, visible, word_diff
from bot.views import ApprovalButton, IdeaSelect, ReviseModal
from graph.api import Answer, IdeaApproval, JobRequest, KeyframeApproval, Requester, ScriptApproval
from tools.llm import OfflineWriter
from tools.settings import get_settings

SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."
ALICE, MALLORY = 111, 222


def user(uid: int, roles: tuple[int, ...] = ()) -> Any:
    return SimpleNamespace(id=uid, display_name=f"user{uid}", roles=[SimpleNamespace(id=r) for r in roles], bot=False)


def interaction(conductor: Conductor, uid: int, **data: Any) -> Any:
    fake = MagicMock(spec=discord.Interaction)
    fake.user = user(uid)
    fake.client = SimpleNamespace(conductor=conductor)
    fake.data = data
    fake.guild_id, fake.channel_id = 5, 6
    fake.response = SimpleNamespace(
        defer=AsyncMock(), send_message=AsyncMock(), send_modal=AsyncMock(), is_done=lambda: False
    )
    fake.followup = SimpleNamespace(send=AsyncMock())
    fake.edit_original_response = AsyncMock()
    return fake


async def waiting_script(conductor: Conductor, script: str = SCRIPT) -> tuple[str, str]:
    service = conductor.service
    job_id = await service.start(
        JobRequest(prompt="a whale", script_text=script, duration=8), Requester(id=f"discord:{ALICE}")
    )
    record = await service.wait(job_id)
    assert record.status == "waiting" and record.interrupt_id
    return job_id, record.interrupt_id


async def test_a_foreign_click_is_refused_privately_and_changes_nothing(conductor: Conductor) -> None:
    job_id, iid = await waiting_script(conductor)
    button = ApprovalButton("approve", job_id, iid)
    click = interaction(conductor, MALLORY)
    assert await button.interaction_check(click) is False
    args, kwargs = click.response.send_message.call_args
    assert kwargs["ephemeral"] is True and "Only the person" in args[0]
    record = conductor.service.get(job_id)
    assert (record.status, record.interrupt_id) == ("waiting", iid)


async def test_revise_opens_a_modal_whose_note_revises_the_script(conductor: Conductor) -> None:
    job_id, iid = await waiting_script(conductor)
    click = interaction(conductor, ALICE)
    revise = ApprovalButton("revise", job_id, iid)
    assert await revise.interaction_check(click)
    await revise.callback(click)
    modal = click.response.send_modal.call_args.args[0]
    assert isinstance(modal, ReviseModal) and modal.custom_id == f"sb:note:{job_id}:{iid}"
    fields = {
        "custom_id": modal.custom_id,
        "components": [{"type": 1, "components": [{"type": 4, "custom_id": "note", "value": "make it shorter"}]}],
    }
    stranger = interaction(conductor, MALLORY, **fields)
    stranger.type = discord.InteractionType.modal_submit
    cog = VideoCommands(conductor.bot)
    await cog.on_interaction(stranger)
    assert stranger.response.send_message.call_args.kwargs["ephemeral"]
    assert conductor.service.get(job_id).interrupt_id == iid
    submit = interaction(conductor, ALICE, **fields)
    submit.type = discord.InteractionType.modal_submit
    await cog.on_interaction(submit)  # from the custom_id alone: works after a restart too
    submit.response.defer.assert_awaited_once()
    record = await conductor.service.wait(job_id)
    assert record.status == "waiting" and record.interrupt_id != iid
    assert isinstance(record.approval, ScriptApproval) and record.approval.version == 2


async def test_a_stale_button_answers_nothing(conductor: Conductor) -> None:
    job_id, iid = await waiting_script(conductor)
    await conductor.service.answer(
        job_id, Requester(id=f"discord:{ALICE}"), Answer(action="revise", note="shorter"), iid
    )
    fresh = (await conductor.service.wait(job_id)).interrupt_id
    old = interaction(conductor, ALICE)
    await ApprovalButton("approve", job_id, iid).callback(old)
    message = old.followup.send.call_args
    assert message.kwargs["ephemeral"] and "no longer pending" in message.args[0]
    assert conductor.service.get(job_id).interrupt_id == fresh


async def test_the_idea_select_picks_the_chosen_idea(conductor: Conductor) -> None:
    service = conductor.service
    request = JobRequest(prompt="a lost whale", duration=8, ideas=True)
    job_id = await service.start(request, Requester(id=f"discord:{ALICE}"))
    record = await service.wait(job_id)
    assert isinstance(record.approval, IdeaApproval) and record.interrupt_id
    ideas = record.approval.ideas
    assert len({i.title for i in ideas}) == len(ideas) >= 2
    await IdeaSelect(job_id, record.interrupt_id).callback(interaction(conductor, ALICE, values=["1"]))
    record = await service.wait(job_id)
    assert isinstance(record.approval, ScriptApproval) and record.approval.version == 1
    state = await service.graph.aget_state({"configurable": {"thread_id": job_id}})
    assert state.values["idea"].title == ideas[1].title  # the second idea, as picked
    # and the draft on screen is the one the writer makes from that idea, not from the first
    words = record.approval.words
    second = await OfflineWriter().script(request.prompt, ideas[1], words)
    first = await OfflineWriter().script(request.prompt, ideas[0], words)
    assert first != second and record.approval.script.split()[:8] == second.split()[:8]


async def test_video_command_refuses_bad_prompts_before_anything_exists(conductor: Conductor) -> None:
    cog = VideoCommands(conductor.bot)
    for prompt in ("   ", "\u200b\u200b", "x" * 5000):
        call = interaction(conductor, ALICE)
        await cog.video.callback(cog, call, prompt=prompt)
        args, kwargs = call.response.send_message.call_args
        assert kwargs["ephemeral"] and args[0].startswith("⚠️") and "\n" not in args[0]
        call.response.defer.assert_not_awaited()
    call = interaction(conductor, ALICE)
    await cog.video.callback(cog, call, prompt="a fox", voice="../../etc/passwd")
    assert "voice name is not valid" in call.response.send_message.call_args.args[0]
    assert conductor.service.jobs() == []


async def test_per_user_limit_is_polite(conductor: Conductor) -> None:
    await waiting_script(conductor)
    await waiting_script(conductor)
    cog = VideoCommands(conductor.bot)
    call = interaction(conductor, ALICE)
    await cog.video.callback(cog, call, prompt="one more")
    text = call.response.send_message.call_args.args[0]
    assert "You already have 2 videos in progress" in text and call.response.send_message.call_args.kwargs["ephemeral"]
    assert len(conductor.service.jobs()) == 2


def reply(conductor: Conductor, uid: int, content: str, to: int, files: list[tuple[str, bytes]] = ()) -> Any:
    message = MagicMock(spec=discord.Message)
    message.author, message.content = user(uid), content
    message.reference = SimpleNamespace(message_id=to)
    attachments = []
    for name, body in files:
        att = MagicMock(spec=discord.Attachment)
        att.filename, att.size, att.read = name, len(body), AsyncMock(return_value=body)
        attachments.append(att)
    message.attachments = attachments
    message.reply = AsyncMock()
    return message


async def test_replies_revise_replace_approve_and_refuse_strangers(conductor: Conductor) -> None:
    job_id, iid = await waiting_script(conductor)
    conductor.records.remember_prompt(42, job_id, iid)
    cog = VideoCommands(conductor.bot)

    stranger = reply(conductor, MALLORY, "approve", 42)
    await cog.on_message(stranger)
    assert "Only the person" in stranger.reply.call_args.args[0]
    assert conductor.service.get(job_id).interrupt_id == iid

    mine = "My own words now. Short and sweet."
    await cog.on_message(reply(conductor, ALICE, "", 42, [("mine.txt", mine.encode())]))
    record = await conductor.service.wait(job_id)
    assert isinstance(record.approval, ScriptApproval) and record.approval.script == mine and record.interrupt_id
    conductor.records.remember_prompt(43, job_id, record.interrupt_id)

    await cog.on_message(reply(conductor, ALICE, "👍", 43))
    record = await conductor.service.wait(job_id)
    assert record.waiting_for == "approve_keyframes"


def test_scripts_split_cleanly_under_discord_limits() -> None:
    sentence = "The keeper climbed the hundred stairs again, counting each one aloud. "
    script = "\n\n".join(sentence * 12 for _ in range(12))
    groups = script_embeds(ScriptApproval(script=script, version=3, words=len(script.split()), target_seconds=45))
    assert len(groups) > 1
    for embeds in groups:
        assert len(embeds) <= 10 and sum(len(e) for e in embeds) <= 6000
        assert all(len(e.description or "") <= 4096 for e in embeds)
    shown = " ".join(e.description or "" for g in groups for e in g)
    assert shown.split() == script.split()
    assert all((e.description or "").rstrip().endswith(".") for g in groups for e in g)


def test_text_helpers() -> None:
    assert split_text("word " * 10, 12) == ["word word", "word word", "word word", "word word", "word word"]
    assert visible("a\u200bb\u202ec\x07d\ne") == "abcd\ne"
    diff = word_diff("the cat sat on the mat", "the dog sat on the mat")
    assert "~~cat~~" in diff and "**dog**" in diff


def test_contact_sheet_numbers_every_shot(tmp_path: Path) -> None:
    images = []
    for n in range(5):
        path = tmp_path / f"shot_{n}.png"
        Image.new("RGB", (1080, 1920), (40 * n, 80, 120)).save(path)
        images.append(path)
    sheet = contact_sheet(images, [f"Shot text {n}" for n in range(5)], tmp_path / "sheet.png")
    with Image.open(sheet) as img:
        assert img.width > 3 * 270 and img.height > 2 * 480  # 3 across, 2 rows


async def test_delivery_fits_the_upload_limit_or_says_where_the_master_is(conductor: Conductor) -> None:
    service = conductor.service
    job_id = await service.start(
        JobRequest(prompt="a fox", script_text=SCRIPT, duration=8), Requester(id=f"discord:{ALICE}"), auto_approve=True
    )
    record = await service.wait(job_id)
    assert record.status == "done"
    assert record.result is not None
    master = Path(record.result.artifacts.final_video)
    sent: list[tuple[str, Any]] = []

    async def send(content: str, file: Any = None, **_: Any) -> Any:
        sent.append((content, file))
        return SimpleNamespace(id=len(sent))

    bot = conductor.bot
    bot.get_partial_messageable = lambda _id: SimpleNamespace(send=send)  # type: ignore[attr-defined]
    bot.get_channel = lambda _id: None  # type: ignore[attr-defined]
    bot.get_guild = lambda _id: SimpleNamespace(filesize_limit=10 * 1024 * 1024)  # type: ignore[attr-defined]
    bot.get_user = lambda _id: None  # type: ignore[attr-defined]

    conductor.records.save(Post(job_id=job_id, channel_id=6, guild_id=5))
    await conductor.delivery.deliver(job_id)
    await conductor.delivery.deliver(job_id)  # a second call (a restart, a repeated event) posts nothing
    assert len(sent) == 1 and sent[0][1].filename == f"storybot-{job_id}.mp4"
    assert sent[0][1].fp.name == str(master)

    other = await service.start(
        JobRequest(prompt="a fox", script_text=SCRIPT, duration=8), Requester(id=f"discord:{ALICE}"), auto_approve=True
    )
    await service.wait(other)
    bot.get_guild = lambda _id: SimpleNamespace(filesize_limit=1000)  # type: ignore[attr-defined]
    conductor.records.save(Post(job_id=other, channel_id=6, guild_id=5, upload_limit=1000))
    await conductor.delivery.deliver(other)
    text, file = sent[-1]
    assert file is None and "does not fit" in text and "MiB" in text and "final.mp4" in text


def test_guild_and_channel_allow_lists(tmp_path: Path) -> None:
    from bot.client import StorybotBot

    settings = get_settings().model_copy(update={"data_dir": tmp_path, "guild_ids": "5, 7", "allowed_channel_ids": "6"})
    conductor = StorybotBot(settings, SimpleNamespace()).conductor  # type: ignore[arg-type]
    assert conductor.place_allowed(5, 6) and not conductor.place_allowed(5, 8) and not conductor.place_allowed(9, 6)
    assert not conductor.place_allowed(None, 6)  # direct messages are outside every allowed server


def test_keyframe_embed_shows_vision_verdicts() -> None:
    from bot.messages import keyframes_embed

    embed = keyframes_embed(
        KeyframeApproval.model_validate(
            {
                "keyframes": ["/a.png", "/b.png"],
                "shots": [{"number": 1, "text": "A whale."}, {"number": 2, "text": "A lamp."}],
                "verdicts": [
                    {
                        "shot": 1,
                        "parsed": True,
                        "adherence": 8,
                        "quality": 6.5,
                        "critique": "too dark",
                        "consistent": False,
                    },
                    {"shot": 2, "parsed": False},
                ],
            }
        )
    )
    first, second = (f.value or "" for f in embed.fields)
    assert "prompt 8/10, quality 6.5/10, differs from the previous shot: too dark" in first
    assert "no usable verdict" in second


def test_a_job_waiting_in_the_queue_shows_its_place() -> None:
    from bot.messages import Live, status_embed
    from graph.api import JobRecord, StageRecord

    request = JobRequest(prompt="a whale", duration=8)
    mine = {"job_id": "0123456789ab", "created": 0, "updated": 0, "requester": "discord:1", "channel": "6"}
    record = JobRecord(**mine, prompt="a whale", request=request, status="queued")
    live = Live()
    live.queue_position = 3
    field = status_embed(record, [StageRecord(name="write_script")], live, now=5).fields[0]
    assert field.name == "Queued" and "queue position 3" in (field.value or "")
    done = status_embed(record.model_copy(update={"status": "done"}), [], live, now=5).fields[0]
    assert "queue position" not in (done.value or "")


async def test_a_delivery_cut_short_by_a_crash_or_a_failed_post_is_finished_once(conductor: Conductor) -> None:
    service = conductor.service
    jobs = []
    for _ in range(2):
        job_id = await service.start(
            JobRequest(prompt="a fox", script_text=SCRIPT, duration=8),
            Requester(id=f"discord:{ALICE}"),
            auto_approve=True,
        )
        assert (await service.wait(job_id)).status == "done"
        conductor.records.save(Post(job_id=job_id, channel_id=6, guild_id=5))
        assert conductor.records.claim_delivery(job_id)  # then the bot died: posted or not, nobody knows
        jobs.append(job_id)
    posted, missing = jobs
    me = SimpleNamespace(id=999)
    history = [SimpleNamespace(id=77, author=me, content=f"🎬 **A fox**\n-# made for you · job {posted}")]
    sent: list[str] = []
    down = True  # the first start after the crash finds Discord failing

    async def send(content: str, file: Any = None, **_: Any) -> Any:
        if down:
            raise discord.HTTPException(
                SimpleNamespace(status=503, reason="Service Unavailable"),
                {"code": 0, "message": "upstream connect error"},
            )
        sent.append(content)
        return SimpleNamespace(id=78)

    async def recent(limit: int) -> AsyncIterator[Any]:
        for message in history:
            yield message

    bot = conductor.bot
    bot.user = me  # type: ignore[attr-defined]
    bot.get_partial_messageable = lambda _id: SimpleNamespace(send=send, history=recent)  # type: ignore[attr-defined]
    bot.get_channel = lambda _id: None  # type: ignore[attr-defined]
    bot.get_guild = lambda _id: SimpleNamespace(filesize_limit=10 * 1024 * 1024)  # type: ignore[attr-defined]
    bot.get_user = lambda _id: None  # type: ignore[attr-defined]
    await conductor.recover()  # the failed post is logged, not raised, and stays to be retried
    assert sent == [] and conductor.records.post(missing).delivered_message_id == 0  # type: ignore[union-attr]
    down = False
    await conductor.recover()
    await conductor.recover()
    assert len(sent) == 1 and f"job {missing}" in sent[0]
    assert [conductor.records.post(j).delivered_message_id for j in jobs] == [77, 78]  # type: ignore[union-attr]


async def test_jobs_job_and_cancel_commands(conductor: Conductor) -> None:
    job_id, _ = await waiting_script(conductor)
    cog = VideoCommands(conductor.bot)
    listing = interaction(conductor, ALICE)
    await cog.jobs.callback(cog, listing)
    assert job_id in listing.response.send_message.call_args.args[0]
    nosy = interaction(conductor, MALLORY)
    await cog.job.callback(cog, nosy, id=job_id)
    assert "No job of yours" in nosy.response.send_message.call_args.args[0]
    mine = interaction(conductor, ALICE)
    await cog.job.callback(cog, mine, id=job_id.upper())
    embed = mine.response.send_message.call_args.kwargs["embed"]
    assert "Waiting for you: Approve the script" in str(embed.to_dict()) and job_id in embed.footer.text
    stop = interaction(conductor, ALICE)
    await cog.cancel.callback(cog, stop, id=job_id)
    assert "cancelled" in stop.response.send_message.call_args.args[0]
    assert (await conductor.service.wait(job_id)).status == "cancelled"


async def test_voices_and_voice_autocomplete_come_from_the_catalogue(conductor: Conductor) -> None:
    cog = VideoCommands(conductor.bot)
    call = interaction(conductor, ALICE)
    await cog.voices.callback(cog, call, language="es")
    text = call.response.send_message.call_args.args[0]
    assert "`espeak:es` es · **default**" in text and "`edge:es-ES-ElviraNeural` es-es · online" in text
    # no Spanish Piper voice is installed; the repository's are listed as downloads, never as the default
    assert "`piper:es_ES-davefx-medium` es-es · downloaded on first use" in text and len(text) <= 2000
    call = interaction(conductor, ALICE)
    await cog.voices.callback(cog, call)  # the whole catalogue does not fit one message
    text = call.response.send_message.call_args.args[0]
    assert text.startswith("`piper:en_US-joe-medium` en-us · CC0 · **default**") and "more: try `/voices" in text
    assert len(text) <= 2000

    call = interaction(conductor, ALICE)
    await cog.voices.callback(cog, call, language="xx")
    assert call.response.send_message.call_args.args[0] == "No voice speaks 'xx'."

    choices = await cog.voice_names(interaction(conductor, ALICE), "joe")
    assert [c.value for c in choices] == ["piper:en_US-joe-medium"]
    everything = await cog.voice_names(interaction(conductor, ALICE), "")
    assert len(everything) == 25 and everything[0].value == "piper:en_US-joe-medium"

    call = interaction(conductor, ALICE)
    await cog.video.callback(cog, call, prompt="a fox", voice="piper:joe")
    args, kwargs = call.response.send_message.call_args
    assert kwargs["ephemeral"] and args[0].startswith("⚠️ unknown voice 'piper:joe'") and "en_US-joe-medium" in args[0]
    assert conductor.service.jobs() == []


async def test_a_failure_post_names_the_reason_but_no_configured_secret(conductor: Conductor) -> None:
    """Issue 23, P0: a provider echoing a key into its error; every configured secret (not only the
    Discord, OpenAI and ElevenLabs keys) is masked in the chat message and the log."""
    secrets = {
        "vision_api_key": "sk-vision-0123456789",
        "pexels_api_key": "pexels-key-0123456789",
        "link_secret": "link-secret-0123456789",
        "image_api_key": "sk-images-01234/56789",  # a key with a character URLs encode
    }
    conductor.settings = conductor.settings.model_copy(update={k: SecretStr(v) for k, v in secrets.items()})
    job_id, _ = await waiting_script(conductor)
    conductor.records.save(Post(job_id=job_id, channel_id=6, guild_id=5))
    sent: list[str] = []

    async def send(content: str, **_: Any) -> Any:
        sent.append(content)

    conductor.bot.get_partial_messageable = lambda _id: SimpleNamespace(send=send)  # type: ignore[attr-defined]
    reason = "vision model refused: bad key " + " ".join(secrets.values()) + " sk-images-01234%2F56789"
    await conductor.post_failure(job_id, reason)
    assert len(sent) == 1 and "bad key" in sent[0]
    assert not [s for s in secrets.values() if s in sent[0]] and "%2F56789" not in sent[0]


async def _until(check: Any, seconds: float = 20.0) -> None:
    import asyncio

    for _ in range(int(seconds * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {check.__doc__ or check}")


async def test_a_reply_while_a_revision_runs_is_kept_and_answers_the_next_draft(conductor: Conductor) -> None:
    """Issue 23 #14: a .txt (or any reply) sent while the revision runs was refused and dropped."""
    job_id, iid = await waiting_script(conductor)
    conductor.records.remember_prompt(42, job_id, iid)
    cog = VideoCommands(conductor.bot)
    await cog.on_message(reply(conductor, ALICE, "make it warmer", 42))
    assert conductor.service.get(job_id).status == "running"  # the revision has started, not finished

    first = reply(conductor, ALICE, "mention the sea", 42)
    await cog.on_message(first)
    said = first.reply.call_args.args[0]
    assert said.startswith("⏳") and "next script draft" in said and "mention the sea" in said, said
    mine = "My own words while you were busy. Short and sweet."
    latest = reply(conductor, ALICE, "", 42, [("mine.txt", mine.encode())])
    await cog.on_message(latest)  # the latest reply wins
    said = latest.reply.call_args.args[0]
    assert "replaces your earlier reply" in said and "own script" in said and "\n" not in said, said

    def replaced() -> bool:
        approval = conductor.service.get(job_id).approval
        return isinstance(approval, ScriptApproval) and approval.script == mine

    await _until(replaced)  # version 2 came back and the kept .txt answered it at once
    record = await conductor.service.wait(job_id)
    assert isinstance(record.approval, ScriptApproval) and record.approval.version == 3
    assert "📄 Using your own script" in latest.reply.call_args.args[0]
    assert all("not waiting" not in str(c.args) for c in first.reply.call_args_list + latest.reply.call_args_list)


async def test_a_kept_reply_that_cannot_apply_says_so_and_cancel_does_not_wait(conductor: Conductor) -> None:
    job_id, iid = await waiting_script(conductor)
    conductor.records.remember_prompt(42, job_id, iid)
    cog = VideoCommands(conductor.bot)
    await cog.on_message(reply(conductor, ALICE, "approve", 42))
    kept = reply(conductor, ALICE, "shorter", 42)  # approved already: the next question is the keyframes
    await cog.on_message(kept)
    await _until(lambda: len(kept.reply.call_args_list) == 2)
    said = kept.reply.call_args.args[0]
    assert said.startswith("⚠️ Your kept reply") and "keyframes" in said, said
    record = await conductor.service.wait(job_id)
    assert record.waiting_for == "approve_keyframes" and record.status == "waiting"

    conductor.records.remember_prompt(44, job_id, record.interrupt_id or "")
    await cog.on_message(reply(conductor, ALICE, "1", 44))  # redraw shot 1: running again
    stop = reply(conductor, ALICE, "cancel", 44)
    await cog.on_message(stop)
    assert "Cancelled" in stop.reply.call_args.args[0]
    record = await conductor.service.wait(job_id)
    assert record.status == "cancelled"
