"""With no key: a local server found running (Ollama, LM Studio, llama.cpp), or the template writer
saying honestly what it is. Every server here is a real HTTP server on 127.0.0.1 speaking the
listing API of the program it plays, plus the OpenAI chat API the writer then uses."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graph.service import JobService, Requester
from graph.state import Answer, JobRequest, ScriptApproval
from tests.cli import storybot, storybot_json
from tests.fake_openai import FakeOpenAI, mode_of, user_text
from tests.local_http import Reply, Request, local_server
from tools.llm import OfflineWriter, get_writer
from tools.llm.factual import FRAMING, factual_kind, question_script
from tools.llm.hygiene import sentences, word_count
from tools.llm.local import PROBE_TIMEOUT, SUGGESTED, endpoints
from tools.llm.openai_writer import OpenAIWriter, script_chars
from tools.llm.schemas import StoryIdea
from tools.settings import Settings, get_settings

OCTOPUS = "why octopuses have three hearts"
IDEA = StoryIdea(title="t", logline="l", hook="h", score=0)


def ollama_model(name: str, family: str, size: str) -> dict[str, Any]:
    """One entry of Ollama's `GET /api/tags`, as its API documents it."""
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-10-03T23:34:03.409490317-07:00",
        "size": 4_683_087_332,
        "digest": "a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a",
        "details": {
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": size,
            "quantization_level": "Q4_K_M",
        },
    }


def words_asked(body: dict[str, Any]) -> int:
    return int(re.findall(r"(\d+) words \(between|aim for (\d+)", user_text(body))[-1][0] or 60)


def narrator(name: str, body: dict[str, Any]) -> dict[str, Any]:
    script = " ".join(["The whale sang to the keeper."] * max(1, words_asked(body) // 6))
    if name == "ScriptDraft":
        return {"script": script}
    if name == "RevisionDraft":
        return {"script": script, "summary": "The whale sings now."}
    raise AssertionError(f"unexpected {name}")


@contextmanager
def local_llm(kind: str, listing: Any, status: int = 200, port: int = 0) -> Iterator[tuple[str, FakeOpenAI]]:
    """A server answering `kind`'s model listing and the OpenAI chat API: (its URL, the chat fake)."""
    chat = FakeOpenAI(narrator)
    path = "/api/tags" if kind == "ollama" else "/v1/models"

    def handle(request: Request) -> Reply:
        if request.path == path:
            return Reply.json(listing, status)
        return chat.handle(request)

    with local_server(handle, port) as server:
        chat.server = server
        yield server.url, chat


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(servers: str) -> Settings:
    return Settings(_env_file=None, STORYBOT_LOCAL_LLM_SERVERS=servers)


# --- the template writer: honest --------------------------------------------------------------------


def test_factual_requests_are_told_from_stories() -> None:
    assert factual_kind(OCTOPUS) == "explainer"
    assert factual_kind("What is a black hole?") == "explainer"
    assert factual_kind("Make a video explaining black holes") == "explainer"
    assert factual_kind("5 tips for better sleep") == "tips"
    assert factual_kind("how to brew pour-over coffee") == "how-to"
    assert factual_kind("today's tech news") == "news"
    for story in ("A lighthouse keeper who befriends a lost whale", "a story about why the sky is blue", "surprise me"):
        assert factual_kind(story) is None, story


async def test_an_explainer_draft_asks_the_question_and_invents_nothing() -> None:
    writer = OfflineWriter()
    for target in (40, 110, 150):
        script = await writer.script(OCTOPUS, IDEA, target)
        assert abs(word_count(script) - target) <= 0.1 * target, (target, script)
        said = sentences(script)
        assert said[0] == f"Here is today's question: {OCTOPUS}?" and said[-1] == f"That is the question: {OCTOPUS}."
        # every other sentence is one of the fixed invitations: no claim about octopuses at all
        assert not [s for s in said[1:-1] if "octopus" in s.lower() or "heart" in s.lower()], script
    assert script == question_script(OCTOPUS, 150)  # deterministic, like the story template
    story = await writer.script("A lighthouse keeper who befriends a lost whale", IDEA, 110)
    assert "question" not in story and "whale" in story


async def test_revising_a_question_draft_adds_no_story_and_no_claims() -> None:
    """Whatever the note asks, the new draft says only the question and the framing around it; the
    summary says why a joke or a claim was not added."""
    writer = OfflineWriter()
    draft = await writer.script(OCTOPUS, IDEA, 110)
    honest = set(sentences(draft)) | FRAMING
    notes = {
        "make it shorter": 77,
        "make it longer": 143,
        "more dramatic": 110,
        "add a joke": 110,
        "again": 110,
        "mention that their blood is blue": 110,
    }
    for note, target in notes.items():
        revised = await writer.revision(draft, note, 110)
        said = sentences(revised.text)
        assert said[0] == f"Here is today's question: {OCTOPUS}?" and said[-1] == f"That is the question: {OCTOPUS}.", (
            note,
            revised.text,
        )
        assert [s for s in said if s not in honest] == [], (note, revised.text)
        assert abs(word_count(revised.text) - target) <= 0.1 * target, (note, word_count(revised.text))
        assert "nothing is added that could be wrong" in revised.summary
    again = await writer.revise(draft, "again", 110)
    assert again != draft  # still a new draft, in other honest words
    shorter = await writer.revise(draft, "make it shorter", 110)
    assert sentences(shorter)[1] == sentences(draft)[1]  # shorter cuts from the end, the opening stays
    # a question draft the reviewer added a line to keeps that line
    mine = draft.replace("Pause here", "My grandmother kept an octopus. Pause here")
    assert "My grandmother kept an octopus." in sentences(await writer.revise(mine, "make it shorter", 110))


def test_a_revised_question_draft_still_says_no_model_is_set_up(tmp_path: Path) -> None:
    """Through the CLI, as a user revises: the notice stays above the new draft."""
    env = {"STORYBOT_LOCAL_LLM_SERVERS": ""}
    job = storybot_json("make", OCTOPUS, "--duration", "40", data=tmp_path, env=env)
    revised = storybot_json("answer", job["job_id"], "revise", "add a joke", data=tmp_path, env=env)
    approval = revised["approval"]
    assert approval["version"] == 2 and approval["writer_notice"].startswith("No language model is set up")
    assert "only asks the question" in approval["writer_notice"]
    honest = set(sentences(job["approval"]["script"])) | FRAMING
    assert [s for s in sentences(approval["script"]) if s not in honest] == []
    assert "joke" not in approval["script"].lower() and "nothing is added" in approval["summary"]


def test_the_template_writer_says_what_it_is_and_how_to_get_a_real_one() -> None:
    writer = OfflineWriter()
    story = writer.notice("A lighthouse keeper who befriends a lost whale")
    assert story.startswith("No language model is set up, so this is a story template")
    assert f"ollama pull {SUGGESTED}" in story and "OPENAI_API_KEY" in story and "your own script" in story
    facts = writer.notice(OCTOPUS)
    assert "explainer" in facts and "only asks the question" in facts and "invents nothing" in facts


def test_the_approval_says_it_in_the_cli_and_the_job(tmp_path: Path) -> None:
    """`make` without --yes stops at the script: the note is above the draft, and in --json."""
    env = {"STORYBOT_LOCAL_LLM_SERVERS": ""}
    shown = storybot("make", OCTOPUS, "--duration", "20", data=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith("note: No language model is set up"))
    assert "only asks the question" in lines[note] and f"ollama pull {SUGGESTED}" in lines[note]
    assert lines[note + 2].startswith(f"Here is today's question: {OCTOPUS}?")
    assert "! No language model is set up" in shown.stderr  # the stage's notice, shown with --yes too
    job = storybot_json("make", "A lighthouse keeper who befriends a lost whale", "--duration", "20", data=tmp_path)
    assert job["approval"]["writer_notice"].startswith("No language model is set up, so this is a story template")
    own = tmp_path / "mine.txt"
    own.write_text("My own words about a whale and a lighthouse, read as they are. " * 3)
    mine = storybot_json("make", "a whale", "--script", own, data=tmp_path)
    assert mine["approval"]["writer_notice"] == ""  # the user's own script needs no such note


# --- local servers ---------------------------------------------------------------------------------


async def test_ollama_is_found_and_its_instruct_model_writes() -> None:
    tags = {
        "models": [
            ollama_model("nomic-embed-text:latest", "nomic-bert", "137M"),
            ollama_model("llama3.1:8b-text-q4_K_M", "llama", "8.0B"),  # a base model
            ollama_model("qwen2.5:0.5b-instruct", "qwen2", "494.03M"),  # too small to write
            ollama_model("deepseek-r1:7b", "qwen2", "7.6B"),  # thinks aloud before answering
            ollama_model("qwen2.5:7b-instruct", "qwen2", "7.6B"),
            ollama_model("llama3.3:70b", "llama", "70.6B"),
        ]
    }
    with local_llm("ollama", tags) as (url, chat):
        writer = get_writer(settings(f"ollama={url},lmstudio=http://127.0.0.1:{free_port()}"))
        assert isinstance(writer, OpenAIWriter) and writer.provider == "ollama:qwen2.5:7b-instruct"
        where = url.removeprefix("http://")
        assert writer.notice("x") == (
            f"Writing with qwen2.5:7b-instruct on Ollama at {where} (found running; OPENAI_BASE_URL and "
            "STORYBOT_LLM_MODEL choose another)."
        )
        script = await writer.script("A lighthouse keeper who befriends a lost whale", IDEA, 60)
    asked = chat.requests[-1]
    assert asked.path == "/v1/chat/completions" and asked.json()["model"] == "qwen2.5:7b-instruct"
    assert mode_of(asked.json())[0] == "json_schema"
    schema = asked.json()["response_format"]["json_schema"]["schema"]["properties"]["script"]
    assert (schema["minLength"], schema["maxLength"]) == script_chars(60)  # the server enforces a length
    assert 50 <= word_count(script) <= 70


async def test_lm_studio_and_llama_cpp_are_found_through_the_openai_listing() -> None:
    studio = {
        "object": "list",
        "data": [
            {"id": "text-embedding-nomic-embed-text-v1.5", "object": "model", "owned_by": "organization_owner"},
            {"id": "qwen2.5-7b-instruct", "object": "model", "owned_by": "organization_owner"},
        ],
    }
    with local_llm("lmstudio", studio) as (url, _):
        writer = get_writer(settings(f"lmstudio={url}"))
        assert writer.provider == "lmstudio:qwen2.5-7b-instruct"
    llamacpp = {"object": "list", "data": [{"id": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "object": "model"}]}
    with local_llm("llamacpp", llamacpp) as (url, chat):
        writer = get_writer(settings(f"ollama=http://127.0.0.1:{free_port()},llamacpp={url}"))
        assert writer.provider == "llamacpp:Qwen2.5-7B-Instruct-Q4_K_M.gguf"
        await writer.script("a fox who guards an old library", IDEA, 40)
    assert chat.requests[-1].json()["model"] == "Qwen2.5-7B-Instruct-Q4_K_M.gguf"


def test_a_server_without_an_instruct_model_is_named_with_the_model_to_pull() -> None:
    tags = {"models": [ollama_model("nomic-embed-text:latest", "nomic-bert", "137M")]}
    with local_llm("ollama", tags) as (url, _):
        writer = get_writer(settings(f"ollama={url}"))
    assert isinstance(writer, OfflineWriter)
    where = url.removeprefix("http://")
    assert f"Ollama is running at {where} but has no instruct model: run `ollama pull {SUGGESTED}`" in writer.notice(
        "a fox who guards an old library"
    )


def test_other_programs_on_those_ports_are_not_mistaken_for_a_server() -> None:
    for listing, status in (({"error": "no route"}, 404), ({"models": "nope"}, 200), ([1, 2], 200)):
        with local_llm("ollama", listing, status) as (url, _):
            assert isinstance(get_writer(settings(f"ollama={url},llamacpp={url}")), OfflineWriter)


def test_detection_costs_little_when_nothing_listens_and_is_bounded_when_a_listener_hangs() -> None:
    closed = ",".join(f"{k}=http://127.0.0.1:{free_port()}" for k in ("ollama", "lmstudio", "llamacpp"))
    started = time.perf_counter()
    writer = get_writer(settings(closed))
    assert isinstance(writer, OfflineWriter) and writer.found is None
    assert time.perf_counter() - started < 0.5  # refused connections answer at once (measured: 3-50 ms)

    with socket.socket() as hung:  # accepts and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(hung.accept()[0]), daemon=True).start()
        started = time.perf_counter()
        assert isinstance(get_writer(settings(f"ollama=http://127.0.0.1:{hung.getsockname()[1]}")), OfflineWriter)
        took = time.perf_counter() - started
        for conn in accepted:
            conn.close()
    assert PROBE_TIMEOUT.read is not None and took < PROBE_TIMEOUT.read + 0.5


async def test_a_server_started_after_the_service_writes_the_next_job_and_revision(tmp_path: Path) -> None:
    """The bot runs before `ollama serve`: its first job gets the template and says so; once Ollama
    answers, a revision of that job and a new job are written by it (no restart); when it stops again,
    the next job gets the template writer back instead of failing."""
    port, recheck = free_port(), 0.2
    servers = f"ollama=http://127.0.0.1:{port}"
    config = get_settings().model_copy(
        update={"data_dir": tmp_path, "local_llm_servers": servers, "local_llm_recheck": recheck}
    )
    alice = Requester(id="cli:alice", name="alice")
    tags = {"models": [ollama_model("qwen2.5:7b-instruct", "qwen2", "7.6B")]}

    async def drafted(job_id: str) -> tuple[str, str]:
        """(the writer recorded for the job's latest draft, the notice shown above it)."""
        record = await svc.wait(job_id)
        assert record.status == "waiting" and isinstance(record.approval, ScriptApproval), record
        stages = {st.name: st for st in svc.status(job_id).stages}
        stage = "revise_script" if stages["revise_script"].runs else "write_script"
        return stages[stage].provider or "", record.approval.writer_notice

    async with JobService.open(config) as svc:
        first = await svc.start(JobRequest(prompt="A lighthouse keeper who befriends a lost whale", duration=20), alice)
        provider, notice = await drafted(first)
        assert provider == "offline" and notice.startswith("No language model is set up")

        with local_llm("ollama", tags, port=port) as (_, chat):
            await asyncio.sleep(recheck)  # the user starts `ollama serve`; the bot keeps running
            await svc.answer(first, alice, Answer(action="revise", note="make the whale sing"))
            provider, notice = await drafted(first)
            assert provider == "ollama:qwen2.5:7b-instruct" and notice.startswith("Writing with qwen2.5:7b-instruct")
            second = await svc.start(JobRequest(prompt="a fox who guards an old library", duration=20), alice)
            provider, notice = await drafted(second)
            assert provider == "ollama:qwen2.5:7b-instruct" and notice.startswith("Writing with qwen2.5:7b-instruct")
            asked = [r.json()["model"] for r in chat.requests if r.path == "/v1/chat/completions"]
            assert len(asked) >= 2 and set(asked) == {"qwen2.5:7b-instruct"}  # the revision and the new script
            shown = svc.get(second).approval
            assert isinstance(shown, ScriptApproval) and "The whale sang to the keeper." in shown.script

        await asyncio.sleep(recheck)  # Ollama stopped
        third = await svc.start(JobRequest(prompt="a fox who guards an old library", duration=20), alice)
        provider, notice = await drafted(third)
        assert provider == "offline" and notice.startswith("No language model is set up")


def test_configured_addresses_are_checked_before_use() -> None:
    given = (
        "ollama=http://127.0.0.1:11434, bogus=http://127.0.0.1:1, lmstudio=ftp://127.0.0.1:1234, llamacpp=http://[::1"
    )
    assert [(e.kind, e.origin) for e in endpoints(settings(given))] == [("ollama", "http://127.0.0.1:11434")]
    assert endpoints(settings("")) == [] and endpoints(settings("ollama=http://127.0.0.1:11434/evil/path")) == [
        endpoints(settings("ollama=http://127.0.0.1:11434"))[0]
    ]
    assert endpoints(settings("llamacpp=file:///etc/passwd")) == []


def test_the_chat_approval_leads_with_the_notice() -> None:
    from bot.messages import script_question

    note = OfflineWriter().notice(OCTOPUS)
    shown = ScriptApproval(version=1, script="Here is the question.", words=4, target_seconds=30, writer_notice=note)
    asked = script_question(shown)
    assert asked.startswith("⚠️ No language model is set up") and "only asks the question" in asked
    assert "your own script" in asked.splitlines()[-1]  # the usual question follows
    assert not script_question(shown.model_copy(update={"writer_notice": ""})).startswith("⚠️")


async def test_a_local_model_that_misses_the_length_is_asked_once_more_then_shown_as_it_is() -> None:
    """Schema bound, word check, one retry: a model that writes 3x the words twice is cut to the
    writer's ceiling, never failed (the approval then shows the draft's spoken length)."""
    sent: list[dict[str, Any]] = []

    def rambler(name: str, body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return {"script": " ".join(["The keeper waited by the lamp."] * (words_asked(body) // 2))}

    tags = {"models": [ollama_model("qwen2.5:7b-instruct", "qwen2", "7.6B")]}
    with local_llm("ollama", tags) as (url, chat):
        chat.answer = rambler
        writer = get_writer(settings(f"ollama={url}"))
        script = await writer.script("A lighthouse keeper who befriends a lost whale", IDEA, 60)
    assert len(sent) == 2 and "60 words" in user_text(sent[1])  # asked again with the count
    for body in sent:
        bound = body["response_format"]["json_schema"]["schema"]["properties"]["script"]
        assert (bound["minLength"], bound["maxLength"]) == script_chars(60)
    assert 60 < word_count(script) <= 69  # over, within the 15% the writer keeps
