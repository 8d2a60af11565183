"""The writer's work as the graph nodes use it: the revision summary and word diff a reviewer sees,
and the LLM scene plan's coverage rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from graph.nodes.script import word_diff
from tests.cli import storybot_json
from tests.fake_openai import fake_openai, user_text
from tools.llm import PlannedShot
from tools.media.shots import planned_shots, sentence_ranges
from tools.models import Word

OLD = "The keeper rowed out at dawn. The whale was silent. Nobody came back."
NEW = "The keeper rowed out at dawn. The whale sang for him. Nobody came back."


def test_word_diff_marks_removed_and_added_words() -> None:
    assert word_diff(OLD, NEW) == (
        "The keeper rowed out at dawn. The whale [-was silent.-] {+sang for him.+} Nobody came back."
    )
    assert word_diff(OLD, OLD) == OLD
    assert word_diff("", "New words.") == "{+New words.+}"


def timed(text: str, per_word: float = 0.5) -> list[Word]:
    out, at = [], 0
    for i, token in enumerate(text.split()):
        at = text.index(token, at)
        out.append(
            Word(word=token, start=i * per_word, end=(i + 0.8) * per_word, char_start=at, char_end=at + len(token))
        )
        at += len(token)
    return out


def shot(first: int, last: int) -> PlannedShot:
    return PlannedShot(
        first_sentence=first,
        last_sentence=last,
        prompt="p",
        negative_prompt="text",
        motion="pan_up",
        mood="calm",
        beat="build",
    )


def test_planned_shots_cover_the_voice_or_are_refused() -> None:
    words = timed(OLD)
    assert sentence_ranges(words) == [(0, 5), (6, 9), (10, 12)]
    shots = planned_shots(OLD, words, 7.0, [shot(0, 1), shot(2, 2)])
    assert [(s.first_word, s.last_word, s.text) for s in shots] == [
        (0, 9, "The keeper rowed out at dawn. The whale was silent."),
        (10, 12, "Nobody came back."),
    ]
    assert shots[0].start == 0 and shots[0].end == shots[1].start == pytest.approx((4.9 + 5.0) / 2, abs=0.001)
    assert shots[1].end == 7.0 and shots[0].motion.value == "pan_up"
    with pytest.raises(ValueError, match="must start at 2"):
        planned_shots(OLD, words, 7.0, [shot(0, 0), shot(2, 2)])  # sentence 2 in no shot
    with pytest.raises(ValueError, match="script has 3 sentences"):
        planned_shots(OLD, words, 7.0, [shot(0, 1)])
    with pytest.raises(ValueError, match="would last"):
        planned_shots(OLD, timed(OLD, per_word=0.1), 1.3, [shot(0, 0), shot(1, 1), shot(2, 2)])


def answer(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
    if name == "IdeaDrafts":
        return {
            "ideas": [
                {
                    "title": "The Silent Whale",
                    "logline": "A keeper and a whale.",
                    "hook": "Listen.",
                    "angle": "a",
                    "audience": "b",
                    "emotional_core": "c",
                    "tags": ["drama"],
                    "score_parts": {"hook": 20, "originality": 20, "emotion": 20, "fit": 20},
                }
            ]
        }
    said = user_text(body)
    words = int(re.findall(r"(\d+) words \(between|aim for (\d+)", said)[-1][0] or 30)
    base = (OLD + " ") * max(1, words // 13)
    if name == "RevisionDraft":
        assert "make the whale sing" in said
        return {"script": base.replace("was silent", "sang for him"), "summary": "Gave the whale a song."}
    return {"script": base}


def test_revision_summary_and_diff_reach_the_approval(tmp_path: Path) -> None:
    with fake_openai(answer) as llm:
        env = {"OPENAI_BASE_URL": llm.url, "STORYBOT_LLM_MODEL": "m"}
        job = storybot_json("make", "a whale story", "--duration", "10", "--ideas", data=tmp_path, env=env)["job_id"]
        first = storybot_json("answer", job, "approve", data=tmp_path, env=env)
        assert first["waiting_for"] == "approve_script" and first["approval"]["summary"] == ""
        revised = storybot_json("answer", job, "revise", "make the whale sing", data=tmp_path, env=env)
    approval = revised["approval"]
    assert approval["version"] == 2 and approval["summary"] == "Gave the whale a song."
    assert "[-was silent.-] {+sang for him.+}" in approval["diff"]
    assert approval["previous_script"] == first["approval"]["script"]
    change = json.loads((tmp_path / "jobs" / job / "script.v2.change.json").read_text())
    assert change == {"note": "make the whale sing", "summary": "Gave the whale a song."}
