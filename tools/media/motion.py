"""Motion and fitting: what each shot shows, as filter chains that run inside the final cut.

A shot is either a still moved by Ken Burns or one or more clips fitted to the shot. Neither is
encoded on its own: each becomes a chain in the final cut's single FFmpeg graph (tools.media.compose),
so a supplied or stock clip is decoded once and the video is encoded once.

- Ken Burns: zoompan rounds its crop window to whole input pixels, which shows as jitter on slow
  moves; the still is first scaled to twice the output size so each rounding step is half an output
  pixel. The image is read once (no `-loop 1`), so the scale runs once per shot, not once per frame.
- Clips of any size, rate and length: cover-cropped to the output size and resampled to 30 fps.
  A long clip is trimmed (and only the part used is read, `-t` on the input); several clips for one
  shot are chained in order (a later one only if it would show for `MIN_PIECE` or more: a few
  frames of another clip read as a flash); a chain that is still short is slowed down (at most `MAX_STRETCH`),
  then holds its last frame. It never loops: a short clip seen twice in a row is the "visible loop"
  users complain about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from tools.files import atomic_path, write_text_atomic
from tools.media.ffmpeg import run_ffmpeg
from tools.media.probe import probe
from tools.models import Aspect, Motion

FPS = 30
ZOOM = 0.12  # how far a move travels: 12% of the frame
MAX_STRETCH = 2.0  # a short clip plays at half speed at the slowest
# a later clip of a chain that would be on screen for less than this is left out and the chain is
# slowed a little instead: a few frames of another clip read as a flash, not as a cut
MIN_PIECE = 1.0
READ_MARGIN = 0.25  # seconds read past what a shot needs, for frame-rate rounding
DRIFT = 0.006  # how far a still's layer (a card's icons) drifts: 0.6% of the frame each way


class StillShot(BaseModel):
    """A keyframe moved by Ken Burns; with a `layer` (transparent, output size: a card's icons) that
    drifts gently over it on its own, so the two read at different depths."""

    kind: Literal["still"] = "still"
    image: Path
    motion: Motion = Motion.zoom_in
    layer: Path | None = None


class ClipSource(BaseModel):
    path: Path
    duration: float = Field(ge=0)  # probed seconds; 0 when unknown (then the shot may hold its last frame)


class ClipShot(BaseModel):
    """Clips (supplied, stock or generated) played in order and fitted to the shot."""

    kind: Literal["clip"] = "clip"
    sources: list[ClipSource] = Field(min_length=1)


def clip_source(path: Path) -> ClipSource:
    """A clip with its probed length (PyAV; imageio-ffmpeg has no ffprobe)."""
    info = probe(path)
    return ClipSource(path=path, duration=info.video.duration if info.video else info.duration)


ShotMedia = Annotated[StillShot | ClipShot, Field(discriminator="kind")]


_MEDIA = TypeAdapter(list[ShotMedia])


def write_media(path: Path, media: list[StillShot | ClipShot]) -> None:
    """The cut sheet: what every shot shows (paths relative to the job folder)."""
    write_text_atomic(path, _MEDIA.dump_json(media, indent=1).decode() + "\n")


def read_media(path: Path, root: Path) -> list[StillShot | ClipShot]:
    """The cut sheet with its paths resolved under `root`."""
    media = _MEDIA.validate_json(path.read_bytes())
    return [
        m.model_copy(update={"image": root / m.image, "layer": root / m.layer if m.layer else None})
        if isinstance(m, StillShot)
        else m.model_copy(update={"sources": [c.model_copy(update={"path": root / c.path}) for c in m.sources]})
        for m in media
    ]


def media_files(media: list[StillShot | ClipShot]) -> list[Path]:
    files: list[Path] = []
    for m in media:
        if isinstance(m, StillShot):
            files += [m.image, *([m.layer] if m.layer else [])]
        else:
            files += [c.path for c in m.sources]
    return files


def drift_filter(aspect: Aspect) -> str:
    """Overlay of a still's layer that drifts on slow, unequal sines (about 0.6% of the frame): alive,
    never a loop one notices, and apart from the Ken Burns move underneath."""
    w, h = aspect.size
    ax, ay = max(1, round(w * DRIFT)), max(1, round(h * DRIFT))
    return f"overlay=x='{ax}*sin(2*PI*t/6.7)':y='{ay}*sin(2*PI*t/4.9+1.3)':format=auto,format=yuv420p"


class ShotChain(BaseModel):
    """One shot's part of the final graph: its inputs and a chain from them to `[{label}]`."""

    inputs: list[list[str]]
    chain: str


def _motion_exprs(motion: Motion, frames: int, offset: int = 0) -> tuple[str, str, str]:
    """zoompan z, x, y expressions; `e` is a smoothstep ease of the frame number `on` (+ offset)."""
    p = f"((on+{offset})/{max(frames - 1, 1)})"
    e = f"({p}*{p}*(3-2*{p}))"
    centre_x, centre_y = "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"
    full = f"{1 + ZOOM}"
    match motion:
        case Motion.zoom_in:
            return f"1+{ZOOM}*{e}", centre_x, centre_y
        case Motion.zoom_out:
            return f"{full}-{ZOOM}*{e}", centre_x, centre_y
        case Motion.pan_left:
            return full, f"(iw-iw/zoom)*(1-{e})", centre_y
        case Motion.pan_right:
            return full, f"(iw-iw/zoom)*{e}", centre_y
        case Motion.pan_up:
            return full, centre_x, f"(ih-ih/zoom)*(1-{e})"
        case Motion.pan_down:
            return full, centre_x, f"(ih-ih/zoom)*{e}"


def ken_burns_filter(motion: Motion, frames: int, aspect: Aspect, offset: int = 0, count: int | None = None) -> str:
    """Frames `offset` .. `offset + count` of a `frames`-long move, from a single still."""
    w, h = aspect.size
    z, x, y = _motion_exprs(motion, frames, offset)
    return (
        f"scale={2 * w}:{2 * h}:flags=bicubic,format=yuv420p,"
        f"zoompan=z='{z}':x='{x}':y='{y}':d={count or frames}:s={w}x{h}:fps={FPS},setsar=1"
    )


def cover_filter(aspect: Aspect, pix_fmt: str | None = "yuv420p") -> str:
    """Scale to cover the output size and crop the overflow (centred): no bars, square pixels, and
    `pix_fmt` for the encoder (None for a still frame, which keeps its own)."""
    w, h = aspect.size
    fmt = f",format={pix_fmt}" if pix_fmt else ""
    return f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h},setsar=1{fmt}"


def shot_chain(media: StillShot | ClipShot, frames: int, aspect: Aspect, first_input: int, label: str) -> ShotChain:
    """The inputs and filters that turn one shot's media into exactly `frames` frames at 30 fps."""
    if isinstance(media, StillShot):
        moved = f"[{first_input}:v]{ken_burns_filter(media.motion, frames, aspect)}"
        if media.layer is None:
            return ShotChain(inputs=[["-i", str(media.image)]], chain=f"{moved}[{label}]")
        return ShotChain(
            inputs=[["-i", str(media.image)], ["-i", str(media.layer)]],
            chain=f"{moved}[{label}b];[{first_input + 1}:v]format=rgba[{label}l];"
            f"[{label}b][{label}l]{drift_filter(aspect)}[{label}]",
        )
    need = frames / FPS
    inputs: list[list[str]] = []
    have = 0.0
    for src in media.sources:
        if inputs and need - have < MIN_PIECE:
            break
        take = min(src.duration, need - have) if src.duration > 0 else need - have
        inputs.append(["-t", f"{take + READ_MARGIN:.3f}", "-i", str(src.path)])
        have += take
        if have >= need - 1e-6 or src.duration <= 0:
            break
    fit = f"setpts=PTS-STARTPTS,fps={FPS},{cover_filter(aspect)}"
    if len(inputs) == 1:
        parts, chain = [], f"[{first_input}:v]{fit}"
    else:
        parts = [f"[{first_input + j}:v]{fit}[{label}s{j}]" for j in range(len(inputs))]
        chain = "".join(f"[{label}s{j}]" for j in range(len(inputs))) + f"concat=n={len(inputs)}:v=1:a=0"
    stretch = min(need / have, MAX_STRETCH) if 0 < have < need else 1.0
    if stretch > 1.0 + 1e-3:
        chain += f",setpts={stretch:.4f}*PTS,fps={FPS}"
    chain += f",tpad=stop_mode=clone:stop={frames},trim=end_frame={frames}[{label}]"
    return ShotChain(inputs=inputs, chain=";".join([*parts, chain]))


async def render_shot(media: StillShot | ClipShot, frames: int, aspect: Aspect, out: Path) -> None:
    """One shot on its own, through the same chain as the final cut (previews and checks)."""
    part = shot_chain(media, frames, aspect, 0, "v")
    with atomic_path(out) as tmp:
        await run_ffmpeg(
            [
                "-v",
                "error",
                *(a for i in part.inputs for a in i),
                "-filter_complex",
                part.chain,
                "-map",
                "[v]",
                "-frames:v",
                str(frames),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "18",
                "-pix_fmt",
                "yuv420p",
                "-r",
                str(FPS),
                "-an",
                "-movflags",
                "+faststart",
                tmp,
            ]
        )


async def ken_burns(image: Path, motion: Motion, frames: int, aspect: Aspect, out: Path) -> None:
    """Animate one keyframe into a clip file."""
    await render_shot(StillShot(image=image, motion=motion), frames, aspect, out)
