"""Subtitle cues from timed words, written as SRT, WebVTT and word-level karaoke ASS.

Cues are cut from the script's own tokens (never from ASR text), so every word of the approved
script is shown exactly once, in order. Cue breaks are chosen by a small dynamic programme: fewest
cues, ending at punctuation where possible, never running through a sentence end once the cue could
stand alone for a second.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from pathlib import Path

import pysubs2
from PIL import ImageFont
from pydantic import BaseModel
from pysubs2.formats.subrip import SubripFormat
from pysubs2.formats.webvtt import WebVTTFormat

from tools.assets import FONT_BOLD, FONT_FAMILY
from tools.files import write_text_atomic
from tools.models import Aspect, Word
from tools.text import ends_clause, ends_sentence

MIN_CUE = 1.0  # seconds on screen, at least
MAX_CUE = 7.0
MIN_GAP = 0.3  # shorter gaps between cues are closed: they read as flicker
VOICE_TAIL = 1.0  # the video may run this long after the voice; cues may too

# Characters per line and default ASS font size (pixels at the aspect's full size). Phones show
# every aspect at about the same physical width, so narrower frames take shorter lines.
_LINE_CHARS = {Aspect.portrait: 26, Aspect.square: 32, Aspect.landscape: 42}
_FONT_SIZE = {Aspect.portrait: 64, Aspect.square: 58, Aspect.landscape: 72}
OUTLINE = 5
SHADOW = 3
_PAD = OUTLINE + SHADOW  # outline and shadow draw outside the glyphs: keep them in the safe area too

# Words that lean on the next one: a cue or line ending with them reads badly.
_WEAK = frozenset({
    "a", "an", "the", "to", "of", "and", "or", "but", "nor", "so", "in", "on", "at", "by", "for", "with",
    "from", "into", "as", "is", "are", "was", "my", "your", "his", "her", "its", "our", "their", "this",
    "that",
})
_ASS_ESCAPABLE = re.compile(r"\\(?=[Nnh{}]|$)")
_WORD_JOINER = "\u2060"


class Cue(BaseModel):
    """One subtitle on screen: seconds, display lines (script tokens joined by spaces), word indexes."""

    start: float
    end: float
    lines: list[str]
    first_word: int
    last_word: int


class SubtitleFiles(BaseModel):
    """What write_subtitles produced; font_size is the ASS style size after fitting the widest line."""

    srt: Path
    vtt: Path
    ass: Path
    cues: list[Cue]
    font_size: int


def line_limit(aspect: Aspect) -> int:
    """Most characters on one subtitle line for this aspect (42, the broadcast norm, at most)."""
    return _LINE_CHARS[aspect]


def escape_ass_text(text: str) -> str:
    """Make libass draw `text` literally.

    libass reads `\\N`, `\\n`, `\\h`, `\\{`, `\\}` as escapes and `{...}` as override tags. A word
    joiner (invisible, zero width) after such a backslash breaks the escape; braces become the
    `\\{`/`\\}` escapes. A trailing backslash gets a joiner too, so the result is safe to concatenate.
    """
    text = _ASS_ESCAPABLE.sub("\\\\" + _WORD_JOINER, text)
    return text.replace("{", "\\{").replace("}", "\\}")


def build_cues(words: list[Word], aspect: Aspect, voice_end: float | None = None) -> list[Cue]:
    """Group timed words into cues of at most two lines, 1 to 7 s, without overlaps."""
    if not words:
        return []
    tail_end = math.inf if voice_end is None else voice_end + VOICE_TAIL
    if any(b.start < a.start for a, b in pairwise(words)):
        raise ValueError("word timings must not go backwards")
    if words[-1].start >= tail_end:
        raise ValueError(f"words run past the end of the voice ({voice_end:.2f} s)")
    limit = line_limit(aspect)
    spans = _segment(words, limit, tail_end)
    cues: list[Cue] = []
    for n, (i, j) in enumerate(spans):
        next_start = words[spans[n + 1][0]].start if n + 1 < len(spans) else tail_end
        start, end = words[i].start, _cue_end(words[i].start, words[j - 1].end, next_start)
        _, lines = _split_lines([w.word for w in words[i:j]], limit)
        cues.append(Cue(start=round(start, 3), end=round(end, 3), lines=lines, first_word=i, last_word=j - 1))
    return cues


def write_subtitles(script: str, words: list[Word], aspect: Aspect, out_dir: Path) -> SubtitleFiles:
    """Write subtitles.srt, .vtt and .ass for `script` into out_dir (each file replaced atomically)."""
    _check_words(script, words)
    cues = build_cues(words, aspect)
    font_size = fit_font_size([ln for c in cues for ln in c.lines if not _is_long_token(ln, aspect)],
                              aspect)
    files = SubtitleFiles(srt=out_dir / "subtitles.srt", vtt=out_dir / "subtitles.vtt",
                          ass=out_dir / "subtitles.ass", cues=cues, font_size=font_size)
    write_text_atomic(files.srt, _srt_text(cues))
    write_text_atomic(files.vtt, _vtt_text(cues))
    write_text_atomic(files.ass, _ass_file(cues, words, aspect, font_size).to_string("ass"))
    return files


# --- cue breaking -------------------------------------------------------------------------------


def _paragraph_after(words: list[Word], k: int) -> bool:
    """A blank line follows word k (clean scripts have single spaces inside a paragraph)."""
    return k + 1 < len(words) and words[k + 1].char_start - words[k].char_end > 1


def _must_end(words: list[Word], k: int) -> bool:
    return ends_sentence(words[k].word) or _paragraph_after(words, k)


def _break_cost(token: str) -> float:
    """How bad it reads to end a cue or line after `token`: punctuation is a natural pause."""
    if ends_sentence(token):
        return 0.0
    if ends_clause(token):
        return 0.3
    return 2.0 if token.lower() in _WEAK else 1.0


def _is_long_token(line: str, aspect: Aspect) -> bool:
    return len(line) > line_limit(aspect) and " " not in line


def _cue_ends(words: list[Word], i: int, limit: int) -> Iterator[int]:
    """Every j such that words[i:j] can be one cue: two greedy-packed lines, <= 7 s, no sentence inside.

    A token longer than a line (a URL, unspaced text) fills a line of its own.
    """
    line, used = 0, limit  # the "line before the first" is full
    for j in range(i, len(words)):
        size = len(words[j].word)
        if size > limit or used + 1 + size > limit:
            line, used = line + 1, -1
        if line > 2:
            return
        used = limit if size > limit else used + 1 + size
        if j > i and words[j].end - words[i].start > MAX_CUE:
            return
        yield j + 1
        if j + 1 < len(words) and _must_end(words, j) and words[j + 1].start - words[i].start >= MIN_CUE:
            return


def _segment(words: list[Word], limit: int, tail_end: float) -> list[tuple[int, int]]:
    """Cheapest division of the words into cues, as (first, end-exclusive) index pairs."""
    n = len(words)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for i in range(n):  # every i is reachable: a single word is always a valid cue
        for j in _cue_ends(words, i, limit):
            room = (words[j].start if j < n else tail_end) - words[i].start
            fill = (words[j - 1].char_end - words[i].char_start) / (2 * limit)
            cost = best[i] + 1.0 + (0.0 if j == n else _break_cost(words[j - 1].word))
            cost += _split_lines([w.word for w in words[i:j]], limit)[0]
            cost += 0.5 * max(0.0, 1.0 - fill) ** 2  # among equal counts, prefer evenly filled cues
            cost += 5.0 if room < MIN_CUE else 0.0
            if cost < best[j]:
                best[j], back[j] = cost, i
    spans: list[tuple[int, int]] = []
    j = n
    while j:
        spans.append((back[j], j))
        j = back[j]
    return spans[::-1]


def _cue_end(start: float, last_end: float, next_start: float) -> float:
    """Hold a cue at least 1 s, bridge short gaps, and never reach into the next cue."""
    end = max(last_end, start + MIN_CUE)
    if next_start - end < MIN_GAP:
        end = next_start
    return min(end, next_start, start + MAX_CUE)


def _split_lines(tokens: list[str], limit: int) -> tuple[float, list[str]]:
    """One line if it fits, else two balanced lines, preferring a break after punctuation.

    Returns (awkwardness, lines): cue breaking adds the awkwardness, so it avoids clumsy splits.
    """
    text = " ".join(tokens)
    if len(text) <= limit or len(tokens) == 1:
        return 0.0, [text]
    long = [k for k, token in enumerate(tokens) if len(token) > limit]
    if long:  # the long token has a line of its own, the other words share the other line
        cut = long[0] or 1
        return 0.5, [" ".join(tokens[:cut]), " ".join(tokens[cut:])]
    options = []
    for m in range(1, len(tokens)):
        top, bottom = " ".join(tokens[:m]), " ".join(tokens[m:])
        if len(top) <= limit and len(bottom) <= limit:
            cost = abs(len(top) - len(bottom)) / limit + 0.3 * _break_cost(tokens[m - 1])
            options.append((cost, [top, bottom]))
    return min(options, key=lambda option: option[0])


# --- layout ---------------------------------------------------------------------------------------


@cache
def _em_per_size() -> float:
    """libass sizes a font so ascender+descender equal the ASS size; Pillow sizes the em."""
    ascent, descent = ImageFont.truetype(str(FONT_BOLD), 1000).getmetrics()
    return 1000 / (ascent + descent)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_BOLD), size * _em_per_size())


def text_width(text: str, font_size: int) -> float:
    """Width in pixels of `text` drawn by libass in Lato Bold at ASS size `font_size`."""
    return _font(font_size).getlength(text)


def _margins(aspect: Aspect) -> tuple[int, int, int]:
    safe = aspect.safe_area
    return safe.left + _PAD, safe.right + _PAD, safe.bottom + _PAD


def _widest(lines: list[str], font_size: int) -> float:
    return max((text_width(line, font_size) for line in lines), default=0.0)


def fit_font_size(lines: list[str], aspect: Aspect) -> int:
    """The aspect's default size, shrunk until the widest line fits between the margins."""
    left, right, _ = _margins(aspect)
    room = aspect.size[0] - left - right
    size = _FONT_SIZE[aspect]
    if _widest(lines, size) > room:  # width is near-linear in size: jump close, then step down
        size = max(1, math.floor(size * room / _widest(lines, size)))
    while size > 1 and _widest(lines, size) > room:
        size -= 1
    return size


def _is_hard_split(cue: Cue, aspect: Aspect) -> bool:
    return len(cue.lines) == 1 and _is_long_token(cue.lines[0], aspect)


def _display_lines(cue: Cue, aspect: Aspect) -> list[str]:
    """The lines drawn: a long token alone in its cue is hard-split in two halves."""
    if not _is_hard_split(cue, aspect):
        return cue.lines
    half = math.ceil(len(cue.lines[0]) / 2)
    return [cue.lines[0][:half], cue.lines[0][half:]]


# --- file formats ---------------------------------------------------------------------------------


def _check_words(script: str, words: list[Word]) -> None:
    if [w.word for w in words] != script.split():
        raise ValueError("words.json does not hold the script's words, one per token, in order")
    if any(script[w.char_start:w.char_end] != w.word for w in words):
        raise ValueError("words.json character positions do not match the script")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


_SRT_MARKUP = re.compile(r"(?<=\{)(?=\\)|(?<=<)(?=/?[A-Za-z])")
WORD_JOINER = "\u2060"


def srt_line(line: str) -> str:
    """Script text as SRT text players show, never obey: VLC and YouTube read `{\\an8}` overrides
    and `<font>`/`<b>` tags in SRT, so an invisible word joiner goes after `{` before a backslash and
    after `<` before a tag name (every word still shows, as written)."""
    return _SRT_MARKUP.sub(WORD_JOINER, line)


def _srt_text(cues: list[Cue]) -> str:
    """Plain lines. pysubs2's own writer would read `C:\\new` as a line break and drop `{...}`."""
    blocks = [f"{n}\n{SubripFormat.ms_to_timestamp(_ms(c.start))} --> "
              f"{SubripFormat.ms_to_timestamp(_ms(c.end))}\n" + "\n".join(srt_line(line) for line in c.lines)
              for n, c in enumerate(cues, 1)]
    return "\n\n".join(blocks) + "\n"


def _vtt_text(cues: list[Cue]) -> str:
    """WebVTT needs `&`, `<`, `>` escaped (which also keeps `-->` out of cue text)."""
    blocks = [f"{n}\n{WebVTTFormat.ms_to_timestamp(_ms(c.start))} --> "
              f"{WebVTTFormat.ms_to_timestamp(_ms(c.end))}\n"
              + "\n".join(html.escape(line, quote=False) for line in c.lines)
              for n, c in enumerate(cues, 1)]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n"


def _karaoke_text(cue: Cue, words: list[Word], start_cs: int, end_cs: int, aspect: Aspect) -> str:
    """Cue text with one `\\k` per word, from its start to the next word's (the last: to cue end)."""
    bounds = [start_cs]
    for w in words[cue.first_word:cue.last_word + 1]:
        bounds.append(min(max(round(w.start * 100), bounds[-1]), end_cs))
    bounds.append(end_cs)
    durations = iter(b - a for a, b in pairwise(bounds[1:]))
    if _is_hard_split(cue, aspect):  # libass does not carry a syllable over \N: tag both halves
        top, bottom = (escape_ass_text(half) for half in _display_lines(cue, aspect))
        lines = [f"{{\\k0}}{top}", f"{{\\k{next(durations)}}}{bottom}"]
    else:
        lines = [" ".join(f"{{\\k{next(durations)}}}{escape_ass_text(t)}" for t in line.split())
                 for line in cue.lines]
    lead = bounds[1] - bounds[0]
    return (f"{{\\k{lead}}}" if lead else "") + "\\N".join(lines)


def _ass_style(aspect: Aspect, font_size: int) -> pysubs2.SSAStyle:
    """White words turn yellow as they are spoken (karaoke fills Secondary -> Primary)."""
    left, right, bottom = _margins(aspect)
    return pysubs2.SSAStyle(
        fontname=FONT_FAMILY, fontsize=font_size, bold=True,
        primarycolor=pysubs2.Color(255, 214, 0), secondarycolor=pysubs2.Color(255, 255, 255),
        outlinecolor=pysubs2.Color(0, 0, 0), backcolor=pysubs2.Color(0, 0, 0, 112),
        outline=OUTLINE, shadow=SHADOW, alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=left, marginr=right, marginv=bottom,
    )


def _ass_file(cues: list[Cue], words: list[Word], aspect: Aspect, font_size: int) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    width, height = aspect.size
    subs.info.update({"PlayResX": str(width), "PlayResY": str(height), "WrapStyle": "2",
                      "ScaledBorderAndShadow": "yes"})
    subs.styles = {"Default": _ass_style(aspect, font_size)}
    for cue in cues:
        start_cs, end_cs = round(cue.start * 100), round(cue.end * 100)
        text = _karaoke_text(cue, words, start_cs, end_cs, aspect)
        if any(_is_long_token(line, aspect) for line in cue.lines):  # may need a smaller size
            text = f"{{\\fs{min(font_size, fit_font_size(_display_lines(cue, aspect), aspect))}}}" + text
        subs.append(pysubs2.SSAEvent(start=start_cs * 10, end=end_cs * 10, text=text))
    return subs


