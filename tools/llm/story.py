"""A small story grammar: beats of template sentences, fitted to a word count.

A story is five beats (setting, character, problem, turning point, resolution) plus a closing line
that names the request. Each angle (friendship, mystery, comedy, adventure) writes the beats its own
way. Sentences carry a priority: a short script keeps the core sentence of each beat, a longer one
adds elaborations, then "episodes" in the middle; short neutral sentences close the last few words
of the gap, so any target from 12 to 1000 words lands within 10%.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tools.llm.hygiene import word_count
from tools.llm.premise import Premise

SETTING, CHARACTER, PROBLEM, MIDDLE, TURNING, RESOLUTION, CODA = range(7)
TOLERANCE = 0.1  # the writers promise 15%; aim inside it


@dataclass(frozen=True)
class Angle:
    name: str
    title: str
    hook: str
    twist: str  # the logline is "{Summary}: {twist}."
    beats: dict[int, tuple[str, ...]]


ANGLES: tuple[Angle, ...] = (
    Angle(
        name="friendship",
        title="{H} and {T}",
        hook="What would you do if {thing} needed a friend?",
        twist="a small kindness turns two strangers into friends",
        beats={
            SETTING: (
                "{Place}, there lived {hero}.",
                "Every day looked the same, and {H} liked it that way.",
                "The days were quiet, and the nights were long.",
            ),
            CHARACTER: (
                "{H_} kept to themselves and spoke to almost no one.",
                "Most evenings, {H} talked to the wind, just to hear a voice.",
            ),
            PROBLEM: (
                "Then one grey morning, everything changed because of {thing}.",
                "{T_} seemed tired, frightened, and very far from home.",
                "At first, {H} had no idea what to do.",
            ),
            TURNING: (
                "So {H} did the only thing that felt right, and stayed close.",
                "Day after day they came back, and {T} came back too.",
                "Slowly, the silence between them turned into something like friendship.",
            ),
            RESOLUTION: (
                "When the time came to say goodbye, neither of them hurried.",
                "{T_} found the way home at last.",
                "And {H} was never really alone again.",
            ),
        },
    ),
    Angle(
        name="mystery",
        title="The Secret of {T}",
        hook="Nobody could explain {T}, until one night someone tried.",
        twist="a secret kept for years finally comes to light",
        beats={
            SETTING: (
                "{Place}, there lived {hero}.",
                "People said nothing interesting ever happened there.",
                "They were wrong.",
            ),
            CHARACTER: (
                "{H_} noticed the things other people missed.",
                "{H_} kept a notebook of every strange sound and every odd light.",
            ),
            PROBLEM: (
                "One night, a strange light led {H} straight to {thing}.",
                "Nobody in town would say a word about {T}.",
                "Doors closed, and old neighbours looked away.",
            ),
            TURNING: (
                "Then {H} found an old letter hidden behind a loose brick.",
                "It explained everything, and it changed everything.",
                "{T_} had been waiting a very long time to be found.",
            ),
            RESOLUTION: (
                "By morning, the secret was out.",
                "The town was a little stranger after that, and a little kinder.",
                "And {H} kept the last page of the letter, just in case.",
            ),
        },
    ),
    Angle(
        name="comedy",
        title="Nobody Warned {H} About {T}",
        hook="This is what happens when {hero} meets {thing}.",
        twist="nothing, absolutely nothing, goes to plan",
        beats={
            SETTING: (
                "{Place}, there lived {hero}, who believed every day should go exactly to plan.",
                "Breakfast at seven, work at eight, and absolutely no surprises.",
            ),
            CHARACTER: (
                "{H_} owned three alarm clocks and trusted none of them.",
                "Even the houseplants were watered on a strict timetable.",
            ),
            PROBLEM: (
                "Then {thing} turned up and ruined the plan completely.",
                "It started with a knock at the door and ended with a very wet kitchen floor.",
                "{H_} tried being polite, then firm, then hiding behind the sofa.",
            ),
            TURNING: (
                "None of it worked, so {H} gave up and made two cups of tea instead.",
                "That, it turned out, was the best idea anyone had all week.",
                "{T_} approved of the tea, and of the biscuits, and of the sofa.",
            ),
            RESOLUTION: (
                "These days, the plan ends with one new line, which says to expect {T}.",
                "It is written in very large letters.",
                "And {H} had not laughed so much in years.",
            ),
        },
    ),
    Angle(
        name="adventure",
        title="One Night to Save {T}",
        hook="One night, one storm, and one chance to save {T}.",
        twist="one stormy night decides everything",
        beats={
            SETTING: (
                "{Place}, {hero} saw the storm coming before anyone else.",
                "It arrived without warning, and the lights went out one by one.",
                "The wind howled like something alive.",
            ),
            CHARACTER: ("{H_} had spent years getting ready for a night like this, and still felt afraid.",),
            PROBLEM: (
                "Out in the dark, {thing} needed help, and fast.",
                "Every minute made the danger worse.",
                "There was no help coming, and no time to wait for it.",
            ),
            TURNING: (
                "So {H} took a deep breath and stepped out into the storm.",
                "The wind pushed back, again and again.",
                "But {H} kept going, one step at a time, all the way to {T}.",
            ),
            RESOLUTION: (
                "When the sun finally rose, the storm was over.",
                "{T_} had made it through the night.",
                "And {H} had learned that being brave does not mean being unafraid.",
            ),
        },
    ),
)
ANGLE_BY_NAME = {angle.name: angle for angle in ANGLES}
CODA_LINE = "And that is the story of {summary}."

# The middle of a long story: a morning, an evening, another try.
_WHEN = (
    "The next morning",
    "That afternoon",
    "Later that week",
    "On the third day",
    "When the rain stopped",
    "Just before sunset",
    "Long after midnight",
    "A few days later",
    "Early the next day",
    "By the end of the month",
    "One windy evening",
    "After a long silence",
)
_DID = (
    "went looking for {T} again",
    "wrote down everything that had happened so far",
    "left a lantern burning in the window for {T}",
    "asked an old friend for advice and listened carefully",
    "took the long way home, thinking about {T}",
    "tried a new plan, and then another, and then a third",
    "sat very still and waited for a sign",
    "mended what was broken and started again",
    "packed a small bag with bread, rope, and a warm coat",
    "found a clue that everyone else had missed",
    "laughed for the first time in weeks",
    "almost gave up, but not quite",
    "drew a map of every place {T} had been seen",
    "counted the hours and tried to stay patient",
)
# Short neutral sentences that close the last few words of the gap, by beat.
_FILLERS = {
    SETTING: ("It was quiet there.", "Nothing much ever changed."),
    CHARACTER: ("Life was simple.", "That suited them well."),
    PROBLEM: ("Nobody expected it.", "It was not easy.", "Then everything changed."),
    MIDDLE: ("The days went by.", "Weeks passed.", "Still, nothing."),
    TURNING: ("Something shifted.", "Hope came slowly.", "They did not give up."),
    RESOLUTION: ("And it was enough.", "Everything felt different now.", "Some stories end well."),
}


@dataclass(frozen=True)
class Line:
    text: str
    priority: int  # lower is kept first
    order: tuple[int, int]  # (beat, slot): where it is read

    @property
    def words(self) -> int:
        return word_count(self.text)


def story_lines(premise: Premise, angle: Angle, seed: int, target: int) -> list[Line]:
    """Every sentence the story could use, enough to fill `target` words."""
    lines = [Line(premise.fill(CODA_LINE), 0, (CODA, 0))]
    for beat, texts in angle.beats.items():
        first = 1 if beat == CHARACTER else 0
        lines += [Line(premise.fill(t), first + i, (beat, 2 * i)) for i, t in enumerate(texts)]
    return lines + episodes(premise.hero_ref, premise.thing_ref, seed, target)


def episodes(hero: str, thing: str, seed: int, target: int) -> list[Line]:
    """Middle sentences, as many as `target` could need, never the same one twice.

    Times and deeds are shuffled apart and paired in step, so neighbours never share either.
    """
    rng = random.Random(seed)
    whens, dids = rng.sample(_WHEN, len(_WHEN)), rng.sample(_DID, len(_DID))
    count = min(math.lcm(len(whens), len(dids)), math.ceil(target / 8))
    return [
        Line(
            f"{whens[i % len(whens)]}, {hero if i % 2 == 0 else 'they'} {dids[i % len(dids)].format(T=thing)}.",
            10 + i,
            (MIDDLE, 2 * i),
        )
        for i in range(count)
    ]


def fillers(beats: tuple[int, ...] = tuple(_FILLERS)) -> list[Line]:
    return [Line(text, 0, (beat, 2 * i + 1)) for beat in beats for i, text in enumerate(_FILLERS[beat])]


def fit(lines: list[Line], spare: list[Line], target: int) -> str:
    """Keep lines by priority, then close the gap to `target` words with `spare` lines.

    Core lines (priority 0) may run 10% over the target; the others stop at it.
    """
    lo, hi = math.ceil(target * (1 - TOLERANCE)), math.floor(target * (1 + TOLERANCE))
    chosen: list[Line] = []
    total = 0
    for line in sorted(lines, key=lambda ln: (ln.priority, ln.order)):
        if total + line.words <= (hi if line.priority == 0 else target):
            chosen.append(line)
            total += line.words
    chosen += _close_gap(spare, lo - total, hi - total, target - total)
    return " ".join(line.text for line in sorted(chosen, key=lambda ln: ln.order))


def _close_gap(spare: list[Line], need_lo: int, need_hi: int, want: int) -> list[Line]:
    """The fewest spare lines whose words sum nearest `want` inside [need_lo, need_hi] (subset sum)."""
    best: dict[int, list[int]] = {0: []}
    for i, line in enumerate(spare):
        for total, picked in list(best.items()):
            new = total + line.words
            if new <= need_hi and (new not in best or len(best[new]) > len(picked) + 1):
                best[new] = [*picked, i]
    inside = [t for t in best if t >= need_lo] or [max(best)]
    total = min(inside, key=lambda t: (abs(t - want), len(best[t])))
    return [spare[i] for i in best[total]]
