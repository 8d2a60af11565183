"""Which replica of `storybot bot` holds the Discord gateway: with a shared database, the one holding
an advisory lock named after the bot's application, on a PostgreSQL connection of its own.

Discord allows one gateway session per bot (without sharding), and two replicas acting on the same
events would answer twice. So a replica first takes the lock; the others stand by, trying it every
`STANDBY_POLL_S`. A leader killed with `kill -9` loses its connection and with it the lock at once, so
a standby connects within seconds. The leader checks its connection every `CHECK_S`; after a database
restart it takes the lock back if nobody else did, and otherwise stops, so that it does not go on
acting beside the new leader. On SQLite (one box) there is nothing to take.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator

from graph.api import HeldLock, Settings, is_postgres

log = logging.getLogger("storybot.bot")
STANDBY_POLL_S = 1.0  # a standby tries the lock this often
CHECK_S = 3.0  # the leader checks the connection holding its lock this often
STANDBY = "standby: another replica holds the Discord gateway"


def gateway_name(token: str) -> str:
    """The bot's application id (a token's first part is it, base64-encoded), so a token reset does not
    change the lock; a token of another shape is named by a hash."""
    first = token.split(".")[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if decoded.isdigit():
        return decoded
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]


class GatewayLock:
    """The right to hold the Discord gateway (PostgreSQL only)."""

    def __init__(self, settings: Settings, token: str) -> None:
        self._lock = HeldLock(settings, f"storybot:discord-gateway:{gateway_name(token)}")

    async def acquire(self) -> None:
        """Until this replica holds the lock; a standby says so once."""
        import psycopg

        said = False
        while True:
            try:
                if await self._lock.take():
                    log.info("leader: this replica holds the Discord gateway")
                    return
                if not said:
                    log.info(STANDBY)
                    said = True
            except psycopg.OperationalError as exc:
                log.warning("cannot reach the database for the gateway lock: %s", " ".join(str(exc).split()))
            await asyncio.sleep(STANDBY_POLL_S)

    async def held(self) -> None:
        """Returns when the lock is lost for good: the database came back and another replica had it,
        or it stayed unreachable for graph.leases.RECONNECT_FOR seconds."""
        while True:
            await asyncio.sleep(CHECK_S)
            if await self._lock.alive(CHECK_S):
                continue
            log.warning("the database connection holding the Discord gateway lock dropped; taking it back")
            outcome = await self._lock.take_back()
            if outcome == "taken over":
                log.error("another replica took the Discord gateway while the database was away")
                return
            if outcome == "unreachable":
                log.error("the database stayed unreachable: the Discord gateway lock is lost")
                return
            log.warning("the Discord gateway lock taken back: still the leader")

    async def release(self) -> None:
        await self._lock.release()


@contextlib.asynccontextmanager
async def leadership(settings: Settings, token: str) -> AsyncIterator[GatewayLock | None]:
    """The gateway lock, taken (waiting as a standby meanwhile) and held until the block ends; None on
    SQLite, where this process is the only bot."""
    if not is_postgres(settings):
        yield None
        return
    lock = GatewayLock(settings, token)
    try:
        await lock.acquire()
        yield lock
    finally:
        await lock.release()
