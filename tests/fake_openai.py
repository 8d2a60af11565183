"""A small OpenAI-compatible `/v1/chat/completions` server for tests, on 127.0.0.1.

It speaks the wire protocol the openai SDK and langchain-openai use: JSON-schema structured output
(`response_format.type == "json_schema"`), tool calls (`tools`, answered with `tool_calls`), JSON
mode (`response_format.type == "json_object"`) and plain text, each with a `usage` block. A test
supplies `answer(schema_name, body)`: a dict (sent as the JSON answer or tool arguments) or a
string (sent as is, to play a model that writes malformed JSON); plain-text calls get
`answer("", body)`. `refuse` names methods the server rejects with HTTP 400, as older vLLM and
Ollama builds reject `json_schema`; `faults` are replies served before any real answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.local_http import LocalServer, Reply, Request, local_server

Answer = Callable[[str, dict[str, Any]], dict[str, Any] | str]
_JSON_MODE_NAME = re.compile(r'JSON schema named\s+"(\w+)"')


@dataclass
class FakeOpenAI:
    answer: Answer
    refuse: set[str] = field(default_factory=set)  # "json_schema", "tools", "json_object"
    faults: list[Reply | Callable[[], Reply]] = field(default_factory=list)
    prompt_tokens: int = 120
    completion_tokens: int = 40
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/v1"

    @property
    def requests(self) -> list[Request]:
        assert self.server is not None
        return self.server.requests

    def handle(self, request: Request) -> Reply:
        if request.path != "/v1/chat/completions":
            return Reply.json({"error": {"message": f"no route {request.path}", "type": "not_found"}}, 404)
        if self.faults:
            fault = self.faults.pop(0)
            return fault() if callable(fault) else fault
        body = request.json()
        mode, name = mode_of(body)
        if mode in self.refuse:
            return Reply.json(
                {
                    "error": {
                        "message": f"{mode} is not supported by this server",
                        "type": "invalid_request_error",
                        "param": "response_format",
                    }
                },
                400,
            )
        answer = self.answer(name, body)
        content = answer if isinstance(answer, str) else json.dumps(answer)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        finish = "stop"
        if mode == "tools":
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": content}}],
            }
            finish = "tool_calls"
        return Reply.json(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": None, "message": message}],
                "usage": {
                    "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    "total_tokens": self.prompt_tokens + self.completion_tokens,
                },
            }
        )


def mode_of(body: dict[str, Any]) -> tuple[str, str]:
    """(method, schema name) of a chat request: "json_schema", "tools", "json_object" or "text"."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return "json_schema", response_format["json_schema"]["name"]
    if body.get("tools"):
        return "tools", body["tools"][0]["function"]["name"]
    if response_format.get("type") == "json_object":
        said = "\n".join(str(m.get("content") or "") for m in body["messages"])
        found = _JSON_MODE_NAME.search(said)
        return "json_object", found[1] if found else ""
    return "text", ""


def user_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"] if m["role"] != "system")


@contextmanager
def fake_openai(answer: Answer, **options: Any) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(answer, **options)
    with local_server(fake.handle) as server:
        fake.server = server
        yield fake
