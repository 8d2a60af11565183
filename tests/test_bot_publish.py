"""The Publish button on a delivered video, called with fake interactions over a real JobService and
the local platforms (tests/fake_platforms.py): only the requester or the publisher role may use it,
the form publishes the master with the AI label, and a second try answers with the same link."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bot.conductor import Conductor
from bot.publishing import NOT_YOURS, PublishButton, PublishModal, PublishSelect, publish_view
from graph.api import JobRequest, Requester
from tests.fake_platforms import platforms_server
from tools.settings import Settings

SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."
ALICE, MALLORY = 111, 222
APPROVER, PUBLISHER = 900, 901


def user(uid: int, roles: tuple[int, ...] = ()) -> Any:
    return SimpleNamespace(id=uid, display_name=f"user{uid}", roles=[SimpleNamespace(id=r) for r in roles], bot=False)


def interaction(conductor: Conductor, who: Any, **data: Any) -> Any:
    fake = MagicMock(spec=discord.Interaction)
    fake.user = who
    fake.client = SimpleNamespace(conductor=conductor)
    fake.data = data
    fake.guild_id, fake.channel_id = 5, 6
    fake.response = SimpleNamespace(
        defer=AsyncMock(), send_message=AsyncMock(), send_modal=AsyncMock(), is_done=lambda: False
    )
    fake.followup = SimpleNamespace(send=AsyncMock())
    fake.edit_original_response = AsyncMock()
    return fake


async def test_only_the_requester_or_the_publisher_role_publishes(conductor: Conductor, tmp_path: Path) -> None:
    with platforms_server() as fake:
        conductor.settings = Settings.model_validate(
            {
                **fake.env(),
                "STORYBOT_DATA_DIR": tmp_path,
                "STORYBOT_APPROVER_ROLE_ID": APPROVER,
                "STORYBOT_PUBLISHER_ROLE_ID": PUBLISHER,
            }
        )
        channel = SimpleNamespace(send=AsyncMock())
        bot: Any = conductor.bot  # a stand-in: the channel the outcome is posted to
        bot.get_partial_messageable = lambda channel_id: channel
        job_id = await conductor.service.start(
            JobRequest(prompt="a whale", script_text=SCRIPT, duration=5),
            Requester(id=f"discord:{ALICE}"),
            auto_approve=True,
        )
        record = await conductor.service.wait(job_id)
        assert record.status == "done" and record.result is not None
        final = Path(record.result.artifacts.final_video)

        delivered = publish_view(conductor.settings, job_id)
        assert [c.custom_id for c in delivered.children] == [f"sb:publish:{job_id}"]  # type: ignore[attr-defined]

        button = PublishButton(job_id)
        for stranger in (user(MALLORY), user(MALLORY, (APPROVER,))):  # the approver role is not enough
            click = interaction(conductor, stranger)
            assert await button.interaction_check(click) is False
            args, kwargs = click.response.send_message.call_args
            assert args[0] == NOT_YOURS and kwargs["ephemeral"] is True
        assert await button.interaction_check(interaction(conductor, user(MALLORY, (PUBLISHER,))))

        click = interaction(conductor, user(ALICE))
        assert await button.interaction_check(click)
        await button.callback(click)
        menu = click.response.send_message.call_args.kwargs["view"]
        (select,) = menu.children
        assert [o.value for o in select.item.options] == ["youtube", "tiktok", "instagram"]
        assert click.response.send_message.call_args.kwargs["ephemeral"] is True

        pick = interaction(
            conductor, user(ALICE), values=["youtube", "tiktok", "instagram", "vimeo"]
        )  # forged: dropped
        await PublishSelect(job_id).callback(pick)
        modal = pick.response.send_modal.call_args.args[0]
        assert isinstance(modal, PublishModal) and modal.sites == ["youtube", "tiktok", "instagram"]
        assert modal.privacy.value == "private" and modal.title == "Publish (Instagram: public)"
        assert await modal.interaction_check(interaction(conductor, user(MALLORY))) is False

        submit = interaction(conductor, user(ALICE))
        await modal.on_submit(submit)
        submit.response.defer.assert_awaited_once()
        text = channel.send.call_args.args[0]
        (video,) = fake.videos("youtube")
        (post,) = fake.videos("tiktok")
        (reel,) = fake.videos("instagram")  # public whatever the others get: no refusal in the form's flow
        assert f"<https://youtu.be/{video.published}>" in text and f"publish_id `{post.id}`" in text
        assert f"https://www.instagram.com/reel/R{reel.published}/" in text
        assert bytes(video.data) == bytes(post.data) == bytes(reel.data) == final.read_bytes()
        assert video.meta["status"]["containsSyntheticMedia"] is True and post.meta["post_info"]["is_aigc"] is True
        assert video.meta["status"]["privacyStatus"] == "private" and reel.meta["is_ai_generated"] is True

        notes = str({f.name: f.value for f in conductor.job_embed(job_id).fields}["Notes"])  # the status board
        assert "YouTube: https://youtu.be/" in notes and "Instagram: https://www.instagram.com/reel/" in notes

        again = interaction(conductor, user(ALICE))
        await modal.on_submit(again)
        assert "published earlier" in channel.send.call_args.args[0]
        assert [len(fake.sessions(k)) for k in ("youtube", "tiktok", "instagram")] == [1, 1, 1]


@pytest.mark.parametrize("privacy", ["secret", ""])
async def test_a_privacy_the_sites_do_not_know_is_refused_privately(conductor: Conductor, privacy: str) -> None:
    modal = PublishModal("0123456789ab", ["youtube"], "A title", "")
    modal.privacy._value = privacy  # what the person typed
    submit = interaction(conductor, user(ALICE))
    await modal.on_submit(submit)
    assert submit.response.send_message.call_args.kwargs["ephemeral"] is True
    submit.response.defer.assert_not_awaited()
