"""The production graph: fifteen nodes, three of them approvals, compiled with a checkpointer."""

from __future__ import annotations

from typing import Any

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from graph.context import NodeContext
from graph.nodes import finish, ideas, pictures, scenes, script, subtitles, vision, voice
from graph.state import JobRequest, JobState
from tools.errors import MediaError, ProviderGaveUp
from tools.llm import WriterError

# Worth retrying: a media tool that failed (disk, a killed FFmpeg) or a network hiccup.
# Bad input and programming errors are not retried: the same input fails the same way.
TRANSIENT = (MediaError, WriterError, OSError, httpx.TransportError, TimeoutError)


def _worth_retrying(exc: Exception) -> bool:
    """A provider that already gave up after its own retries (or refused) is not asked again at once."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, ProviderGaveUp)


RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, backoff_factor=2.0, retry_on=_worth_retrying)


def _entry(state: JobState) -> str:
    """A prompt or the user's own script goes straight to the script; ideas are collected when asked
    for (`--ideas`, `/ideas`) or when there is nothing else to write from."""
    return "collect_ideas" if JobRequest.model_validate(state["request"]).idea_stages else "write_script"


def build_graph(checkpointer: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(JobState, context_schema=NodeContext)
    g.add_node("collect_ideas", ideas.collect_ideas, retry_policy=RETRY)
    g.add_node("story_ideas", ideas.story_ideas, retry_policy=RETRY)
    g.add_node("pick_idea", ideas.pick_idea)  # approvals: routes from their `-> Command[Literal[...]]`
    g.add_node("write_script", script.write_script, retry_policy=RETRY)
    g.add_node("revise_script", script.revise_script, retry_policy=RETRY)
    g.add_node("approve_script", script.approve_script)
    g.add_node("voice", voice.voice, retry_policy=RETRY)
    g.add_node("subtitles", subtitles.subtitles_node)
    g.add_node("plan_scenes", scenes.plan_scenes, retry_policy=RETRY)
    g.add_node("keyframes", pictures.keyframes_node, retry_policy=RETRY)
    g.add_node("vision_guidance", vision.vision_guidance)
    g.add_node("approve_keyframes", pictures.approve_keyframes)
    g.add_node("animate", finish.animate, retry_policy=RETRY)
    g.add_node("post_produce", finish.post_produce, retry_policy=RETRY)
    g.add_node("deliver", finish.deliver)

    g.add_conditional_edges(START, _entry, ["collect_ideas", "write_script"])
    g.add_edge("collect_ideas", "story_ideas")
    g.add_edge("story_ideas", "pick_idea")
    g.add_edge("write_script", "approve_script")
    g.add_edge("revise_script", "approve_script")
    g.add_edge("voice", "subtitles")
    g.add_edge("subtitles", "plan_scenes")
    g.add_edge("plan_scenes", "keyframes")
    g.add_edge("keyframes", "vision_guidance")
    g.add_edge("vision_guidance", "approve_keyframes")
    g.add_edge("animate", "post_produce")
    g.add_edge("post_produce", "deliver")
    g.add_edge("deliver", END)
    return g.compile(checkpointer=checkpointer)
