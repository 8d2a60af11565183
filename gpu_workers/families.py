"""The four model families: how each loads its pipeline once and serves one request.

Only third-party ML code is imported here (torch, diffusers, transformers, faster-whisper, PyAV),
and only inside the worker process. Checked against diffusers 0.42, transformers 5, faster-whisper 1.2:
generators live on the pipeline's execution device (LTX's timestep-conditioned VAE draws decode
noise there), tiling/slicing are the VAE's own methods (called, never `hasattr`-skipped), and CPU
offload is used only when the card lacks room for the whole pipeline (`STORYBOT_GPU_OFFLOAD`).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gpu_workers.protocol import (
    OFFLOAD_MODES,
    ClipResult,
    Family,
    ImageResult,
    LtxParams,
    RecognisedWord,
    SdxlParams,
    Transcript,
    Verdict,
    VisionParams,
    WhisperParams,
)

log = logging.getLogger("storybot.gpu")
Progress = Callable[[int, int], None]  # (step, total); raises to cancel
GIB = 1 << 30
# Activations, VAE decode and the CUDA context on top of the weights (estimates; see docs/GPU.md).
HEADROOM = {"sdxl": 4 * GIB, "ltx": 8 * GIB, "vision": 3 * GIB}
VISION_MAX_PIXELS = 1024 * 1024  # the judge sees the whole frame, aspect kept, about 1 MP at most
LTX_CLASSES = {
    "LTXPipeline": "LTXImageToVideoPipeline",
    "LTXImageToVideoPipeline": "LTXImageToVideoPipeline",
    "LTXConditionPipeline": "LTXConditionPipeline",
}


def device_and_dtype() -> tuple[str, Any]:
    """bf16 (fp16 where bf16 is missing) on CUDA, float32 on CPU (half precision is slow or missing there)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "outofmemory" in text or "out of memory" in text


def is_fatal(exc: BaseException) -> bool:
    """A CUDA error other than OOM leaves the context unusable: the worker must exit, not serve failures."""
    text = str(exc).lower()
    return not is_oom(exc) and (
        "cuda error" in text
        or "illegal memory access" in text
        or "device-side assert" in text
        or "cublas_status" in text
    )


def free_memory() -> None:
    """After each request (and before retrying a smaller batch): return cached blocks to the card,
    so other workers sharing it can allocate."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def peak_bytes() -> int:
    """Peak memory of this worker: what torch allocated on the card, or the process's resident peak on CPU."""
    import resource

    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pick_offload(mode: str, free: int, weights: int, largest: int, headroom: int) -> str:
    """`auto`: everything on the card when it fits, else one model at a time (model offload), else
    layer by layer (sequential, slow but fits anything)."""
    if mode not in OFFLOAD_MODES:
        raise ValueError(f"STORYBOT_GPU_OFFLOAD must be one of {', '.join(OFFLOAD_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    if free >= weights + headroom:
        return "none"
    if free >= largest + headroom:
        return "model"
    return "sequential"


def _module_bytes(module: Any) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def place(pipe: Any, family: str, device: str, mode: str | None = None) -> dict[str, Any]:
    """Tiling (and slicing for SDXL batches) on the VAE, then the pipeline on the device or offloaded.
    Returns what was chosen, for the `ready` message and the smoke report."""
    import torch

    pipe.vae.enable_tiling()  # AttributeError here is wanted: a VAE without it would not fit at 1 MP
    if family == "sdxl":
        pipe.vae.enable_slicing()
    offload = "none"
    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
        sizes = [_module_bytes(m) for m in modules]
        offload = pick_offload(
            mode or os.environ.get("STORYBOT_GPU_OFFLOAD", "auto"),
            free,
            sum(sizes),
            max(sizes, default=0),
            HEADROOM.get(family, 4 * GIB),
        )
    if offload == "model":
        pipe.enable_model_cpu_offload()
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to(device)
    return {
        "device": str(pipe._execution_device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "offload": offload,
        "tiling": bool(pipe.vae.use_tiling),
        "slicing": bool(pipe.vae.use_slicing),
        "pipeline": type(pipe).__name__,
    }


def generators(pipe: Any, seeds: list[int]) -> list[Any]:
    """One generator per seed on the pipeline's execution device (under offload: the GPU the hooks
    move each model to), where the pipeline draws its noise."""
    import torch

    device = pipe._execution_device
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def _step_callback(progress: Progress, total: int, done: int = 0, per_step: int = 1) -> Callable[..., dict[str, Any]]:
    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(done + (step + 1) * per_step, total)
        return kwargs

    return on_step_end


def _from_pretrained(cls: Any, model: str, dtype: Any) -> Any:
    """Half-precision weights where the repo has them (`variant="fp16"`, safetensors); the plain
    files otherwise (a repo or folder without the variant)."""
    try:
        return cls.from_pretrained(model, dtype=dtype, variant="fp16", use_safetensors=True)
    except (ValueError, OSError) as exc:
        if "variant" not in str(exc) and "fp16" not in str(exc):
            raise
        log.info("no fp16 variant in %s; loading the plain weights", model)
        return cls.from_pretrained(model, dtype=dtype)


class Sdxl:
    def __init__(self, model: str) -> None:
        from diffusers import StableDiffusionXLPipeline

        self.device, dtype = device_and_dtype()
        pipe = _from_pretrained(StableDiffusionXLPipeline, model, dtype)
        pipe.set_progress_bar_config(disable=True)
        self.info = place(pipe, "sdxl", self.device)
        self.pipe = pipe

    def __call__(self, params: dict[str, Any], progress: Progress) -> ImageResult:
        p = SdxlParams.model_validate(params)
        negatives = p.negative_prompts if p.negative_prompts is not None else [p.negative_prompt] * len(p.prompts)
        if not len(p.prompts) == len(p.seeds) == len(p.outputs) == len(negatives):
            raise ValueError("prompts, seeds, negative prompts and outputs differ in length")
        n, batch, done = len(p.prompts), len(p.prompts), 0
        total = n * p.steps
        while done < n:
            part = slice(done, done + batch)
            try:
                images = self.pipe(
                    prompt=p.prompts[part],
                    negative_prompt=negatives[part],
                    width=p.width,
                    height=p.height,
                    num_inference_steps=p.steps,
                    guidance_scale=p.guidance,
                    generator=generators(self.pipe, p.seeds[part]),
                    callback_on_step_end=_step_callback(progress, total, done * p.steps, len(p.prompts[part])),
                ).images
            except Exception as exc:
                if not is_oom(exc) or batch == 1:
                    raise
                free_memory()
                batch //= 2  # the same seeds and prompts, fewer at a time
                log.warning("sdxl out of memory; retrying with batches of %d", batch)
                continue
            for image, out in zip(images, p.outputs[part], strict=True):
                image.save(out)
            done += len(images)
        return ImageResult(outputs=p.outputs, seeds=p.seeds, width=p.width, height=p.height, batch=batch)


def model_index(model: str) -> dict[str, Any]:
    """A diffusers folder's model_index.json (a local folder, or the local Hugging Face cache)."""
    path = Path(model) / "model_index.json"
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(model, "model_index.json"))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class Ltx:
    """LTX-Video image-to-video: the pipeline class named by the checkpoint's model_index.json;
    distilled checkpoints run with guidance 1 and their few steps."""

    DISTILLED_STEPS = 8

    def __init__(self, model: str) -> None:
        import diffusers

        self.device, dtype = device_and_dtype()
        declared = str(model_index(model).get("_class_name", "LTXPipeline"))
        if declared not in LTX_CLASSES:
            raise ValueError(f"{model} is a {declared}, not an LTX-Video pipeline")
        pipe = _from_pretrained(getattr(diffusers, LTX_CLASSES[declared]), model, dtype)
        pipe.set_progress_bar_config(disable=True)
        self.distilled = "distilled" in model.lower()
        self.info = {**place(pipe, "ltx", self.device), "distilled": self.distilled}
        self.pipe = pipe

    def _segment(
        self, p: LtxParams, image: Any, frames: int, seed: int, progress: Progress, done: int, total: int, steps: int
    ) -> list[Any]:
        kwargs: dict[str, Any] = dict(
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            width=p.width,
            height=p.height,
            num_frames=frames,
            frame_rate=p.fps,
            num_inference_steps=steps,
            guidance_scale=1.0 if self.distilled else p.guidance,
            decode_timestep=p.decode_timestep,
            decode_noise_scale=p.decode_noise_scale,
            generator=generators(self.pipe, [seed])[0],
            output_type="pil",
            callback_on_step_end=_step_callback(progress, total, done),
        )
        if type(self.pipe).__name__ == "LTXConditionPipeline":
            from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

            kwargs["conditions"] = [LTXVideoCondition(image=image, frame_index=0)]
        else:
            kwargs["image"] = image
        frames_out: list[Any] = self.pipe(**kwargs).frames[0]
        return frames_out

    def __call__(self, params: dict[str, Any], progress: Progress) -> ClipResult:
        from PIL import Image

        p = LtxParams.model_validate(params)
        if (p.num_frames - 1) % 8 or (p.max_frames - 1) % 8:
            raise ValueError(f"num_frames and max_frames must be 8k+1, got {p.num_frames} and {p.max_frames}")
        with Image.open(p.image) as img:
            image = img.convert("RGB").resize((p.width, p.height), Image.Resampling.LANCZOS)
        plan = segments(p.num_frames, p.max_frames)
        steps = min(p.steps, self.DISTILLED_STEPS) if self.distilled else p.steps
        total, frames = steps * len(plan), []
        for i, count in enumerate(plan):
            got = self._segment(p, image, count, p.seed + i, progress, i * steps, total, steps)
            frames += got if i == 0 else got[1:]  # a continuation starts on the previous last frame
            image = got[-1]
            free_memory()
        _write_mp4(frames, p.fps, Path(p.output))
        return ClipResult(
            output=p.output, frames=len(frames), fps=p.fps, width=p.width, height=p.height, segments=len(plan)
        )


def segments(total: int, cap: int) -> list[int]:
    """Frame counts (each 8k+1, at most `cap`) of the generations that together make `total` frames:
    each continuation repeats the previous segment's last frame, which is dropped when joined."""
    plan = [min(total, cap)]
    made = plan[0]
    while made < total:
        need = total - made + 1
        count = min(cap, 8 * math.ceil((need - 1) / 8) + 1)
        plan.append(count)
        made += count - 1
    return plan


def _write_mp4(frames: list[Any], fps: int, out: Path) -> None:
    """H.264 at CRF 16 through PyAV: an intermediate, fitted to the shot by the media engine."""
    import av

    tmp = out.with_name(f".{out.name}.part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "veryfast"})
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode(None))
    tmp.replace(out)


class Whisper:
    """faster-whisper: float16 on CUDA (needs the cu12 cuBLAS/cuDNN runtime, see docs/GPU.md), int8 on CPU."""

    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel

        self.device, _ = device_and_dtype()
        compute = "float16" if self.device == "cuda" else "int8"
        self.model = WhisperModel(model, device=self.device, compute_type=compute)
        self.info = {"device": self.device, "dtype": compute, "offload": "none"}

    def __call__(self, params: dict[str, Any], progress: Progress) -> Transcript:
        p = WhisperParams.model_validate(params)
        extra = {"max_new_tokens": p.max_new_tokens} if p.max_new_tokens else {}
        segments_, info = self.model.transcribe(
            p.audio,
            language=p.language,
            beam_size=p.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            temperature=0.0,
            **extra,
        )
        words = []
        for segment in segments_:  # a generator: decoding happens while iterating
            words += [
                RecognisedWord(
                    word=w.word.strip(),
                    start=round(float(w.start), 3),
                    end=round(float(w.end), 3),
                    probability=round(float(w.probability), 3),
                )
                for w in segment.words or []
            ]
            progress(min(int(segment.end), int(info.duration)), max(int(info.duration), 1))
        return Transcript(words=words, language=info.language, duration=round(float(info.duration), 3))


VERDICT_PROMPT = (
    "You check a keyframe for a short video against its shot description.\n"
    "Shot description: {prompt}\n{previous}"
    "Score 0-10 how well the picture shows the description (10: everything named is there and it looks good). "
    "List under missing the things the description names that the picture does not show, and under unwanted "
    "what the picture shows that it should not (text, watermarks, extra limbs, wrong objects).\n"
    "Answer with one JSON object only, no prose, like this example:\n"
    '{{"score": 4, "missing": ["lighthouse", "whale"], "unwanted": ["text"], "consistent": true}}'
)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def parse_verdict(text: str) -> Verdict:
    """The first JSON object in the judge's output that is a valid verdict; otherwise unparsed,
    with no invented scores (the caller then keeps the shot rather than regenerate on noise)."""
    for match in _JSON_OBJECT.finditer(text):
        try:
            data = json.loads(match.group(0))
            if not isinstance(data, dict) or not {"score", "adherence", "quality"} & data.keys():
                continue
            verdict = Verdict.model_validate(
                {**data, "parsed": True, "raw": text[:500], "critique": str(data.get("critique", ""))[:200]}
            )
            if verdict.value is not None:
                return verdict
        except (json.JSONDecodeError, ValidationError, TypeError, AttributeError):
            continue
    return Verdict(parsed=False, raw=text[:500])


def fit_pixels(size: tuple[int, int], cap: int = VISION_MAX_PIXELS) -> tuple[int, int]:
    """The size scaled down (never up), aspect kept, to at most `cap` pixels."""
    width, height = size
    scale = min(1.0, math.sqrt(cap / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


class Vision:
    """A VLM judge through transformers' image-text-to-text classes: Qwen2.5-VL by default (it sees
    the whole 9:16 frame at its own aspect), any model whose processor has a chat template, or a
    LLaVA-1.5 prompt (which centre-crops a 9:16 frame to its middle; see docs/GPU.md)."""

    def __init__(self, model: str) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device, dtype = device_and_dtype()
        self.dtype = dtype
        self.processor = AutoProcessor.from_pretrained(model)
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.info = {
            "device": self.device,
            "dtype": str(dtype).removeprefix("torch."),
            "offload": "none",
            "model_type": self.model.config.model_type,
            "chat_template": self.chat_template,
        }

    @property
    def chat_template(self) -> bool:
        return bool(getattr(self.processor, "chat_template", None))

    def prompt(self, question: str, images: int) -> str:
        content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
        if self.chat_template:
            return str(
                self.processor.apply_chat_template(
                    [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
                )
            )
        return "USER: " + "<image>\n" * images + question + " ASSISTANT:"

    def __call__(self, params: dict[str, Any], progress: Progress) -> Verdict:
        import torch
        from PIL import Image

        p = VisionParams.model_validate(params)
        paths = [p.image] + ([p.previous] if p.previous else [])
        images = []
        for path in paths:
            with Image.open(path) as img:
                images.append(img.convert("RGB").resize(fit_pixels(img.size), Image.Resampling.LANCZOS))
        previous = (
            "The second image is the previous shot: set consistent to whether this one matches its "
            "characters and style.\n"
            if p.previous
            else ""
        )
        prompt = self.prompt(VERDICT_PROMPT.format(prompt=p.prompt, previous=previous), len(images))
        # pixel values in the model's dtype (bf16 on CUDA); token ids stay integers
        inputs = self.processor(images=images, text=[prompt], return_tensors="pt").to(self.device, dtype=self.dtype)
        progress(0, 1)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=p.max_new_tokens, do_sample=False)
        text = self.processor.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        progress(1, 1)
        return parse_verdict(text)


Runner = Callable[[dict[str, Any], Progress], BaseModel]


def load(family: Family, model: str) -> Any:
    """Load a family's model once; a missing folder fails here with a clear message."""
    if not Path(model).exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise FileNotFoundError(f"no such model folder: {model}")
    runners: dict[str, Callable[[str], Any]] = {"sdxl": Sdxl, "ltx": Ltx, "whisper": Whisper, "vision": Vision}
    return runners[family](model)
