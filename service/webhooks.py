"""Webhooks: a signed POST to a job's `webhook_url` when it waits for an answer, ends or fails.

Signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the
job's token's `whsec_` secret, so a receiver verifies us with any Standard Webhooks library. A call
is made from the job's event log, never from inside the job: a slow or dead receiver never holds a
job up. Each delivery is a row (one per job event, so a restart neither loses nor repeats one) and
each attempt is recorded; failures are retried with doubling backoff. A URL must be https on a
public address (checked again at every attempt, redirects not followed), unless
`STORYBOT_WEBHOOK_ALLOW_PRIVATE=1` (a receiver on this machine or network).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlite_utils
from standardwebhooks import Webhook

from graph.api import FINAL_EVENTS, BadInput, Event, JobService, Settings, redact
from service.tokens import TokenStore
from tools.net.guard import Guard, RefusedURL, origin

log = logging.getLogger("storybot.service")
HOOKED = {"waiting": "job.waiting", "done": "job.done", "failed": "job.failed", "cancelled": "job.cancelled"}
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
POLL = 1.0  # seconds between looks at the event log for jobs run by other processes


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
    """Turns job events into deliveries and sends them; one per service process."""

    def __init__(self, service: JobService, tokens: TokenStore, settings: Settings) -> None:
        self.service, self.tokens, self.settings = service, tokens, settings
        self.db = sqlite_utils.Database(Path(settings.data_dir) / "service.sqlite")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.hooks, self.deliveries = self.db.table("hooks"), self.db.table("deliveries")
        self.attempts = self.db.table("attempts")
        if not self.hooks.exists():
            self.hooks.create(
                {"job_id": str, "url": str, "token": str, "cursor": int, "closed": int},
                pk="job_id",
                if_not_exists=True,
            )
        if not self.deliveries.exists():
            self.deliveries.create(
                {
                    "id": str,
                    "job_id": str,
                    "type": str,
                    "body": str,
                    "state": str,  # pending, delivered, gave_up
                    "attempts": int,
                    "next_at": float,
                },
                pk="id",
                if_not_exists=True,
            )
            self.deliveries.create_index(["state", "next_at"], if_not_exists=True)
        if not self.attempts.exists():
            self.attempts.create(
                {"delivery": str, "at": float, "status": int, "error": str, "seconds": float}, if_not_exists=True
            )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)

    def attach(self, job_id: str, url: str, token: str) -> None:
        with self.db.conn:
            self.hooks.insert({"job_id": job_id, "url": url, "token": token, "cursor": 0, "closed": 0}, replace=True)

    def on_event(self, event: Event) -> None:
        """JobService listener: a reported event of this process is collected at once."""
        if event.kind in HOOKED:
            self._wake.set()

    def collect(self) -> None:
        """Each open hook's new reported events become pending deliveries, read from the job's event
        log (keyed by the event's number: the same event never makes two). The log, not this
        process's events, so a job run by another process, or while the service was down, is
        reported too."""
        for hook in list(self.hooks.rows_where("closed = 0")):
            job_id, cursor = str(hook["job_id"]), int(hook["cursor"] or 0)
            logged = self.service.store.events_after(job_id, cursor)
            if not logged:
                continue
            closed = False
            with self.db.conn:
                for seq, body in logged:
                    event = Event.model_validate_json(body).model_copy(update={"id": seq})
                    if event.kind in HOOKED:
                        self.deliveries.insert(self._delivery(event), ignore=True)
                        closed = closed or event.kind in FINAL_EVENTS
                self.hooks.update(job_id, {"cursor": logged[-1][0], "closed": int(closed)})

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
        process arrives, or a second has passed (another process's events)."""
        while True:
            self._wake.clear()
            self.collect()
            due = list(
                self.deliveries.rows_where(
                    "state = 'pending' AND next_at <= ?", [time.time()], order_by="next_at", limit=20
                )
            )
            if due:
                await asyncio.gather(*(self._send(row) for row in due))
                continue
            later = list(self.deliveries.rows_where("state = 'pending'", order_by="next_at", limit=1))
            wait = min(POLL, max(0.05, later[0]["next_at"] - time.time())) if later else POLL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _send(self, row: dict[str, object]) -> None:
        delivery, job_id, body = str(row["id"]), str(row["job_id"]), str(row["body"])
        hook = list(self.hooks.rows_where("job_id = ?", [job_id]))
        owner = self.tokens.named(str(hook[0]["token"])) if hook else None
        started, status, error = time.time(), 0, ""
        if not hook or owner is None or owner.webhook_secret is None:
            error = "the token that asked for this webhook was revoked"
        else:
            url = str(hook[0]["url"])
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(owner.webhook_secret.get_secret_value()).sign(delivery, now, body),
                "user-agent": "storybot-webhooks",
            }
            try:
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
        attempts = int(str(row["attempts"])) + 1
        ok = not error
        gave_up = not ok and attempts >= self.settings.webhook_attempts
        with self.db.conn:
            self.attempts.insert(
                {
                    "delivery": delivery,
                    "at": started,
                    "status": status,
                    "error": error or None,
                    "seconds": round(time.time() - started, 3),
                }
            )
            self.deliveries.update(
                delivery,
                {
                    "state": "delivered" if ok else "gave_up" if gave_up else "pending",
                    "attempts": attempts,
                    "next_at": time.time() + self.settings.webhook_backoff * 2 ** (attempts - 1),
                },
            )
        if gave_up:
            log.warning("webhook %s of job %s given up after %d attempts: %s", delivery, job_id, attempts, error)
