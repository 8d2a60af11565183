"""Procedural art cards: the picture of a shot when no source has one, with at most the idea's title.

Cards are smooth on purpose (gradients and blurred shapes, no grain): they are zoomed by Ken Burns
motion and H.264-encoded, where fine noise shimmers and costs bits. The title is typeset with the
shipped font, only with glyphs it has, inside the safe area.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tools.assets import FONT_BOLD
from tools.media.keyframes import RGB
from tools.models import Shot

T = TypeVar("T")


# --- art cards -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Palette:
    sky: tuple[RGB, ...]  # zenith to horizon
    sun: RGB
    far: RGB  # farthest land layer (already hazy)
    near: RGB  # nearest land layer (dark, so subtitles over it stay readable)
    night: bool = False  # stars, and a moon instead of a sun


PALETTES: tuple[Palette, ...] = (
    Palette(
        ((44, 62, 110), (120, 110, 170), (238, 160, 160), (255, 212, 172)),
        (255, 238, 205),
        (160, 125, 165),
        (36, 32, 66),
    ),  # dawn
    Palette(
        ((38, 28, 78), (138, 50, 112), (238, 100, 92), (255, 182, 104)), (255, 224, 160), (128, 52, 96), (28, 14, 38)
    ),  # sunset
    Palette(
        ((28, 86, 158), (88, 158, 214), (196, 228, 242)), (255, 250, 228), (96, 150, 186), (10, 48, 88)
    ),  # ocean day
    Palette(
        ((52, 84, 86), (132, 166, 148), (218, 226, 200)), (250, 246, 222), (122, 150, 128), (18, 46, 38)
    ),  # forest mist
    Palette(
        ((8, 12, 36), (24, 34, 82), (62, 72, 134)), (236, 236, 255), (44, 54, 100), (8, 10, 28), night=True
    ),  # moonlit night
    Palette(
        ((68, 108, 168), (214, 168, 124), (250, 214, 160)), (255, 246, 216), (212, 142, 96), (104, 52, 40)
    ),  # desert
    Palette(
        ((26, 20, 62), (82, 52, 132), (190, 110, 170), (250, 182, 170)), (255, 232, 212), (96, 64, 124), (24, 14, 44)
    ),  # violet twilight
    Palette(
        ((78, 118, 170), (168, 198, 224), (234, 240, 246)), (255, 255, 246), (150, 182, 210), (42, 72, 112)
    ),  # arctic
    Palette(
        ((88, 70, 122), (230, 140, 82), (255, 206, 122)), (255, 242, 192), (176, 104, 74), (48, 28, 30)
    ),  # golden hour
    Palette(
        ((14, 58, 80), (40, 128, 140), (238, 150, 120)), (255, 226, 192), (36, 104, 114), (8, 34, 44)
    ),  # teal and coral
    Palette(
        ((4, 18, 30), (10, 68, 80), (60, 158, 130)), (226, 255, 240), (20, 62, 72), (3, 14, 20), night=True
    ),  # aurora
    Palette(((108, 80, 140), (228, 150, 172), (255, 216, 200)), (255, 240, 230), (172, 112, 142), (66, 38, 68)),  # rose
)
SCENES = ("mountains", "sea", "hills", "dunes", "bokeh")
WORK_SIDE = 960  # cards are painted at most this long on their long side, then upscaled


def draw_art_card(shot: Shot, size: tuple[int, int], seed: int, title: str | None = None) -> Image.Image:
    """A procedural landscape keyframe, with no words on it unless a `title` is given (the video's
    title, on the first card only): the subtitles already carry the words, and keyword titles
    painted on every card read as noise.

    Palette and scene cycle through seed-shuffled lists by shot index, so neighbouring shots always
    differ. The picture depends on (seed, index) only, not on the text. Pass a per-job seed for
    variety between jobs.
    """
    rng = random.Random(hashlib.sha256(f"{seed}|{shot.index}".encode()).digest())
    palette = _cycle(PALETTES, seed, shot.index)
    scene = _cycle(SCENES, seed + 1, shot.index)
    scale = min(1.0, WORK_SIDE / max(size))
    small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    horizon = rng.uniform(0.58, 0.68)
    img = _sky(small, palette, horizon, rng)
    if palette.night:
        _stars(img, horizon, rng)
    sun = _sun(img, palette, horizon, scene, rng)
    if scene == "bokeh":
        _bokeh(img, palette, rng)
    elif not palette.night:
        _clouds(img, palette, horizon, rng)
    if scene == "sea":
        _sea(img, palette, horizon, sun, rng)
    else:
        _land(img, palette, horizon, scene, rng)
    _vignette(img)
    card = img.resize(size, Image.Resampling.BICUBIC) if small != size else img
    if title:
        _title(card, title)
    return card


def _cycle(items: Sequence[T], seed: int, index: int) -> T:
    """Items in a seed-shuffled order, cycling by index: neighbours never repeat."""
    order = random.Random(seed).sample(range(len(items)), len(items))
    return items[order[index % len(items)]]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _paint(
    img: Image.Image,
    colour: RGB,
    mask: Image.Image,
    alpha: float = 1.0,
    blur: float = 0.0,
    at: tuple[int, int] = (0, 0),
) -> None:
    """Lay `colour` over `img` through a mask, softened and faded: every shape goes through here."""
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    if alpha < 1:
        mask = mask.point(lambda v: round(v * alpha))
    img.paste(colour, at, mask)


def _sky(size: tuple[int, int], palette: Palette, horizon: float, rng: random.Random) -> Image.Image:
    """Multi-stop gradient, smoothstepped between stops (no Mach bands) and tilted a little.

    The tilt is linear across, so 32 columns stretched to the full width lose nothing visible.
    """
    y = np.linspace(0.0, 1.0, size[1], dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, 32, dtype=np.float32)[None, :]
    t = np.clip((y + rng.uniform(-0.12, 0.12) * x) / (horizon + 0.04), 0.0, 1.0)
    stops = np.array(palette.sky, dtype=np.float32)
    pos = t * (len(stops) - 1)
    i = np.minimum(pos.astype(np.int32), len(stops) - 2)
    f = pos - i
    f = (f * f * (3 - 2 * f))[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    return Image.fromarray((rgb + 0.5).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)


def _ellipse_mask(size: tuple[int, int], boxes: list[tuple[float, float, float, float]]) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for box in boxes:
        draw.ellipse(box, fill=255)
    return mask


def _circle(cx: float, cy: float, r: float) -> tuple[float, float, float, float]:
    return cx - r, cy - r, cx + r, cy + r


def _stars(img: Image.Image, horizon: float, rng: random.Random) -> None:
    w, h = img.size
    unit = min(w, h)
    for bright, count in ((0.9, 25), (0.5, 70)):
        dots = [
            _circle(rng.uniform(0, w), h * horizon * rng.random() ** 1.4, unit * rng.uniform(0.0015, 0.003))
            for _ in range(count)
        ]
        _paint(img, (255, 255, 255), _ellipse_mask(img.size, dots), alpha=bright, blur=0.6)


def _sun(img: Image.Image, palette: Palette, horizon: float, scene: str, rng: random.Random) -> tuple[float, float]:
    """Sun or moon with two layers of glow; returns its centre (a sea reflects it)."""
    w, h = img.size
    unit = min(w, h)
    r = unit * rng.uniform(0.07, 0.11)
    cx = w * rng.uniform(0.28, 0.72)
    cy = h * horizon - r * (rng.uniform(0.2, 1.2) if scene == "sea" else rng.uniform(0.6, 2.6))
    _paint(img, palette.sun, _ellipse_mask(img.size, [_circle(cx, cy, r * 4)]), alpha=0.28, blur=r * 2.5)
    _paint(img, palette.sun, _ellipse_mask(img.size, [_circle(cx, cy, r * 1.8)]), alpha=0.45, blur=r * 0.8)
    if scene != "bokeh":
        _paint(
            img,
            _mix(palette.sun, (255, 255, 255), 0.4),
            _ellipse_mask(img.size, [_circle(cx, cy, r)]),
            alpha=0.96,
            blur=max(0.8, r * 0.03),
        )
    return cx, cy


def _clouds(img: Image.Image, palette: Palette, horizon: float, rng: random.Random) -> None:
    """A few soft cloud banks: overlapping ellipses blurred together, light and see-through."""
    w, h = img.size
    unit = min(w, h)
    boxes = []
    for _ in range(rng.randint(2, 4)):
        cx, cy = w * rng.uniform(-0.1, 1.1), h * horizon * rng.uniform(0.25, 0.85)
        for _ in range(rng.randint(3, 6)):
            rx, ry = unit * rng.uniform(0.06, 0.16), unit * rng.uniform(0.025, 0.05)
            x, y = cx + rng.uniform(-2, 2) * rx, cy + rng.uniform(-0.6, 0.4) * ry
            boxes.append((x - rx, y - ry, x + rx, y + ry))
    colour = _mix(palette.sun, palette.sky[-1], 0.3)
    _paint(img, colour, _ellipse_mask(img.size, boxes), alpha=rng.uniform(0.35, 0.55), blur=unit * 0.02)


def _bokeh(img: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Floating discs in three depths: big and very soft far away, smaller and crisper close up."""
    w, h = img.size
    unit = min(w, h)
    for blur, radius, count in ((0.05, 0.13, 5), (0.018, 0.07, 9), (0.005, 0.035, 12)):
        discs = [
            _circle(rng.uniform(0, w), rng.uniform(0, h * 0.8), unit * radius * rng.uniform(0.5, 1.2))
            for _ in range(count)
        ]
        colour = _mix(palette.sun, rng.choice(palette.sky), rng.uniform(0.1, 0.5))
        _paint(img, colour, _ellipse_mask(img.size, discs), alpha=rng.uniform(0.18, 0.32), blur=unit * blur)


def _fractal(nprng: np.random.Generator, n: int, roughness: float) -> np.ndarray:
    """Midpoint-displacement ridge line in about [-1, 1]: the jagged profile of a mountain range."""
    pts = nprng.uniform(-1, 1, 2)
    amp = 1.0
    while len(pts) < n:
        merged = np.empty(len(pts) * 2 - 1)
        merged[0::2] = pts
        merged[1::2] = (pts[:-1] + pts[1:]) / 2 + nprng.uniform(-amp, amp, len(pts) - 1)
        pts, amp = merged, amp * roughness
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(pts)), pts)


def _swell(nprng: np.random.Generator, n: int, cycles: tuple[float, ...]) -> np.ndarray:
    """Sum of slow sines: rolling hills, dunes (with a sharper harmonic) and sea swell."""
    x = np.linspace(0, 1, n)
    total = np.zeros(n)
    for k, c in enumerate(cycles):
        total += np.sin(2 * np.pi * (c * nprng.uniform(0.8, 1.25) * x + nprng.random())) / (k + 1)
    return total / sum(1 / (k + 1) for k in range(len(cycles)))


# per scene: layers, where the farthest layer's foot sits (fraction of the land below the
# horizon), and the ridge amplitude far and near (fraction of the image height)
_LAND = {
    "mountains": (4, 0.0, (0.16, 0.06)),
    "hills": (4, 0.05, (0.05, 0.035)),
    "dunes": (3, 0.08, (0.06, 0.04)),
    "bokeh": (2, 0.25, (0.04, 0.03)),
}


def _profile(scene: str, layer: int, nprng: np.random.Generator, n: int) -> np.ndarray:
    if scene == "mountains":
        profile = _fractal(nprng, n, 0.52 + 0.04 * layer)
        return np.abs(profile) * 1.4 if layer == 0 else profile  # the far range stands tallest
    if scene == "dunes":
        return _swell(nprng, n, (1.2, 2.4))
    return _swell(nprng, n, (0.7, 1.6))


def _land(img: Image.Image, palette: Palette, horizon: float, scene: str, rng: random.Random) -> None:
    """Layered ridges, far to near, with ground mist at the foot of each for depth."""
    w, h = img.size
    nprng = np.random.default_rng(rng.getrandbits(64))
    layers, start, (amp_far, amp_near) = _LAND[scene]
    for k in range(layers):
        t = k / max(layers - 1, 1)
        base = h * (horizon + (start + t * (0.85 - start)) * (1 - horizon) * 0.9)
        amp = h * (amp_far + (amp_near - amp_far) * t)
        _ridge(img, _mix(palette.far, palette.near, t**0.8), base, amp, _profile(scene, k, nprng, w + 1), blur=1.2 - t)
        if k < layers - 1:
            _mist(img, palette.sky[-1], base, h * 0.05, alpha=0.22)


def _sea(img: Image.Image, palette: Palette, horizon: float, sun: tuple[float, float], rng: random.Random) -> None:
    """A faint far coast, water that darkens towards the viewer, the sun's glitter path, near swell."""
    w, h = img.size
    unit = min(w, h)
    top = round(h * horizon)
    nprng = np.random.default_rng(rng.getrandbits(64))
    coast = _mix(palette.far, palette.sky[-1], 0.35)
    _ridge(img, coast, top, h * 0.04, _fractal(nprng, w + 1, 0.5).clip(0, 1), blur=1.0)
    ramp = np.linspace(0.0, 1.0, h - top)[:, None] ** 0.7
    water = np.array(_mix(palette.sky[-1], palette.far, 0.5)) * (1 - ramp) + np.array(palette.near) * ramp
    img.paste(Image.fromarray((water[:, None, :] + 0.5).astype(np.uint8)).resize((w, h - top)), (0, top))
    cx = sun[0]
    path = _ellipse_mask(img.size, [(cx - unit * 0.08, top - 2, cx + unit * 0.08, top + (h - top) * 0.8)])
    _paint(img, palette.sun, path, alpha=0.3, blur=unit * 0.04)
    glints = []
    for _ in range(24):
        depth = rng.random() ** 1.5  # more glints near the horizon, bigger as they come closer
        y = top + depth * (h - top) * 0.75
        x = cx + rng.gauss(0, unit * (0.02 + 0.05 * depth))
        half_w, half_h = unit * rng.uniform(0.015, 0.04) * (1 + depth), unit * 0.002 * (1 + 2 * depth)
        glints.append((x - half_w, y - half_h, x + half_w, y + half_h))
    _paint(img, _mix(palette.sun, (255, 255, 255), 0.5), _ellipse_mask(img.size, glints), alpha=0.6, blur=unit * 0.003)
    for k, (foot, amp) in enumerate(((0.9, 0.012), (0.97, 0.016))):
        _ridge(
            img,
            _mix(palette.far, palette.near, 0.75 + 0.25 * k),
            h * foot,
            h * amp,
            _swell(nprng, w + 1, (2.0, 5.0)),
            blur=0.8,
        )


def _ridge(
    img: Image.Image, colour: RGB, base: float, amp: float, profile: np.ndarray, alpha: float = 1.0, blur: float = 0.6
) -> None:
    w, h = img.size
    xs = np.linspace(0, w, len(profile))
    ys = base - amp * profile
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).polygon([*zip(xs.tolist(), ys.tolist(), strict=True), (w, h), (0, h)], fill=255)
    _paint(img, colour, mask, alpha=alpha, blur=max(blur, 0.5))


def _mist(img: Image.Image, colour: RGB, foot: float, height: float, alpha: float) -> None:
    """Haze that fades upwards from `foot` and stays even below it, so it never shows an edge."""
    w, h = img.size
    band = Image.linear_gradient("L").resize((w, max(1, round(height))))
    mask = Image.new("L", img.size, 0)
    mask.paste(255, (0, round(foot), w, h))
    mask.paste(band, (0, round(foot - height)))
    _paint(img, colour, mask, alpha=alpha)


def _vignette(img: Image.Image) -> None:
    """Darken the corners slightly: frames the picture and keeps edges calm under Ken Burns."""
    mask = Image.radial_gradient("L").resize(img.size, Image.Resampling.BILINEAR)
    _paint(img, (0, 0, 0), mask.point(lambda v: max(0, v - 110) * 2), alpha=0.35)


# --- the title -----------------------------------------------------------------------------------

TITLE_MARGIN = 0.12  # each side: clear of the right-hand app buttons and of a 12% Ken Burns pan
TITLE_TOP = 0.14  # below the top overlays and the part a pan_down crops away
TITLE_BOTTOM = 0.31  # the title stays in the upper third
MAX_LINES = 3
_SPACING = 1.2


@lru_cache(maxsize=32)
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_BOLD), px)  # Raqm layout when present: 20x faster getlength


@lru_cache(maxsize=1)
def _notdef() -> tuple[bytes, tuple[float, float, float, float]]:
    font = _font(40)
    return bytes(font.getmask("\uffff")), font.getbbox("\uffff")  # a noncharacter: never in a font


@lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    """True when Lato draws `ch` itself rather than its .notdef box."""
    font = _font(40)
    return (bytes(font.getmask(ch)), font.getbbox(ch)) != _notdef()


def drawable(text: str) -> str:
    """The text with glyphs Lato lacks replaced by their base letter (ő -> o) or dropped (emoji, CJK)."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            continue  # invisible controls (zero-width joiners, bidi marks)
        elif _has_glyph(ch):
            out.append(ch)
        else:
            base = unicodedata.normalize("NFKD", ch)
            out.extend(c for c in base if not unicodedata.combining(c) and _has_glyph(c))
    return " ".join("".join(out).split())


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap; a word wider than the line (or unspaced text) is broken between letters."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if line and font.getlength(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    return [*lines, line] if line else lines


def _ellipsize(line: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    while line and font.getlength(line.rstrip() + "…") > width:
        line = line[:-1]
    return line.rstrip() + "…"


def fit_title(text: str, size: tuple[int, int]) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest font (down to a floor) at which `text` fits the title box; cut with … if it never does."""
    w, h = size
    width, height = w * (1 - 2 * TITLE_MARGIN), h * (TITLE_BOTTOM - TITLE_TOP)
    unit = min(w, h)
    px, floor = max(8, round(unit * 0.06)), max(8, round(unit * 0.036))
    while True:
        font = _font(px)
        lines = _wrap(text, font, width)
        fits = min(MAX_LINES, int(height // (px * _SPACING)))
        if len(lines) <= fits or px <= floor:
            break
        px = max(floor, round(px * 0.9))
    if len(lines) > fits:
        lines = [*lines[: fits - 1], _ellipsize(lines[fits - 1], font, width)] if fits else []
    return font, lines


def _title(img: Image.Image, phrase: str) -> None:
    """The title, centred in the upper third, with a soft shadow (or halo on a light sky)."""
    font, lines = fit_title(drawable(phrase), img.size)
    if not lines:
        return
    w, h = img.size
    px = font.size
    step = round(px * _SPACING)
    pad = round(px * 0.8)
    top = round(h * TITLE_TOP)
    block = Image.new("L", (w, step * len(lines) + 2 * pad), 0)
    draw = ImageDraw.Draw(block)
    for i, line in enumerate(lines):
        draw.text((w / 2, pad + i * step), line, font=font, fill=255, anchor="ma")
    region = img.crop((0, top - pad, w, top - pad + block.height))
    light_sky = float(np.asarray(region.convert("L"), dtype=np.float32).mean()) > 165
    ink, shade = ((30, 26, 44), (255, 250, 240)) if light_sky else ((255, 252, 246), (12, 10, 22))
    offset = 0 if light_sky else max(1, round(px * 0.05))
    glow = block.filter(ImageFilter.GaussianBlur(px * 0.35)).point(lambda v: min(255, v * 2))
    _paint(img, shade, glow, alpha=0.35, at=(0, top - pad))
    _paint(img, shade, block, alpha=0.6, blur=px * 0.07, at=(0, top - pad + offset))
    _paint(img, ink, block, at=(0, top - pad))
