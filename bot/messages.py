"""The bot's messages, built from job records and approval payloads: status, approvals, delivery.

Only building here (embeds and text); sending and editing live in `conductor.py`.
"""

from __future__ import annotations

import time
from typing import Any

import discord

from bot.text import duration, one_line, progress_bar, quote, split_text, word_diff
from graph.api import JobRecord, StageRecord

EMBED_TEXT = 4000           # under the 4096 limit of an embed description
MESSAGE_EMBED_TEXT = 5800   # under the 6000 limit of all embeds of one message
COLOURS = {"done": 0x2ECC71, "failed": 0xE74C3C, "cancelled": 0x95A5A6, "waiting": 0xF1C40F}
RUNNING_COLOUR = 0x5865F2
MARKS = {"pending": "⬜", "running": "⏳", "waiting": "⏸️", "done": "✅", "failed": "❌", "skipped": "➖"}
LABELS = {
    "collect_ideas": "Gather ideas", "story_ideas": "Score ideas", "pick_idea": "Pick an idea",
    "write_script": "Write the script", "revise_script": "Revise", "approve_script": "Approve the script",
    "voice": "Voice", "subtitles": "Subtitles", "plan_scenes": "Plan scenes", "keyframes": "Draw keyframes",
    "vision_guidance": "Check keyframes", "approve_keyframes": "Approve keyframes", "animate": "Animate",
    "post_produce": "Final cut", "deliver": "Deliver",
}
# Rough cost of each stage in seconds per second of video on a 2-core CPU (bench/pipeline.py): enough
# for an estimate that shrinks as stages finish, not a promise.
COST = {"collect_ideas": 0.01, "story_ideas": 0.01, "write_script": 0.02, "revise_script": 0.02, "voice": 0.01,
        "subtitles": 0.005, "plan_scenes": 0.01, "keyframes": 0.04, "vision_guidance": 0.01, "animate": 0.3,
        "post_produce": 0.5, "deliver": 0.005}
HIDDEN_WHEN_PENDING = {"revise_script"}


class Live:
    """What the event stream says that the job table does not: the running stage's percent, the queue."""

    def __init__(self) -> None:
        self.percent: dict[str, float] = {}
        self.queue_position: int | None = None
        self.notices: list[str] = []


def status_embed(record: JobRecord, stages: list[StageRecord], live: Live, now: float | None = None) -> discord.Embed:
    now = time.time() if now is None else now
    seconds = float(record.options.get("duration", 45))
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
    embed = discord.Embed(title=title, colour=COLOURS.get(record.status, RUNNING_COLOUR),
                          description="\n".join(lines))
    summary = [progress_bar(fraction), f"Elapsed {duration(elapsed)}"]
    if record.status == "running" and left > 0:
        summary.append(f"about {duration(left)} left")
    if record.status == "running" and live.queue_position:
        summary.append(f"queue position {live.queue_position}")
    embed.add_field(name=_headline(record), value=" · ".join(summary), inline=False)
    if live.notices:
        embed.add_field(name="Notes", value=one_line(" / ".join(live.notices[-3:]), 1000), inline=False)
    embed.set_footer(text=f"job {record.job_id} · {record.options.get('aspect', '9:16')} · "
                          f"{seconds:g} s requested")
    return embed


def _headline(record: JobRecord) -> str:
    return {
        "queued": "Queued", "running": f"Working: {LABELS.get(record.stage or '', record.stage or 'starting')}",
        "waiting": f"Waiting for you: {LABELS.get(record.waiting_for or '', record.waiting_for or '')}",
        "done": "Done", "failed": "Stopped by an error", "cancelled": "Cancelled",
    }.get(record.status, record.status)


def idea_embed(approval: dict[str, Any]) -> discord.Embed:
    embed = discord.Embed(title="💡 Pick an idea", colour=COLOURS["waiting"],
                          description="Choose one below, or approve to take the first.")
    for idea in approval.get("ideas", [])[:10]:
        score = idea.get("score")
        score_text = f" · score {score:g}" if isinstance(score, int | float) else ""
        body = idea.get("logline") or idea.get("angle") or ""
        hook = idea.get("hook")
        value = quote(str(body)) + (f"\n*Hook:* {quote(str(hook))}" if hook else "")
        embed.add_field(name=one_line(f"{idea.get('number', '?')}. {quote(str(idea.get('title', 'Idea')))}"
                                      f"{score_text}", 250), value=one_line(value, 1000) or "—", inline=False)
    return embed


def script_embeds(approval: dict[str, Any]) -> list[list[discord.Embed]]:
    """The script split cleanly (paragraphs, then sentences), grouped into messages under Discord's limits."""
    version = approval.get("version", 1)
    words, target = approval.get("words"), approval.get("target_seconds")
    chunks = split_text(quote(str(approval.get("script", ""))), EMBED_TEXT) or ["(empty)"]
    embeds = [discord.Embed(description=c, colour=COLOURS["waiting"]) for c in chunks]
    embeds[0].title = f"📝 Script, version {version}"
    facts = [f"{words} words" if words else "", f"for about {target:g} s" if target else ""]
    change = approval.get("summary") or approval.get("change")
    if change:
        facts.append(f"Change: {one_line(quote(str(change)), 300)}")
    if approval.get("previous_script"):
        facts.append(f"Diff: {word_diff(str(approval['previous_script']), str(approval.get('script', '')), 700)}")
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


def keyframes_embed(approval: dict[str, Any]) -> discord.Embed:
    embed = discord.Embed(title="🖼️ Keyframes", colour=COLOURS["waiting"],
                          description="Approve them, or pick shots to draw again.")
    verdicts = {v.get("shot"): v for v in approval.get("verdicts", []) if isinstance(v, dict)}
    for shot in approval.get("shots", [])[:25]:
        number = shot.get("number")
        extra = _verdict_line(verdicts.get(number))
        embed.add_field(name=f"Shot {number}", value=one_line(quote(str(shot.get("text", ""))) + extra, 1000) or "—",
                        inline=False)
    return embed


def _verdict_line(verdict: dict[str, Any] | None) -> str:
    """The vision model's check of one keyframe, as shown under its text."""
    if not verdict:
        return ""
    if not verdict.get("parsed"):
        return " · *check:* the vision model gave no usable verdict"
    if verdict.get("score") is not None:
        scores = f"score {_score(verdict.get('score'))}"
    else:
        scores = f"prompt {_score(verdict.get('adherence'))}, quality {_score(verdict.get('quality'))}"
    consistent = "" if verdict.get("consistent") is not False else ", differs from the previous shot"
    missing = [str(m) for m in verdict.get("missing") or []][:4]
    critique = f": {quote(str(verdict['critique']))}" if verdict.get("critique") else ""
    if missing:
        critique += f"; missing {quote(', '.join(missing))}"
    return f" · *check:* {scores}{consistent}{critique}"


def _score(value: Any) -> str:
    return f"{value:g}/10" if isinstance(value, int | float) else "?"


def delivery_text(job_id: str, platforms: dict[str, Any], requester_name: str) -> str:
    title = quote(str(platforms.get("title") or "Your video"))
    description = quote(str(platforms.get("description") or ""))
    tags: list[str] = []
    for values in (platforms.get("hashtags") or {}).values():
        tags.extend(t for t in values if t not in tags)
    lines = [f"🎬 **{one_line(title, 200)}**", description, " ".join(tags[:15]),
             f"-# made for {quote(requester_name)} · job {job_id}"]
    return "\n".join(line for line in lines if line)[:2000]


def failure_text(stage: str | None, reason: str) -> str:
    where = LABELS.get(stage or "", stage or "a stage")
    return (f"⚠️ The video stopped at **{where}**: {one_line(quote(reason), 600)}\n"
            "Each step was already retried a few times. Finished steps are kept: **Retry** continues from here.")
