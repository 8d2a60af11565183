"""Stock footage and photos for each shot (Pexels, Pixabay), matched by the shot's search terms.

For each shot, in order: each query (two best terms, each term, then broader terms) is put to
every configured provider, videos first; the first hit no other shot of the video uses, in the
output's orientation when there is one, is downloaded. Footage shorter than the shot is chained
with the next unused hits of the same search. Photos (animated with Ken Burns) fill in when no
footage is found. Re-roll asks again with the shot's earlier picks excluded: the next hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel, SecretStr

from tools.errors import StorybotError
from tools.media import motion
from tools.models import Aspect
from tools.net.guard import Guard
from tools.settings import Settings
from tools.storage import Storage
from tools.visuals import footage
from tools.visuals.base import (
    Credit,
    Job,
    Miss,
    Opening,
    Rank,
    ShotBrief,
    SourceRow,
    Visual,
    VisualError,
    cache_dir,
    shared_cache,
)
from tools.visuals.fetch import TIMEOUT, Http, RefusedMedia
from tools.visuals.terms import queries

MAX_CHAIN = 4  # clips at most in one shot
RANKED = 3  # candidates a vision model scores per shot
KEYFRAMES_AT_ONCE = 2  # shots whose keyframe is made while later shots download
TRIES_PER_SHOT = 3  # downloads that may fail before the shot gives up on a kind
SHOT_DEADLINE = 600.0  # seconds one shot may spend searching and downloading before it gets a card


class Candidate(BaseModel):
    """One search hit, reduced to what choosing, downloading and crediting need."""

    provider: str
    id: str
    kind: Literal["image", "video"]
    url: str  # the file to download
    page: str  # the page to credit
    author: str
    width: int
    height: int
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.kind}:{self.id}"

    def fits(self, aspect: Aspect) -> bool:
        w, h = aspect.size
        return (self.width > self.height) == (w > h) and (self.width == self.height) == (w == h)


class StockProvider(Protocol):
    name: str
    base: str  # the configured API base: credentials go there only, and downloads on it need no checks

    async def search(
        self, http: Http, query: str, kind: Literal["image", "video"], aspect: Aspect
    ) -> list[Candidate]: ...


class StockSource:
    name: Literal["stock"] = "stock"

    def __init__(self, providers: list[tuple[StockProvider, Http]], cache: Path, rank: Rank | None = None) -> None:
        """`rank` (a vision model, when one is configured) scores a candidate's frame against the shot's
        words; the best of the first RANKED candidates is then taken first."""
        self.providers, self.cache, self.rank = providers, cache, rank
        self._searches: dict[tuple[str, str, str], list[Candidate]] = {}
        self._down: dict[str, str] = {}  # provider -> why it failed through its retries
        self._failed: dict[str, str] = {}  # media URL -> why it failed: not asked again in this job's stage

    @classmethod
    def open(
        cls,
        providers: list[tuple[StockProvider, dict[str, str], list[str]]],
        cache: Path,
        retries: int,
        rank: Rank | None = None,
        shared: Storage | None = None,
    ) -> tuple[StockSource, httpx.AsyncClient]:
        """A source over one shared client (the caller closes it): (provider, headers, secrets)."""
        client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True)
        https = [
            (p, Http(client, p.name, retries, secrets, headers, Guard.for_bases(p.base), shared))
            for p, headers, secrets in providers
        ]
        return cls(https, cache, rank), client

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]:
        """Shots are searched and downloaded in order (what one shot takes, the next may not), and
        each shot's keyframe is made while the next shot downloads, so fetching takes about as long
        as the downloads alone."""
        used = set(job.exclude)
        out: list[asyncio.Task[Visual | Miss] | Miss] = []
        finishing = asyncio.Semaphore(KEYFRAMES_AT_ONCE)
        try:
            for brief in briefs:
                try:
                    async with asyncio.timeout(SHOT_DEADLINE):
                        taken = await self._shot(brief, job, used)
                except TimeoutError:
                    taken = Miss(shot=brief.index, reason=f"no stock media within {SHOT_DEADLINE:g} s")
                if isinstance(taken, Miss):
                    out.append(taken)
                    continue
                used.update(h.key for h, _ in taken)
                out.append(asyncio.create_task(self._visual(brief, job, taken, finishing)))
            await asyncio.gather(*(t for t in out if isinstance(t, asyncio.Task)))
        finally:  # a failure or a cancellation leaves no keyframe task running
            tasks = [t for t in out if isinstance(t, asyncio.Task)]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [r if isinstance(r, Miss) else r.result() for r in out]

    async def _search(
        self, provider: StockProvider, http: Http, query: str, kind: Literal["image", "video"], aspect: Aspect
    ) -> list[Candidate]:
        key = (provider.name, query, kind)
        if key not in self._searches:
            self._searches[key] = await provider.search(http, query, kind, aspect)
        return self._searches[key]

    async def _shot(self, brief: ShotBrief, job: Job, used: set[str]) -> list[tuple[Candidate, Path]] | Miss:
        problems: list[str] = []
        for kind in ("video", "image"):
            for query in queries(brief.terms, brief.broader):
                for provider, http in self.providers:
                    if provider.name in self._down:
                        problems.append(self._down[provider.name])
                        continue
                    try:
                        hits = await self._search(provider, http, query, kind, job.aspect)
                    except VisualError as exc:  # after its retries: not asked again for this video
                        self._down[provider.name] = str(exc)
                        problems.append(str(exc))
                        continue
                    fresh = sorted((h for h in hits if h.key not in used), key=lambda h: not h.fits(job.aspect))
                    if not fresh:
                        continue
                    if self.rank is not None:
                        fresh = await self._ranked(brief, job, http, fresh[:RANKED]) + fresh[RANKED:]
                    taken = await self._take(brief, http, fresh, problems)
                    if taken:
                        return taken
        why = (
            "; ".join(dict.fromkeys(problems)) or f"nothing found for {', '.join(queries(brief.terms, brief.broader))}"
        )
        return Miss(shot=brief.index, reason=f"no stock media: {why}")

    async def _ranked(self, brief: ShotBrief, job: Job, http: Http, hits: list[Candidate]) -> list[Candidate]:
        """`hits` best first by the vision model's score of one frame each (unscored ones last, in order)."""
        assert self.rank is not None
        scores: list[float] = []
        for n, hit in enumerate(hits):
            if hit.url in self._failed:
                scores.append(-1.0)
                continue
            try:
                path = await http.download(hit.url, self.cache, f"{hit.kind}_{hit.id}", hit.kind)
            except VisualError as exc:
                self._failed[hit.url] = str(exc)
                scores.append(-1.0)
                continue
            try:
                frame = job.media(brief, f".candidate{n + 1}.png")
                if hit.kind == "video":
                    await footage.clip_keyframe(path, job.aspect, frame)
                else:
                    await asyncio.to_thread(footage.still_keyframe, path, job.aspect, frame)
                score = await self.rank(frame, brief.text)
                frame.unlink(missing_ok=True)
            except VisualError:
                score = None
            scores.append(-1.0 if score is None else score)
        order = sorted(range(len(hits)), key=lambda i: -scores[i])
        return [hits[i] for i in order]

    async def _take(
        self, brief: ShotBrief, http: Http, hits: list[Candidate], problems: list[str]
    ) -> list[tuple[Candidate, Path]]:
        """Download the first usable hit (chaining footage up to the shot's length)."""
        taken: list[tuple[Candidate, Path]] = []
        failures = 0
        for hit in hits:
            if failures >= TRIES_PER_SHOT or len(taken) >= MAX_CHAIN:
                break
            if hit.url in self._failed:  # failed for an earlier query or shot: no second try, no cost
                continue
            try:
                path = await http.download(hit.url, self.cache, f"{hit.kind}_{hit.id}", hit.kind)
                if hit.kind == "video":
                    hit = hit.model_copy(update={"seconds": await asyncio.to_thread(footage.clip_seconds, path)})
            except RefusedMedia as exc:  # nothing was fetched: the next hit costs no try
                self._failed[hit.url] = str(exc)
                problems.append(str(exc))
                continue
            except VisualError as exc:
                self._failed[hit.url] = str(exc)
                problems.append(str(exc))
                failures += 1
                continue
            taken.append((hit, path))
            # the final cut would not show a next clip for less than MIN_PIECE: it slows this one
            if hit.kind == "image" or sum(h.seconds for h, _ in taken) >= brief.seconds - motion.MIN_PIECE:
                break
        return taken

    @staticmethod
    async def _visual(
        brief: ShotBrief, job: Job, taken: list[tuple[Candidate, Path]], finishing: asyncio.Semaphore
    ) -> Visual | Miss:
        """The shot's keyframe and footage in the job folder, from what `_take` downloaded; a Miss
        (the shot gets a card) when the downloaded media will not give a frame."""
        async with finishing:
            try:
                return await StockSource._finish(brief, job, taken)
            except StorybotError as exc:
                return Miss(shot=brief.index, reason=f"the stock media would not decode ({exc})")

    @staticmethod
    async def _finish(brief: ShotBrief, job: Job, taken: list[tuple[Candidate, Path]]) -> Visual:
        png = job.keyframe(brief)
        png.parent.mkdir(parents=True, exist_ok=True)
        first = taken[0][1]
        clips: list[Path] = []
        if taken[0][0].kind == "video":
            clips = [footage.keep(p, job.media(brief, f"_{k + 1}{p.suffix}")) for k, (_, p) in enumerate(taken)]
            await footage.clip_keyframe(first, job.aspect, png)
        else:
            await asyncio.to_thread(footage.still_keyframe, first, job.aspect, png)
        return Visual(
            shot=brief.index,
            source=taken[0][0].provider,
            keyframe=png,
            clips=clips,
            media_ids=[h.key for h, _ in taken],
            credits=[
                Credit(shot=brief.index + 1, source=h.provider, id=h.id, author=h.author, url=h.page) for h, _ in taken
            ],
        )


# --- the registry row ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One stock site: the key that configures it, and its client with the headers for its API."""

    name: str
    needs: str  # the key's variable
    key: Callable[[Settings], SecretStr | None]
    make: Callable[[Settings, str], tuple[StockProvider, dict[str, str]]]  # (client, API headers) from the key


def source_row(sites: list[Site]) -> SourceRow:
    """The `stock` row over these sites: available when any is configured, searched in this order."""

    def configured(settings: Settings) -> list[tuple[Site, str]]:
        return [(site, key.get_secret_value()) for site in sites if (key := site.key(settings)) is not None]

    @asynccontextmanager
    async def open_stock(settings: Settings, opening: Opening) -> AsyncIterator[StockSource]:
        clients = [(*site.make(settings, key), [key]) for site, key in configured(settings)]
        stock, client = StockSource.open(
            clients, cache_dir(settings), settings.provider_retries, opening.rank, shared_cache(settings)
        )
        async with client:
            yield stock

    return SourceRow(
        "stock",
        " or ".join(site.needs for site in sites),
        lambda settings: bool(configured(settings)),
        open_stock,
        lambda settings, used: f"stock ({', '.join(dict.fromkeys(used)) or 'none'})",
    )
