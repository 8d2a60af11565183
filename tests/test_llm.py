"""Writers: the offline story grammar, and the OpenAI writer against a real local chat server."""

from __future__ import annotations

import logging
import re
import time
import traceback
import unicodedata
from itertools import count
from typing import Any

import pytest
from pydantic import ValidationError

from tests.fake_openai import Answer, FakeOpenAI, fake_openai, mode_of
from tests.local_http import Reply, Request, gzip_bomb, peak_rss_mib
from tools.llm import IdeaSource, OfflineWriter, PlatformMeta, StoryIdea, WriterError, get_writer, target_words
from tools.llm.hygiene import sentences, word_count
from tools.llm.premise import parse_premise
from tools.llm.schemas import PLATFORMS
from tools.llm.usage import metered
from tools.settings import Settings
from tools.text import clean_script

WHALE = "A lighthouse keeper who befriends a lost whale"
REQUESTS = [
    WHALE,
    "make a funny video about dragons in space",
    "Can you please create a short story about a robot who learns to paint",
    "my grandmother who fought off three pirates with a frying pan in the harbour of an old city at night",
    "surprise me",
]
HOSTILE = (
    "@everyone @here <@123> <@!456> <@&789> <#42> <:blob:99> </cmd:1> \u200b\u202e\u2066\ufeff\x00\x07\x1b "
    "[a]:b;c'd\\e ｛＠ｅｖｅｒｙｏｎｅ｝ " + "z" * 500 + " " + WHALE + " https://evil.example/x?y=1 `rm -rf` **bold**"
)
API_KEY = "sk-test-do-not-log-4242"


def clean(text: str) -> None:
    """What every writer output must be: nothing a chat, a subtitle filter or a voice would trip on."""
    assert text and text == text.strip()
    assert not set(text) & set("@<>[]{}\\`*|#"), text
    assert "everyone" not in text.lower() and "http" not in text
    assert not [ch for ch in text if unicodedata.category(ch)[0] == "C"]
    assert max(len(w) for w in text.split()) <= 31


@pytest.fixture
def writer() -> OfflineWriter:
    return OfflineWriter()


async def first_idea(writer: OfflineWriter, request: str) -> StoryIdea:
    return (await writer.ideas(request, []))[0]


# --- offline writer ----------------------------------------------------------------------------


async def test_offline_is_deterministic() -> None:
    a, b = OfflineWriter(), OfflineWriter()
    sources = [IdeaSource(kind="seed", text="a fox who guards an old library")]
    assert await a.ideas(WHALE, sources, 5) == await b.ideas(WHALE, sources, 5)
    idea = await first_idea(a, WHALE)
    script = await a.script(WHALE, idea, 80)
    assert script == await b.script(WHALE, idea, 80)
    assert await a.revise(script, "funnier", 80) == await b.revise(script, "funnier", 80)
    assert await a.scene_prompts(idea.title, sentences(script)) == await b.scene_prompts(idea.title, sentences(script))
    assert await a.platform_meta(idea.title, script) == await b.platform_meta(idea.title, script)


@pytest.mark.parametrize("request_text", REQUESTS)
async def test_offline_scripts_hit_the_word_target(writer: OfflineWriter, request_text: str) -> None:
    for idea in await writer.ideas(request_text, [], count=4):
        for target in (12, 13, 17, 25, 40, 60, 97, 150, 230, 333, 500):
            script = await writer.script(request_text, idea, target)
            assert abs(word_count(script) - target) <= 0.15 * target, (idea.title, target, script)
            assert script.endswith(".")
            assert all(2 <= word_count(s) <= 30 for s in sentences(script)), script
            assert clean_script(script) == script


async def test_sample_script_reads_as_a_story(writer: OfflineWriter) -> None:
    script = await writer.script(WHALE, await first_idea(writer, WHALE), 60)
    assert script.startswith("On a rocky stretch of coast, there lived a lighthouse keeper.")
    assert "lost whale" in script and script.endswith("who befriends a lost whale.")


async def test_offline_ideas_are_distinct_scored_and_about_the_request(writer: OfflineWriter) -> None:
    ideas = await writer.ideas(WHALE, [IdeaSource(kind="request", text=WHALE)], count=3)
    assert len(ideas) == 3 and len({i.title for i in ideas}) == 3
    assert len({i.tags[0] for i in ideas}) == 3  # three different angles
    assert [i.score for i in ideas] == sorted((i.score for i in ideas), reverse=True)
    assert all(0 <= i.score <= 100 and len(i.title) <= 100 for i in ideas)
    assert all(i.score == sum(i.score_parts.values()) and i.emotional_core and i.angle for i in ideas)
    assert all("whale" in (i.title + i.logline + i.hook).lower() for i in ideas)
    # the angle asked for comes first
    assert (await writer.ideas("a funny story about a penguin", []))[0].tags[0] == "comedy"
    # more ideas than angles: the sources and then built-in premises fill the count
    many = await writer.ideas(WHALE, [IdeaSource(kind="seed", text="a fox who guards an old library")], count=9)
    assert len(many) == 9 and len({i.title for i in many}) == 9
    assert any("fox" in i.logline.lower() for i in many)


async def test_vague_request_takes_its_premise_from_the_sources(writer: OfflineWriter) -> None:
    sources = [IdeaSource(kind="rss", text="Town discovers a secret tunnel under the old bakery")]
    ideas = await writer.ideas("surprise me", sources)
    assert "tunnel" in ideas[0].logline.lower()
    script = await writer.script("surprise me", ideas[0], 60)
    assert "tunnel" in script


def test_premise_extraction() -> None:
    whale = parse_premise("Make a short video about " + WHALE.lower())
    assert whale and (whale.hero, whale.hero_ref, whale.thing, whale.thing_ref) == (
        "a lighthouse keeper",
        "the lighthouse keeper",
        "a lost whale",
        "the lost whale",
    )
    dragons = parse_premise("make a funny video about dragons in space")
    assert dragons and dragons.thing == "dragons in space" and dragons.tone == "comedy"
    assert "station" in dragons.place  # the place named beats the dragons' forest
    assert parse_premise("surprise me") is None and parse_premise("@everyone <@1>") is None


async def test_revise_differs_and_shows_the_note(writer: OfflineWriter) -> None:
    script = await writer.script(WHALE, await first_idea(writer, WHALE), 60)
    first = sentences(script)[0]
    funnier = await writer.revise(script, "make it funnier", 60)
    assert funnier != script and first in funnier
    assert "fooled exactly no one" in funnier or "ridiculous plan" in funnier or "laughing" in funnier
    seagull = await writer.revise(script, "please add a talking seagull", 60)
    assert "And then there was a talking seagull." in seagull
    sing = await writer.revise(script, "the whale should sing at the end", 60)
    assert "hoped that the whale would sing at the end." in sing
    shorter = await writer.revise(script, "shorter", 60)
    longer = await writer.revise(script, "longer, more detail", 60)
    assert word_count(shorter) < word_count(script) < word_count(longer)
    again = await writer.revise(script, "again", 60)  # nothing to act on: still a new draft
    assert again != script and first in again
    for text in (funnier, seagull, sing, shorter, longer, again):
        assert abs(word_count(text) - 60) <= 0.35 * 60 and text.endswith(".")


async def test_revise_works_on_a_users_own_script(writer: OfflineWriter) -> None:
    own = (
        "The storm came at night. Waves broke on the rocks, and the lamp went dark. Mara climbed the "
        "stairs with a candle. She lit the lamp again! Ships turned home, one by one. By dawn the sea was calm."
    )
    revised = await writer.revise(own, "more dramatic", 45)
    assert revised != own and "The storm came at night." in revised
    assert abs(word_count(revised) - 45) <= 0.15 * 45


async def test_hostile_text_never_reaches_the_output(writer: OfflineWriter) -> None:
    ideas = await writer.ideas(HOSTILE, [IdeaSource(kind="seed", text=HOSTILE[:500])])
    for idea in ideas:
        for text in (idea.title, idea.logline, idea.hook, *idea.tags):
            clean(text)
    script = await writer.script(HOSTILE, ideas[0], 60)
    clean(script)
    assert "lighthouse keeper" in script  # still the story that was asked for
    assert abs(word_count(script) - 60) <= 9
    revised = await writer.revise(script + " " + HOSTILE, HOSTILE, 60)
    clean(revised)
    for prompt in await writer.scene_prompts(HOSTILE, [HOSTILE, "", script]):
        clean(prompt)
    meta = await writer.platform_meta(HOSTILE, HOSTILE)
    clean(meta.title)
    clean(meta.description)


async def test_hostile_only_request_still_gives_a_story(writer: OfflineWriter) -> None:
    junk = "@everyone <@123> \u200b\x00 [x]:y;z'w\\v " + "q" * 300
    ideas = await writer.ideas(junk, [])
    script = await writer.script(junk, ideas[0], 40)
    clean(script)
    assert abs(word_count(script) - 40) <= 6


async def test_offline_platform_meta_limits(writer: OfflineWriter) -> None:
    script = await writer.script(WHALE, await first_idea(writer, WHALE), 500)
    meta = await writer.platform_meta("The Lighthouse Keeper " * 20, script)
    assert sorted(meta.hashtags) == sorted(PLATFORMS)
    assert len(meta.title) <= 100 and len(meta.description) <= 2000
    assert meta.hashtags["youtube_shorts"][0] == "#shorts"
    assert "#reels" in meta.hashtags["instagram_reels"] and "#storytime" in meta.hashtags["tiktok"]
    for tags in meta.hashtags.values():
        assert 3 <= len(tags) <= 15 and len(set(tags)) == len(tags)
        assert all(t.startswith("#") and " " not in t for t in tags)
    assert "#whale" in meta.hashtags["tiktok"]


def test_platform_meta_rejects_what_platforms_would() -> None:
    good = {
        "youtube_shorts": ["#shorts", "#a1", "#b"],
        "tiktok": ["#storytime", "#c", "#d"],
        "instagram_reels": ["#reels", "#e", "#f"],
    }
    PlatformMeta(title="t", description="", hashtags=good)
    for bad in (
        {**good, "facebook": ["#x", "#y", "#z"]},
        {k: v for k, v in good.items() if k != "tiktok"},
        {**good, "tiktok": ["#storytime", "#two words", "#d"]},
        {**good, "tiktok": ["#storytime", "#123", "#d"]},
        {**good, "tiktok": ["#storytime"]},
        {**good, "youtube_shorts": ["#short", "#a", "#b"]},
    ):
        with pytest.raises(ValidationError):
            PlatformMeta(title="t", description="", hashtags=bad)
    with pytest.raises(ValidationError):
        PlatformMeta(title="x" * 101, description="", hashtags=good)


async def test_scene_prompts_follow_the_shots(writer: OfflineWriter) -> None:
    shots = ["On a rocky stretch of coast, there lived a lighthouse keeper.", "The whale sang.", "!!!"]
    prompts = await writer.scene_prompts("The Keeper and the Whale", shots)
    assert len(prompts) == 3 and len(set(prompts)) == 3
    assert "lighthouse keeper" in prompts[0] and "whale" in prompts[1]
    assert all(p.endswith("cinematic, soft light, vertical composition") for p in prompts)
    assert await writer.scene_prompts("t", []) == []


def test_target_words() -> None:
    assert target_words(30, 150) == 75
    assert target_words(59.5, 172.3) == 171
    assert target_words(1, 150) == 12  # less is not a story
    with pytest.raises(ValueError):
        target_words(0, 150)


# --- OpenAI-compatible writer against a local /v1/chat/completions ------------------------------

PARTS = {"hook": 20, "originality": 15, "emotion": 22, "fit": 18}
IDEAS = {
    "ideas": [
        {
            "title": "The Keeper's Whale",
            "logline": "A keeper hides a whale.",
            "hook": "Nobody believed him.",
            "angle": "a secret kept",
            "audience": "families",
            "emotional_core": "loyalty",
            "score_parts": PARTS,
            "tags": ["#Drama", "sea"],
        },
        {
            "title": "  " + "Long " * 40,
            "logline": "A very long idea.",
            "hook": "Hook.",
            "angle": "a",
            "audience": "b",
            "emotional_core": "c",
            "score_parts": {"hook": 40, "originality": 25, "emotion": 25, "fit": 25},
            "tags": [],
        },
        {
            "title": "@everyone",
            "logline": "Nothing left.",
            "hook": "x",
            "angle": "",
            "audience": "",
            "emotional_core": "",
            "score_parts": PARTS,
            "tags": [],
        },
    ]
}
PROMPTS = {"prompts": ["A lighthouse at dusk, vertical frame.", "A whale surfacing beside a rowing boat."]}
META = {
    "title": "The Keeper's Whale <@1>",
    "description": "A keeper. A whale. A friendship.",
    "youtube_shorts": ["whale", "#Lighthouse Keeper"],
    "tiktok": ["#storytime", "fyp", "#123"],
    "instagram_reels": [],
}


def narration(words: int) -> str:
    """A reply as chat models write it: a speaker label and quotes around nine-word sentences."""
    return '**Narrator:** "' + ("The keeper rowed out past the reef at dawn. " * (words // 9)).strip() + '"'


def canned(lengths: list[int] | None = None) -> Answer:
    """Canned JSON by schema name; scripts and revisions get narration of the next length."""
    sizes = iter(lengths or [63])

    def answer(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
        if name == "RevisionDraft":
            return {"script": narration(next(sizes)), "summary": "Made the ending **louder** <@1>."}
        if name == "ScriptDraft":
            return {"script": narration(next(sizes))}
        return {"IdeaDrafts": IDEAS, "ScenePromptDrafts": PROMPTS, "MetaDraft": META}[name]

    return answer


def openai_settings(url: str, key: str | None = API_KEY, **more: Any) -> Settings:
    return Settings(
        _env_file=None, OPENAI_API_KEY=key, OPENAI_BASE_URL=url, STORYBOT_LLM_MODEL="story-model-test", **more
    )


def writer_for(fake: FakeOpenAI, **options: Any) -> Any:
    from tools.llm.openai_writer import OpenAIWriter

    OpenAIWriter.backoff = 0.01
    settings = openai_settings(fake.url, **options.pop("settings", {}))
    return OpenAIWriter(settings, **options)


def prompt_text(request: Request) -> str:
    return "\n".join(str(m["content"]) for m in request.json()["messages"])


IDEA = StoryIdea(
    title="The Keeper's Whale", logline="A keeper hides a whale.", hook="Nobody believed him.", score=80, tags=["drama"]
)


async def test_openai_script_request_and_cleaning() -> None:
    with fake_openai(canned([63])) as fake:
        writer = writer_for(fake)
        script = await writer.script(HOSTILE, IDEA, 60)
    assert writer.provider == "openai:story-model-test"
    (request,) = fake.requests
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = request.json()
    assert body["model"] == "story-model-test" and [m["role"] for m in body["messages"]] == ["system", "user"]
    assert mode_of(body) == ("json_schema", "ScriptDraft")
    text = prompt_text(request)
    assert "60 words (between 54 and 66)" in text and "9:16" in text and "The Keeper's Whale" in text
    assert "first sentence is the hook" in text and "no stage directions" in text
    assert "<@123>" not in text and "@everyone" not in text and "\u200b" not in text  # cleaned before sending
    assert script.startswith("The keeper rowed out") and script.endswith("at dawn.")
    assert word_count(script) == 63 and "Narrator" not in script and '"' not in script


async def test_openai_revision_asks_again_when_far_off_then_trims() -> None:
    with fake_openai(canned([9, 120])) as fake:
        revision = await writer_for(fake).revision("An old draft.", "make it longer", 60)
    first, second = fake.requests
    assert mode_of(first.json()) == ("json_schema", "RevisionDraft")
    assert "make it longer" in prompt_text(first)
    follow_up = second.json()["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    # "longer" raised the target from 60 to 78 words, as the offline writer does
    assert "78 words (between 71 and 85)" in prompt_text(first)
    assert "has 9 words" in follow_up[-1]["content"] and "between 71 and 85" in follow_up[-1]["content"]
    assert 71 <= word_count(revision.text) <= 89 and revision.text.endswith(".")  # 117 words cut at a sentence end
    assert revision.summary == "Made the ending louder."  # one clean line for the reviewer


async def test_openai_script_fails_clearly_when_twice_empty() -> None:
    with fake_openai(canned([0, 0])) as fake, pytest.raises(WriterError, match="0 words"):
        await writer_for(fake).script(WHALE, await first_idea(OfflineWriter(), WHALE), 60)
    assert len(fake.requests) == 2


async def test_openai_structured_outputs_parse_into_the_schemas() -> None:
    with fake_openai(canned()) as fake:
        writer = writer_for(fake)
        sources = [IdeaSource(kind="request", text=WHALE), IdeaSource(kind="rss", text="Whales return to the bay")]
        ideas = await writer.ideas(WHALE, sources, count=2)
        prompts = await writer.scene_prompts("The Keeper's Whale", ["Shot one.", "Shot two.", "The lamp went out."])
        meta = await writer.platform_meta("The Keeper's Whale", "A keeper. A whale.")
    idea_request = fake.requests[0]
    schema = idea_request.json()["response_format"]["json_schema"]
    assert schema["name"] == "IdeaDrafts" and schema["strict"] is True and "tools" not in idea_request.json()
    assert "Propose 2 distinct story ideas" in prompt_text(idea_request)
    assert "(rss) Whales return to the bay" in prompt_text(idea_request)
    # sorted by score (the sum of parts, each clamped to 25), long title cut to 100, all-markup title dropped
    assert [i.score for i in ideas] == [100, 75]
    assert ideas[1].score_parts == PARTS and ideas[1].emotional_core == "loyalty" and ideas[1].audience == "families"
    assert len(ideas[0].title) <= 100 and ideas[1].tags == ["drama", "sea"]
    assert "3 prompts" in prompt_text(fake.requests[1]) and "3. The lamp went out." in prompt_text(fake.requests[1])
    assert prompts[:2] == PROMPTS["prompts"] and "lamp" in prompts[2]  # the missing one built offline
    assert meta.title == "The Keeper's Whale"
    assert meta.hashtags["youtube_shorts"][:3] == ["#shorts", "#whale", "#lighthousekeeper"]
    assert meta.hashtags["tiktok"][:2] == ["#storytime", "#fyp"] and "#123" not in meta.hashtags["tiktok"]
    assert len(meta.hashtags["instagram_reels"]) >= 3


@pytest.mark.parametrize(("refused", "used"), [({"json_schema"}, "tools"), ({"json_schema", "tools"}, "json_object")])
async def test_openai_falls_back_when_the_server_refuses_json_schema(
    refused: set[str], used: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with fake_openai(canned(), refuse=refused) as fake:
        writer = writer_for(fake)
        meta = await writer.platform_meta("The Keeper's Whale", "A keeper. A whale.")
        prompts = await writer.scene_prompts("t", ["a", "b"])
    modes = [mode_of(r.json())[0] for r in fake.requests]
    # each refused method is tried once; the one that works is kept for the next calls
    assert modes == [*(m for m in ("json_schema", "tools") if m in refused), used, used]
    assert meta.title == "The Keeper's Whale" and prompts == PROMPTS["prompts"]
    assert "refused json_schema structured output (HTTP 400)" in caplog.text
    if used == "json_object":  # JSON mode sends no schema, so the prompt carries it
        assert '"youtube_shorts"' in prompt_text(fake.requests[-2])


async def test_openai_tool_calls_method_configured() -> None:
    with fake_openai(canned()) as fake:
        writer = writer_for(fake, settings={"STORYBOT_LLM_STRUCTURED_METHOD": "function_calling"})
        ideas = await writer.ideas(WHALE, [], count=1)
    body = fake.requests[0].json()
    assert body["tools"][0]["function"]["name"] == "IdeaDrafts" and "response_format" not in body
    assert ideas[0].score == 100 and len(ideas[0].title) <= 100


async def test_openai_validation_errors_are_fed_back() -> None:
    replies = iter(['{"title": "No tags at all"', {"title": "T", "description": "D"}, META])

    def answer(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
        return next(replies)

    with fake_openai(answer) as fake:
        meta = await writer_for(fake).platform_meta("The Keeper's Whale", "A keeper.")
    assert meta.title == "The Keeper's Whale" and len(fake.requests) == 3
    third = fake.requests[2].json()["messages"]
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third[2]["content"] == '{"title": "No tags at all"'  # the model sees what it said ...
    assert "could not be used" in third[3]["content"]
    assert "youtube_shorts: Field required" in third[5]["content"]  # ... and exactly what was wrong


async def test_openai_gives_up_on_unusable_replies_with_a_clear_message() -> None:
    unusable = r"openai:story-model-test at 127\.0\.0\.1:\d+ answered with an unusable MetaDraft 3 times"
    with fake_openai(lambda name, body: "not json at all") as fake, pytest.raises(WriterError, match=unusable):
        await writer_for(fake).platform_meta("t", "s")
    assert len(fake.requests) == 3


SENTENCES = ["The lamp went dark.", "A whale sang below.", "The keeper rowed out.", "Dawn came at last."]


def plan_answer(bad_first: bool) -> Answer:
    calls = count()

    def answer(name: str, body: dict[str, Any]) -> dict[str, Any] | str:
        assert name == "ScenePlanDraft"
        shot = {
            "image_prompt": "A lighthouse at night <@1>",
            "search_terms": ["lighthouse", "night sea"],
            "negative_prompt": "text, watermark",
            "camera": "zoom_in",
            "mood": "tense",
            "beat": "hook",
        }
        if bad_first and next(calls) == 0:  # a gap: sentence 3 is in no shot
            return {
                "shots": [
                    {**shot, "first_sentence": 1, "last_sentence": 2},
                    {**shot, "first_sentence": 4, "last_sentence": 4, "beat": "resolution"},
                ]
            }
        return {
            "shots": [
                {**shot, "first_sentence": 1, "last_sentence": 2},
                {**shot, "first_sentence": 3, "last_sentence": 4, "camera": "pan_left", "beat": "resolution"},
            ]
        }

    return answer


async def test_openai_scene_plan_must_cover_the_script() -> None:
    with fake_openai(plan_answer(bad_first=True)) as fake:
        plan = await writer_for(fake).scene_plan("The Keeper", SENTENCES, 2)
    assert len(fake.requests) == 2
    assert "4. Dawn came at last." in prompt_text(fake.requests[0]) and "ends at sentence 4" in prompt_text(
        fake.requests[0]
    )
    assert "shot 2 starts at sentence 4, but must start at 3" in prompt_text(fake.requests[1])
    assert [(s.first_sentence, s.last_sentence, s.motion, s.beat) for s in plan] == [
        (0, 1, "zoom_in", "hook"),
        (2, 3, "pan_left", "resolution"),
    ]
    assert plan[0].prompt == "A lighthouse at night" and plan[0].negative_prompt == "text, watermark"
    assert plan[0].mood == "tense" and plan[0].search_terms == ["lighthouse", "night sea"]


async def test_openai_usage_is_counted_per_block() -> None:
    with fake_openai(canned([63]), prompt_tokens=111, completion_tokens=22) as fake:
        writer = writer_for(fake)
        with metered() as used:
            await writer.script(WHALE, IDEA, 60)
            await writer.platform_meta("t", "s")
        await writer.platform_meta("t", "s")  # outside any block: not counted anywhere
    provider = "openai:story-model-test"
    assert dict(used) == {
        (provider, "prompt_tokens"): 222,
        (provider, "completion_tokens"): 44,
        (provider, "total_tokens"): 266,
    }


async def test_negative_usage_from_a_server_is_not_stored() -> None:
    """Issue 23 #13: a server reporting -5000 tokens would have lowered the job's recorded usage."""
    with fake_openai(canned([63]), prompt_tokens=-5000, completion_tokens=22) as fake:
        writer = writer_for(fake)
        with metered() as used:
            await writer.script(WHALE, IDEA, 60)
    assert all(amount > 0 for amount in used.values())
    assert ("openai:story-model-test", "prompt_tokens") not in used


# --- faults: retried with backoff within a budget, then one clear line without the key -------------


def error_reply(status: int, headers: dict[str, str] | None = None) -> Reply:
    # servers echo what they were sent; the key must still never surface
    return Reply.json({"error": {"message": f"overloaded for key {API_KEY}", "type": "server_error"}}, status, headers)


async def test_openai_429_honours_retry_after() -> None:
    with fake_openai(canned(), faults=[error_reply(429, {"Retry-After": "1"})]) as fake:
        started = time.monotonic()
        prompts = await writer_for(fake).scene_prompts("t", ["a", "b"])
        waited = time.monotonic() - started
    assert len(fake.requests) == 2 and prompts == PROMPTS["prompts"]
    assert 0.95 <= waited < 3  # the server's one second, not the SDK's half-second first backoff


async def test_openai_server_error_then_success() -> None:
    with fake_openai(canned(), faults=[error_reply(500, {"retry-after-ms": "10"})] * 2) as fake:
        prompts = await writer_for(fake).scene_prompts("t", ["a", "b"])
    assert len(fake.requests) == 3 and prompts == PROMPTS["prompts"]


def slow() -> Reply:
    time.sleep(0.6)
    return Reply.json({"error": {"message": "late"}}, 500)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            [error_reply(503, {"retry-after-ms": "1"})] * 3,
            r"failed \(HTTP 503\) after 3 attempts: overloaded for key \[redacted\]",
        ),
        ([error_reply(429, {"retry-after-ms": "1"})] * 3, r"is rate limiting \(HTTP 429\) after 3 attempts"),
        ([slow] * 3, r"did not answer within 0\.3 s after 3 attempts"),
        (
            [Reply(200, b"<html>bad gateway</html>", {"Content-Type": "application/json"})] * 3,
            r"sent a malformed reply .* 3 times",
        ),
        ([error_reply(401)], r"refused the API key \(HTTP 401\); check OPENAI_API_KEY"),
    ],
)
async def test_openai_faults_end_in_one_clear_line_without_the_key(
    faults: list[Any], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake_openai(canned(), faults=list(faults)) as fake:
        writer = writer_for(fake, timeout=0.3, max_retries=2)
        pattern = r"^LLM openai:story-model-test at 127\.0\.0\.1:\d+ " + message
        with pytest.raises(WriterError, match=pattern) as failure:
            await writer.platform_meta("t", "s")
    assert str(failure.value).endswith("the job can be resumed") and "\n" not in str(failure.value)
    assert len(fake.requests) == len(faults)
    shown = "".join(traceback.format_exception(failure.value))
    assert API_KEY not in shown and API_KEY not in caplog.text
    assert API_KEY not in repr(writer) and API_KEY not in repr(vars(writer))


async def test_get_writer_picks_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STORYBOT_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    offline = get_writer(Settings(_env_file=None))
    assert isinstance(offline, OfflineWriter) and offline.provider == "offline"
    with fake_openai(canned([60])) as fake:
        from tools.llm.openai_writer import OpenAIWriter

        keyed = get_writer(openai_settings(fake.url))
        assert isinstance(keyed, OpenAIWriter)
        local = get_writer(openai_settings(fake.url, key=None))  # Ollama / vLLM: a base URL, no key
        assert isinstance(local, OpenAIWriter)
        await local.script(WHALE, await first_idea(OfflineWriter(), WHALE), 60)
    assert fake.requests[0].headers["Authorization"] == "Bearer not-needed"
    assert isinstance(get_writer(Settings(_env_file=None, OPENAI_API_KEY="sk-x")), OpenAIWriter)


BOMB = gzip_bomb(512 * 2**20)  # 512 MiB of zeros in about half a MiB


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, BOMB, {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        Reply(200, (b" " * 2**20 for _ in range(40)), {"Content-Type": "application/json"}),  # no length said
        Reply(200, b"{" + b" " * (40 * 2**20) + b"}", {"Content-Type": "application/json"}),  # said: 40 MB
    ],
    ids=["gzip-bomb", "40MB-streamed", "40MB-declared"],
)
async def test_an_llm_reply_past_the_byte_ceiling_is_one_line_in_bounded_memory(reply: Reply) -> None:
    """Issue 23 #4: a 1 MiB gzip chat completion took RSS to 2.4 GB; now the reply is counted after
    decompression, refused at 32 MB, not asked for again, and the line names the provider."""
    with fake_openai(canned(), faults=[reply] * 3) as fake:
        writer = writer_for(fake, max_retries=2)
        before, started = peak_rss_mib(), time.monotonic()
        with pytest.raises(WriterError) as failure:
            await writer.platform_meta("t", "s")
        grew, took = peak_rss_mib() - before, time.monotonic() - started
    line = str(failure.value)
    assert re.fullmatch(
        r"LLM openai:story-model-test at 127\.0\.0\.1:\d+ sent a reply (of \d+ MB, )?over the 32 MB limit; "
        r"the job can be resumed",
        line,
    ), line
    assert len(fake.requests) == 1, "the same question would bring the same reply"
    assert grew < 160 and took < 10, (grew, took)


async def test_an_llm_reply_nested_too_deep_names_the_provider() -> None:
    """Issue 23 #15: a body nested 100,000 deep was a bare RecursionError, naming no one."""
    deep = Reply(200, b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"})
    with fake_openai(canned(), faults=[deep] * 3) as fake, pytest.raises(WriterError) as failure:
        await writer_for(fake, max_retries=2).platform_meta("t", "s")
    assert re.fullmatch(
        r"LLM openai:story-model-test at 127\.0\.0\.1:\d+ sent a reply nested too deep to read; the job can be resumed",
        str(failure.value),
    ), failure.value
    assert len(fake.requests) == 1
