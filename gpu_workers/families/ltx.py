"""LTX-Video image-to-video: clips longer than one generation are extended from their last frame
(never looped), then written as one H.264 intermediate."""

from __future__ import annotations

import json
import math
import os
import queue
import threading
from collections.abc import Iterator
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


class ClipWriter:
    """Encodes a clip's frames on a thread of its own while the next segment generates, so only the
    last segment's encoding is on the critical path. H.264 at CRF 16 through PyAV (an intermediate,
    fitted to the shot by the media engine); an `.npy` output is the raw uint8 frames instead, for
    checks on a machine without PyAV (the smoke run). Written beside the output, then renamed."""

    def __init__(self, out: Path, fps: int) -> None:
        self.out, self.fps = out, fps
        self.tmp = out.with_name(f".{out.name}.part{out.suffix}")
        self.frames = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)  # at most two segments wait in memory
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ltx-encode", daemon=True)
        self._thread.start()

    def add(self, frames: Any) -> None:
        """Frames as uint8 (count, height, width, 3); raises what the encoder met, if it failed."""
        if self._failed is not None:
            raise self._failed
        self.frames += len(frames)
        self._queue.put(frames)

    def close(self) -> None:
        """Waits for the encoder; the output appears only when it is whole."""
        self._queue.put(None)
        self._thread.join()
        if self._failed is not None:
            self.tmp.unlink(missing_ok=True)
            raise self._failed
        self.tmp.replace(self.out)

    def abort(self) -> None:
        """Stops the encoder and removes what it wrote."""
        self._queue.put(None)
        self._thread.join()
        self.tmp.unlink(missing_ok=True)

    def _parts(self) -> Iterator[Any]:
        while (part := self._queue.get()) is not None:
            yield part

    def _run(self) -> None:
        try:
            if self.out.suffix == ".npy":
                import numpy as np

                parts = list(self._parts())
                with self.tmp.open("wb") as f:
                    np.save(f, np.concatenate(parts))
                return
            import av

            with av.open(str(self.tmp), "w", format="mp4") as container:
                stream = container.add_stream("libx264", rate=self.fps, options={"crf": "16", "preset": "veryfast"})
                stream.pix_fmt = "yuv420p"
                for n, part in enumerate(self._parts()):
                    if n == 0:
                        stream.height, stream.width = part.shape[1:3]
                    for frame in part:
                        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode(None))
        except BaseException as exc:  # handed to the request's thread at its next add() or close()
            self._failed = exc
            for _ in self._parts():  # drain, so add() never blocks on a dead encoder
                pass


def to_pil(frame: Any) -> Any:
    """One frame as the conditioning picture the pipelines take."""
    from PIL import Image

    return Image.fromarray(frame)


def to_uint8(frames: Any) -> Any:
    """diffusers' `np` output (float frames in [0, 1]) as the uint8 RGB the encoder takes."""
    import numpy as np

    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


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
    ) -> Any:
        """One generation's frames as uint8 (count, height, width, 3)."""
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
            output_type="np",  # no PIL round trip: the encoder takes arrays
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
        return to_uint8(self.pipe(**kwargs).frames[0])

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
        total = steps * len(plan)
        writer = ClipWriter(Path(p.output), p.fps)
        try:
            for i, count in enumerate(plan):
                got = self._segment(p, image, count, p.seed + i, progress, i * steps, total, steps)
                writer.add(got if i == 0 else got[overlap:])  # a continuation starts on the previous last frames
                image = [to_pil(f) for f in got[-overlap:]] if overlap > 1 else to_pil(got[-1])
                free_memory()
        except BaseException:
            writer.abort()  # a failed or cancelled request leaves no clip behind
            raise
        writer.close()
        return ClipResult(
            output=p.output, frames=writer.frames, fps=p.fps, width=p.width, height=p.height, segments=len(plan)
        )
