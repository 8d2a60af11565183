"""Files the project ships under data/assets/: the subtitle/title font (Lato, SIL OFL 1.1)."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "data" / "assets"
FONTS_DIR = ASSETS_DIR / "fonts"
FONT_FAMILY = "Lato"
FONT_BOLD = FONTS_DIR / "Lato-Bold.ttf"
FONT_REGULAR = FONTS_DIR / "Lato-Regular.ttf"
