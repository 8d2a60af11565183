"""Configuration from the environment or `.env` (names fixed by DESIGN.md; see .env.example).

A provider is used when it is configured; otherwise the offline default runs and the job says so.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True)

    data_dir: Path = Field(PROJECT_DIR / "data", alias="STORYBOT_DATA_DIR")

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_api_base: str = Field("https://discord.com/api/v10", alias="DISCORD_API_BASE")
    guild_ids: str = Field("", alias="STORYBOT_GUILD_IDS")
    allowed_channel_ids: str = Field("", alias="STORYBOT_ALLOWED_CHANNEL_IDS")
    approver_role_id: int | None = Field(None, alias="STORYBOT_APPROVER_ROLE_ID")

    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    llm_model: str = Field("gpt-4o-mini", alias="STORYBOT_LLM_MODEL")

    elevenlabs_api_key: SecretStr | None = Field(None, alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str | None = Field(None, alias="ELEVENLABS_BASE_URL")
    elevenlabs_voice_id: str | None = Field(None, alias="STORYBOT_ELEVENLABS_VOICE_ID")

    sdxl_model: str | None = Field(None, alias="STORYBOT_SDXL_MODEL")
    ltx_model: str | None = Field(None, alias="STORYBOT_LTX_MODEL")
    whisper_model: str | None = Field(None, alias="STORYBOT_WHISPER_MODEL")
    vision_model: str | None = Field(None, alias="STORYBOT_VISION_MODEL")
    gpu_backend: str = Field("local", alias="STORYBOT_GPU_BACKEND")
    redis_url: str | None = Field(None, alias="REDIS_URL")

    idea_feeds: str = Field("", alias="STORYBOT_IDEA_FEEDS")  # comma-separated RSS/Atom URLs

    upload_limit_bytes: int = Field(10 * 1024 * 1024, alias="STORYBOT_UPLOAD_LIMIT_BYTES", gt=0)
    video_preset: str = Field("veryfast", alias="STORYBOT_VIDEO_PRESET")
    video_crf: int = Field(21, alias="STORYBOT_VIDEO_CRF", ge=0, le=51)
    media_concurrency: int = Field(2, alias="STORYBOT_MEDIA_CONCURRENCY", ge=1)
    render_slots: int = Field(2, alias="STORYBOT_RENDER_SLOTS", ge=1)  # jobs running at once; others queue

    # the Discord bot
    delivery_channel_id: int | None = Field(None, alias="STORYBOT_DELIVERY_CHANNEL_ID")
    max_active_jobs_per_user: int = Field(2, alias="STORYBOT_MAX_ACTIVE_JOBS_PER_USER", ge=1)
    max_requests_per_hour: int = Field(6, alias="STORYBOT_MAX_REQUESTS_PER_HOUR", ge=1)


    @property
    def feed_urls(self) -> list[str]:
        return [u.strip() for u in self.idea_feeds.split(",") if u.strip()]


@cache
def get_settings() -> Settings:
    return Settings()
