"""`storybot make --yes` with every online provider switched on by configuration, against local servers
that speak the real wire protocols: an OpenAI-compatible chat server (tests/fake_openai.py), ElevenLabs
with timestamps (tests/fake_elevenlabs.py), a Reddit JSON listing and an RSS feed.

What the user sees is checked: the subtitles carry exactly the words the chat server wrote, at the
times the voice server aligned them; the upload text and the scene plan are the server's; usage is
recorded per job; a provider outage fails the job with one line naming it, and `resume` finishes it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pysubs2
import pytest

from graph.store import JobStore
from tests.cli import storybot
from tests.fake_elevenlabs import KEY as ELEVEN_KEY
from tests.fake_elevenlabs import PER_CHAR, VOICE, FakeElevenLabs, fake_elevenlabs
from tests.fake_openai import FakeOpenAI, fake_openai, user_text
from tests.local_http import LocalServer, Reply, Request, local_server
from tools.settings import Settings
from tools.text import word_spans

OPENAI_KEY = "sk-e2e-recognisable-key-31337"
PROMPT = "A lighthouse keeper who befriends a lost whale"
# The server's own vocabulary: no offline template writes these words.
SENTENCES = [
    "Marisol counted nine silver whales beneath the copper moon.",
    "Every tide brought another humming giant toward her crooked tower.",
    "She answered them with lanterns, blinking patient questions across the water.",
    "One evening the smallest whale blinked back.",
]
PLAN_NEGATIVE = "text, watermark, extra fins"
LISTING = {
    "data": {
        "children": [
            {
                "data": {
                    "title": "[WP] A whale learns morse code",
                    "selftext": "It blinks.",
                    "permalink": "/r/WritingPrompts/comments/w1/wp/",
                }
            }
        ]
    }
}
RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>Keeper rescues '
    b"stranded orca</title><link>https://news.example/orca</link></item></channel></rss>"
)


def narration(words: int) -> str:
    """Whole server sentences, repeated, to about `words` words."""
    out: list[str] = []
    k = 0
    while sum(len(s.split()) for s in out) < words:
        out.append(SENTENCES[k % len(SENTENCES)])
        k += 1
    return " ".join(out)


def answer(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
    said = user_text(body)
    if name == "IdeaDrafts":
        assert "Keeper rescues stranded orca" in said and "A whale learns morse code -- It blinks." in said
        return {
            "ideas": [
                {
                    "title": "The Lantern Conversations",
                    "logline": "A keeper talks to whales with light.",
                    "hook": "Marisol counted nine silver whales.",
                    "angle": "signals",
                    "audience": "all",
                    "emotional_core": "wonder",
                    "tags": ["drama"],
                    "score_parts": {"hook": 22, "originality": 20, "emotion": 21, "fit": 24},
                }
            ]
        }
    if name == "ScenePlanDraft":
        script = said.split("<Script>", 1)[1].split("</Script>", 1)[0]
        n = len(re.findall(r"^\d+\. ", script, re.MULTILINE))
        shots = [
            {
                "first_sentence": i + 1,
                "last_sentence": min(i + 2, n),
                "image_prompt": f"Lantern light, shot {k}",
                "search_terms": ["lantern", "lighthouse"],
                "negative_prompt": PLAN_NEGATIVE,
                "camera": "pan_left",
                "mood": "hushed",
                "beat": "hook" if i == 0 else "build",
            }
            for k, i in enumerate(range(0, n, 2))
        ]
        return {"shots": shots}
    if name == "MetaDraft":
        return {
            "title": "Lanterns for the Whales",
            "description": "A keeper and a whale learn to talk.",
            "youtube_shorts": ["#whales"],
            "tiktok": ["#lighthouse"],
            "instagram_reels": ["#ocean"],
        }
    assert name == "ScriptDraft", name
    wanted = re.findall(r"(\d+) words \(between|aim for (\d+)", said)[-1]
    return {"script": narration(int(wanted[0] or wanted[1]))}


def feeds(request: Request) -> Reply:
    if request.path.startswith("/r/WritingPrompts/top.json"):
        return Reply.json(LISTING)
    return Reply(200, RSS, {"Content-Type": "application/rss+xml"})


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAI, FakeElevenLabs, LocalServer]]:
    with (
        fake_openai(answer, prompt_tokens=100, completion_tokens=30) as llm,
        fake_elevenlabs() as voice,
        local_server(feeds) as web,
    ):
        yield llm, voice, web


def provider_env(llm: FakeOpenAI, voice: FakeElevenLabs, web: LocalServer) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": llm.url,
        "STORYBOT_LLM_MODEL": "tale-1",
        "STORYBOT_PROVIDER_RETRIES": "1",
        "ELEVENLABS_API_KEY": ELEVEN_KEY,
        "ELEVENLABS_BASE_URL": voice.base_url,
        "STORYBOT_ELEVENLABS_VOICE_ID": VOICE,
        "STORYBOT_IDEA_SUBREDDITS": "WritingPrompts",
        "STORYBOT_REDDIT_BASE_URL": web.url,
        "STORYBOT_IDEA_FEEDS": f"{web.url}/feed.xml",
    }


def no_keys(data: Path, *texts: str) -> None:
    """Neither key in what was printed, nor in any job file or database."""
    blobs = [t.encode() for t in texts] + [p.read_bytes() for p in data.rglob("*") if p.is_file()]
    for key in (OPENAI_KEY, ELEVEN_KEY):
        assert not any(key.encode() in blob for blob in blobs), key


def test_make_yes_with_online_providers(
    servers: tuple[FakeOpenAI, FakeElevenLabs, LocalServer], tmp_path: Path
) -> None:
    llm, voice, web = servers
    env = provider_env(llm, voice, web)
    made = storybot("make", PROMPT, "--ideas", "--yes", "--duration", "12", "--json", data=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert result["status"] == "done"
    art = result["artifacts"]

    # the voice server was asked for exactly the approved script, which is the chat server's text
    script = Path(art["script"]).read_text(encoding="utf-8").strip()
    assert script.startswith(SENTENCES[0]) and set(script.split()) <= set(" ".join(SENTENCES).split())
    assert "".join(r["body"]["text"] for r in voice.requests) == script

    # subtitles: every word of the server's script, in order, starting at the aligned time (tone MP3s
    # are gapless-tagged, so a word's time is its first character's slot)
    spans = word_spans(script)
    cues = pysubs2.load(art["subtitles_srt"])
    assert " ".join(" ".join(c.plaintext.split()) for c in cues) == " ".join(s.text for s in spans)
    words = json.loads(Path(art["voice"]).with_name("words.json").read_text())
    assert [w["word"] for w in words] == [s.text for s in spans]
    assert [w["start"] for w in words] == pytest.approx([s.start * PER_CHAR for s in spans], abs=0.002)
    first = 0
    for cue in cues:
        assert cue.start / 1000 == pytest.approx(spans[first].start * PER_CHAR, abs=0.002)
        first += len(cue.plaintext.split())

    # the scene plan and the upload text are the server's
    scenes = json.loads(Path(art["shots"]).with_name("scenes.json").read_text())
    assert all(s["negative_prompt"] == PLAN_NEGATIVE and s["mood"] == "hushed" for s in scenes)
    assert scenes[0]["prompt"] == "Lantern light, shot 0" and scenes[0]["beat"] == "hook"
    meta = json.loads(Path(art["metadata"]).read_text())
    assert meta["platforms"]["title"] == "Lanterns for the Whales"
    assert meta["platforms"]["hashtags"]["youtube_shorts"][:2] == ["#shorts", "#whales"]

    # usage: every chat completion's tokens and every character spoken, per job, in status and metadata
    status = json.loads(storybot("status", result["job_id"], "--json", data=tmp_path, env=env).stdout)
    calls = len(llm.requests)
    assert (
        status["usage"]
        == meta["usage"]
        == {
            "elevenlabs": {"characters": sum(len(r["body"]["text"]) for r in voice.requests)},
            "openai:tale-1": {
                "prompt_tokens": 100 * calls,
                "completion_tokens": 30 * calls,
                "total_tokens": 130 * calls,
            },
        }
    )
    providers = {s["name"]: s["provider"] for s in status["stages"]}
    assert providers["collect_ideas"] == "reddit+request+rss" and providers["voice"] == "elevenlabs"
    assert providers["write_script"] == providers["plan_scenes"] == "openai:tale-1"
    # the voice's measured pace sizes the next script for it
    assert (
        JobStore.of(Settings(STORYBOT_DATA_DIR=tmp_path)).voice_rate(f"elevenlabs:{VOICE}")
        == meta["voice"]["words_per_minute"]
    )
    no_keys(tmp_path, made.stdout, made.stderr)


def test_outage_fails_clearly_and_resume_finishes(
    servers: tuple[FakeOpenAI, FakeElevenLabs, LocalServer], tmp_path: Path
) -> None:
    llm, voice, web = servers
    env = provider_env(llm, voice, web)
    del env["STORYBOT_ELEVENLABS_VOICE_ID"]  # the voice id comes from --voice instead
    outage = Reply.json({"error": {"message": f"maintenance (key {OPENAI_KEY})"}}, 503, {"retry-after-ms": "5"})
    llm.faults = [outage] * 60  # more than the graph's own node retries will spend
    failed = storybot("make", PROMPT, "--yes", "--duration", "8", "--voice", VOICE, "--json", data=tmp_path, env=env)
    assert failed.returncode == 1
    job_id = json.loads(failed.stdout)["job_id"]
    status = json.loads(storybot("status", job_id, "--json", data=tmp_path, env=env).stdout)
    assert status["status"] == "failed"
    assert re.fullmatch(
        r"LLM openai:tale-1 at 127\.0\.0\.1:\d+ failed \(HTTP 503\) after 2 attempts: "
        r"maintenance \(key \[redacted\]\); the job can be resumed",
        status["error"],
    ), status["error"]
    with sqlite3.connect(tmp_path / "jobs.sqlite") as db:
        assert OPENAI_KEY not in json.dumps(db.execute("SELECT * FROM jobs").fetchall())

    llm.faults.clear()
    resumed = storybot("resume", job_id, "--yes", "--json", data=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "done"
    assert {r["path"] for r in voice.requests} == {f"/v1/text-to-speech/{VOICE}/with-timestamps"}
    no_keys(tmp_path, failed.stdout, failed.stderr, resumed.stdout, resumed.stderr)
