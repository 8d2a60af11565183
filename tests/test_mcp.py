"""MCP through the official SDK's own client: over streamable HTTP with bearer tokens, and over stdio."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, TextResourceContents

from graph.api import JobService
from service.app import serving
from service.tokens import NewToken, TokenStore
from tools.settings import get_settings

SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."
TOOLS = {"make_video", "get_job", "list_jobs", "answer_approval", "list_voices", "get_artifact_links"}
STORYBOT = Path(sys.executable).with_name("storybot")


def over_http(url: str, token: NewToken) -> Client:
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token.token}"}, timeout=120)
    return Client(streamable_http_client(url, http_client=client), read_timeout_seconds=180)


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    data = result.structured_content
    return data["result"] if isinstance(data, dict) and set(data) == {"result"} else data


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, NewToken, NewToken]]:
    settings = get_settings().model_copy(update={"data_dir": tmp_path, "http_port": 0, "public_url": None})
    tokens = TokenStore(tmp_path)
    alice, bob = tokens.create("alice"), tokens.create("bob")
    async with JobService.open(settings) as svc, serving(svc, settings) as port:
        yield f"http://127.0.0.1:{port}/mcp", alice, bob


async def test_mcp_needs_a_token(server: tuple[str, NewToken, NewToken]) -> None:
    url, _alice, _bob = server
    async with httpx.AsyncClient() as http:
        reply = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert reply.status_code == 401 and reply.json() == {"error": "a valid API token is needed"}


@pytest.mark.slow
async def test_an_assistant_makes_a_video_through_its_approvals(server: tuple[str, NewToken, NewToken]) -> None:
    url, alice, bob = server
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async with over_http(url, alice) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) >= TOOLS
        assert "approve" in (tools["answer_approval"].description or "")
        job = structured(
            await client.call_tool(
                "make_video",
                {"prompt": "keeper", "script": SCRIPT, "duration": 8, "wait": True},
                progress_callback=on_progress,
            )
        )
        job_id = job["job_id"]
        assert job["status"] == "waiting" and job["waiting"]["approval"] == "approve_script"
        assert job["waiting"]["script"].startswith("The lamp went dark.")
        assert progress and any("write_script" in (m or "") for _, m in progress)
        wrong = await client.call_tool("answer_approval", {"job_id": job_id, "action": "reroll", "shots": [1]})
        assert "does not take reroll" in error_text(wrong)
        job = structured(
            await client.call_tool(
                "answer_approval", {"job_id": job_id, "action": "approve", "wait": True}, progress_callback=on_progress
            )
        )
        assert job["waiting"]["approval"] == "approve_keyframes" and job["waiting"]["keyframes"]
        script = await client.read_resource(f"storybot://jobs/{job_id}/script")
        text = script.contents[0]
        assert isinstance(text, TextResourceContents) and text.text.startswith("The lamp went dark.")
        listed = structured(await client.call_tool("list_jobs", {}))
        assert [j["job_id"] for j in listed] == [job_id]
        voices = structured(await client.call_tool("list_voices", {"language": "en"}))
        assert any(v["default"] for v in voices)
    async with over_http(url, bob) as other:
        refused = await other.call_tool("get_job", {"job_id": job_id})
        assert error_text(refused).endswith(f"no job '{job_id}'")
        assert structured(await other.call_tool("list_jobs", {})) == []
        with pytest.raises(MCPError, match="no job"):  # another token's script is not readable either
            await other.read_resource(f"storybot://jobs/{job_id}/script")
    async with over_http(url, alice) as client:
        await client.call_tool("answer_approval", {"job_id": job_id, "action": "cancel"})
        assert structured(await client.call_tool("get_job", {"job_id": job_id}))["status"] == "cancelled"


@pytest.mark.slow
async def test_mcp_over_stdio_acts_as_the_local_identity(tmp_path: Path) -> None:
    env = {**os.environ, "STORYBOT_DATA_DIR": str(tmp_path)}
    params = StdioServerParameters(command=str(STORYBOT), args=["mcp"], env=env)
    async with Client(params, read_timeout_seconds=180) as client:
        job = structured(
            await client.call_tool("make_video", {"prompt": "keeper", "script": SCRIPT, "duration": 8, "wait": True})
        )
        assert job["status"] == "waiting" and job["waiting"]["words"] == len(SCRIPT.split())
        links = structured(await client.call_tool("get_artifact_links", {"job_id": job["job_id"]}))
        assert "/jobs/" + job["job_id"] in links["page"]
    params = StdioServerParameters(command=str(STORYBOT), args=["mcp", "--as", "nobody"], env=env)
    with pytest.raises(Exception):  # noqa: B017  (the server exits at once: the SDK raises its own error)
        async with Client(params, read_timeout_seconds=20) as client:
            await client.list_tools()
