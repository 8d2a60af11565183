"""Prompt events across machines: PostgreSQL's LISTEN/NOTIFY on the event log.

Every event a runner logs also sends `NOTIFY storybot_events, '<job id>'` in the same transaction
(graph/store.py), delivered when it commits; a front end following jobs keeps one listening
connection and wakes the followers of that job at once. Followers still poll the log every second,
so a notification lost while the connection is re-made only delays an event, never drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from graph.database import libpq_url
from tools.settings import Settings

CHANNEL = "storybot_events"
log = logging.getLogger("storybot.notify")


async def listen(settings: Settings, grown: Callable[[str], None]) -> None:
    """Call `grown(job_id)` for each event logged by any process, until cancelled."""
    import psycopg

    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(libpq_url(settings), autocommit=True, connect_timeout=10)
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                async for note in conn.notifies():
                    grown(note.payload)
        except psycopg.OperationalError as exc:  # the database restarting: listen again shortly
            log.info("event notifications paused (%s); polling meanwhile", exc)
            await asyncio.sleep(1)
