"""Which language a script is in, well enough to pick a voice that can say it.

Scripts with their own alphabet are told apart by the characters they use (kana means Japanese
even among kanji); Latin-script languages by their commonest short words. No model, no download:
the answer only chooses a voice, and `--language` overrides it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Unicode name prefixes of letters -> language, checked in order (kana before the shared Han ideographs).
_ALPHABETS = [
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("HANGUL", "ko"),
    ("CJK UNIFIED", "zh"),
    ("CYRILLIC", "ru"),
    ("GREEK", "el"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("DEVANAGARI", "hi"),
    ("THAI", "th"),
]
_UKRAINIAN = set("іїєґІЇЄҐ")
_COMMON = {
    "en": "the and of to a in is it that was he for on with as you are this be at his her they have not",
    "es": "el la de que y en los las un una es por con para no se su al lo como más pero del",
    "fr": "le la les de des et un une est en que qui dans pour pas sur au du ne se il elle",
    "de": "der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es",
    "it": "il di che è la per un una non in sono del della le gli si con ma anche",
    "pt": "o a os as de que e do da em um uma para com não é no na por mais se",
    "nl": "de het een en van is dat op te in niet zijn met voor ook er maar",
}
_WORDS = {lang: set(words.split()) for lang, words in _COMMON.items()}
_TOKEN = re.compile(r"[^\W\d_]+")


def detect_language(text: str) -> str | None:
    """An ISO 639-1 code for the script, or None when it is too short or unclear to tell."""
    letters = Counter[str]()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        for prefix, language in _ALPHABETS:
            if name.startswith(prefix):
                letters[language] += 1
                break
        else:
            letters["latin"] += 1
    if not letters:
        return None
    if letters["ja"] and (letters["ja"] + letters["zh"]) * 2 >= sum(letters.values()) - letters["latin"]:
        return "ja"
    script, _ = letters.most_common(1)[0]
    if script == "ru" and _UKRAINIAN.intersection(text):
        return "uk"
    if script != "latin":
        return script
    words = [w.lower() for w in _TOKEN.findall(text)]
    scores = {lang: sum(w in common for w in words) for lang, common in _WORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else None


def same_language(a: str, b: str) -> bool:
    """en-us and en-gb are both English; cmn (espeak's Mandarin) is zh."""

    def primary(code: str) -> str:
        first = code.lower().replace("_", "-").split("-")[0]
        return {"cmn": "zh", "yue": "zh"}.get(first, first)

    return primary(a) == primary(b)
