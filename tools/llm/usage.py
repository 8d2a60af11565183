"""What providers bill, counted per job and stage.

The writer and the voice are shared by every job of a process, so they cannot hold a job's totals.
A node opens a `metered()` block instead; providers `count()` into whichever block encloses the
call (a context variable, so concurrent jobs on one event loop never mix their figures).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# (provider, unit) -> amount, e.g. ("openai:gpt-4o-mini", "prompt_tokens") -> 812
Usage = Counter[tuple[str, str]]

_current: ContextVar[Usage | None] = ContextVar("storybot_usage", default=None)


@contextmanager
def metered() -> Iterator[Usage]:
    """Collect what providers count inside the block; the counter is complete when it ends."""
    used: Usage = Counter()
    token = _current.set(used)
    try:
        yield used
    finally:
        _current.reset(token)


def count(provider: str, **amounts: int) -> None:
    """Add billed amounts (tokens, characters) to the enclosing block; outside one, nothing to do."""
    used = _current.get()
    if used is not None:
        for unit, amount in amounts.items():
            if amount > 0:  # a server reporting a negative count is not believed (nothing is billed back)
                used[(provider, unit)] += int(amount)
