"""Shared fixtures: the local stand-ins for outside services, and a bot conductor over a real JobService.

- `llm` is an OpenAI-compatible server (tests/fake_openai.py) answering with `llm_answer`, which a
  test module overrides to play another model (a short-draft writer, a malformed one).
- `eleven` is the ElevenLabs stand-in (tests/fake_elevenlabs.py).
- `stock_server` is the Pexels + Pixabay stand-in (tests/fake_stock.py) serving `stock_media`, made
  once per test module.
- `world` is the fake Discord (tests/fake_discord.py) with the real `storybot bot` process connected
  to it; `bot_env` adds variables to that process (point it at `llm`, say).
- `conductor` is the bot's Conductor over a real JobService, with Discord replaced by plain objects.
- `postgres` is a real PostgreSQL server (tests/postgres_server.py), started once per test run when a
  test asks for it; `pg_url` is a fresh database on it, for one test. `s3` is a real S3-compatible
  server (moto's, tests/s3_server.py), likewise once per run.
- `tiny_models` is {"STORYBOT_SDXL_MODEL": folder, ...} for the four tiny random-weight GPU models
  (tests/gpu_fixtures.py), built once per test run.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fake_discord import Channel, FakeDiscord, Guild, User
from tests.fake_elevenlabs import FakeElevenLabs, fake_elevenlabs
from tests.fake_openai import Answer, FakeOpenAI, fake_openai, user_text
from tests.fake_stock import Stock, fake_stock, served_media
from tests.gpu_fixtures import build_tiny_models
from tests.local_http import Request
from tests.postgres_server import PostgresServer, postgres_server
from tests.s3_server import S3Server, s3_server

# A language model running on the developer's machine must not turn the offline tests into online
# ones: local server detection is off unless a test points it at its own fakes (test_local_writer).
os.environ.setdefault("STORYBOT_LOCAL_LLM_SERVERS", "")
# Likewise no Piper voice is downloaded from the public repository: test_piper_downloads serves its own.
os.environ.setdefault("STORYBOT_PIPER_VOICES_URL", "")
# ...nor a writer model pulled on this machine used (test_embedded_writer builds a tiny one).
os.environ.setdefault("STORYBOT_WRITER_MODEL", str(Path(__file__).parent / "no-writer-model-here"))

STORYBOT = Path(sys.executable).with_name("storybot")
GUILD, CHANNEL, APPROVER_ROLE = 900001, 900002, 900003
ALICE = User(id=111, name="alice")
MALLORY = User(id=222, name="mallory")
APPROVER = User(id=333, name="carol", roles=[APPROVER_ROLE])
STORY = (
    "The keeper climbed the stairs at dusk. The lamp was cold and the sea was dark. Far out, a whale "
    "called, long and low. The keeper lit the lamp and answered with the light. "
)


def asked_words(body: dict[str, Any]) -> int:
    """The word target a writer's prompt names ("... 80 words (between 72 and 88)")."""
    found = re.findall(r"(\d+) words \(between|aim for (\d+)", user_text(body))
    return int(found[-1][0] or found[-1][1]) if found else 60


def sized_answer(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
    """A model that does what it is asked: ideas, and scripts of the asked length."""
    if name == "IdeaDrafts":
        return {
            "ideas": [
                {
                    "title": f"Idea {n}",
                    "logline": f"The keeper's night number {n}.",
                    "hook": "Listen.",
                    "angle": "a",
                    "audience": "b",
                    "emotional_core": "c",
                    "tags": ["drama"],
                    "score_parts": {"hook": 20 - n, "originality": 20, "emotion": 20, "fit": 20},
                }
                for n in (1, 2, 3)
            ]
        }
    words = STORY.split()
    wanted = asked_words(body)
    script = " ".join(words[i % len(words)] for i in range(wanted)).rstrip(",") + "."
    return {"script": script, "summary": "Rewrote it."} if name == "RevisionDraft" else {"script": script}


@pytest.fixture
def llm_answer() -> Answer:
    return sized_answer


@pytest.fixture
def llm(llm_answer: Answer) -> Iterator[FakeOpenAI]:
    with fake_openai(llm_answer) as server:
        yield server


@pytest.fixture
def eleven() -> Iterator[FakeElevenLabs]:
    with fake_elevenlabs() as server:
        yield server


@pytest.fixture(scope="module")
def stock_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return served_media(tmp_path_factory.mktemp("served"))


@pytest.fixture
def stock_server(stock_media: dict[str, bytes]) -> Iterator[tuple[Stock, str, list[Request]]]:
    with fake_stock(stock_media) as served:
        yield served


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, str]:
    return build_tiny_models()


class BotProcess:
    """`storybot bot` as a child process with its own data folder; kill -9 and start again at will."""

    def __init__(self, fake: FakeDiscord, data: Path, env: dict[str, str]) -> None:
        self.fake, self.data, self.env = fake, data, env
        self.proc: asyncio.subprocess.Process | None = None
        self.log = data / "bot.log"

    async def start(self, **extra_env: str) -> None:
        ready, warm = self.tail().count("connected as"), self.warmed()
        env = {
            **os.environ,
            "DISCORD_TOKEN": self.fake.token,
            "DISCORD_API_BASE": self.fake.api_base,
            "STORYBOT_DATA_DIR": str(self.data),
            "STORYBOT_GUILD_IDS": str(GUILD),
            "STORYBOT_APPROVER_ROLE_ID": str(APPROVER_ROLE),
            "STORYBOT_MAX_ACTIVE_JOBS_PER_USER": "3",
        }
        for name in ("OPENAI_API_KEY", "ELEVENLABS_API_KEY", "STORYBOT_CRASH_AT", "STORYBOT_FFMPEG"):
            env.pop(name, None)
        env.update(self.env)
        env.update(extra_env)
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(STORYBOT), "bot", cwd=self.data, env=env, stdout=log, stderr=log
            )
        await self.fake.wait_for(lambda: self.tail().count("connected as") > ready, timeout=60)  # on_ready
        # and the default voice is loaded (in the background of a real bot's start, here waited for)
        await self.fake.wait_for(lambda: self.warmed() > warm, timeout=120)

    def warmed(self) -> int:
        log = self.tail()
        return log.count("ready to write") + log.count("could not warm the default voice")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-20000:] if self.log.exists() else ""


@pytest.fixture
def bot_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def world(tmp_path: Path, bot_env: dict[str, str]) -> AsyncIterator[tuple[FakeDiscord, BotProcess]]:
    guild = Guild(id=GUILD, channels=[Channel(id=CHANNEL)], members=[ALICE, MALLORY, APPROVER], roles=[APPROVER_ROLE])
    async with FakeDiscord(guilds=[guild]) as fake:
        bot = BotProcess(fake, tmp_path, bot_env)
        await bot.start()
        try:
            yield fake, bot
        finally:
            if bot.proc and bot.proc.returncode is None:
                await bot.kill()
            print(bot.tail())


@pytest.fixture
async def conductor(tmp_path: Path) -> AsyncIterator[Any]:
    from bot.conductor import Conductor
    from bot.records import Records
    from graph.api import JobService
    from tools.settings import get_settings

    settings = get_settings().model_copy(update={"data_dir": tmp_path, "max_active_jobs_per_user": 2})
    async with JobService.open(settings) as service:
        records = Records(tmp_path / "bot.sqlite")
        bot = SimpleNamespace()
        c = Conductor(bot, service, records, settings)  # type: ignore[arg-type]
        bot.conductor = c  # type: ignore[attr-defined]
        yield c
        await c.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.database()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server
