"""Configuration from the environment or `.env` (names fixed by DESIGN.md; see .env.example).

A provider is used when it is configured; otherwise the offline default runs and the job says so.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _json_or_empty(value: Any) -> Any:
    """An empty variable (as .env.example leaves it) is no value; text is JSON."""
    if isinstance(value, str):
        return json.loads(value) if value.strip() else {}
    return value


def _blank_none(value: Any) -> Any:
    """An empty variable (as .env.example leaves it) is unset, not a path to "." or a bad number."""
    return None if isinstance(value, str) and not value.strip() else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(PROJECT_DIR / "data", alias="STORYBOT_DATA_DIR")
    # unset: SQLite files under the data folder (one box, no services); postgresql://... for several
    database_url: Annotated[SecretStr | None, BeforeValidator(_blank_none)] = Field(None, alias="STORYBOT_DATABASE_URL")
    # unset: files stay in the data folder; s3://bucket/prefix: artifacts in object storage (tools/storage)
    storage_url: Annotated[str | None, BeforeValidator(_blank_none)] = Field(None, alias="STORYBOT_STORAGE_URL")
    aws_endpoint_url: Annotated[str | None, BeforeValidator(_blank_none)] = Field(None, alias="AWS_ENDPOINT_URL")
    aws_access_key_id: Annotated[SecretStr | None, BeforeValidator(_blank_none)] = Field(
        None, alias="AWS_ACCESS_KEY_ID"
    )
    aws_secret_access_key: Annotated[SecretStr | None, BeforeValidator(_blank_none)] = Field(
        None, alias="AWS_SECRET_ACCESS_KEY"
    )
    aws_region: Annotated[str | None, BeforeValidator(_blank_none)] = Field(None, alias="AWS_REGION")

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_api_base: str = Field("https://discord.com/api/v10", alias="DISCORD_API_BASE")
    guild_ids: str = Field("", alias="STORYBOT_GUILD_IDS")
    allowed_channel_ids: str = Field("", alias="STORYBOT_ALLOWED_CHANNEL_IDS")
    approver_role_id: Annotated[int | None, BeforeValidator(_blank_none)] = Field(
        None, alias="STORYBOT_APPROVER_ROLE_ID"
    )

    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    llm_model: str = Field("gpt-4o-mini", alias="STORYBOT_LLM_MODEL")
    # without a key or base URL: local servers asked for a model (kind=URL,...; empty turns it off)
    local_llm_servers: str = Field(
        "ollama=http://127.0.0.1:11434,lmstudio=http://127.0.0.1:1234,llamacpp=http://127.0.0.1:8080",
        alias="STORYBOT_LOCAL_LLM_SERVERS",
    )
    # while no server is in use (or a found one is): asked again at most this often, when a job step starts
    local_llm_recheck: float = Field(30.0, alias="STORYBOT_LOCAL_LLM_RECHECK", ge=0)
    # the embedded writer (the `writer` extra): an onnxruntime-genai model folder; unset: the pulled default
    writer_model: Path | None = Field(None, alias="STORYBOT_WRITER_MODEL")
    hub_url: str = Field("https://huggingface.co", alias="STORYBOT_HUB_URL")  # where `models pull writer` fetches

    elevenlabs_api_key: SecretStr | None = Field(None, alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str | None = Field(None, alias="ELEVENLABS_BASE_URL")
    elevenlabs_voice_id: str | None = Field(None, alias="STORYBOT_ELEVENLABS_VOICE_ID")
    voice: str | None = Field(None, alias="STORYBOT_VOICE")  # default voice name, e.g. piper:en_US-joe-medium
    piper_voices_dir: Path | None = Field(None, alias="STORYBOT_PIPER_VOICES_DIR")  # NAME.onnx + NAME.onnx.json
    # where Piper voices are downloaded from on first use (the repository's file layout; empty: never)
    piper_voices_url: str = Field(
        "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0", alias="STORYBOT_PIPER_VOICES_URL"
    )
    edge_wss_url: str | None = Field(None, alias="STORYBOT_EDGE_WSS_URL")  # another endpoint speaking Edge's protocol

    sdxl_model: str | None = Field(None, alias="STORYBOT_SDXL_MODEL")
    ltx_model: str | None = Field(None, alias="STORYBOT_LTX_MODEL")
    whisper_model: str | None = Field(None, alias="STORYBOT_WHISPER_MODEL")
    vision_model: str | None = Field(None, alias="STORYBOT_VISION_MODEL")
    gpu_backend: str = Field("local", alias="STORYBOT_GPU_BACKEND")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    # GPU stages (docs/GPU.md): time limits, retries, queue bound, steps, vision guidance
    gpu_load_timeout: float = Field(600, alias="STORYBOT_GPU_LOAD_TIMEOUT", gt=0)  # seconds to load a model
    gpu_request_timeout: float = Field(1800, alias="STORYBOT_GPU_REQUEST_TIMEOUT", gt=0)  # seconds per request
    # seconds any one stage may run, all its retries and providers together; past it the stage fails
    # and the job can be resumed (a provider that trickles or never ends cannot hold a job for ever)
    stage_timeout: float = Field(7200, alias="STORYBOT_STAGE_TIMEOUT", gt=0)
    gpu_retries: int = Field(2, alias="STORYBOT_GPU_RETRIES", ge=0, le=5)  # after a worker crash
    gpu_queue_size: int = Field(16, alias="STORYBOT_GPU_QUEUE_SIZE", ge=1)  # requests waiting per local worker
    gpu_size_divisor: int = Field(1, alias="STORYBOT_GPU_SIZE_DIVISOR", ge=1)  # >1 shrinks native sizes (tests)
    sdxl_steps: int = Field(30, alias="STORYBOT_SDXL_STEPS", ge=1)
    sdxl_batch: int = Field(4, alias="STORYBOT_SDXL_BATCH", ge=1)  # shots per SDXL call
    sdxl_negative_prompt: str = Field(
        "blurry, low quality, text, watermark, deformed, extra limbs", alias="STORYBOT_SDXL_NEGATIVE_PROMPT"
    )
    ltx_steps: int = Field(30, alias="STORYBOT_LTX_STEPS", ge=1)
    ltx_max_frames: int = Field(121, alias="STORYBOT_LTX_MAX_FRAMES", ge=9)  # per generation; longer shots extended
    ltx_guidance: float = Field(3.0, alias="STORYBOT_LTX_GUIDANCE", ge=1)  # distilled checkpoints run with 1
    gpu_devices: str = Field("", alias="STORYBOT_GPU_DEVICES")  # sdxl=0,ltx=1,... → CUDA_VISIBLE_DEVICES per worker
    gpu_offload: Literal["auto", "none", "model", "sequential"] = Field("auto", alias="STORYBOT_GPU_OFFLOAD")
    ltx_distilled: Literal["auto", "on", "off"] = Field("auto", alias="STORYBOT_LTX_DISTILLED")  # auto: from the name
    ltx_framewise: Literal["auto", "on", "off"] = Field("auto", alias="STORYBOT_LTX_FRAMEWISE")  # temporal VAE tiling
    vae_tiling: Literal["auto", "on", "off"] = Field("auto", alias="STORYBOT_VAE_TILING")  # spatial; auto: when short
    gpu_profile: Literal["auto", "none", "24gb", "48gb", "80gb"] = Field("auto", alias="STORYBOT_GPU_PROFILE")
    vision_offload: Literal["none", "auto"] = Field("none", alias="STORYBOT_VISION_OFFLOAD")  # device_map if short
    gpu_idle_unload: float = Field(0, alias="STORYBOT_GPU_IDLE_UNLOAD", ge=0)  # seconds idle before unloading (0 never)
    whisper_device: Literal["auto", "cuda", "cpu"] = Field("auto", alias="STORYBOT_WHISPER_DEVICE")  # CUDA failing: CPU
    whisper_beam_size: int = Field(5, alias="STORYBOT_WHISPER_BEAM_SIZE", ge=1)
    whisper_max_new_tokens: int | None = Field(None, alias="STORYBOT_WHISPER_MAX_NEW_TOKENS", ge=1)
    vision_threshold: float = Field(6.0, alias="STORYBOT_VISION_THRESHOLD", ge=0, le=10)
    vision_rounds: int = Field(2, alias="STORYBOT_VISION_ROUNDS", ge=0, le=5)  # regenerations per shot
    vision_max_new_tokens: int = Field(120, alias="STORYBOT_VISION_MAX_NEW_TOKENS", ge=8)
    vision_batch: int = Field(8, alias="STORYBOT_VISION_BATCH", ge=1, le=64)  # keyframes judged at once
    # the vision judge: `gpu` (STORYBOT_VISION_MODEL on a GPU worker) or `openai` (an OpenAI-compatible
    # vision model named by STORYBOT_VISION_MODEL); auto picks openai when a vision base URL or key is set
    vision_provider: Literal["auto", "gpu", "openai"] = Field("auto", alias="STORYBOT_VISION_PROVIDER")
    vision_base_url: str | None = Field(None, alias="STORYBOT_VISION_BASE_URL")  # falls back to OPENAI_BASE_URL
    vision_api_key: SecretStr | None = Field(None, alias="STORYBOT_VISION_API_KEY")  # falls back to OPENAI_API_KEY
    vision_timeout: float = Field(120, alias="STORYBOT_VISION_TIMEOUT", gt=0)  # seconds per judged picture

    # visual sources (tools/visuals): stock footage and a hosted Images API
    pexels_api_key: SecretStr | None = Field(None, alias="PEXELS_API_KEY")
    pexels_base_url: str = Field("https://api.pexels.com", alias="PEXELS_BASE_URL")
    pixabay_api_key: SecretStr | None = Field(None, alias="PIXABAY_API_KEY")
    pixabay_base_url: str = Field("https://pixabay.com", alias="PIXABAY_BASE_URL")
    image_model: str | None = Field(None, alias="STORYBOT_IMAGE_MODEL")
    image_base_url: str | None = Field(None, alias="STORYBOT_IMAGE_BASE_URL")  # else OPENAI_BASE_URL
    image_api_key: SecretStr | None = Field(None, alias="STORYBOT_IMAGE_API_KEY")  # else OPENAI_API_KEY

    idea_feeds: str = Field("", alias="STORYBOT_IDEA_FEEDS")  # comma-separated RSS/Atom URLs

    # online providers (docs/PROVIDERS.md)
    llm_structured_method: Literal["json_schema", "function_calling", "json_mode"] = Field(
        "json_schema", alias="STORYBOT_LLM_STRUCTURED_METHOD"
    )  # the first tried; a server that refuses it falls back
    elevenlabs_model_id: str = Field("eleven_multilingual_v2", alias="STORYBOT_ELEVENLABS_MODEL_ID")
    elevenlabs_voice_settings: Annotated[dict[str, float | bool], NoDecode, BeforeValidator(_json_or_empty)] = Field(
        default_factory=dict, alias="STORYBOT_ELEVENLABS_VOICE_SETTINGS"
    )  # JSON: {"stability": 0.5, ...}
    idea_subreddits: str = Field("", alias="STORYBOT_IDEA_SUBREDDITS")  # comma-separated, e.g. WritingPrompts
    reddit_base_url: str = Field("https://www.reddit.com", alias="STORYBOT_REDDIT_BASE_URL")
    user_agent: str = Field(
        "storybot/0.1 (short story videos; +https://github.com/storybot)", alias="STORYBOT_USER_AGENT"
    )
    provider_retries: int = Field(4, alias="STORYBOT_PROVIDER_RETRIES", ge=0, le=10)  # after the first attempt

    upload_limit_bytes: int = Field(10 * 1024 * 1024, alias="STORYBOT_UPLOAD_LIMIT_BYTES", gt=0)
    video_preset: str = Field("veryfast", alias="STORYBOT_VIDEO_PRESET")
    video_crf: int = Field(21, alias="STORYBOT_VIDEO_CRF", ge=0, le=51)
    media_concurrency: int = Field(2, alias="STORYBOT_MEDIA_CONCURRENCY", ge=1)
    render_slots: int = Field(2, alias="STORYBOT_RENDER_SLOTS", ge=1)  # jobs running at once; others queue

    # the Discord bot
    delivery_channel_id: Annotated[int | None, BeforeValidator(_blank_none)] = Field(
        None, alias="STORYBOT_DELIVERY_CHANNEL_ID"
    )
    max_active_jobs_per_user: int = Field(2, alias="STORYBOT_MAX_ACTIVE_JOBS_PER_USER", ge=1)
    max_requests_per_hour: int = Field(6, alias="STORYBOT_MAX_REQUESTS_PER_HOUR", ge=1)
    # signed links to full-quality files, served by `storybot bot` (bot/links.py)
    public_url: str | None = Field(None, alias="STORYBOT_PUBLIC_URL")  # how players reach the HTTP server
    http_host: str = Field("127.0.0.1", alias="STORYBOT_HTTP_HOST")
    http_port: int = Field(8080, alias="STORYBOT_HTTP_PORT", ge=0, le=65535)
    link_secret: SecretStr | None = Field(None, alias="STORYBOT_LINK_SECRET")  # unset: generated under the data folder
    link_ttl: int = Field(7 * 24 * 3600, alias="STORYBOT_LINK_TTL", ge=60)  # seconds a link stays valid
    # the service (`storybot serve`: REST, SSE, webhooks, MCP, job pages; service/)
    webhook_allow_private: bool = Field(False, alias="STORYBOT_WEBHOOK_ALLOW_PRIVATE")  # tests: loopback hooks
    webhook_attempts: int = Field(6, alias="STORYBOT_WEBHOOK_ATTEMPTS", ge=1, le=20)  # tries per delivery
    webhook_backoff: float = Field(2.0, alias="STORYBOT_WEBHOOK_BACKOFF", gt=0)  # seconds before the 2nd try, doubling

    # publishing (tools/publish): accounts from the environment override `storybot accounts add`
    youtube_client_id: str | None = Field(None, alias="STORYBOT_YOUTUBE_CLIENT_ID")
    youtube_client_secret: SecretStr | None = Field(None, alias="STORYBOT_YOUTUBE_CLIENT_SECRET")
    youtube_refresh_token: SecretStr | None = Field(None, alias="STORYBOT_YOUTUBE_REFRESH_TOKEN")
    youtube_base_url: str = Field("https://www.googleapis.com", alias="STORYBOT_YOUTUBE_BASE_URL")
    google_token_url: str = Field("https://oauth2.googleapis.com/token", alias="STORYBOT_GOOGLE_TOKEN_URL")
    tiktok_access_token: SecretStr | None = Field(None, alias="STORYBOT_TIKTOK_ACCESS_TOKEN")
    tiktok_base_url: str = Field("https://open.tiktokapis.com", alias="STORYBOT_TIKTOK_BASE_URL")
    tiktok_client_key: str | None = Field(None, alias="STORYBOT_TIKTOK_CLIENT_KEY")  # refreshes stored tokens
    tiktok_client_secret: SecretStr | None = Field(None, alias="STORYBOT_TIKTOK_CLIENT_SECRET")
    instagram_access_token: SecretStr | None = Field(None, alias="STORYBOT_INSTAGRAM_ACCESS_TOKEN")
    instagram_user_id: str | None = Field(None, alias="STORYBOT_INSTAGRAM_USER_ID")
    instagram_base_url: str = Field("https://graph.facebook.com/v23.0", alias="STORYBOT_INSTAGRAM_BASE_URL")
    instagram_upload_base_url: str = Field(
        "https://rupload.facebook.com/ig-api-upload/v23.0", alias="STORYBOT_INSTAGRAM_UPLOAD_BASE_URL"
    )
    publisher_role_id: Annotated[int | None, BeforeValidator(_blank_none)] = Field(
        None, alias="STORYBOT_PUBLISHER_ROLE_ID"
    )  # may publish others' videos
    # YouTube upload chunk: a multiple of 256 KiB (Google's rule); small values make tests resumable
    publish_chunk_bytes: int = Field(8 * 1024 * 1024, alias="STORYBOT_PUBLISH_CHUNK_BYTES", ge=256 * 1024)
    publish_poll_seconds: float = Field(5.0, alias="STORYBOT_PUBLISH_POLL_SECONDS", gt=0)  # processing status
    publish_timeout: float = Field(1800, alias="STORYBOT_PUBLISH_TIMEOUT", gt=0)  # seconds to wait for processing
    # C2PA provenance (tools/provenance): the user's signing certificate chain (PEM) and key
    c2pa_cert: Annotated[Path | None, BeforeValidator(_blank_none)] = Field(None, alias="STORYBOT_C2PA_CERT")
    c2pa_key: Annotated[Path | None, BeforeValidator(_blank_none)] = Field(None, alias="STORYBOT_C2PA_KEY")

    @property
    def feed_urls(self) -> list[str]:
        return [u.strip() for u in self.idea_feeds.split(",") if u.strip()]

    @property
    def subreddits(self) -> list[str]:
        return [u.strip() for u in self.idea_subreddits.split(",") if u.strip()]


@cache
def get_settings() -> Settings:
    return Settings()
