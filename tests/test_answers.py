"""One rule set for replies, from a chat message or `storybot answer`: the approval models' parser,
and the command line following it (a prompt straight to the script, ideas when asked for, a short
draft shown with its length)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graph.state import APPROVAL, Answer, IdeaApproval, KeyframeApproval, ScriptApproval, ShotCaption
from tests.cli import ok_json, storybot
from tests.conftest import asked_words
from tests.fake_openai import fake_openai
from tools.errors import BadInput
from tools.llm import StoryIdea

LONG = (
    "The keeper counted ships from the tower every night of the year, and wrote each one down in a small "
    "blue book. When the book was full he climbed down to the rocks, opened it to the first page, and read "
    "the names aloud to the sea, which listened."
)
IDEAS = IdeaApproval(ideas=[StoryIdea(title=f"Idea {n}", logline="l", hook="h", score=50) for n in (1, 2, 3)])
SCRIPT = ScriptApproval(version=1, script="A short draft.", words=3, target_seconds=45, spoken_seconds=21.4)
FRAMES = KeyframeApproval(keyframes=["/a.png", "/b.png"], shots=[ShotCaption(number=n, text="t") for n in (1, 2)])


def refused(approval: Any, text: str, attachment: str | None = None) -> str:
    with pytest.raises(BadInput) as caught:
        approval.parse(text, attachment)
    return str(caught.value)


def test_every_approval_takes_a_txt_or_40_words_as_the_script() -> None:
    assert len(LONG.split()) >= 40
    for approval in (IDEAS, SCRIPT, FRAMES):
        assert approval.parse(LONG) == Answer(action="replace", text=LONG)
        pasted = LONG.replace(", and", ",\n\nand")  # a pasted script keeps its paragraphs
        assert approval.parse(f"  {pasted}\n") == Answer(action="replace", text=pasted)
        assert approval.parse("", "My own. Short.") == Answer(action="replace", text="My own. Short.")
        for said in ("ok", "Approve", "👍", "LGTM!"):
            assert approval.parse(said).action == "approve"
        assert approval.parse("cancel").action == "cancel"
    assert "empty" in refused(SCRIPT, "", "   ")


def test_idea_approval_picks_by_number_and_refuses_the_rest_with_what_fits() -> None:
    assert IDEAS.parse("2") == Answer(action="pick", index=1)
    assert IDEAS.parse("pick 3") == Answer(action="pick", index=2)
    assert "from 1 to 3" in refused(IDEAS, "7")
    message = refused(IDEAS, "make it funnier")
    assert "number of an idea (1 to 3)" in message and ".txt" in message and "cancel" in message


def test_script_approval_takes_notes_lengths_and_refuses_numbers() -> None:
    assert SCRIPT.parse("end on a hopeful note") == Answer(action="revise", note="end on a hopeful note")
    assert SCRIPT.parse("longer") == Answer(action="revise", note="make it longer")
    assert SCRIPT.parse("Make it shorter!") == Answer(action="revise", note="make it shorter")
    assert SCRIPT.parse("revise " + LONG).action == "revise"  # named: a long note stays a note
    assert SCRIPT.parse("regenerate").action == "regenerate"
    assert "what to change" in refused(SCRIPT, "2")
    own = SCRIPT.model_copy(update={"own_script": True})
    assert "replace" in refused(own, "regenerate")
    # the length the reviewer sees, and whether it misses the target
    assert SCRIPT.off_length == "short" and SCRIPT.length_note() == "about 21 s, you asked for 45 s"
    close = SCRIPT.model_copy(update={"spoken_seconds": 44.0})
    assert close.off_length is None and close.length_note() == "about 44 s"
    assert SCRIPT.model_copy(update={"spoken_seconds": 60.0}).off_length == "long"


def test_keyframe_approval_rerolls_numbers_in_range() -> None:
    assert FRAMES.parse("2") == Answer(action="reroll", shots=[2])
    assert FRAMES.parse("reroll 1,2") == Answer(action="reroll", shots=[1, 2])
    assert FRAMES.parse("shots 1 and 2") == Answer(action="reroll", shots=[1, 2])
    assert "from 1 to 2" in refused(FRAMES, "3")
    assert "shots to draw again" in refused(FRAMES, "make it brighter")


@pytest.mark.parametrize("said", ["²", "pick ³", "pick " + "9" * 5000, "reroll ٣", "1²"])
def test_numbers_that_are_not_plain_digits_are_refused_in_words_not_a_crash(said: str) -> None:
    """Issue 23 #6: `str.isdigit` took '²' and a 5,000-digit number, which `int` then refused."""
    for approval in (IDEAS, FRAMES):
        message = refused(approval, said)
        assert "answer with" in message and len(message) < 400


def test_old_approvals_read_from_the_job_table_still_parse() -> None:
    """A job that waited before approvals were typed: its stored dict becomes the model."""
    old = {
        "approval": "pick_idea",
        "question": "Which idea?",
        "answers": ["pick N"],
        "ideas": [{"number": 1, "title": "T", "logline": "L", "hook": "H", "score": 70}],
    }
    shown = APPROVAL.validate_python(old)
    assert isinstance(shown, IdeaApproval) and shown.parse("1") == Answer(action="pick", index=0)
    script = APPROVAL.validate_python(
        {"approval": "approve_script", "version": 2, "script": "S.", "words": 1, "target_seconds": 30, "answers": []}
    )
    assert isinstance(script, ScriptApproval) and script.spoken_seconds is None and script.off_length is None


# the command line ---------------------------------------------------------------------------


def stage_status(data: Path, job: str) -> dict[str, str]:
    return {s["name"]: s["status"] for s in ok_json(storybot("status", job, "--json", data=data))["stages"]}


@pytest.mark.slow
def test_make_prompt_goes_straight_to_the_script_and_replies_follow_the_rules(tmp_path: Path) -> None:
    first = ok_json(storybot("make", "A keeper who counts ships at night", "--duration", "8", "--json", data=tmp_path))
    job = first["job_id"]
    assert first["waiting_for"] == "approve_script" and first["approval"]["version"] == 1
    assert first["approval"]["spoken_seconds"] > 0 and first["approval"]["target_seconds"] == 8
    stages = stage_status(tmp_path, job)
    assert [stages[n] for n in ("collect_ideas", "story_ideas", "pick_idea")] == ["skipped"] * 3

    number = storybot("answer", job, "2", data=tmp_path)
    assert number.returncode == 2 and "what to change" in number.stderr
    assert len(number.stderr.strip().splitlines()) == 1
    shorter = ok_json(storybot("answer", job, "shorter", "--json", data=tmp_path))
    assert shorter["approval"]["version"] == 2 and shorter["approval"]["words"] < first["approval"]["words"]
    replaced = ok_json(storybot("answer", job, LONG, "--json", data=tmp_path))  # 40+ words: the script itself
    assert replaced["approval"]["version"] == 3 and replaced["approval"]["script"] == LONG
    shown = storybot("status", job, data=tmp_path)
    assert "waiting" in shown.stdout
    cancelled = ok_json(storybot("answer", job, "cancel", "--json", data=tmp_path))
    assert cancelled["status"] == "cancelled"


@pytest.mark.slow
def test_make_ideas_without_a_prompt_and_a_script_given_at_the_idea_approval(tmp_path: Path) -> None:
    empty = storybot("make", data=tmp_path)
    assert empty.returncode == 2 and "prompt is empty" in empty.stderr
    first = ok_json(storybot("make", "--ideas", "--duration", "8", "--json", data=tmp_path))
    job = first["job_id"]
    assert first["waiting_for"] == "pick_idea" and len(first["approval"]["ideas"]) >= 2
    printed = storybot("resume", job, data=tmp_path)
    assert "Which idea" in printed.stdout and f"storybot answer {job} pick N" in printed.stdout
    mine = tmp_path / "mine.txt"
    mine.write_text("My own story. The keeper sang to the ships. The ships sang back.", encoding="utf-8")
    scripted = ok_json(storybot("answer", job, "replace", str(mine), "--json", data=tmp_path))
    assert scripted["waiting_for"] == "approve_script" and scripted["approval"]["version"] == 1
    assert scripted["approval"]["script"] == mine.read_text().strip()
    assert stage_status(tmp_path, job)["write_script"] == "pending"  # nothing was written over it


def thirty_words(name: str, body: dict[str, Any]) -> dict[str, Any]:
    words = (
        "The old keeper climbed the tower. He counted the ships. One, two, three. The sea was calm and "
        "dark. He smiled, lit the lamp, and went back down to sleep."
    )
    return {"script": words, "summary": "Tried again."}


@pytest.mark.slow
def test_a_short_draft_is_shown_with_its_length_not_failed(tmp_path: Path) -> None:
    with fake_openai(thirty_words) as llm:
        env = {"OPENAI_BASE_URL": llm.url, "OPENAI_API_KEY": "sk-test", "STORYBOT_LLM_MODEL": "tiny"}
        done = storybot("make", "A keeper counts ships", "--duration", "60", data=tmp_path, env=env)
        targets = [asked_words(r.json()) for r in llm.requests]
    assert done.returncode == 0, done.stderr
    assert max(targets) >= 150 and len(targets) == 4  # asked twice per draft, one rewrite: then shown
    assert "you asked for 60 s" in done.stdout and "storybot answer" in done.stdout and " longer" in done.stdout


async def test_regenerate_with_the_prompt_as_the_only_idea_gives_a_new_draft(tmp_path: Path) -> None:
    from graph.service import JobService, Requester
    from graph.state import JobRequest
    from tools.settings import get_settings

    me = Requester(id="cli:me")
    async with JobService.open(get_settings().model_copy(update={"data_dir": tmp_path})) as svc:
        job = await svc.start(JobRequest(prompt="a lighthouse keeper who counts ships", duration=8), me)
        record = await svc.wait(job)
        assert isinstance(record.approval, ScriptApproval) and record.interrupt_id
        await svc.answer(job, me, record.approval.parse("regenerate"), record.interrupt_id)
        again = (await svc.wait(job)).approval
    assert isinstance(again, ScriptApproval) and again.version == 2
    assert again.script != record.approval.script
