"""The four model families: how each loads its pipeline once and serves one request.

Only third-party ML code is imported here (torch, diffusers, transformers, faster-whisper, PyAV),
and only inside the worker process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gpu_workers.protocol import Family, LtxParams, SdxlParams, Verdict, VisionParams, WhisperParams

Progress = Callable[[int, int], None]  # (step, total); raises to cancel


def device_and_dtype() -> tuple[str, Any]:
    """fp16 (bf16 where supported) on CUDA, float32 on CPU (half precision is slow or missing there)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def _memory_savers(pipe: Any, device: str) -> Any:
    """On CUDA: VAE tiling/slicing and CPU offload of idle parts, so SDXL and LTX fit in 12-16 GB."""
    if device != "cuda":
        return pipe.to(device)
    for name in ("enable_vae_tiling", "enable_vae_slicing"):
        if hasattr(pipe, name):
            getattr(pipe, name)()
    pipe.enable_model_cpu_offload()
    return pipe


def _step_callback(progress: Progress, total: int) -> Callable[..., dict[str, Any]]:
    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(step + 1, total)
        return kwargs

    return on_step_end


class Sdxl:
    def __init__(self, model: str) -> None:
        from diffusers import StableDiffusionXLPipeline

        self.device, dtype = device_and_dtype()
        pipe = StableDiffusionXLPipeline.from_pretrained(model, torch_dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = _memory_savers(pipe, self.device)

    def __call__(self, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        import torch

        p = SdxlParams.model_validate(params)
        negatives = p.negative_prompts if p.negative_prompts is not None else [p.negative_prompt] * len(p.prompts)
        if not len(p.prompts) == len(p.seeds) == len(p.outputs) == len(negatives):
            raise ValueError("prompts, seeds, negative prompts and outputs differ in length")
        images = self.pipe(
            prompt=p.prompts, negative_prompt=negatives, width=p.width, height=p.height,
            num_inference_steps=p.steps, guidance_scale=p.guidance,
            generator=[torch.Generator("cpu").manual_seed(s) for s in p.seeds],
            callback_on_step_end=_step_callback(progress, p.steps)).images
        for image, out in zip(images, p.outputs, strict=True):
            image.save(out)
        return {"outputs": p.outputs, "seeds": p.seeds, "width": p.width, "height": p.height}


class Ltx:
    def __init__(self, model: str) -> None:
        from diffusers import LTXImageToVideoPipeline

        self.device, dtype = device_and_dtype()
        pipe = LTXImageToVideoPipeline.from_pretrained(model, torch_dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = _memory_savers(pipe, self.device)

    def __call__(self, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        import torch
        from PIL import Image

        p = LtxParams.model_validate(params)
        if (p.num_frames - 1) % 8:
            raise ValueError(f"num_frames must be 8k+1, got {p.num_frames}")
        with Image.open(p.image) as img:
            image = img.convert("RGB").resize((p.width, p.height), Image.Resampling.LANCZOS)
        frames = self.pipe(
            image=image, prompt=p.prompt, negative_prompt=p.negative_prompt, width=p.width, height=p.height,
            num_frames=p.num_frames, frame_rate=p.fps, num_inference_steps=p.steps,
            generator=torch.Generator("cpu").manual_seed(p.seed), output_type="pil",
            callback_on_step_end=_step_callback(progress, p.steps)).frames[0]
        _write_mp4(frames, p.fps, Path(p.output))
        return {"output": p.output, "frames": len(frames), "fps": p.fps, "width": p.width, "height": p.height}


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
    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel

        self.device, _ = device_and_dtype()
        self.model = WhisperModel(model, device=self.device,
                                  compute_type="float16" if self.device == "cuda" else "int8")

    def __call__(self, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        p = WhisperParams.model_validate(params)
        extra = {"max_new_tokens": p.max_new_tokens} if p.max_new_tokens else {}
        segments, info = self.model.transcribe(p.audio, language=p.language, beam_size=p.beam_size,
                                               word_timestamps=True, condition_on_previous_text=False,
                                               temperature=0.0, **extra)
        words = []
        for segment in segments:  # a generator: decoding happens while iterating
            words += [{"word": w.word.strip(), "start": round(float(w.start), 3), "end": round(float(w.end), 3),
                       "probability": round(float(w.probability), 3)} for w in segment.words or []]
            progress(min(int(segment.end), int(info.duration)), max(int(info.duration), 1))
        return {"words": words, "language": info.language, "duration": round(float(info.duration), 3)}


VERDICT_PROMPT = (
    "You judge a keyframe for a short video. Shot prompt: {prompt}\n{previous}"
    "Answer with one JSON object only, no prose: "
    '{{"adherence": 0-10, "quality": 0-10, "critique": "one line", "consistent": true|false}}'
)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def parse_verdict(text: str) -> Verdict:
    """The first JSON object in the model's output that is a valid verdict; otherwise unparsed,
    with no invented scores (the caller then keeps the shot rather than regenerate on noise)."""
    for match in _JSON_OBJECT.finditer(text):
        try:
            data = json.loads(match.group(0))
            if not isinstance(data, dict) or not {"adherence", "quality"} & data.keys():
                continue
            return Verdict.model_validate({**data, "parsed": True, "raw": text[:500],
                                           "critique": str(data.get("critique", ""))[:200]})
        except (json.JSONDecodeError, ValidationError, TypeError, AttributeError):
            continue
    return Verdict(parsed=False, raw=text[:500])


class Vision:
    """A LLaVA-family VLM through transformers' image-text-to-text classes."""

    def __init__(self, model: str) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device, dtype = device_and_dtype()
        self.processor = AutoProcessor.from_pretrained(model)
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).to(self.device).eval()

    def _prompt(self, question: str, images: int) -> str:
        content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
        if getattr(self.processor, "chat_template", None):
            return str(self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                          add_generation_prompt=True))
        return "USER: " + "<image>\n" * images + question + " ASSISTANT:"

    def __call__(self, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        import torch
        from PIL import Image

        p = VisionParams.model_validate(params)
        paths = [p.image] + ([p.previous] if p.previous else [])
        images = [Image.open(path).convert("RGB") for path in paths]
        previous = ("The second image is the previous shot: say whether this one is consistent with it.\n"
                    if p.previous else "")
        prompt = self._prompt(VERDICT_PROMPT.format(prompt=p.prompt, previous=previous), len(images))
        inputs = self.processor(images=images, text=prompt, return_tensors="pt").to(self.device)
        progress(0, 1)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=p.max_new_tokens, do_sample=False)
        text = self.processor.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        progress(1, 1)
        return parse_verdict(text).model_dump()


def load(family: Family, model: str) -> Callable[[dict[str, Any], Progress], dict[str, Any]]:
    """Load a family's model once; a missing folder fails here with a clear message."""
    if not Path(model).exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise FileNotFoundError(f"no such model folder: {model}")
    runners: dict[str, Callable[[str], Callable[[dict[str, Any], Progress], dict[str, Any]]]] = {
        "sdxl": Sdxl, "ltx": Ltx, "whisper": Whisper, "vision": Vision}
    return runners[family](model)
