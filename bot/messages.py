"""The bot's messages, built from job records and approval payloads: status, approvals, delivery.

Only building here (embeds and text); sending and editing live in `conductor.py`, `approvals.py` and
`delivery.py`.
"""

from __future__ import annotations

import time
from typing import Any

import discord

from bot.text import duration, one_line, progress_bar, quote, split_text, word_diff
from graph.api import (
    LONGER,
    SHORTER,
    Answer,
    Credit,
    IdeaApproval,
    JobRecord,
    KeyframeApproval,
    PlatformMeta,
    ScriptApproval,
    ShotVerdict,
    StageRecord,
)

NO_MENTIONS = discord.AllowedMentions.none()

EMBED_TEXT = 4000  # under the 4096 limit of an embed description
MESSAGE_EMBED_TEXT = 5800  # under the 6000 limit of all embeds of one message
COLOURS = {"done": 0x2ECC71, "failed": 0xE74C3C, "cancelled": 0x95A5A6, "waiting": 0xF1C40F}
RUNNING_COLOUR = 0x5865F2
MARKS = {"pending": "⬜", "running": "⏳", "waiting": "⏸️", "done": "✅", "failed": "❌", "skipped": "➖"}
LABELS = {
    "collect_ideas": "Gather ideas",
    "story_ideas": "Score ideas",
    "pick_idea": "Pick an idea",
    "write_script": "Write the script",
    "revise_script": "Revise",
    "approve_script": "Approve the script",
    "voice": "Voice",
    "subtitles": "Subtitles",
    "plan_scenes": "Plan scenes",
    "keyframes": "Draw keyframes",
    "vision_guidance": "Check keyframes",
    "approve_keyframes": "Approve keyframes",
    "animate": "Animate",
    "post_produce": "Final cut",
    "deliver": "Deliver",
}
# Rough cost of each stage in seconds per second of video on a 2-core CPU (bench/pipeline.py): enough
# for an estimate that shrinks as stages finish, not a promise.
COST = {
    "collect_ideas": 0.01,
    "story_ideas": 0.01,
    "write_script": 0.02,
    "revise_script": 0.02,
    "voice": 0.01,
    "subtitles": 0.005,
    "plan_scenes": 0.01,
    "keyframes": 0.04,
    "vision_guidance": 0.01,
    "animate": 0.3,
    "post_produce": 0.5,
    "deliver": 0.005,
}
HIDDEN_WHEN_PENDING = {"revise_script"}
REFUSAL = "Only the person who asked for this video, or someone with the approver role, can do that."
ASK_IDEA = "**Your turn:** pick an idea, or reply with its number (or your own script)."
ASK_SCRIPT = "**Your turn:** approve the script, or reply to it with what to change (or your own script: a .txt file)."
ASK_KEYFRAMES = (
    "**Your turn:** approve the keyframes, pick shots to draw again, or reply with a new script (a .txt file)."
)


class Live:
    """What the event stream says that the job table does not: the running stage's percent, the queue."""

    def __init__(self) -> None:
        self.percent: dict[str, float] = {}
        self.queue_position: int | None = None
        self.notices: list[str] = []


def status_embed(record: JobRecord, stages: list[StageRecord], live: Live, now: float | None = None) -> discord.Embed:
    now = time.time() if now is None else now
    seconds = record.request.duration
    lines, spent, left = [], 0.0, 0.0
    for st in stages:
        if st.status == "pending" and st.name in HIDDEN_WHEN_PENDING:
            continue
        cost = COST.get(st.name, 0.0) * seconds
        pct = live.percent.get(st.name)
        detail = f" · {st.seconds:.1f} s" if st.status == "done" and st.seconds >= 0.05 else ""
        if st.status == "running" and pct is not None:
            detail = f" · {pct:.0f}%"
        lines.append(f"{MARKS.get(st.status, '⬜')} {LABELS.get(st.name, st.name)}{detail}")
        if st.status in ("done", "skipped"):
            spent += cost
        elif st.status == "running":
            spent += cost * (pct or 0) / 100
            left += cost * (1 - (pct or 0) / 100)
        elif st.status != "failed":
            left += cost
    fraction = 1.0 if record.status == "done" else spent / (spent + left) if spent + left else 0.0
    elapsed = now - record.created
    title = f"🎬 {one_line(quote(record.prompt), 200)}"
    embed = discord.Embed(title=title, colour=COLOURS.get(record.status, RUNNING_COLOUR), description="\n".join(lines))
    summary = [progress_bar(fraction), f"Elapsed {duration(elapsed)}"]
    if record.status == "running" and left > 0:
        summary.append(f"about {duration(left)} left")
    if record.status in ("queued", "running") and live.queue_position:  # for a runner, or a render slot
        summary.append(f"queue position {live.queue_position}")
    embed.add_field(name=_headline(record), value=" · ".join(summary), inline=False)
    if live.notices:
        embed.add_field(name="Notes", value=one_line(" / ".join(live.notices[-3:]), 1000), inline=False)
    embed.set_footer(text=f"job {record.job_id} · {record.request.aspect.value} · {seconds:g} s requested")
    return embed


def _headline(record: JobRecord) -> str:
    return {
        "queued": "Queued",
        "running": f"Working: {LABELS.get(record.stage or '', record.stage or 'starting')}",
        "waiting": f"Waiting for you: {LABELS.get(record.waiting_for or '', record.waiting_for or '')}",
        "done": "Done",
        "failed": "Stopped by an error",
        "cancelled": "Cancelled",
    }.get(record.status, record.status)


def idea_embed(approval: IdeaApproval) -> discord.Embed:
    embed = discord.Embed(
        title="💡 Pick an idea",
        colour=COLOURS["waiting"],
        description="Choose one below or reply with its number, approve to take the first, or "
        "reply with your own script (a .txt file or 40+ words).",
    )
    for number, idea in enumerate(approval.ideas[:10], start=1):
        body = idea.logline or idea.angle
        value = quote(body) + (f"\n*Hook:* {quote(idea.hook)}" if idea.hook else "")
        embed.add_field(
            name=one_line(f"{number}. {quote(idea.title)} · score {idea.score:g}", 250),
            value=one_line(value, 1000) or "—",
            inline=False,
        )
    return embed


def script_embeds(approval: ScriptApproval) -> list[list[discord.Embed]]:
    """The script split cleanly (paragraphs, then sentences), grouped into messages under Discord's limits."""
    chunks = split_text(quote(approval.script), EMBED_TEXT) or ["(empty)"]
    embeds = [discord.Embed(description=c, colour=COLOURS["waiting"]) for c in chunks]
    embeds[0].title = f"📝 Script, version {approval.version}"
    facts = [f"{approval.words} words", length_line(approval)]
    if approval.summary:
        facts.append(f"Change: {one_line(quote(approval.summary), 300)}")
    if approval.previous_script:
        facts.append(f"Diff: {word_diff(approval.previous_script, approval.script, 700)}")
    embeds[-1].set_footer(text=one_line(" · ".join(f for f in facts if f), 2000) or None)
    groups: list[list[discord.Embed]] = [[]]
    size = 0
    for embed in embeds:
        length = len(embed)
        if groups[-1] and (size + length > MESSAGE_EMBED_TEXT or len(groups[-1]) == 10):
            groups.append([])
            size = 0
        groups[-1].append(embed)
        size += length
    return groups


def length_line(approval: ScriptApproval) -> str:
    """'about 21 s, you asked for 45 s' (with a warning sign when the draft misses the length)."""
    return ("⚠️ " if approval.off_length else "") + approval.length_note()


def script_question(approval: ScriptApproval) -> str:
    """The line above a script: what to do with it, and what to do about its length when it is off."""
    ask = ASK_SCRIPT
    if approval.writer_notice:
        ask = f"⚠️ {one_line(quote(approval.writer_notice), 600)}\n{ask}"
    if approval.off_length:
        fix = "**Make it longer**" if approval.off_length == "short" else "**Make it shorter**"
        ask += f"\nThis draft is {approval.length_note()}: {fix} asks for a new draft nearer that."
    return ask


def keyframes_embed(approval: KeyframeApproval) -> discord.Embed:
    embed = discord.Embed(
        title="🖼️ Keyframes", colour=COLOURS["waiting"], description="Approve them, or pick shots to draw again."
    )
    verdicts = {v.shot: v for v in approval.verdicts}
    for shot in approval.shots[:25]:
        extra = _verdict_line(verdicts.get(shot.number))
        embed.add_field(name=f"Shot {shot.number}", value=one_line(quote(shot.text) + extra, 1000) or "—", inline=False)
    return embed


def _verdict_line(verdict: ShotVerdict | None) -> str:
    """The vision model's check of one keyframe, as shown under its text."""
    if verdict is None:
        return ""
    if not verdict.parsed:
        return " · *check:* the vision model gave no usable verdict"
    if verdict.score is not None:
        scores = f"score {_score(verdict.score)}"
    else:
        scores = f"prompt {_score(verdict.adherence)}, quality {_score(verdict.quality)}"
    consistent = "" if verdict.consistent is not False else ", differs from the previous shot"
    missing = f", missing: {quote(', '.join(verdict.missing))}" if verdict.missing else ""
    critique = f": {quote(verdict.critique)}" if verdict.critique else ""
    return f" · *check:* {scores}{consistent}{missing}{critique}"


def _score(value: Any) -> str:
    return f"{value:g}/10" if isinstance(value, int | float) else "?"


def credits_text(credits: list[Credit]) -> str:
    """One line crediting the stock authors, as Pexels and Pixabay ask ("" without stock media)."""
    by_site: dict[str, list[str]] = {}
    for c in credits:
        names = by_site.setdefault(c.source.capitalize(), [])
        if (author := one_line(quote(c.author), 60)) and author not in names:
            names.append(author)
    parts = [f"{', '.join(names)} on {site}" if names else site for site, names in by_site.items() if site]
    return one_line(f"-# footage and photos: {'; '.join(parts)}", 500) if parts else ""


def delivery_text(job_id: str, platforms: PlatformMeta | None, requester_name: str, extra: str = "") -> str:
    """The video's title, description and tags, then `extra` (a link or a note), then the job mark.

    The description gives way when it is too long: the mark (`job <id>`) is how a restart finds a
    delivery it made, and the link must stay whole.
    """
    title = quote(platforms.title if platforms else "Your video")
    tags: list[str] = []
    for values in platforms.hashtags.values() if platforms else []:
        tags.extend(t for t in values if t not in tags)
    head = f"🎬 **{one_line(title, 200)}**"
    tail = [" ".join(tags[:15]), extra, f"-# made for {quote(requester_name)} · job {job_id}"]
    room = 2000 - len(head) - sum(len(line) + 1 for line in tail) - 1
    description = quote(platforms.description if platforms else "")[: max(0, room)]
    return "\n".join(line for line in [head, description, *tail] if line)[:2000]


def link_line(job_id: str, url: str, size: str, expires: int) -> str:
    return f"🔗 Full quality ({size}; until <t:{expires}:f>, then `/job {job_id}` for a fresh link): {url}"


def too_big_text(size: str, limit: str, where: str) -> str:
    """The note when no file fits: where the master is (a link, or its place on the server)."""
    return f"⚠️ The video ({size}) does not fit this server's upload limit of {limit}. {where}"


def answered_text(answer: Answer, name: str) -> str:
    """The one line that says what an answer did, under the approval it answered (everyone sees it)."""
    return f"{_did(answer)} (by {quote(name)})."


NEXT = {"approve_script": "script draft", "approve_keyframes": "keyframes"}


def held_text(answer: Answer, approval: str, replaced: bool) -> str:
    """A reply that came while the job was still working on the last answer: kept, not dropped."""
    earlier = " It replaces your earlier reply." if replaced else ""
    return (
        f"⏳ Still working on the last answer: yours is kept and applied to the next "
        f"{NEXT.get(approval, 'approval')} as soon as it is ready ({_did(answer)}).{earlier}"
    )


def unapplied_text(answer: Answer, why: str) -> str:
    """The kept reply could not be applied (the job moved on, ended, or the new approval refused it)."""
    return f"⚠️ Your kept reply ({_did(answer)}) was not applied: {one_line(why, 300)}"


def _did(answer: Answer) -> str:
    if answer.action == "revise":
        note = answer.note or ""
        did = {LONGER: "✏️ Writing a longer draft", SHORTER: "✏️ Writing a shorter draft"}.get(
            note, f"✏️ Revising the script: “{one_line(quote(note), 120)}”"
        )
    elif answer.action == "replace":
        did = f"📄 Using your own script ({len((answer.text or '').split())} words) instead of the draft"
    elif answer.action == "reroll":
        did = f"🎲 Re-rolling shot{'s' if len(answer.shots) > 1 else ''} {', '.join(map(str, answer.shots))}"
    else:
        did = {
            "approve": "✅ Approved",
            "pick": f"✅ Idea {(answer.index or 0) + 1} picked: writing the script",
            "regenerate": "🔄 Writing a new draft",
            "cancel": "✖️ Cancelled",
        }[answer.action]
    return did


def failure_text(stage: str | None, reason: str) -> str:
    where = LABELS.get(stage or "", stage or "a stage")
    return (
        f"⚠️ The video stopped at **{where}**: {one_line(quote(reason), 600)}\n"
        "Each step was already retried a few times. Finished steps are kept: **Retry** continues from here."
    )
