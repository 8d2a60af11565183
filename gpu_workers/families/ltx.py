"""LTX-Video image-to-video: clips longer than one generation are extended from their last frame
(never looped), then written as one H.264 intermediate."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gpu_workers.families.device import (
    Progress,
    device_and_dtype,
    free_memory,
    from_pretrained,
    generators,
    place,
    step_callback,
)
from gpu_workers.protocol import ClipResult, LtxParams

# model_index.json's `_class_name` → the diffusers class that takes a first frame
LTX_CLASSES = {
    "LTXPipeline": "LTXImageToVideoPipeline",
    "LTXImageToVideoPipeline": "LTXImageToVideoPipeline",
    "LTXConditionPipeline": "LTXConditionPipeline",
}


def model_index(model: str) -> dict[str, Any]:
    """A diffusers folder's model_index.json (a local folder, or the local Hugging Face cache)."""
    path = Path(model) / "model_index.json"
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(model, "model_index.json"))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


CONTINUATION_FRAMES = 9  # what a continuation on LTXConditionPipeline is conditioned on (8k+1)


def segments(total: int, cap: int, overlap: int = 1) -> list[int]:
    """Frame counts (each 8k+1, at most `cap`) of the generations that together make `total` frames:
    each continuation repeats the previous segment's last `overlap` frames (its conditioning), which
    are dropped when joined."""
    if cap <= overlap:
        raise ValueError(f"a generation of {cap} frames cannot continue from {overlap}")
    plan = [min(total, cap)]
    made = plan[0]
    while made < total:
        need = total - made + overlap
        count = min(cap, 8 * math.ceil((need - 1) / 8) + 1)
        plan.append(count)
        made += count - overlap
    return plan


DISTILLED_MODES = ("auto", "on", "off")


def is_distilled(model: str, mode: str) -> bool:
    """`auto`: the checkpoint's name says so (Lightricks names every distilled repo `...-distilled`;
    a pulled folder keeps the repo's name); `on`/`off` (STORYBOT_LTX_DISTILLED) for a renamed folder."""
    if mode not in DISTILLED_MODES:
        raise ValueError(f"STORYBOT_LTX_DISTILLED must be one of {', '.join(DISTILLED_MODES)}, not {mode!r}")
    return mode == "on" if mode != "auto" else "distilled" in Path(model).name.lower()


def keyframe(path: str, width: int, height: int) -> Any:
    """The keyframe at the model's size, centre-cropped to its aspect first (a plain resize would
    squash a 768x1344 SDXL frame into 512x896's slightly different shape)."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        return ImageOps.fit(img.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def _write_frames(frames: list[Any], fps: int, out: Path) -> None:
    """H.264 at CRF 16 through PyAV (an intermediate, fitted to the shot by the media engine); an
    `.npy` output is the raw uint8 frames instead, for checks on a machine without PyAV (the smoke run)."""
    tmp = out.with_name(f".{out.name}.part{out.suffix}")
    if out.suffix == ".npy":
        import numpy as np

        with tmp.open("wb") as f:
            np.save(f, np.stack([np.asarray(frame.convert("RGB"), dtype=np.uint8) for frame in frames]))
        tmp.replace(out)
        return
    import av

    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "veryfast"})
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode(None))
    tmp.replace(out)


class Ltx:
    """The pipeline class named by the checkpoint's model_index.json. Distilled checkpoints run with
    guidance 1; on LTXConditionPipeline (0.9.7/0.9.8 distilled) with diffusers' documented schedule:
    eight explicit timesteps, rescale 0.7, no noise on the conditioning image."""

    DISTILLED_TIMESTEPS = (1000, 993, 987, 981, 975, 909, 725, 0.03)

    def __init__(self, model: str) -> None:
        import diffusers

        self.device, dtype = device_and_dtype()
        declared = str(model_index(model).get("_class_name", "LTXPipeline"))
        if declared not in LTX_CLASSES:
            raise ValueError(f"{model} is a {declared}, not an LTX-Video pipeline")
        pipe = from_pretrained(getattr(diffusers, LTX_CLASSES[declared]), model, dtype)
        self.conditioned = LTX_CLASSES[declared] == "LTXConditionPipeline"
        pipe.set_progress_bar_config(disable=True)
        self.distilled = is_distilled(model, os.environ.get("STORYBOT_LTX_DISTILLED", "auto") or "auto")
        self.info = {**place(pipe, "ltx", self.device), "distilled": self.distilled}
        self.pipe = pipe

    def _segment(
        self,
        p: LtxParams,
        image: Any | list[Any],
        frames: int,
        seed: int,
        progress: Progress,
        done: int,
        total: int,
        steps: int,
    ) -> list[Any]:
        kwargs: dict[str, Any] = dict(
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            width=p.width,
            height=p.height,
            num_frames=frames,
            frame_rate=p.fps,
            guidance_scale=1.0 if self.distilled else p.guidance,
            decode_timestep=p.decode_timestep,
            decode_noise_scale=p.decode_noise_scale,
            generator=generators(self.pipe, [seed])[0],
            output_type="pil",
            callback_on_step_end=step_callback(progress, total, done),
        )
        if self.distilled and self.conditioned:  # the image-to-video pipeline takes no custom timesteps
            kwargs |= {"timesteps": list(self.DISTILLED_TIMESTEPS), "guidance_rescale": 0.7}
        else:
            kwargs["num_inference_steps"] = steps
        if self.conditioned:
            from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

            condition = (
                LTXVideoCondition(video=image, frame_index=0)
                if isinstance(image, list)
                else LTXVideoCondition(image=image, frame_index=0)
            )
            kwargs["conditions"] = [condition]
            if self.distilled:
                kwargs["image_cond_noise_scale"] = 0.0
        else:
            kwargs["image"] = image
        frames_out: list[Any] = self.pipe(**kwargs).frames[0]
        return frames_out

    def __call__(self, params: dict[str, Any], progress: Progress) -> ClipResult:
        p = LtxParams.model_validate(params)
        if (p.num_frames - 1) % 8 or (p.max_frames - 1) % 8:
            raise ValueError(f"num_frames and max_frames must be 8k+1, got {p.num_frames} and {p.max_frames}")
        image: Any = keyframe(p.image, p.width, p.height)
        # LTXConditionPipeline continues from the last frames as a video condition, so motion carries
        # over; the image-to-video pipeline can only restart from the last frame
        overlap = CONTINUATION_FRAMES if self.conditioned and p.max_frames > CONTINUATION_FRAMES + 7 else 1
        plan = segments(p.num_frames, p.max_frames, overlap)
        if self.distilled:
            steps = len(self.DISTILLED_TIMESTEPS) if self.conditioned else min(p.steps, len(self.DISTILLED_TIMESTEPS))
        else:
            steps = p.steps
        total, frames = steps * len(plan), []
        for i, count in enumerate(plan):
            got = self._segment(p, image, count, p.seed + i, progress, i * steps, total, steps)
            frames += got if i == 0 else got[overlap:]  # a continuation starts on the previous last frames
            image = got[-overlap:] if overlap > 1 else got[-1]
            free_memory()
        _write_frames(frames, p.fps, Path(p.output))
        return ClipResult(
            output=p.output, frames=len(frames), fps=p.fps, width=p.width, height=p.height, segments=len(plan)
        )
