"""What a request is about, extracted simply enough to be predictable.

"Make a short video about a lighthouse keeper who befriends a lost whale" gives the hero
"a lighthouse keeper", the thing "a lost whale" and a coastal place. No parser can be right about
every sentence, so every piece is capped in length and has a fallback: the offline writer always
gets a hero, a thing and a place that read as English inside its templates.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass

from tools.llm.hygiene import STOPWORDS, cap, content_words, plain_text, words

_LEAD = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|please|pls|storybot|bot)\b[\s,!.]*)*"
    r"(?:(?:can|could|would|will)\s+you\s+)?(?:please\s+)?"
    r"(?:(?:make|create|write|tell|generate|give|show|produce|render|draft)\s+(?:me\s+|us\s+)?"
    r"|i\s*(?:want|need|would\s+like|'d\s+like)\s+)?"
    r"(?:(?:(?:a|an|one|some)\s+)?(?:(?:short|quick|little|tiny|new|funny|sad|scary|cute|vertical|narrated"
    r"|animated|bedtime|epic|dramatic|mysterious|happy|heartwarming)\s+)*"
    r"(?:video|story|stories|tale|film|clip|reel|short|animation|movie)s?"
    r"(?:\s+(?:about|of|on|where|in\s+which|featuring|with))?\s+"
    r"|(?:about|featuring)\s+)?",
    re.IGNORECASE,
)
_RELATIVE = frozenset({"who", "that", "which", "whose"})
_ARTICLES = frozenset({"a", "an", "the", "this", "that", "some", "one"})
_POSSESSIVES = frozenset({"my", "your", "our", "his", "her", "their"})
_NUMBERS = frozenset("two three four five six seven eight nine ten twelve hundred many".split())
_PREPOSITIONS = frozenset(
    "about above across after against along among around at before behind below beneath beside "
    "between beyond by during for from in inside into near of off on onto over past through "
    "throughout to toward towards under until upon with within without".split()
)
_VAGUE = frozenset(
    "something anything story stories video videos random surprise cool fun interesting good nice "
    "great whatever idea ideas short shorts".split()
)
# Words that ask for a tone, by the story angle that has it.
TONES: dict[str, frozenset[str]] = {
    "comedy": frozenset(
        "funny funnier humor humour humorous joke jokes comic comedy comedic lighter silly "
        "sillier laugh laughs hilarious witty wittier".split()
    ),
    "adventure": frozenset(
        "dramatic drama darker dark tense tension epic intense scarier scary suspense "
        "suspenseful exciting thrilling stakes action adventure".split()
    ),
    "mystery": frozenset("mystery mysterious secret secrets detective clue clues eerie puzzle spooky spookier".split()),
    "friendship": frozenset(
        "happier happy warmer warm sweet sweeter hopeful kinder softer gentle gentler "
        "uplifting heartwarming cozy cosy calm calmer friendship friend friends".split()
    ),
}
_SMALL_WORDS = frozenset("a an and as at but by for in nor of on or the to with".split())
MAX_PHRASE_WORDS = 6
MAX_DEED_WORDS = 10

# (place words, hint words) -> setting. A place named in the request wins over a hint anywhere in it:
# "dragons in space" happens in space, not in the dragons' forest.
_PLACES: tuple[tuple[frozenset[str], frozenset[str], str], ...] = (
    (
        frozenset("sea ocean harbour harbor island beach shore coast lighthouse".split()),
        frozenset("whale whales ship ships boat fish sailor pirate pirates wave waves dolphin shark mermaid".split()),
        "on a rocky stretch of coast",
    ),
    (
        frozenset("space planet moon orbit mars galaxy station".split()),
        frozenset("star stars rocket astronaut alien aliens robot robots".split()),
        "aboard a quiet station far above the earth",
    ),
    (
        frozenset("forest wood woods jungle".split()),
        frozenset("tree trees fox wolf bear owl dragon dragons witch deer elf mushroom".split()),
        "in a forest older than any map",
    ),
    (
        frozenset("mountain mountains arctic valley".split()),
        frozenset("snow ice winter penguin polar cold".split()),
        "in a valley buried deep in snow",
    ),
    (
        frozenset("desert dune dunes".split()),
        frozenset("sand camel cactus pyramid".split()),
        "at the edge of a wide and silent desert",
    ),
    (
        frozenset("city town street subway office apartment".split()),
        frozenset("taxi cafe bakery baker shop cat dog train".split()),
        "in a busy city that never quite went to sleep",
    ),
)
_DEFAULT_PLACE = "in a small town at the edge of the map"
# (first mention, later mention) for requests that name a thing but no one to meet it.
_STAND_IN_HEROES = (
    ("a young mapmaker", "the mapmaker"),
    ("an old clockmaker", "the clockmaker"),
    ("a night-shift nurse", "the nurse"),
    ("a retired sailor", "the sailor"),
    ("a girl named Ines", "Ines"),
    ("a baker called Theo", "Theo"),
)
FALLBACK_REQUESTS = (
    "a lighthouse keeper who befriends a lost whale",
    "a robot who learns to paint",
    "a baker who bakes bread for the moon",
    "a fox who guards an old library",
)


@dataclass(frozen=True)
class Premise:
    hero: str  # first mention: "a lighthouse keeper"
    hero_ref: str  # later mentions: "the lighthouse keeper"
    thing: str  # "a lost whale"
    thing_ref: str  # "the lost whale"
    place: str  # "on a rocky stretch of coast"
    summary: str  # "a lighthouse keeper who befriends a lost whale", or just the thing
    deed: str  # "befriends a lost whale", or "" when the request named no hero
    keywords: tuple[str, ...]
    tone: str | None  # the angle the request's words ask for ("a funny video...": "comedy")

    def fill(self, template: str) -> str:
        """Render a template; capitalised placeholder names give a capitalised phrase."""
        parts = {
            "hero": self.hero,
            "H": self.hero_ref,
            "thing": self.thing,
            "T": self.thing_ref,
            "place": self.place,
            "summary": self.summary,
        }
        return template.format(**parts, **{_capital_key(k): cap(v) for k, v in parts.items()})


def _capital_key(key: str) -> str:
    """`hero` -> `Hero`; one-letter names are upper case already, so `H` -> `H_`."""
    return key[:1].upper() + key[1:] + ("_" if key[:1].isupper() else "")


def stable_hash(*texts: str) -> int:
    """Same text, same number, in every process (`hash()` is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(texts).encode()).digest()[:8], "big")


def parse_premise(text: str) -> Premise | None:
    """The premise of a request, or None when it names nothing to tell a story about."""
    text = plain_text(text, 600)
    asked = {w.lower() for w in words(text)}
    tone = next((name for name, keys in TONES.items() if asked & keys), None)
    text = _LEAD.sub("", text, count=1)
    tokens = _cased([w for w in words(text) if len(w) > 1 or w.lower() in ("a", "i") or w.isdigit()][:24])
    if not [t for t in content_words(" ".join(tokens)) if t not in _VAGUE]:
        return None
    keywords = tuple(content_words(" ".join(tokens)))
    split = next((i for i, t in enumerate(tokens) if t.lower() in _RELATIVE and i > 0), None)
    place = _place(tokens)
    if split is None:  # a thing, or a headline-like clause: "Town discovers a secret tunnel"
        verb = next((i for i, t in enumerate(tokens[:-1]) if i > 0 and _verb_like(t, tokens[i + 1])), None)
        thing_tokens = (_object(tokens[verb:]) if verb else []) or _noun_phrase(tokens)
        hero, hero_ref = _STAND_IN_HEROES[stable_hash(text) % len(_STAND_IN_HEROES)]
        thing, thing_ref = _mentions(thing_tokens)
        return Premise(hero, hero_ref, thing, thing_ref, place, thing, "", keywords, tone)
    hero, hero_ref = _mentions(_noun_phrase(tokens[:split]))
    deed_tokens = _trim_end(tokens[split + 1 :][:MAX_DEED_WORDS])
    thing_tokens = _object(deed_tokens)
    if thing_tokens:
        thing, thing_ref = _mentions(thing_tokens)
    else:
        thing, thing_ref = f"a dream of {_gerund(deed_tokens)}", "the dream"
    deed = " ".join(deed_tokens) or "found something new"
    return Premise(
        hero, hero_ref, thing, thing_ref, place, f"{hero} {tokens[split].lower()} {deed}", deed, keywords, tone
    )


def title_case(text: str) -> str:
    out = []
    for i, word in enumerate(text.split()):
        small = i > 0 and word in _SMALL_WORDS
        out.append(word if small or any(ch.isupper() for ch in word) else cap(word))
    return " ".join(out)


def _cased(tokens: list[str]) -> list[str]:
    """Lower-case function words, shouting and a capital that only starts the request.

    "Dragons in space" is about dragons; "Captain Nemo's last dive" keeps its name.
    """
    out = []
    for i, token in enumerate(tokens):
        lower = token.lower()
        starts = i == 0 and not (len(tokens) > 1 and tokens[1][:1].isupper())
        if starts or lower in STOPWORDS or lower in _VAGUE or (token.isupper() and len(token) > 3):
            token = lower
        out.append(token)
    return out


def _place(tokens: list[str]) -> str:
    lowered = [t.lower() for t in tokens]
    for kind in (0, 1):
        for token in lowered:
            for entry in _PLACES:
                if token in entry[kind]:
                    return entry[2]
    return _DEFAULT_PLACE


def _verb_like(token: str, following: str) -> bool:
    """`discovers a`, `opened the`: a verb ending before the article of its object."""
    lower = token.lower()
    return (
        lower.endswith(("s", "ed"))
        and lower not in STOPWORDS | _PREPOSITIONS
        and following.lower() in _ARTICLES | _POSSESSIVES | _NUMBERS
    )


def _noun_phrase(tokens: list[str]) -> list[str]:
    """At most six words, cut before a preposition when the phrase runs long."""
    if len(tokens) <= MAX_PHRASE_WORDS:
        return tokens
    cut = next((i for i, t in enumerate(tokens) if i >= 2 and t.lower() in _PREPOSITIONS), MAX_PHRASE_WORDS)
    return tokens[: min(cut, MAX_PHRASE_WORDS)]


def _object(deed: list[str]) -> list[str]:
    """The noun phrase a deed acts on: `befriends a lost whale` -> `a lost whale`."""
    start = next((i for i, t in enumerate(deed) if t.lower() in _ARTICLES | _POSSESSIVES | _NUMBERS), None)
    if start is None:  # a bare noun after the verb (`fights dragons`), but not `learns to paint`
        if len(deed) < 2 or deed[1].lower() in _PREPOSITIONS | STOPWORDS:
            return []
        start = 1
    phrase = deed[start:]
    end = next((i for i, t in enumerate(phrase) if i >= 2 and t.lower() in _PREPOSITIONS | _RELATIVE), len(phrase))
    return _trim_end(phrase[: min(end, MAX_PHRASE_WORDS)])


def _trim_end(tokens: list[str]) -> list[str]:
    """Drop dangling function words a length cap left at the end: `... a frying pan in the`."""
    while tokens and tokens[-1].lower() in STOPWORDS | _PREPOSITIONS:
        tokens = tokens[:-1]
    return tokens


def _mentions(tokens: list[str]) -> tuple[str, str]:
    """(first mention, later mention): `a lost whale` -> `the lost whale`, `Ines` -> `Ines`."""
    first, *rest = tokens
    lower = first.lower()
    if lower in _ARTICLES:
        head = rest or ["stranger"]
        return " ".join([lower, *head]), "the " + " ".join(_head(head))
    if lower in _POSSESSIVES:
        return " ".join(tokens), " ".join([lower, *_head(rest or ["friend"])])
    if first[:1].isupper():  # a name, or a name's something: "Captain Nemo's last dive"
        name = len(list(itertools.takewhile(lambda t: t[:1].isupper(), tokens)))
        rest = tokens[name:]
        return " ".join(tokens), ("the " + " ".join(_head(rest)) if rest else " ".join(tokens[:3]))
    return " ".join(tokens), "the " + " ".join(_head(tokens))


def _head(tokens: list[str]) -> list[str]:
    """The last two words before any preposition: `keeper of the old light` -> `keeper`."""
    end = next((i for i, t in enumerate(tokens) if i > 0 and t.lower() in _PREPOSITIONS), len(tokens))
    return tokens[:end][-2:]


def _gerund(deed: list[str]) -> str:
    """`learns to paint` -> `learning to paint`: regular English verbs are enough here."""
    if not deed:
        return "something new"
    verb = deed[0].lower()
    special = {
        "is": "being",
        "are": "being",
        "has": "having",
        "have": "having",
        "does": "doing",
        "goes": "going",
        "dies": "dying",
        "lies": "lying",
    }
    if verb in special:
        verb = special[verb]
    else:
        if verb.endswith("ies"):
            verb = verb[:-3] + "y"
        elif verb.endswith(("sses", "shes", "ches", "xes", "zes")):
            verb = verb[:-2]
        elif verb.endswith("s") and not verb.endswith("ss"):
            verb = verb[:-1]
        if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
            verb = verb[:-1]
        verb += "ing"
    return " ".join([verb, *deed[1:]])
