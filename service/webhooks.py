"""Webhooks: a signed POST to a job's `webhook_url` when it waits for an answer, ends or fails.

Signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the
job's token's `whsec_` secret, so a receiver verifies us with any Standard Webhooks library. A call
is made from the job's event log, never from inside the job: a slow or dead receiver never holds a
job up. Each delivery is a row (one per job event, so a restart neither loses nor repeats one) and
each attempt is recorded; failures are retried with doubling backoff. A process claims a delivery
before each attempt (compare-and-set on its `next_at`), so several service processes on one shared
database send it once; one that dies mid-attempt leaves it to the others after the claim's deadline.
A URL must be https on a public address (checked again at every attempt, redirects not followed),
unless `STORYBOT_WEBHOOK_ALLOW_PRIVATE=1` (a receiver on this machine or network).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from standardwebhooks import Webhook

from graph.api import FINAL_EVENTS, BadInput, Event, JobService, Settings, redact
from service.tokens import TokenStore
from tools.net.guard import Guard, RefusedURL, origin
from tools.sql import upsert

log = logging.getLogger("storybot.service")
HOOKED = {"waiting": "job.waiting", "done": "job.done", "failed": "job.failed", "cancelled": "job.cancelled"}
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
POLL = 1.0  # seconds between looks at the event log for jobs run by other processes
ATTEMPT_S = 30.0  # an attempt (address check, connect, answer) is cut after this
CLAIM_S = 2 * ATTEMPT_S  # a claimed delivery is left alone this long: then its sender is taken for dead


def guard_for(url: str, settings: Settings) -> Guard:
    """The address rules of one webhook URL: public https, or anything when private hooks are allowed."""
    return Guard.for_bases(url) if settings.webhook_allow_private else Guard()


async def check_url(url: str, settings: Settings) -> str:
    """The URL when we would call it; BadInput naming why not (at job creation, so nothing is made)."""
    try:
        await guard_for(url, settings).check(url)
        scheme, _host, _port = origin(url)
    except RefusedURL as exc:
        raise BadInput(f"webhook_url is refused: {exc}") from None
    if scheme not in ("https", "http"):
        raise BadInput("webhook_url must be an http(s) URL")
    return url


class Webhooks:
    """Turns job events into deliveries and sends them; one per service process, any number of them
    on one database (each delivery is claimed before it is sent, so it is sent by one of them)."""

    def __init__(self, service: JobService, tokens: TokenStore, settings: Settings) -> None:
        self.service, self.tokens, self.settings = service, tokens, settings
        self.db = tokens.db  # beside the tokens: the same file, or the same shared database
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)

    def attach(self, job_id: str, url: str, token: str) -> None:
        row = {"job_id": job_id, "url": url, "token": token, "cursor": 0, "closed": 0}
        sql = upsert(self.db.engine, self.db.hooks).values(row)
        with self.db.engine.begin() as db:
            db.execute(sql.on_conflict_do_update(index_elements=["job_id"], set_={k: sql.excluded[k] for k in row}))

    def on_event(self, event: Event) -> None:
        """JobService listener: a reported event of this process is collected at once."""
        if event.kind in HOOKED:
            self._wake.set()

    def collect(self) -> None:
        """Each open hook's new reported events become pending deliveries, read from the job's event
        log (keyed by the event's number: the same event never makes two, whichever process collects
        it). The log, not this process's events, so a job run by another process, or while the service
        was down, is reported too."""
        hooks, deliveries = self.db.hooks, self.db.deliveries
        with self.db.engine.connect() as db:
            open_hooks = db.execute(select(hooks.c.job_id, hooks.c.cursor).where(hooks.c.closed == 0)).all()
        for job_id, cursor in open_hooks:
            logged = self.service.store.events_after(str(job_id), int(cursor or 0))
            if not logged:
                continue
            closed = False
            with self.db.engine.begin() as db:
                for seq, body in logged:
                    event = Event.model_validate_json(body).model_copy(update={"id": seq})
                    if event.kind in HOOKED:
                        db.execute(
                            upsert(self.db.engine, deliveries).values(self._delivery(event)).on_conflict_do_nothing()
                        )
                        closed = closed or event.kind in FINAL_EVENTS
                # never moved back by a process that read the log before another one collected more
                last = logged[-1][0]
                moved = update(hooks).where(hooks.c.job_id == job_id, func.coalesce(hooks.c.cursor, 0) < last)
                db.execute(moved.values(cursor=last, closed=int(closed)))

    @staticmethod
    def _delivery(event: Event) -> dict[str, object]:
        body = {
            "type": HOOKED[event.kind],
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {
                "job_id": event.job_id,
                "status": event.kind,
                "waiting_for": event.stage if event.kind == "waiting" else None,
                "error": event.message if event.kind == "failed" else None,
                "event_id": event.id,
            },
        }
        return {
            "id": f"msg_{event.job_id}_{event.id}",
            "job_id": event.job_id,
            "type": body["type"],
            "body": json.dumps(body, ensure_ascii=False),
            "state": "pending",
            "attempts": 0,
            "next_at": time.time(),
        }

    def start(self) -> None:
        self.service.listeners.append(self.on_event)
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.service.listeners.remove(self.on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _run(self) -> None:
        """Collect and send what is due, oldest first; sleep until the next is due, an event of this
        process arrives, or a second has passed (another process's events). A database that is away
        (a restart) is tried again after a second."""
        deliveries = self.db.deliveries
        pending = select(deliveries).where(deliveries.c.state == "pending").order_by(deliveries.c.next_at)
        while True:
            self._wake.clear()
            try:
                self.collect()
                with self.db.engine.connect() as db:
                    due = db.execute(pending.where(deliveries.c.next_at <= time.time()).limit(20)).mappings().all()
                    later = None if due else db.execute(pending.limit(1)).mappings().first()
                if due:
                    await asyncio.gather(*(self._attempt(dict(row)) for row in due))
                    continue
            except SQLAlchemyError as exc:
                log.warning("webhooks: the database is unreachable (%s); trying again", type(exc).__name__)
                await asyncio.sleep(POLL)
                continue
            wait = min(POLL, max(0.05, later["next_at"] - time.time())) if later else POLL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def claim(self, delivery: str, seen: float) -> float | None:
        """Take a pending delivery for one attempt: its `next_at` moves from `seen` (read when it was due)
        to the attempt's deadline, if no other process moved it first (compare-and-set). Returns that
        deadline, or None when another process has it. A sender that dies mid-attempt leaves it to be
        retried by any process once the deadline has passed."""
        deliveries, until = self.db.deliveries, time.time() + CLAIM_S
        sql = (
            update(deliveries)
            .where(deliveries.c.id == delivery, deliveries.c.state == "pending", deliveries.c.next_at == seen)
            .values(next_at=until)
        )
        with self.db.engine.begin() as db:
            return until if db.execute(sql).rowcount == 1 else None

    async def _attempt(self, row: dict[str, Any]) -> None:
        until = self.claim(row["id"], row["next_at"])
        if until is not None:
            await self._send(row, until)

    async def _send(self, row: dict[str, object], until: float) -> None:
        delivery, job_id, body = str(row["id"]), str(row["job_id"]), str(row["body"])
        hooks = self.db.hooks
        with self.db.engine.connect() as db:
            hook = db.execute(select(hooks.c.url, hooks.c.token).where(hooks.c.job_id == job_id)).first()
        owner = self.tokens.named(str(hook.token)) if hook else None
        started, status, error = time.time(), 0, ""
        if not hook or owner is None or owner.webhook_secret is None:
            error = "the token that asked for this webhook was revoked"
        else:
            url = str(hook.url)
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(owner.webhook_secret.get_secret_value()).sign(delivery, now, body),
                "user-agent": "storybot-webhooks",
            }
            try:
                async with asyncio.timeout(ATTEMPT_S):  # ends well before the claim does
                    target = await guard_for(url, self.settings).check(url)
                    reply = await self._client.post(
                        target.url,
                        content=body.encode(),
                        headers={**headers, **target.headers},
                        extensions=target.extensions,
                    )
                status = reply.status_code
                if not 200 <= status < 300:
                    error = f"the receiver answered {status}"
            except RefusedURL as exc:
                error = f"refused: {exc}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {redact(str(exc), self.settings)[:200]}"
            except TimeoutError:
                error = f"no answer within {ATTEMPT_S:.0f} s"
        attempts = int(str(row["attempts"])) + 1
        ok = not error
        gave_up = not ok and attempts >= self.settings.webhook_attempts
        attempt = {
            "delivery": delivery,
            "at": started,
            "status": status,
            "error": error or None,
            "seconds": round(time.time() - started, 3),
        }
        deliveries = self.db.deliveries
        outcome = update(deliveries).where(deliveries.c.id == delivery, deliveries.c.next_at == until)
        with self.db.engine.begin() as db:
            db.execute(insert(self.db.attempts).values(attempt))
            recorded = db.execute(
                outcome.values(
                    state="delivered" if ok else "gave_up" if gave_up else "pending",
                    attempts=attempts,
                    next_at=time.time() + self.settings.webhook_backoff * 2 ** (attempts - 1),
                )
            ).rowcount
        if not recorded:
            log.warning("webhook %s: its claim ran out during the attempt; another process retries it", delivery)
        elif gave_up:
            log.warning("webhook %s of job %s given up after %d attempts: %s", delivery, job_id, attempts, error)
