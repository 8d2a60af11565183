"""The vision loop end to end: `storybot make` with the tiny SDXL model and an OpenAI-compatible
vision judge (a local server speaking the chat-completions wire protocol) that scores pictures by
how red they are. Every shot scores under the threshold, so each is redrawn twice; the test
recomputes the scores from the pictures on disk and knows which attempt must be kept."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from graph.store import JobStore
from tests.fake_openai import fake_openai
from tests.gpu_fixtures import STORYBOT, TINY_ENV, build_tiny_models
from tests.local_http import Reply, gzip_bomb, peak_rss_mib
from tools.gpu.errors import GpuError
from tools.settings import Settings
from tools.vision import Question
from tools.vision.openai_judge import OpenAIJudge

SCRIPT = (
    "The keeper lit the red lamp at dusk, high above the restless grey sea. A lost whale answered from the dark"
    " water below, singing long and low. All night the two of them called across the waves until the sky turned"
    " pale. At dawn the whale swam home, and the keeper finally slept."
)


def redness(picture: Image.Image) -> float:
    """The judge's score: 0-10 by the share of red in the picture (never 10, so every shot is redrawn)."""
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float64)
    return round(min(9.99, 30 * rgb[..., 0].mean() / max(rgb.sum(axis=2).mean(), 1.0) - 5), 2)


def image_parts(body: dict[str, Any]) -> list[str]:
    return [
        p["image_url"]["url"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for p in m["content"]
        if p["type"] == "image_url"
    ]


def judge_by_colour(seen: list[dict[str, Any]]) -> Any:
    def answer(schema: str, body: dict[str, Any]) -> dict[str, Any]:
        url = image_parts(body)[0]
        assert url.startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        seen.append({"schema": schema, "size": picture.size, "score": redness(picture)})
        return {"score": seen[-1]["score"], "missing": ["a red lantern"], "unwanted": ["blue haze"], "consistent": True}

    return answer


def test_low_scores_redraw_and_the_best_attempt_is_kept(tmp_path: Path) -> None:
    tiny = build_tiny_models()
    seen: list[dict[str, Any]] = []
    with fake_openai(judge_by_colour(seen)) as judge:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STORYBOT_"))}
        env |= {
            **TINY_ENV,
            "STORYBOT_SDXL_MODEL": tiny["STORYBOT_SDXL_MODEL"],
            "STORYBOT_DATA_DIR": str(tmp_path),
            "STORYBOT_VISION_BASE_URL": judge.url,
            "STORYBOT_VISION_MODEL": "judge-1",
            "STORYBOT_VISION_API_KEY": "sk-vision-secret",
            "STORYBOT_VISION_THRESHOLD": "10",
            "STORYBOT_VISION_ROUNDS": "2",
        }
        (tmp_path / "script.txt").write_text(SCRIPT, encoding="utf-8")
        done = subprocess.run(
            [STORYBOT, "make", "a lighthouse", "--script", tmp_path / "script.txt", "--yes", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sk-vision-secret" not in done.stdout + done.stderr
    job = Path(json.loads(done.stdout)["artifacts"]["final_video"]).parent
    vision = json.loads((job / "vision.json").read_text())
    assert vision["provider"] == "openai" and vision["model"] == "judge-1" and vision["parse_rate"] == 1.0
    shots = vision["shots"]
    assert len(shots) >= 1 and len(seen) == 3 * len(shots)  # every shot: judged, redrawn twice
    assert all(s["schema"] == "verdict" for s in seen)  # JSON-schema structured output, first choice
    for record in shots:
        attempts = record["attempts"]
        assert [a["round"] for a in attempts] == [0, 1, 2]
        keyframe = job / "keyframes" / f"shot_{record['shot']:02d}.png"
        # the test's own scores, from the pictures every round left on disk
        files = [keyframe if a["file"] == keyframe.name else keyframe.with_name(a["file"]) for a in attempts]
        scores = [a["verdict"]["score"] for a in attempts]
        mine = [redness(Image.open(f).resize((768, 1365))) for f in files]
        assert np.allclose(scores, mine, atol=0.05)
        assert record["kept"] == int(np.argmax(scores))
        assert Image.open(keyframe).tobytes() == Image.open(files[record["kept"]]).tobytes()
        for redraw in attempts[1:]:  # what was missing leads the prompt, what was unwanted the negative
            assert redraw["prompt"].startswith("a red lantern, ")
            assert redraw["negative_prompt"].startswith("blue haze, ")
            assert redraw["seed"] != attempts[0]["seed"]
    # round by round: every shot judged in one call, then all of them redrawn in one SDXL call
    store = JobStore.of(Settings.model_validate({"STORYBOT_DATA_DIR": tmp_path}))
    said = [json.loads(body) for _, body in store.events_after(json.loads(done.stdout)["job_id"], 0, limit=5000)]
    asked = {
        e["message"].split(":")[0]
        for e in said
        if e.get("stage") == "vision_guidance" and ": step" in (e.get("message") or "")
    }
    assert len(shots) >= 2 and asked == {"shot " + ", ".join(str(r["shot"]) for r in shots)}, asked


async def test_a_server_without_json_schema_is_asked_in_json_mode(tmp_path: Path) -> None:
    Image.new("RGB", (1080, 1920), (200, 30, 30)).save(tmp_path / "k.png")
    with fake_openai(
        lambda schema, body: '{"score": 7, "missing": [], "unwanted": ["text"]}', refuse={"json_schema"}
    ) as server:
        judge = OpenAIJudge(
            Settings.model_validate({"STORYBOT_VISION_BASE_URL": server.url, "STORYBOT_VISION_MODEL": "llava:13b"})
        )
        try:
            [first] = await judge.judge([Question(tmp_path / "k.png", "a red room")])
            [second] = await judge.judge([Question(tmp_path / "k.png", "a red room", tmp_path / "k.png")])
        finally:
            await judge.close()
        bodies = [r.json() for r in server.requests]
    assert first.parsed and first.score == 7 and first.unwanted == ["text"] and second.score == 7
    assert [b.get("response_format", {}).get("type") for b in bodies] == ["json_schema", "json_object", "json_object"]
    assert len(image_parts(bodies[-1])) == 2  # the previous shot travels as a second image


async def test_an_answer_that_does_not_parse_is_no_verdict(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "k.png")
    with fake_openai(lambda schema, body: "I think it is lovely!") as server:
        judge = OpenAIJudge(
            Settings.model_validate({"STORYBOT_VISION_BASE_URL": server.url, "STORYBOT_VISION_MODEL": "m"})
        )
        try:
            [verdict] = await judge.judge([Question(tmp_path / "k.png", "a whale")])
        finally:
            await judge.close()
    assert not verdict.parsed and verdict.value is None


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STORYBOT_VISION_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_a_vision_server_that_echoes_the_key_cannot_carry_it_out(tmp_path: Path) -> None:
    """Issue 23, P0: a 400 quoting the key it was sent. The job fails at vision guidance with the
    server's words, but the key is in no output, record or file."""
    key = "sk-vision-0123456789abcdef"

    def refuse(request: Any) -> Any:
        from tests.local_http import Reply

        said = request.headers.get("Authorization", "")
        return Reply.json({"error": {"message": f"bad key {said} ({said.split()[-1]})", "type": "invalid"}}, 400)

    with fake_openai(lambda schema, body: "{}") as judge:
        judge.faults = [lambda: refuse(judge.requests[-1])] * 3
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STORYBOT_"))}
        env |= {
            "STORYBOT_DATA_DIR": str(tmp_path / "data"),
            "STORYBOT_VISION_PROVIDER": "openai",
            "STORYBOT_VISION_BASE_URL": judge.url,
            "STORYBOT_VISION_MODEL": "judge-1",
            "STORYBOT_VISION_API_KEY": key,
            "STORYBOT_PROVIDER_RETRIES": "0",
        }
        (tmp_path / "script.txt").write_text(SCRIPT, encoding="utf-8")
        done = subprocess.run(
            [
                STORYBOT,
                "make",
                "a lighthouse",
                "--script",
                tmp_path / "script.txt",
                "--visuals",
                "cards",
                "--yes",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        sent = [r.headers.get("Authorization") for r in judge.requests]
    assert sent and all(s == f"Bearer {key}" for s in sent), "the judge was asked, with its key"
    result = json.loads(done.stdout)
    assert done.returncode == 1 and result["status"] == "failed", done.stderr[-2000:]
    assert "bad key Bearer [redacted]" in done.stdout + done.stderr, "the server's words are still shown"
    assert key not in done.stdout + done.stderr
    leaked = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == [], f"the key was written to {leaked}"
    status = subprocess.run([STORYBOT, "status", result["job_id"], "--json"], env=env, capture_output=True, text=True)
    assert key not in status.stdout and "[redacted]" in status.stdout


async def test_a_vision_reply_past_the_byte_ceiling_is_one_clear_error(tmp_path: Path) -> None:
    """Issue 23 #4: the vision judge reads its replies through the same bounded reader as the writer."""
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "k.png")
    bomb = Reply(200, gzip_bomb(256 * 2**20), {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    with fake_openai(lambda schema, body: "{}", faults=[bomb] * 3) as server:
        judge = OpenAIJudge(
            Settings.model_validate({"STORYBOT_VISION_BASE_URL": server.url, "STORYBOT_VISION_MODEL": "m"})
        )
        before = peak_rss_mib()
        try:
            with pytest.raises(GpuError, match=r"^vision model m sent a reply over the 32 MB limit$"):
                await judge.judge([Question(tmp_path / "k.png", "a whale")])
        finally:
            await judge.close()
        assert len(server.requests) == 1 and peak_rss_mib() - before < 160
