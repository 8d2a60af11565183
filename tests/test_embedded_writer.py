"""The embedded writer: onnxruntime-genai running an instruct model in this process, behind the same
OpenAI chat API every other writer speaks. The model here is a tiny random-weight Qwen2 built in the
test (transformers) and converted by onnxruntime-genai's own builder: real tokenizer, chat template,
ONNX graph and JSON-schema guidance, nonsense words. `models pull writer` is tested against a local
server speaking the hub's two routes (the tree listing with sizes and checksums, and resolve)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli import storybot
from tests.local_http import LocalServer, Reply, Request, local_server
from tools.llm import OfflineWriter, get_writer
from tools.llm.embedded import serve
from tools.llm.openai_writer import OpenAIWriter, script_chars
from tools.llm.schemas import ScriptDraft, StoryIdea
from tools.llm.usage import metered
from tools.llm.writer_model import DEFAULT
from tools.settings import Settings

IDEA = StoryIdea(title="t", logline="l", hook="h", score=0)
og = pytest.importorskip("onnxruntime_genai", reason="the writer extra: pip install -e '.[writer]'")

BUILD = """
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
import torch

torch.manual_seed(0)
out = sys.argv[1]
vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
fast.chat_template = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}"
)
config = Qwen2Config(
    vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=16384, tie_word_embeddings=False,
    eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"), pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
)
Qwen2ForCausalLM(config).save_pretrained(out)
fast.save_pretrained(out)
"""


@pytest.fixture(scope="module")
def tiny_writer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx_ir", reason="the writer extra: pip install -e '.[writer]'")
    pytest.importorskip("transformers", reason="the models extra")
    root = tmp_path_factory.mktemp("writer")
    hf, model = root / "hf", root / "tiny-qwen2-writer"
    subprocess.run([sys.executable, "-c", BUILD, str(hf)], check=True, capture_output=True, timeout=300)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxruntime_genai.models.builder",
            "-m",
            "tiny-qwen2",
            "-i",
            str(hf),
            "-o",
            str(model),
            "-p",
            "fp32",
            "-e",
            "cpu",
            "-c",
            str(root / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert (model / "genai_config.json").is_file()
    return model


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, STORYBOT_LOCAL_LLM_SERVERS="", **values)


def test_the_model_speaks_the_chat_api_with_json_schema_guidance(tiny_writer: Path) -> None:
    origin = serve(tiny_writer)
    listed = httpx.get(f"{origin}/v1/models").json()
    assert listed["data"][0]["id"] == "tiny-qwen2-writer"
    schema = ScriptDraft.model_json_schema()
    schema["properties"]["script"].update(minLength=10, maxLength=80)
    reply = httpx.post(
        f"{origin}/v1/chat/completions",
        json={
            "model": "tiny-qwen2-writer",
            "messages": [{"role": "system", "content": "Narrate."}, {"role": "user", "content": "A whale."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ScriptDraft", "schema": schema}},
            "max_tokens": 200,
        },
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    draft = ScriptDraft.model_validate_json(body["choices"][0]["message"]["content"])  # the guidance held
    assert 10 <= len(draft.script) <= 80 and body["usage"]["completion_tokens"] > 0
    tools = httpx.post(
        f"{origin}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
        timeout=30,
    )
    assert tools.status_code == 400 and "json_schema" in tools.json()["error"]["message"]


async def test_with_no_key_and_no_server_the_pulled_model_writes(tiny_writer: Path) -> None:
    writer = get_writer(settings(STORYBOT_WRITER_MODEL=str(tiny_writer)))
    assert isinstance(writer, OpenAIWriter) and writer.provider == "embedded:tiny-qwen2-writer"
    assert "on the embedded writer (onnxruntime-genai, in this process)" in (writer.notice("x") or "")
    with metered() as used:  # the whole writer: prompt, chat template, schema with length bounds, parse, clean
        script = await writer.script("A lighthouse keeper who befriends a lost whale", IDEA, 20)
    assert script and len(script) <= script_chars(20)[1]  # nonsense words, but inside the schema's bound
    assert sum(n for (provider, unit), n in used.items() if provider == writer.provider and unit == "completion_tokens")
    assert isinstance(get_writer(settings(STORYBOT_WRITER_MODEL=str(tiny_writer.parent / "none"))), OfflineWriter)


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class Hub:
    """The hub's tree listing and resolve routes for one model folder; `cut` drops a transfer once."""

    def __init__(self, files: dict[str, bytes], lfs: set[str]) -> None:
        self.files, self.lfs, self.cut = files, lfs, set[str]()
        self.server: LocalServer | None = None
        self.folder = f"{DEFAULT.folder}"

    def handle(self, request: Request) -> Reply:
        tree = f"/api/models/{DEFAULT.repo}/tree/{DEFAULT.revision}/{self.folder}"
        if request.path == tree:
            return Reply.json([self.entry(name) for name in self.files] + [{"type": "directory", "path": "x"}])
        prefix = f"/{DEFAULT.repo}/resolve/{DEFAULT.revision}/{self.folder}/"
        if not request.path.startswith(prefix) or request.path[len(prefix) :] not in self.files:
            return Reply(404, b"not found")
        name = request.path[len(prefix) :]
        data = self.files[name]
        ranged = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        start = int(ranged[1]) if ranged else 0
        headers = {"Content-Length": str(len(data) - start)}
        if ranged:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if name in self.cut:
            self.cut.discard(name)
            body = body[: len(body) // 2]
        return Reply(206 if ranged else 200, iter([body]), headers)

    def entry(self, name: str) -> dict[str, Any]:
        data = self.files[name]
        entry: dict[str, Any] = {
            "type": "file",
            "path": f"{self.folder}/{name}",
            "size": len(data),
            "oid": git_sha1(data),
        }
        if name in self.lfs:
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry


@pytest.fixture
def hub(tiny_writer: Path) -> Iterator[Hub]:
    files = {p.name: p.read_bytes() for p in tiny_writer.iterdir() if p.is_file()}
    served = Hub(files, lfs={n for n in files if n.startswith("model.onnx")})
    with local_server(served.handle) as server:
        served.server = server
        yield served


def test_models_pull_writer_resumes_checks_and_the_writer_then_uses_it(hub: Hub, tmp_path: Path) -> None:
    assert hub.server is not None
    target = tmp_path / "pulled"
    env = {"STORYBOT_HUB_URL": hub.server.url, "STORYBOT_WRITER_MODEL": str(target)}
    hub.cut.add("model.onnx.data")
    pulled = storybot("models", "pull", "writer", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == str(target) and "is ready" in pulled.stderr
    assert {p.name: p.read_bytes() for p in target.iterdir()} == hub.files
    asked = [r for r in hub.server.requests if r.path.endswith("/model.onnx.data")]
    assert [r.headers.get("Range") is not None for r in asked] == [False, True]  # resumed
    assert hub.server.requests[-1].path.endswith("/genai_config.json")  # last: a model only when whole
    assert get_writer(settings(STORYBOT_WRITER_MODEL=str(target))).provider == "embedded:pulled"


def test_models_pull_refuses_a_file_that_does_not_match_the_listing(hub: Hub, tmp_path: Path) -> None:
    entries = [hub.entry(name) for name in hub.files]  # the listing, for the true bytes
    good = hub.files["tokenizer.json"]
    hub.files["tokenizer.json"] = good.replace(b"im_end", b"im_END")  # what the server then sends instead
    assert len(hub.files["tokenizer.json"]) == len(good) and hub.files["tokenizer.json"] != good

    def handle(request: Request) -> Reply:
        return Reply.json(entries) if request.path.startswith("/api/models/") else hub.handle(request)

    target = tmp_path / "pulled"
    with local_server(handle) as server:
        env = {"STORYBOT_HUB_URL": server.url, "STORYBOT_WRITER_MODEL": str(target)}
        result = storybot("models", "pull", "writer", env=env)
    assert result.returncode == 1, result.stderr
    assert "refused tokenizer.json: its checksum does not match the index" in result.stderr.strip().splitlines()[-1]
    assert not (target / "tokenizer.json").exists() and not (target / "genai_config.json").exists()
    assert not list(target.glob(".*.part"))
    assert storybot("models", "pull", "nope", env=env).returncode == 2
