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
import unicodedata
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from pathlib import Path

import pysubs2
from PIL import ImageFont
from pydantic import BaseModel
from pysubs2.formats.subrip import SubripFormat
from pysubs2.formats.webvtt import WebVTTFormat

from tools.assets import FONT_FAMILY
from tools.files import write_text_atomic
from tools.media.fonts import Face, chain, runs
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
_WEAK = frozenset(
    {
        "a",
        "an",
        "the",
        "to",
        "of",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "as",
        "is",
        "are",
        "was",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "this",
        "that",
    }
)
_ASS_ESCAPABLE = re.compile(r"\\(?=[Nnh{}]|$)")
_WORD_JOINER = "\u2060"
# Where unspaced text (Chinese, Japanese, Thai) reads best cut when a line is full.
_CHAR_BREAKS = frozenset("、。，！？；：」』）〉》】,.!?;:)")


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


def display_width(text: str) -> int:
    """Columns a line takes: wide characters (CJK, emoji) count two, combining marks and joiners none."""
    return sum(
        0
        if unicodedata.category(ch) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(ch) in ("W", "F")
        else 1
        for ch in text
    )


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
        if _is_long_token(words[j - 1].word, aspect):
            cues += _character_cues(words, i, j, start, end, limit)
            continue
        _, lines = _split_lines([w.word for w in words[i:j]], limit)
        cues.append(Cue(start=round(start, 3), end=round(end, 3), lines=lines, first_word=i, last_word=j - 1))
    return cues


def break_characters(token: str, limit: int) -> list[str]:
    """Lines of at most `limit` columns cut from unspaced text, after punctuation where one is near.

    A combining mark (Thai vowels and tones) stays with its letter.
    """
    lines: list[str] = []
    line, width, cut_after = "", 0, -1
    for ch in token:
        size = display_width(ch)
        if line and size and width + size > limit:
            cut = cut_after + 1 if cut_after + 1 >= len(line) // 2 else len(line)
            lines.append(line[:cut])
            line = line[cut:]
            width, cut_after = display_width(line), -1
        line += ch
        width += size
        if ch in _CHAR_BREAKS:
            cut_after = len(line) - 1
    return [*lines, line] if line else lines


def _character_cues(words: list[Word], i: int, j: int, start: float, end: float, limit: int) -> list[Cue]:
    """Words i..j-1 whose last is wider than a line: that token cut by characters into lines, two a
    cue, the words before it (at most a line) above its first piece; the cues share the time.

    Each cue gets at least MIN_CUE when the time allows, the rest by length.
    """
    index = j - 1
    head = " ".join(w.word for w in words[i:index])
    lines = break_characters(words[index].word, limit)
    groups = (
        [[head, lines[0]], *[lines[k : k + 2] for k in range(1, len(lines), 2)]]
        if head
        else [lines[k : k + 2] for k in range(0, len(lines), 2)]
    )
    sizes = [sum(len(line) for line in group) for group in groups]
    total = end - start
    floor = min(MIN_CUE, total / len(groups))
    spare = total - floor * len(groups)
    cues, t = [], start
    for n, (group, size) in enumerate(zip(groups, sizes, strict=True)):
        length = floor + spare * size / sum(sizes)
        cues.append(
            Cue(
                start=round(t, 3),
                end=round(min(t + length, end), 3),
                lines=group,
                first_word=i if n == 0 else index,
                last_word=index,
            )
        )
        t += length
    return cues


def write_subtitles(script: str, words: list[Word], aspect: Aspect, out_dir: Path) -> SubtitleFiles:
    """Write subtitles.srt, .vtt and .ass for `script` into out_dir (each file replaced atomically)."""
    _check_words(script, words)
    cues = build_cues(words, aspect)
    font_size = fit_font_size([ln for c in cues for ln in c.lines], aspect)
    files = SubtitleFiles(
        srt=out_dir / "subtitles.srt",
        vtt=out_dir / "subtitles.vtt",
        ass=out_dir / "subtitles.ass",
        cues=cues,
        font_size=font_size,
    )
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
    return display_width(line) > line_limit(aspect) and " " not in line


def _cue_ends(words: list[Word], i: int, limit: int) -> Iterator[int]:
    """Every j such that words[i:j] can be one cue: two greedy-packed lines, <= 7 s, no sentence inside.

    A token wider than a line (a URL, unspaced text) is a cue of its own, later cut by characters.
    """
    line, used = 0, limit  # the "line before the first" is full
    for j in range(i, len(words)):
        size = display_width(words[j].word)
        if size > limit:  # after at most a line of other words
            if line <= 1:
                yield j + 1
            return
        if used + 1 + size > limit:
            line, used = line + 1, -1
        if line > 2:
            return
        used = used + 1 + size
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
            tokens = [w.word for w in words[i:j]]
            cost += 0.5 if display_width(tokens[-1]) > limit else _split_lines(tokens, limit)[0]
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
    if display_width(text) <= limit or len(tokens) == 1:
        return 0.0, [text]
    options = []
    for m in range(1, len(tokens)):
        top, bottom = " ".join(tokens[:m]), " ".join(tokens[m:])
        if display_width(top) <= limit and display_width(bottom) <= limit:
            cost = abs(display_width(top) - display_width(bottom)) / limit + 0.3 * _break_cost(tokens[m - 1])
            options.append((cost, [top, bottom]))
    return min(options, key=lambda option: option[0])


# --- layout ---------------------------------------------------------------------------------------


@cache
def _em_per_size(face: Face) -> float:
    """libass sizes a font so ascender+descender equal the ASS size; Pillow sizes the em."""
    ascent, descent = ImageFont.truetype(str(face.path), 1000, index=face.index).getmetrics()
    return 1000 / (ascent + descent)


@cache
def _font(face: Face, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(face.path), size * _em_per_size(face), index=face.index)


def text_width(text: str, font_size: int) -> float:
    """Width in pixels of `text` drawn by libass at ASS size `font_size`, each run in its chain font."""
    return sum(_font(face, font_size).getlength(run) for face, run in runs(text))


def ass_text(text: str) -> str:
    """`text` escaped for libass, each run outside Lato wrapped in the `\\fn` of the font that has it."""
    out = []
    for face, run in runs(text):
        escaped = escape_ass_text(run)
        out.append(escaped if face == chain()[0] else f"{{\\fn{face.family}}}{escaped}{{\\fn{FONT_FAMILY}}}")
    return "".join(out)


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


# --- file formats ---------------------------------------------------------------------------------


def _check_words(script: str, words: list[Word]) -> None:
    if [w.word for w in words] != script.split():
        raise ValueError("words.json does not hold the script's words, one per token, in order")
    if any(script[w.char_start : w.char_end] != w.word for w in words):
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
    blocks = [
        f"{n}\n{SubripFormat.ms_to_timestamp(_ms(c.start))} --> "
        f"{SubripFormat.ms_to_timestamp(_ms(c.end))}\n" + "\n".join(srt_line(line) for line in c.lines)
        for n, c in enumerate(cues, 1)
    ]
    return "\n\n".join(blocks) + "\n"


def _vtt_text(cues: list[Cue]) -> str:
    """WebVTT needs `&`, `<`, `>` escaped (which also keeps `-->` out of cue text)."""
    blocks = [
        f"{n}\n{WebVTTFormat.ms_to_timestamp(_ms(c.start))} --> "
        f"{WebVTTFormat.ms_to_timestamp(_ms(c.end))}\n" + "\n".join(html.escape(line, quote=False) for line in c.lines)
        for n, c in enumerate(cues, 1)
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n"


def _karaoke_text(cue: Cue, words: list[Word], start_cs: int, end_cs: int, aspect: Aspect) -> str:
    """Cue text with one `\\k` per word, from its start to the next word's (the last: to cue end)."""
    bounds = [start_cs]
    for w in words[cue.first_word : cue.last_word + 1]:
        bounds.append(min(max(round(w.start * 100), bounds[-1]), end_cs))
    bounds.append(end_cs)
    durations = iter(b - a for a, b in pairwise(bounds[1:]))
    if _is_long_token(words[cue.last_word].word, aspect):  # pieces of unspaced text: one syllable a line
        head = cue.last_word - cue.first_word  # words on a line before the token's first piece
        lines = [" ".join(f"{{\\k{next(durations)}}}{ass_text(t)}" for t in cue.lines[0].split())] if head else []
        pieces = cue.lines[1:] if head else cue.lines
        length, sizes = end_cs - bounds[-2], [len(line) for line in pieces]
        first = round(length * sizes[0] / sum(sizes))
        ticks = [first, length - first][: len(pieces)]
        lines += [f"{{\\k{k}}}{ass_text(line)}" for k, line in zip(ticks, pieces, strict=True)]
    else:
        lines = [" ".join(f"{{\\k{next(durations)}}}{ass_text(t)}" for t in line.split()) for line in cue.lines]
    lead = bounds[1] - bounds[0]
    return (f"{{\\k{lead}}}" if lead else "") + "\\N".join(lines)


def _ass_style(aspect: Aspect, font_size: int) -> pysubs2.SSAStyle:
    """White words turn yellow as they are spoken (karaoke fills Secondary -> Primary)."""
    left, right, bottom = _margins(aspect)
    return pysubs2.SSAStyle(
        fontname=FONT_FAMILY,
        fontsize=font_size,
        bold=True,
        primarycolor=pysubs2.Color(255, 214, 0),
        secondarycolor=pysubs2.Color(255, 255, 255),
        outlinecolor=pysubs2.Color(0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 112),
        outline=OUTLINE,
        shadow=SHADOW,
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=left,
        marginr=right,
        marginv=bottom,
    )


def _ass_file(cues: list[Cue], words: list[Word], aspect: Aspect, font_size: int) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    width, height = aspect.size
    subs.info.update(
        {"PlayResX": str(width), "PlayResY": str(height), "WrapStyle": "2", "ScaledBorderAndShadow": "yes"}
    )
    subs.styles = {"Default": _ass_style(aspect, font_size)}
    for cue in cues:
        start_cs, end_cs = round(cue.start * 100), round(cue.end * 100)
        text = _karaoke_text(cue, words, start_cs, end_cs, aspect)
        subs.append(pysubs2.SSAEvent(start=start_cs * 10, end=end_cs * 10, text=text))
    return subs
