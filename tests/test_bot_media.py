"""The user's own pictures in Discord: attached to /video they become the shots; replying to the
keyframes with a picture and a shot number replaces that shot; anything else is refused in one line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock

import discord
import numpy as np
from PIL import Image

from bot.commands import VideoCommands
from bot.conductor import Conductor
from bot.messages import credits_text
from graph.api import Credit
from tests.test_bot_handlers import ALICE, interaction, reply, waiting_script


def png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (200, 300), colour).save(buf, format="PNG")
    return buf.getvalue()


def attachment(name: str, body: bytes, content_type: str | None = None) -> object:
    att = MagicMock(spec=discord.Attachment)
    att.filename, att.size, att.content_type, att.read = name, len(body), content_type, AsyncMock(return_value=body)
    return att


async def test_video_with_attachments_keeps_them_as_the_shots(conductor: Conductor, tmp_path: Path) -> None:
    cog = VideoCommands(conductor.bot)
    call = interaction(conductor, ALICE)
    await cog.video.callback(
        cog,
        call,
        prompt="a fox",
        media1=attachment("a.png", png((200, 0, 0))),
        media2=attachment("notes.zip", b"PK\x03\x04", "application/zip"),
    )
    assert call.response.send_message.call_args.args[0] == "⚠️ notes.zip: not a picture or a video clip"
    call = interaction(conductor, ALICE)
    await cog.video.callback(cog, call, prompt="a fox", media1=attachment("a.png", b"<html>nope</html>", "image/png"))
    assert "a.png: not a picture or a video clip" in call.followup.send.call_args.args[0]
    assert conductor.service.jobs() == []

    call = interaction(conductor, ALICE)
    call.token, call.application_id, call.filesize_limit = "tok", 1, 10 * 2**20
    call.edit_original_response = AsyncMock(return_value=SimpleNamespace(id=99))
    await cog.video.callback(
        cog,
        call,
        prompt="a fox",
        media1=attachment("../../x.png", png((200, 0, 0))),
        media2=attachment("b.png", png((0, 0, 200))),
    )
    (job,) = conductor.service.jobs()
    media = conductor.service.get(job.job_id).request.media
    assert [Path(m).name for m in media] == ["01.png", "02.png"]
    assert all(Path(m).is_relative_to(tmp_path / "uploads") for m in media)
    await conductor.service.cancel(job.job_id, conductor.requester(call.user))


async def test_a_reply_with_a_picture_and_a_number_replaces_that_shot(conductor: Conductor) -> None:
    job_id, iid = await waiting_script(conductor)
    conductor.records.remember_prompt(42, job_id, iid)
    cog = VideoCommands(conductor.bot)
    await cog.on_message(reply(conductor, ALICE, "approve", 42))
    record = await conductor.service.wait(job_id)
    assert record.waiting_for == "approve_keyframes" and record.interrupt_id
    shots = len(record.approval.shots)
    conductor.records.remember_prompt(43, job_id, record.interrupt_id)

    for text, files, expected in [
        (f"{shots + 1}", [("p.png", png((0, 200, 0)))], f"there is no shot {shots + 1}"),
        ("", [("p.png", png((0, 200, 0)))], "say which shot"),
        ("1", [("p.png", png((0, 200, 0))), ("q.png", png((0, 0, 200)))], "2 pictures and 1 shot numbers"),
        ("1", [("song.mp3", b"ID3\x03")], "song.mp3: not a picture or a video clip"),
        ("-1", [("p.png", png((0, 200, 0)))], "there is no shot -1"),  # issue 23 #6: not shot 1
        ("9" * 5000, [("p.png", png((0, 200, 0)))], "there is no shot 99999999"),
    ]:
        message = reply(conductor, ALICE, text, 43, files)
        await cog.on_message(message)
        assert expected in message.reply.call_args.args[0], text
    assert conductor.service.get(job_id).interrupt_id == record.interrupt_id, "refusals change nothing"

    await cog.on_message(reply(conductor, ALICE, "1", 43, [("p.png", png((0, 200, 0)))]))
    record = await conductor.service.wait(job_id)
    assert record.waiting_for == "approve_keyframes"
    folder = conductor.service.jobs_dir / job_id
    visuals = json.loads((folder / "visuals.json").read_text(encoding="utf-8"))
    assert visuals[0]["source"] == "user"
    pixels = np.asarray(Image.open(folder / visuals[0]["keyframe"]).convert("RGB"), dtype=float)
    assert np.abs(pixels.reshape(-1, 3).mean(axis=0) - (0, 200, 0)).max() < 3
    await conductor.service.cancel(job_id, conductor.requester(reply(conductor, ALICE, "", 43).author))


def test_delivery_credits_stock_authors_in_one_line() -> None:
    line = credits_text(
        [
            Credit(shot=1, source="pexels", author="Ana", id="1", url="u"),
            Credit(shot=2, source="pexels", author="Ana", id="2", url="u"),
            Credit(shot=3, source="pixabay", author="Bo @everyone", id="3", url="u"),
        ]
    )
    assert line.startswith("-# footage and photos: Ana on Pexels; Bo") and "Pixabay" in line and "\n" not in line
    assert credits_text([]) == ""


async def test_attached_media_become_the_shots_in_order(conductor: Conductor, tmp_path: Path) -> None:
    from graph.api import JobRequest, Requester, keep_uploads

    media = keep_uploads([("a.png", png((200, 0, 0))), ("b.png", png((0, 0, 200)))], tmp_path / "uploads" / "x")
    script = "The lamp went dark over the sea. The keeper climbed the stairs. The whale sang, and the light came back."
    job_id = await conductor.service.start(
        JobRequest(prompt="a whale", script_text=script, duration=8, media=[str(m) for m in media]),
        Requester(id=f"discord:{ALICE}"),
        auto_approve=True,
    )
    record = await conductor.service.wait(job_id)
    assert record.status == "done", record.error
    folder = conductor.service.jobs_dir / job_id
    visuals = json.loads((folder / "visuals.json").read_text(encoding="utf-8"))
    assert [v["source"] for v in visuals] == ["user", "user"]
    shots = json.loads((folder / "shots.json").read_text(encoding="utf-8"))
    from tests.test_visuals import colour_of, frame_at

    for s, want in zip(shots, ("red", "blue"), strict=True):
        assert colour_of(frame_at(folder / "final.mp4", s["start"] + 0.5)) == want
