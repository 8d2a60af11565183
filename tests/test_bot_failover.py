"""The bot as a thin client on a shared database: two real `storybot bot` replicas against the fake
Discord and a real PostgreSQL, jobs run by a `storybot runner`. One replica holds the gateway, the
other stands by; the leader is frozen while a job finishes, then killed with SIGKILL: the standby
takes the gateway within seconds and every video is delivered exactly once. And the bot refuses to
start on a shared database without STORYBOT_LINK_SECRET."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.leader import STANDBY, gateway_name
from bot.records import Records
from graph.store import JobStore
from tests.cli import storybot
from tests.conftest import ALICE, APPROVER, CHANNEL, GUILD, MALLORY, STORYBOT, BotProcess
from tests.fake_discord import Channel, FakeDiscord, FakeMessage, Guild
from tests.test_bot_e2e import ask_video
from tools.settings import Settings

pytestmark = pytest.mark.slow

TAKEOVER_S = 10.0  # the standby holds the gateway this soon after the leader's death
SECRET = "a-link-secret-shared-by-every-replica"
OFFLINE = ("OPENAI_API_KEY", "ELEVENLABS_API_KEY", "STORYBOT_CRASH_AT", "STORYBOT_FFMPEG", "STORYBOT_LINK_SECRET")


class Replica(BotProcess):
    """A `storybot bot` that may start as a standby: `spawn` does not wait for the gateway."""

    async def spawn(self) -> None:
        env = {
            **os.environ,
            "DISCORD_TOKEN": self.fake.token,
            "DISCORD_API_BASE": self.fake.api_base,
            "STORYBOT_DATA_DIR": str(self.data),
            "STORYBOT_GUILD_IDS": str(GUILD),
            "STORYBOT_APPROVER_ROLE_ID": str(APPROVER.roles[0]),
            "STORYBOT_MAX_ACTIVE_JOBS_PER_USER": "3",
        }
        for name in OFFLINE:
            env.pop(name, None)
        env.update(self.env)
        self.data.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(STORYBOT), "bot", cwd=self.data, env=env, stdout=log, stderr=log
            )

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)


def mp4_posts(fake: FakeDiscord) -> dict[str, list[FakeMessage]]:
    """The bot's messages carrying a video, by the job id they name."""
    found: dict[str, list[FakeMessage]] = {}
    for m in fake.messages:
        if m.author is None and any(a.filename.endswith(".mp4") for a in m.attachments):
            job_id = re.findall(r"job ([0-9a-f]{12})", m.content)[-1]
            found.setdefault(job_id, []).append(m)
    return found


async def asked(fake: FakeDiscord, store: JobStore, options: dict[str, object]) -> str:
    """Alice's `/video`; the id of the job it made, once its status message is recorded."""
    before = {j.job_id for j in store.of_requester(f"discord:{ALICE.id}")}
    await ask_video(fake, options)
    records = Records(Path("unused"), store.engine)

    def made() -> str | None:
        fresh = [j.job_id for j in store.of_requester(f"discord:{ALICE.id}") if j.job_id not in before]
        post = records.post(fresh[0]) if fresh else None
        return post.job_id if post is not None and post.status_message_id else None

    found = await fake.wait_for(made, timeout=30)
    assert isinstance(found, str)
    return found


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[FakeDiscord, Replica, Replica, JobStore]]:
    env = {"STORYBOT_DATABASE_URL": pg_url, "STORYBOT_LINK_SECRET": SECRET}
    upgraded = storybot("db", "upgrade", data=tmp_path / "admin", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    store = JobStore.of(Settings(STORYBOT_DATA_DIR=tmp_path / "admin", STORYBOT_DATABASE_URL=pg_url))
    runner_env = {k: v for k, v in os.environ.items() if k not in OFFLINE} | env
    runner_log = (tmp_path / "runner.log").open("w")
    runner = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "storybot", "runner", "--concurrency", "2", "--data", str(tmp_path / "runner")),
        env=runner_env,
        stdout=runner_log,
        stderr=subprocess.STDOUT,
    )
    guild = Guild(id=GUILD, channels=[Channel(id=CHANNEL)], members=[ALICE, MALLORY, APPROVER], roles=APPROVER.roles)
    replicas: list[Replica] = []
    try:
        async with FakeDiscord(guilds=[guild]) as fake:
            first, second = (Replica(fake, tmp_path / name, env) for name in ("a", "b"))
            replicas += [first, second]
            first.data.mkdir()
            await first.start()  # connected, its voice warm
            yield fake, first, second, store
    finally:
        for replica in replicas:
            if replica.proc and replica.proc.returncode is None:
                replica.proc.send_signal(signal.SIGKILL)
                await replica.proc.wait()
            print(f"--- {replica.data.name} ---\n{replica.tail()}")
        runner.kill()
        await runner.wait()
        runner_log.close()
        print("--- runner ---\n" + (tmp_path / "runner.log").read_text(errors="replace")[-5000:])


async def test_the_standby_takes_the_gateway_when_the_leader_dies_and_delivers_exactly_once(
    cluster: tuple[FakeDiscord, Replica, Replica, JobStore],
) -> None:
    fake, leader, standby, store = cluster
    await standby.spawn()
    await fake.wait_for(lambda: STANDBY in standby.tail(), timeout=60)
    assert standby.tail().count(STANDBY) == 1  # said once, not at every poll
    assert len(fake.identifies) == 1  # only the leader ever opened the gateway

    # a job run by the runner, followed and delivered by the leader
    options = {"prompt": "A lighthouse keeper befriends a lost whale", "duration": 5, "auto_approve": True}
    first = await asked(fake, store, options)
    await fake.wait_for(lambda: first in mp4_posts(fake), timeout=240)

    # two more; the leader freezes (holding the gateway and its lock) until the first of them is done,
    # so that job ends with nobody able to deliver it; then the leader dies
    second = await asked(fake, store, options)
    third = await asked(fake, store, {**options, "duration": 8})
    leader.freeze()
    await fake.wait_for(lambda: (r := store.get(second)) is not None and r.status == "done", timeout=240)
    assert second not in mp4_posts(fake)
    third_then = store.get(third)
    assert third_then is not None
    killed = time.monotonic()
    await leader.kill()
    await fake.wait_for(lambda: len(fake.identifies) == 2 and fake.connected, timeout=TAKEOVER_S, interval=0.05)
    took = time.monotonic() - killed
    print(f"the standby holds the gateway {took:.2f} s after the leader's SIGKILL (third job: {third_then.status})")
    assert took < TAKEOVER_S

    # the job that ended meanwhile and the one still running are delivered, each exactly once, the first
    # never again
    await fake.wait_for(lambda: {second, third} <= set(mp4_posts(fake)), timeout=240)
    await asyncio.sleep(3)  # any second delivery would have come by now
    posts = mp4_posts(fake)
    assert {job: len(found) for job, found in posts.items()} == {first: 1, second: 1, third: 1}
    assert "Traceback" not in standby.tail()
    assert not fake.errors


def test_a_gateway_lock_is_named_by_the_application_in_the_token() -> None:
    assert gateway_name("MTEwMDAwMDAwMDAwMDAwMDAwMQ.GhJkLm.abcdefghijklmnopqrstuvwxyz") == "1100000000000000001"
    assert gateway_name("fake-token").startswith("token-")


def test_on_a_shared_database_bot_and_serve_refuse_to_start_without_a_link_secret(tmp_path: Path, pg_url: str) -> None:
    env = {"STORYBOT_DATABASE_URL": pg_url, "DISCORD_TOKEN": "fake-token", "STORYBOT_LINK_SECRET": ""}
    for command in ("bot", "serve"):
        refused = storybot(command, data=tmp_path, env=env, cwd=tmp_path, timeout=60)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1 and "STORYBOT_LINK_SECRET is not set" in refused.stderr, refused.stderr
        assert "STORYBOT_DATABASE_URL" in refused.stderr
    assert not (tmp_path / "link_secret").exists()  # nothing generated that another replica would not share
