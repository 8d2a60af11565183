"""Icons that show what a shot is about, offline: a shot's search terms matched to Noto Emoji.

The set ships with the install (`data/assets/icons/noto.json.gz`: 1,114 colour SVGs of Noto Emoji,
Apache-2.0, from `@iconify-json/noto`; its README says which). A term matches an icon by the icon's
own name ("whale", "lighthouse"), by the word a name is about ("spouting-whale" is a whale,
"cloud-with-rain" a cloud), or through a short list of words no icon is named after ("ocean" is a
water wave, "city" an office building). Words are compared singular; square picture tiles (a
cityscape, a sunset) are never used, since they read as stickers on a landscape. Icons are drawn with resvg
(`resvg-py`, MIT; no system libraries) at the size the card needs.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel

from tools.assets import ASSETS_DIR

ICONS_FILE = ASSETS_DIR / "icons" / "noto.json.gz"
LICENCE = "Noto Emoji by Google, Apache-2.0 (data/assets/icons)"
MAX_ICONS = 3  # one subject and two companions; more reads as clutter
_WORD = re.compile(r"[a-z]+")
_JOINERS = ("with", "at", "of", "in", "on", "and", "for", "from", "behind")
# words that say nothing of a picture on their own, so never chosen by a name's word alone
_VAGUE = frozenset(
    "with at of in on and for from behind button symbol sign face person man woman men women people hand hands "
    "light mark left right up down new old big small little one two three top".split()
)
# words no icon is named after -> the icon that shows them (each checked to exist by the tests)
SYNONYMS: dict[str, str] = {
    "ocean": "water-wave",
    "sea": "water-wave",
    "tide": "water-wave",
    "storm": "cloud-with-lightning-and-rain",
    "thunder": "cloud-with-lightning",
    "rain": "cloud-with-rain",
    "snow": "snowflake",
    "winter": "snowflake",
    "city": "office-building",
    "town": "houses",
    "village": "house-with-garden",
    "home": "house",
    "night": "crescent-moon",
    "sky": "sun-behind-cloud",
    "forest": "evergreen-tree",
    "wood": "evergreen-tree",
    "tree": "deciduous-tree",
    "garden": "potted-plant",
    "flower": "blossom",
    "island": "desert-island",
    "beach": "beach-with-umbrella",
    "boat": "sailboat",
    "sailor": "sailboat",
    "car": "automobile",
    "phone": "mobile-phone",
    "money": "money-bag",
    "heart": "red-heart",
    "love": "red-heart",
    "friend": "handshake",
    "friendship": "handshake",
    "music": "musical-notes",
    "song": "musical-notes",
    "book": "open-book",
    "library": "books",
    "letter": "envelope",
    "map": "world-map",
    "clock": "mantelpiece-clock",
    "paint": "artist-palette",
    "painting": "artist-palette",
    "baker": "bread",
    "bakery": "bread",
    "moon": "crescent-moon",
    "space": "ringed-planet",
    "planet": "ringed-planet",
    "galaxy": "ringed-planet",
    "lamp": "diya-lamp",
    "doctor": "stethoscope",
    "medicine": "pill",
    "coffee": "hot-beverage",
    "tea": "teacup-without-handle",
    "sleep": "bed",
    "computer": "laptop",
    "school": "school",
    "treasure": "gem-stone",
    "gold": "coin",
    "crown": "crown",
    "king": "crown",
    "queen": "crown",
    "knight": "crossed-swords",
    "sword": "dagger",
    "mountains": "snow-capped-mountain",
    "mountain": "snow-capped-mountain",
    "volcano": "volcano",
    "desert": "camel",
    "river": "water-wave",
    "lake": "water-wave",
    "fish": "tropical-fish",
    "bird": "bird",
    "cat": "cat",
    "dog": "dog",
    "coast": "water-wave",
    "shore": "water-wave",
    "harbour": "anchor",
    "harbor": "anchor",
    "wind": "wind-face",
    "goodbye": "waving-hand",
    "voice": "speaking-head",
}


class _Icon(BaseModel):
    body: str
    width: int | None = None
    height: int | None = None


class IconSet(BaseModel):
    """The IconifyJSON file: SVG bodies on a shared square view box."""

    prefix: str
    width: int = 16
    height: int = 16
    icons: dict[str, _Icon]


class Icon(BaseModel):
    name: str  # the icon's name in the set, recorded in visuals.json
    term: str  # the search term it shows


@cache
def icon_set(path: Path = ICONS_FILE) -> IconSet:
    return IconSet.model_validate_json(gzip.decompress(path.read_bytes()))


@cache
def _heads() -> dict[str, list[str]]:
    """word -> icons about it, shortest name first: "whale" -> ["whale", "spouting-whale"]."""
    heads: dict[str, list[str]] = {}
    for name in icon_set().icons:
        parts = name.split("-")
        cut = next((i for i, p in enumerate(parts) if p in _JOINERS and i > 0), len(parts))
        head = parts[cut - 1]  # "cloud-with-rain" -> cloud; "spouting-whale" -> whale
        if head not in _VAGUE and len(head) > 2:
            heads.setdefault(head, []).append(name)
    return {word: sorted(names, key=len) for word, names in heads.items()}


def _singulars(word: str) -> list[str]:
    forms = [word]
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 4:
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        forms.append(word[:-1])
    return forms


@cache
def is_tile(name: str) -> bool:
    """Whether an icon is a square picture of its own (a cityscape, a sunset): set into a landscape
    it reads as a sticker, so it is never chosen. Told by its drawn area, not by a list."""
    alpha = render(name, 24).getchannel("A")
    return float((np.asarray(alpha) > 128).mean()) > 0.8


def _usable(name: str | None) -> str | None:
    return name if name is not None and name in icon_set().icons and not is_tile(name) else None


def _word_icon(word: str) -> str | None:
    """An icon named by the word or its singular, or given for it, before one merely about it
    ("hearts" is a red heart, not the icon called two-hearts)."""
    forms = _singulars(word)
    for form in forms:
        if form not in _VAGUE and (found := _usable(form)):
            return found
        if found := _usable(SYNONYMS.get(form)):
            return found
    for form in forms:
        if found := next((n for n in _heads().get(form, []) if _usable(n)), None):
            return found
    return None


def term_icon(term: str) -> str | None:
    """The icon for one search term: the whole term as a name ("hot air balloon"), else its words
    from the last (English puts the thing after its describing words: "lost whale" -> whale)."""
    words = _WORD.findall(term.lower())
    if not words:
        return None
    if joined := _usable("-".join(words)):
        return joined
    return next((icon for word in reversed(words) if (icon := _word_icon(word))), None)


def match(terms: Sequence[str], broader: Sequence[str] = (), limit: int = MAX_ICONS, turn: int = 0) -> list[Icon]:
    """Up to `limit` different icons for a shot's terms, most specific first; when none of its own
    terms has one, one icon for the video's broader terms (its subject); empty when nothing matches.

    The video's own subjects (a lighthouse and a whale in their story) lead a shot that shows them;
    when it shows several, `turn` (the shot's number) says which leads, so neighbours differ."""
    subject = list(dict.fromkeys(name for term in broader if (name := term_icon(term))))
    found: dict[str, Icon] = {}
    for term in terms:
        if (name := term_icon(term)) and name not in found:
            found[name] = Icon(name=name, term=term)
    if not found:  # the shot names nothing drawable: the video's subject, each in turn
        named = [Icon(name=n, term=t) for t in broader if (n := term_icon(t))]
        unique = list({icon.name: icon for icon in named}.values())
        return [unique[turn % len(unique)]] if unique else []
    leads = [found[name] for name in subject if name in found]
    if leads:
        first = leads[turn % len(leads)]
        leads = [first, *(icon for icon in leads if icon is not first)]
    ordered = [*leads, *(icon for icon in found.values() if icon.name not in subject)]
    return ordered[:limit]


def render(name: str, px: int) -> Image.Image:
    """One icon as an RGBA picture `px` pixels square."""
    import resvg_py

    icons = icon_set()
    icon = icons.icons[name]
    w, h = icon.width or icons.width, icon.height or icons.height
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}">{icon.body}</svg>'
    png = resvg_py.svg_to_bytes(svg_string=svg, width=px, height=px, skip_system_fonts=True)
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")
