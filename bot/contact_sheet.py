"""One image with every keyframe, numbered, with its narration: the keyframe approval at a glance."""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = Path(__file__).resolve().parent.parent / "data" / "assets" / "fonts" / "Lato-Bold.ttf"
CELL_WIDTH = 270
TEXT_LINES = 3
PAD = 12
BACKGROUND = (24, 24, 28)
INK = (235, 235, 240)
BADGE = (88, 101, 242)  # Discord blurple


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(str(FONT), size)
    except OSError:
        return ImageFont.load_default(size)


def contact_sheet(images: list[Path], captions: list[str], out: Path) -> Path:
    """A grid (3 across for portrait shots, 2 for wide ones) saved as PNG at `out`."""
    if not images:
        raise ValueError("no keyframes to show")
    with Image.open(images[0]) as first:
        ratio = first.height / first.width
    columns = 3 if ratio > 1.2 else 2
    cell_w = CELL_WIDTH if columns == 3 else CELL_WIDTH * 3 // 2
    thumb_h = round(cell_w * ratio)
    font, badge_font = _font(17), _font(22)
    line_h = 21
    cell_h = thumb_h + PAD + TEXT_LINES * line_h
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (PAD + columns * (cell_w + PAD), PAD + rows * (cell_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    chars = max(12, cell_w // 9)
    for n, (path, caption) in enumerate(zip(images, captions, strict=True)):
        x = PAD + (n % columns) * (cell_w + PAD)
        y = PAD + (n // columns) * (cell_h + PAD)
        with Image.open(path) as img:
            sheet.paste(img.convert("RGB").resize((cell_w, thumb_h), Image.Resampling.LANCZOS), (x, y))
        draw.rounded_rectangle((x + 8, y + 8, x + 48, y + 40), radius=8, fill=BADGE)
        draw.text((x + 28, y + 24), str(n + 1), font=badge_font, fill=INK, anchor="mm")
        lines = textwrap.wrap(" ".join(caption.split()), chars)
        if len(lines) > TEXT_LINES:
            lines = [*lines[: TEXT_LINES - 1], lines[TEXT_LINES - 1][: chars - 1] + "…"]
        for k, line in enumerate(lines):
            draw.text((x, y + thumb_h + PAD // 2 + k * line_h), line, font=font, fill=INK)
    sheet.save(out, optimize=True)
    return out
