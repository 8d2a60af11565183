"""Publishing across machines on one PostgreSQL: the ledger is the shared `publications` table and the
publishing lock an advisory lock, so an upload killed on one machine is resumed on another in the very
session it began (no second video), a `done` row is answered anywhere, and two machines never publish
one job at once. Each "machine" has a data folder of its own; the local YouTube speaks the protocol."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from graph.database import engine_for, upgrade_database
from tests.fake_platforms import Platforms, platforms_server
from tools.media.ffmpeg import ffmpeg_exe
from tools.publish import Choice, Ledger, Texts, measure, plan_all, publish_all
from tools.publish.ledger import Busy
from tools.publish.registry import platform
from tools.settings import Settings

JOB = "0123456789ab"
MACHINE = """
import asyncio, sys
from pathlib import Path
from graph.database import engine_for
from tools.publish import Choice, Ledger, Texts, measure, plan_all, publish_all
from tools.publish.registry import platform
from tools.settings import Settings

settings = Settings()
texts = Texts(title="Test pattern", description="", hashtags=[])
planned = plan_all(settings, [platform("youtube")], lambda row: texts, Choice(), measure(Path(sys.argv[1])))
ledger = Ledger(settings.data_dir, engine_for(settings))
asyncio.run(publish_all(settings, ledger, sys.argv[2], planned, lambda r: None, lambda line: None))
"""


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A 3 s vertical test pattern of a few MB: several of YouTube's 256 KiB chunks."""
    out = tmp_path / "final.mp4"
    pattern = ["-f", "lavfi", "-i", "testsrc2=s=720x1280:d=3:r=30", "-c:v", "libx264", "-preset", "ultrafast"]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *pattern, "-qp", "0", str(out)], check=True, timeout=120)
    return out


def machine(fake: Platforms, pg_url: str, data: Path) -> Settings:
    return Settings.model_validate({**fake.env(), "STORYBOT_DATA_DIR": data, "STORYBOT_DATABASE_URL": pg_url})


async def publish_on(settings: Settings, video: Path) -> str:
    texts = Texts(title="Test pattern", description="", hashtags=[])
    planned = plan_all(settings, [platform("youtube")], lambda row: texts, Choice(), measure(video))
    ledger = Ledger(settings.data_dir, engine_for(settings))
    (outcome,) = await publish_all(settings, ledger, JOB, planned, lambda r: None, lambda line: None)
    assert outcome.error is None, outcome.error
    return f"{outcome.state}{' (already)' if outcome.already else ''}"


def test_an_upload_killed_on_one_machine_is_resumed_on_another(video: Path, pg_url: str, tmp_path: Path) -> None:
    with platforms_server() as fake:
        first, second = machine(fake, pg_url, tmp_path / "a"), machine(fake, pg_url, tmp_path / "b")
        upgrade_database(first)
        fake.hold_at = 300_000  # inside the second 256 KiB chunk
        env = {**os.environ, **fake.env(), "STORYBOT_DATA_DIR": str(tmp_path / "a"), "STORYBOT_DATABASE_URL": pg_url}
        proc = subprocess.Popen([sys.executable, "-c", MACHINE, str(video), JOB], env=env, stderr=subprocess.PIPE)
        assert fake.holding.wait(60), proc.communicate(timeout=5)
        try:  # machine A is mid-upload and holds the job's lock: machine B is told so and sends nothing
            with pytest.raises(Busy, match="being published by another storybot process"):
                asyncio.run(publish_on(second, video))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            fake.release.set()
        row = Ledger(second.data_dir, engine_for(second)).get(JOB, "youtube")
        assert row is not None and row.state == "uploading" and row.session
        assert row.confirmed_bytes == 256 * 1024  # machine A's progress, read on machine B

        assert asyncio.run(publish_on(second, video)) == "done"  # A's connection died with it, and its lock
        (posted,) = fake.videos("youtube")
        assert len(fake.sessions("youtube")) == 1 and bytes(posted.data) == video.read_bytes()
        assert fake.received == video.stat().st_size  # B went on where the site said A stopped
        assert asyncio.run(publish_on(first, video)) == "done (already)"  # answered from the ledger on A too
        assert len(fake.videos("youtube")) == 1
        assert not (tmp_path / "a" / "publications.sqlite").exists()
        assert not (tmp_path / "b" / "publications.sqlite").exists()
