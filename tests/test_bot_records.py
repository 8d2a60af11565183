"""The bot's records on SQLite (`bot.sqlite`, the default, adopting a file of earlier versions) and on a
shared PostgreSQL (migration 0003), where every replica of the bot reads the same rows: a delivery
claimed once is claimed for all of them."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.records import Post, Records
from tests.cli import storybot
from tools.settings import Settings

SNOWFLAKE = 1_234_567_890_123_456_789  # Discord ids need 64 bits


@pytest.fixture(params=["sqlite", "postgres"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Records:
    if request.param == "sqlite":
        return Records.of(Settings(STORYBOT_DATA_DIR=tmp_path))
    pg_url = request.getfixturevalue("pg_url")
    assert storybot("db", "upgrade", data=tmp_path, env={"STORYBOT_DATABASE_URL": pg_url}).returncode == 0
    return Records.of(Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_DATABASE_URL=pg_url))


def test_posts_prompts_and_a_delivery_claimed_exactly_once_among_many(records: Records) -> None:
    post = Post(job_id="00000000000a", guild_id=SNOWFLAKE, channel_id=SNOWFLAKE + 1, auto_approve=True)
    records.save(post)
    records.save(post.model_copy(update={"token": "tok", "token_issued": 5.0}))  # saved again: updated
    records.update(post.job_id, status_message_id=SNOWFLAKE + 2)
    got = records.post(post.job_id)
    assert got is not None and got.auto_approve and got.token == "tok" and got.status_message_id == SNOWFLAKE + 2
    assert [p.job_id for p in records.undelivered()] == [post.job_id]

    with ThreadPoolExecutor(8) as pool:  # eight claimants at once (on PostgreSQL: as if eight replicas)
        claims = list(pool.map(lambda _: records.claim_delivery(post.job_id), range(8)))
    assert claims.count(True) == 1
    assert [p.job_id for p in records.undelivered()] == [post.job_id]  # claimed, not known to be posted yet
    records.update(post.job_id, delivered_message_id=SNOWFLAKE + 3)
    assert records.undelivered() == [] and not records.claim_delivery(post.job_id)
    assert [p.job_id for p in records.all_posts()] == [post.job_id]

    assert not records.prompt_posted("i1") and records.prompt(SNOWFLAKE + 4) is None
    records.remember_prompt(SNOWFLAKE + 4, post.job_id, "i1")
    records.remember_prompt(SNOWFLAKE + 4, post.job_id, "i1")
    assert records.prompt_posted("i1") and records.prompt(SNOWFLAKE + 4) == (post.job_id, "i1")


def test_a_bot_sqlite_of_earlier_versions_is_read_as_it_is(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "bot.sqlite") as old:  # as sqlite-utils made it
        old.executescript(
            """
            CREATE TABLE [posts] ([job_id] TEXT PRIMARY KEY, [guild_id] INTEGER, [channel_id] INTEGER,
              [status_message_id] INTEGER, [application_id] INTEGER, [token] TEXT, [token_issued] FLOAT,
              [upload_limit] INTEGER, [auto_approve] INTEGER, [delivered_message_id] INTEGER);
            CREATE TABLE [approval_messages] ([message_id] INTEGER PRIMARY KEY, [job_id] TEXT,
              [interrupt_id] TEXT, [created] FLOAT);
            CREATE INDEX [idx_approval_messages_interrupt_id] ON [approval_messages] ([interrupt_id]);
            INSERT INTO posts VALUES ('00000000000b', 1, 2, 3, 4, NULL, 0, 1000, 1, 7);
            INSERT INTO approval_messages VALUES (9, '00000000000b', 'i9', 1.0);
            """
        )
    records = Records(tmp_path / "bot.sqlite")
    got = records.post("00000000000b")
    assert got is not None and got.delivered_message_id == 7 and got.auto_approve
    assert records.prompt(9) == ("00000000000b", "i9") and records.undelivered() == []
