"""The keyframe judge on a VLM: the prompt and the verdict parser are shared with the API judge
(tools.vision.verdict), so both answer the same `Verdict` from the same question."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from gpu_workers.families.device import GIB, HEADROOM, Progress, device_and_dtype, free_memory, is_oom, log
from gpu_workers.protocol import Look, Verdict, Verdicts, VisionParams
from tools.vision.verdict import fit_pixels, parse_verdict, verdict_prompt


class MissingDependency(ImportError):
    """A package the model's processor needs is absent or unusable: the load fails with the fix."""


def matching_torchvision(torch_version: str) -> str:
    """The pip command for torchvision's release for a torch 2.x release (2.11 → 0.26, 2.13 → 0.28),
    from the same build's index (`+cpu`, `+cu130`): only that build loads its operators."""
    base, _, local = torch_version.partition("+")
    major, minor = (int(x) for x in base.split(".")[:2])
    release = f"torchvision==0.{minor + 15}.*" if major == 2 else "torchvision"
    index = f" --index-url https://download.pytorch.org/whl/{local}" if local else ""
    return f"pip install '{release}'{index}"


def needs_torchvision(model_type: str) -> bool:
    """transformers' Qwen-VL image and video processors import torchvision unconditionally."""
    return model_type.startswith("qwen") and "_vl" in model_type


def torchvision_problem(model_type: str, torch_version: str) -> str | None:
    """One line naming the fix when torchvision is missing (and the model needs it) or installed but
    unusable (a build for another torch breaks every transformers image processor, so always)."""
    fix = matching_torchvision(torch_version)
    if importlib.util.find_spec("torchvision") is None:
        if needs_torchvision(model_type):
            return f"the {model_type} processor needs torchvision, which is not installed: {fix}"
        return None
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # a CUDA build on a CPU torch fails with RuntimeError, not ImportError
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        return f"torchvision is installed but does not load against torch {torch_version} ({reason}): {fix}"
    return None


VISION_OFFLOAD = ("none", "auto")


def vision_placement(mode: str, device: str, free: int, weights: int, headroom: int) -> str:
    """`none`: the whole model on the card. `auto` (the lease profiles): on CUDA, when the weights and
    headroom do not fit in free memory, accelerate's `device_map="auto"` keeps what fits on the card
    and the rest in CPU memory (slower verdicts, no out-of-memory at load)."""
    if mode not in VISION_OFFLOAD:
        raise ValueError(f"STORYBOT_VISION_OFFLOAD must be one of {', '.join(VISION_OFFLOAD)}, not {mode!r}")
    if mode == "auto" and device == "cuda" and free < weights + headroom:
        return "device_map"
    return "none"


def weights_bytes(model: str) -> int:
    """The safetensors in a local folder (0 for a hub id: then nothing is offloaded)."""
    folder = Path(model)
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) if folder.is_dir() else 0


class Vision:
    """transformers' image-text-to-text classes: Qwen2.5-VL by default (it sees the whole 9:16 frame
    at its own aspect), any model whose processor has a chat template, or a LLaVA-1.5 prompt (which
    centre-crops a 9:16 frame to its middle; see docs/GPU.md)."""

    def __init__(self, model: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        model_type = str(AutoConfig.from_pretrained(model).model_type)
        if problem := torchvision_problem(model_type, torch.__version__):
            raise MissingDependency(problem)
        self.device, dtype = device_and_dtype()
        self.dtype = dtype
        self.processor = AutoProcessor.from_pretrained(model)
        # a decoder generates after the prompt's last token: batched prompts are padded on the left
        self.processor.tokenizer.padding_side = "left"
        free = torch.cuda.mem_get_info()[0] if self.device == "cuda" else 0
        offload = vision_placement(
            os.environ.get("STORYBOT_VISION_OFFLOAD", "none") or "none",
            self.device,
            free,
            weights_bytes(model),
            HEADROOM["vision"],
        )
        if offload == "device_map":
            budget = max(free - HEADROOM["vision"], GIB)
            log.info(
                "vision: %s does not fit beside the headroom; device_map with %d MiB on the card", model, budget >> 20
            )
            self.model = AutoModelForImageTextToText.from_pretrained(
                model, dtype=dtype, device_map="auto", max_memory={0: budget, "cpu": 256 * GIB}
            ).eval()
        else:
            self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.info = {
            "device": self.device,
            "dtype": str(dtype).removeprefix("torch."),
            "offload": offload,
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

    def __call__(self, params: dict[str, Any], progress: Progress) -> Verdicts:
        from PIL import Image

        p = VisionParams.model_validate(params)
        pictures = []
        for path in p.images:  # each picture scaled once, however many looks name it
            with Image.open(path) as img:
                pictures.append(img.convert("RGB").resize(fit_pixels(img.size), Image.Resampling.LANCZOS))
        verdicts: list[Verdict] = []
        batch = p.batch
        progress(0, len(p.looks))
        while len(verdicts) < len(p.looks):
            part = p.looks[len(verdicts) : len(verdicts) + batch]
            try:
                texts = self._generate(part, pictures, p.max_new_tokens)
            except Exception as exc:
                if not is_oom(exc) or batch == 1:
                    raise
                free_memory()
                batch = max(1, len(part) // 2)  # the same looks, fewer at a time
                log.warning("vision out of memory; retrying with batches of %d", batch)
                continue
            verdicts += [parse_verdict(text) for text in texts]
            progress(len(verdicts), len(p.looks))
        return Verdicts(verdicts=verdicts, batch=batch)

    def _generate(self, looks: list[Look], pictures: list[Any], max_new_tokens: int) -> list[str]:
        """One greedy generation for several looks: prompts left-padded to one length, each look's
        pictures in its prompt's order (the keyframe, then the previous shot)."""
        import torch

        prompts, images = [], []
        for look in looks:
            shown = [look.image] + ([look.previous] if look.previous is not None else [])
            images += [pictures[i] for i in shown]
            prompts.append(self.prompt(verdict_prompt(look.prompt, previous=look.previous is not None), len(shown)))
        # pixel values in the model's dtype (bf16 on CUDA); token ids stay integers
        inputs = self.processor(images=images, text=prompts, padding=True, return_tensors="pt").to(
            self.device, dtype=self.dtype
        )
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        start = inputs["input_ids"].shape[1]
        return [str(self.processor.decode(row[start:], skip_special_tokens=True)) for row in out]
