"""Search terms a camera could film, from a shot's own sentences (the offline extractor).

Stock search ranks on a few concrete words; a whole sentence, or a keyword title like
"first lighthouse keeper idea", finds footage that has nothing to do with the narration. Without a
tagger we keep words that name things and settings: content words that are not function words,
common verbs, abstract nouns or adverbs, preferring an adjective-noun pair the sentence already has.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

MAX_TERMS = 4
MIN_TERMS = 2
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*")

_STOP = frozenset(
    """
a about above after again against all almost also always am an and any are around as at away back be
became because become been before being below between both but by can could did do does doing done down
during each either else ever every few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just least less like made make makes many may me might more
most much must my myself near never new no nor not now of off often on once one only onto or other our
ours out over own per perhaps quite rather really same say said says she should since so some something
still such than that the their theirs them themselves then there these they thing things this those
though through thus to too toward towards under until up upon us very was we well were what whatever
when where whether which while who whom whose why will with within without would yet you your yours
""".split()
)
_VERBS = frozenset(
    """
ask asked asks begin began begins believe believed bring brought call called came come comes
feel feels felt find finds found gave get gets give gives go goes going gone got hear heard help helped
hold holds keep keeps kept knew know known knows lead led learn learned leave left let lets live lived
lives look looked looks lose lost love loved meet met move moved need needed open opened put run runs
saw see seen sees seem seemed seems set show showed shows sit speak spoke stand stood start started
stay stayed stop stopped take takes taken talk tell tells think thought told took try tried turn turned
use used wait waited walk walked want wanted watch watched went work worked write wrote
""".split()
)
_ABSTRACT = frozenset(
    """
idea ideas way ways time times day days year years moment moments reason story stories life lives world
kind sort lot lots part parts end beginning fact truth question answer thing nothing everything anything
someone everyone anyone nobody people person place places heart mind soul hope fear love dream dreams
memory memories chance change matter problem point side reason feeling feelings sense today tomorrow
yesterday night's tonight first last next another every own true real little big great good bad
""".split()
)
_ADVERB_SUFFIX = ("ly",)
_VERB_SUFFIX = ("ing", "ed")


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'").removesuffix("'s") for w in _WORD.findall(text)]


def _concrete(word: str) -> bool:
    return (
        len(word) > 2
        and word not in _STOP
        and word not in _VERBS
        and word not in _ABSTRACT
        and not word.endswith(_ADVERB_SUFFIX)
    )


def search_terms(text: str, limit: int = MAX_TERMS) -> list[str]:
    """Up to `limit` search terms from `text`, most specific first: adjacent pairs of concrete words
    (as the sentence has them), then single nouns by frequency and first appearance."""
    words = _words(text)
    kept = [(i, w) for i, w in enumerate(words) if _concrete(w)]
    nouns = [w for _, w in kept if not w.endswith(_VERB_SUFFIX)]
    counts = Counter(nouns)
    singles = sorted(dict.fromkeys(nouns), key=lambda w: (-counts[w], nouns.index(w)))
    pairs = []
    for (i, a), (j, b) in itertools.pairwise(kept):
        if j == i + 1 and not b.endswith(_VERB_SUFFIX) and a != b:
            pairs.append(f"{a} {b}")
    modifiers = {p.split()[0] for p in pairs}  # "old" in "old lighthouse" describes, it is not a subject
    terms = list(dict.fromkeys([*pairs[:1], *(w for w in singles if w not in modifiers), *pairs[1:]]))
    if len(terms) < MIN_TERMS:  # a very short shot: any content word is better than none
        terms += [w for w in dict.fromkeys(w for w in words if w not in _STOP and len(w) > 2) if w not in terms]
    return terms[:limit]


def queries(terms: list[str], broader: list[str]) -> list[str]:
    """Searches to try in order: the two best terms together, each term alone, then broader terms."""
    tried = [" ".join(terms[:2])] if len(terms) > 1 and " " not in terms[0] else []
    tried += terms + broader
    return [q for q in dict.fromkeys(q.strip() for q in tried) if q]
