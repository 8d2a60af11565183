"""The embedded writer: an instruct model run in this process by onnxruntime-genai, for people with
no key and no server (`pip install 'storybot[writer]'`, then `storybot models pull writer`).

Why onnxruntime-genai (MIT): a binary wheel for this platform (11 MB, installed in under 2 s here,
next to the onnxruntime the Piper voices already use), JSON-schema-constrained generation built in
(`set_guidance("json_schema", ...)`, llguidance), and models in one folder (`genai_config.json`,
the ONNX graph, the tokenizer with its chat template). llama-cpp-python has no wheel here and took
17 minutes to build; the one prebuilt llama.cpp wheel needs a newer glibc.

The model speaks the OpenAI chat API on a loopback port of its own (one thread, one request at a
time), so the writer that talks to OpenAI, Ollama or llama.cpp writes through it unchanged:
structured output, validation retries, the length check and usage counting. `response_format`
`json_schema` becomes the schema guidance; tool calls are refused (HTTP 400), so the writer keeps
to JSON schema.
"""

from __future__ import annotations

import json
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

MAX_BODY = 4 * 1024 * 1024  # a chat request is kilobytes
DEFAULT_MAX_TOKENS = 1024
MARKER = "genai_config.json"  # what makes a folder an onnxruntime-genai model


class _Message(BaseModel):
    role: str
    content: str | None = ""


class _SchemaFormat(BaseModel):
    name: str = "reply"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")  # passed on to the guidance as is
    strict: bool | None = None


class _Format(BaseModel):
    type: str = "text"
    json_schema: _SchemaFormat | None = None


class _ModelSection(BaseModel):
    context_length: int


class _GenaiConfig(BaseModel):
    model: _ModelSection


class TooLong(ValueError):
    """A prompt the model cannot read whole."""


class _ChatRequest(BaseModel):
    model: str = ""
    messages: list[_Message]
    response_format: _Format | None = None
    tools: list[Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


def _compact(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with llguidance told to allow no free whitespace between JSON tokens: a small model
    can otherwise spend its whole budget on newlines inside `{ }` and never reach a value."""
    return {**schema, "x-guidance": {"whitespace_flexible": False}}


def is_model(folder: Path) -> bool:
    return (folder / MARKER).is_file()


class Engine:
    """One model loaded once (on first use: a 3 GB model takes seconds), generating one reply at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.context = 0

    def _load(self) -> None:
        import onnxruntime_genai as og

        if self._model is None:
            self._model = og.Model(str(self.folder))
            self._tokenizer = og.Tokenizer(self._model)
            self.context = _GenaiConfig.model_validate_json((self.folder / MARKER).read_bytes()).model.context_length

    def reply(self, request: _ChatRequest) -> tuple[str, int, int]:
        """(text, prompt tokens, completion tokens); JSON matching the schema when one is asked for."""
        import onnxruntime_genai as og

        with self._lock:
            self._load()
            messages = json.dumps([{"role": m.role, "content": m.content or ""} for m in request.messages])
            prompt = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True)
            tokens = self._tokenizer.encode(prompt)
            if len(tokens) >= self.context:
                raise TooLong(f"the prompt is {len(tokens)} tokens; the model reads at most {self.context}")
            params = og.GeneratorParams(self._model)
            budget = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
            options: dict[str, Any] = {"max_length": min(len(tokens) + budget, self.context)}
            if request.temperature:
                options.update(do_sample=True, temperature=request.temperature)
            if request.seed is not None:
                options["random_seed"] = request.seed
            params.set_search_options(**options)
            form = request.response_format
            if form is not None and form.type == "json_schema" and form.json_schema is not None:
                params.set_guidance("json_schema", json.dumps(_compact(form.json_schema.schema_)))
            elif form is not None and form.type == "json_object":
                params.set_guidance("json_schema", json.dumps(_compact({"type": "object"})))
            generator = og.Generator(self._model, params)
            generator.append_tokens(tokens)
            out: list[int] = []
            while not generator.is_done():
                generator.generate_next_token()
                out.append(int(generator.get_next_tokens()[0]))
            return self._tokenizer.decode(out), len(tokens), len(out)


def _handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": engine.name, "object": "model"}]})
            else:
                self._refuse(404, "no such route")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._refuse(404, "no such route")
                return
            if not 0 < length <= MAX_BODY:
                self._refuse(413, "the request is empty or too large")
                return
            try:
                request = _ChatRequest.model_validate_json(self.rfile.read(length))
            except ValidationError as exc:
                self._refuse(400, f"not a chat request: {exc.errors()[0]['msg']}")
                return
            if request.tools:
                self._refuse(400, "tool calls are not supported here; use response_format json_schema")
                return
            try:
                text, prompt_tokens, completion_tokens = engine.reply(request)
            except TooLong as exc:
                self._refuse(400, str(exc))
                return
            except Exception as exc:  # onnxruntime-genai raises RuntimeError with its own words
                said = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                self._refuse(400, f"the embedded model failed: {said}")  # the same request fails again
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-embedded-{time.time_ns()}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": engine.name,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "logprobs": None,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@cache
def serve(folder: Path) -> str:
    """The origin (http://127.0.0.1:PORT) of the model in `folder`, served once per process from a
    daemon thread on a loopback port nobody chose but the system."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Engine(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="embedded-writer", daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def available() -> bool:
    """Whether the runtime (the `writer` extra) is installed."""
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        return False
    return True
