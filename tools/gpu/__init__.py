"""The GPU client: nodes call `run(family, params)`; the backend (local subprocesses or Celery)
comes from configuration. Heavy ML packages are never imported in this process; the request and
result models come from gpu_workers.protocol, re-exported here so the graph imports tools only."""

from __future__ import annotations

from gpu_workers.protocol import (
    ClipResult,
    Family,
    ImageResult,
    Look,
    LtxParams,
    RecognisedWord,
    SdxlParams,
    Transcript,
    Verdict,
    Verdicts,
    VisionParams,
    WhisperParams,
)
from tools.gpu.client import GpuClient, ProgressFn
from tools.gpu.errors import GpuError
from tools.settings import Settings

__all__ = [
    "ClipResult",
    "Family",
    "GpuClient",
    "GpuError",
    "ImageResult",
    "Look",
    "LtxParams",
    "ProgressFn",
    "RecognisedWord",
    "SdxlParams",
    "Transcript",
    "Verdict",
    "Verdicts",
    "VisionParams",
    "WhisperParams",
    "make_client",
    "models_of",
    "profile_policy",
    "vision_on_api",
]


def vision_on_api(settings: Settings) -> bool:
    """The vision judge is an OpenAI-compatible API (not a GPU worker): chosen, or a vision URL/key is set."""
    if settings.vision_provider != "auto":
        return settings.vision_provider == "openai"
    return bool(settings.vision_base_url or settings.vision_api_key)


def models_of(settings: Settings) -> dict[Family, str]:
    vision = None if vision_on_api(settings) else settings.vision_model
    configured: dict[Family, str | None] = {
        "sdxl": settings.sdxl_model,
        "ltx": settings.ltx_model,
        "whisper": settings.whisper_model,
        "vision": vision,
    }
    return {family: model for family, model in configured.items() if model}


def make_client(settings: Settings) -> GpuClient:
    """The configured backend; nothing starts until a stage sends its first request."""
    if settings.gpu_backend == "celery":
        from tools.gpu.celery_backend import CeleryBackend

        if not settings.redis_url:
            raise GpuError("STORYBOT_GPU_BACKEND=celery needs REDIS_URL", "load")
        from tools.storage import get_storage, is_remote

        return CeleryBackend(
            models_of(settings),
            settings.redis_url,
            request_timeout=settings.gpu_request_timeout,
            storage=get_storage(settings) if is_remote(settings) else None,
        )
    if settings.gpu_backend != "local":
        raise GpuError(f"unknown STORYBOT_GPU_BACKEND {settings.gpu_backend!r} (use local or celery)", "load")
    from tools.gpu.local import LocalBackend, parse_devices

    offload, env, lease = profile_policy(settings)
    return LocalBackend(
        models_of(settings),
        load_timeout=settings.gpu_load_timeout,
        request_timeout=settings.gpu_request_timeout,
        retries=settings.gpu_retries,
        queue_size=settings.gpu_queue_size,
        devices=parse_devices(settings.gpu_devices),
        offload=offload,
        idle_unload=settings.gpu_idle_unload,
        hub_url=settings.hub_url,
        lease=lease,
        env=env,
    )


def profile_policy(settings: Settings, total_bytes: int | None = None) -> tuple[str, dict[str, str], bool]:
    """(offload, worker env, lease) from the card's profile; a setting given explicitly wins."""
    from tools.gpu.profiles import resolve_profile

    profile = resolve_profile(settings.gpu_profile, total_bytes)
    given = settings.model_fields_set
    env: dict[str, str] = {
        "STORYBOT_LTX_FRAMEWISE": settings.ltx_framewise,
        "STORYBOT_VAE_TILING": settings.vae_tiling,
        "STORYBOT_VISION_OFFLOAD": settings.vision_offload,
    }
    if profile is None:
        return str(settings.gpu_offload), env, False
    if "ltx_framewise" not in given:
        env["STORYBOT_LTX_FRAMEWISE"] = profile.ltx_framewise
    if "vae_tiling" not in given:
        env["STORYBOT_VAE_TILING"] = profile.vae_tiling
    if "vision_offload" not in given:
        env["STORYBOT_VISION_OFFLOAD"] = profile.vision_offload
    offload = settings.gpu_offload if "gpu_offload" in given else profile.offload
    return offload, env | {"STORYBOT_GPU_PROFILE": profile.name}, profile.lease
