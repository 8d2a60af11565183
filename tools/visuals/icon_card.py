"""Icons set into an art card's landscape with depth: what the shot is about, never words.

The first icon is the subject: large, in the middle band (clear of the title above and the
subtitles below), lit from behind by a soft halo and standing on a blurred contact shadow. The
others are companions further back: smaller, higher, a little blurred and hazed towards the colour
of the sky behind them, as distance does. Placement depends on (seed, shot) only, so a re-run
draws the same card. The icons are also kept as a layer of their own: in the final cut the landscape
takes the shot's Ken Burns move while the icons drift gently over it (tools.media.motion), so they
read as nearer than the land behind them.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

HERO = 0.46  # the subject's side, as a fraction of the card's short side
COMPANION = 0.24
HALO = (255, 246, 228)


def _rng(seed: int, index: int) -> random.Random:
    return random.Random(hashlib.sha256(f"icons|{seed}|{index}".encode()).digest())


def _local_colour(card: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, int, int]:
    region = np.asarray(card.crop(box).convert("RGB"), dtype=np.float32)
    r, g, b = region.reshape(-1, 3).mean(axis=0)
    return round(r), round(g), round(b)


def _hazed(icon: Image.Image, colour: tuple[int, int, int], amount: float, blur: float) -> Image.Image:
    """The icon as seen through air: its colours pulled towards `colour`, its edges softened."""
    rgb, alpha = icon.convert("RGB"), icon.getchannel("A")
    mixed = Image.blend(rgb, Image.new("RGB", icon.size, colour), amount)
    out = mixed.convert("RGBA")
    out.putalpha(alpha)
    return out.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else out


def _tint(layer: Image.Image, colour: tuple[int, int, int], mask: Image.Image) -> None:
    """Lay `colour` over the layer through a full-size mask (alpha compositing, as a paste would)."""
    element = Image.new("RGBA", layer.size, (*colour, 0))
    element.putalpha(mask)
    layer.alpha_composite(element)


def _place(layer: Image.Image, icon: Image.Image, at: tuple[int, int]) -> None:
    element = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    element.paste(icon, at)  # cropped at the edges, offsets may be negative
    layer.alpha_composite(element)


def _shape(size: tuple[int, int], icon: Image.Image, at: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(icon.getchannel("A"), at)
    return mask


def _halo(layer: Image.Image, icon: Image.Image, at: tuple[int, int], radius: float, alpha: float) -> None:
    glow = _shape(layer.size, icon, at).filter(ImageFilter.GaussianBlur(radius))
    _tint(layer, HALO, glow.point(lambda v: round(min(255, v * 1.6) * alpha)))


def _contact_shadow(layer: Image.Image, cx: int, foot: int, width: float, unit: int) -> None:
    mask = Image.new("L", layer.size, 0)
    half_w, half_h = width / 2, unit * 0.028
    ImageDraw.Draw(mask).ellipse((cx - half_w, foot - half_h, cx + half_w, foot + half_h), fill=255)
    _tint(layer, (8, 6, 16), mask.filter(ImageFilter.GaussianBlur(unit * 0.02)).point(lambda v: round(v * 0.45)))


def _drop_shadow(layer: Image.Image, icon: Image.Image, at: tuple[int, int], unit: int) -> None:
    offset = max(1, round(unit * 0.008))
    shadow = _shape(layer.size, icon, (at[0] + offset, at[1] + 2 * offset))
    _tint(layer, (0, 0, 0), shadow.filter(ImageFilter.GaussianBlur(unit * 0.01)).point(lambda v: round(v * 0.4)))


def layer(card: Image.Image, icons: list[Image.Image], seed: int, index: int) -> Image.Image:
    """The icons as a transparent layer the size of `card` (first the subject, then companions):
    kept apart from the card so the final cut can move them over it; the card lends the colours
    distance hazes the companions towards."""
    out = Image.new("RGBA", card.size, (0, 0, 0, 0))
    if not icons:
        return out
    w, h = card.size
    unit = min(w, h)
    rng = _rng(seed, index)
    hero_px = icons[0].width
    cx = round(w * (0.5 + rng.uniform(-0.05, 0.05)))
    cy = round(h * (0.5 if h > w else 0.53))
    # companions first: they are further back
    sides = [-1, 1] if rng.random() < 0.5 else [1, -1]
    for side, icon in zip(sides, icons[1:], strict=False):
        px = icon.width
        x = round(w / 2 + side * (w * 0.27 + rng.uniform(-0.03, 0.03) * w)) - px // 2
        x = max(round(w * 0.06), min(x, round(w * 0.85) - px))  # clear of the right-hand app buttons
        y = round(cy - hero_px * 0.62 - rng.uniform(0.0, 0.12) * px) - px // 2
        sky = _local_colour(card, (max(0, x), max(0, y), min(w, x + px), min(h, y + px)))
        _place(out, _hazed(icon, sky, 0.32, unit * 0.003), (x, y))
    hero = icons[0]
    at = (cx - hero.width // 2, cy - hero.height // 2)
    _halo(out, hero, at, unit * 0.04, 0.38)
    _contact_shadow(out, cx, at[1] + round(hero.height * 0.97), hero.width * 0.72, unit)
    _drop_shadow(out, hero, at, unit)
    _place(out, hero, at)
    return out


def compose(card: Image.Image, icons: list[Image.Image], seed: int, index: int) -> Image.Image:
    """`card` with `icons` set into it, as the keyframe shows it; a new image."""
    if not icons:
        return card
    return flatten(card, layer(card, icons, seed, index))


def flatten(card: Image.Image, icons: Image.Image) -> Image.Image:
    return Image.alpha_composite(card.convert("RGBA"), icons).convert("RGB")


def sizes(size: tuple[int, int], count: int) -> list[int]:
    """Pixel sides to render `count` icons at for a card of `size`: the subject, then companions."""
    unit = min(size)
    return [round(unit * (HERO if i == 0 else COMPANION)) for i in range(count)]


def visible(card: Image.Image, composed: Image.Image) -> float:
    """Share of pixels the icons changed (tests and checks: an icon that drew nothing is a bug)."""
    diff = ImageChops.difference(card.convert("RGB"), composed.convert("RGB")).convert("L")
    return float((np.asarray(diff) > 24).mean())
