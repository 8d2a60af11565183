"""The service's tokens and webhook deliveries: on a shared PostgreSQL (migration 0004), where every API
replica knows every token and two service processes send each webhook once, and on SQLite, where a
`service.sqlite` of earlier versions is used as it is."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, select, update

from graph.api import BadInput, Event, JobService, Settings
from graph.database import upgrade_database, url_of
from service.tokens import TokenStore
from service.webhooks import Webhooks
from tests.cli import ok_json, storybot
from tests.local_http import Reply, Request, local_server


def shared(data: Path, pg_url: str) -> Settings:
    return Settings(
        STORYBOT_DATA_DIR=data,
        STORYBOT_DATABASE_URL=pg_url,
        STORYBOT_WEBHOOK_ALLOW_PRIVATE=True,
        STORYBOT_WEBHOOK_BACKOFF=0.2,  # a receiver that dropped a connection is tried again soon
    )


def other_process(settings: Settings) -> TokenStore:
    """A store on an engine (and pool) of its own, as another machine's process would have."""
    return TokenStore(settings.data_dir, create_engine(url_of(settings)))


def test_a_token_made_by_one_process_is_known_to_another_and_revoked_for_both(tmp_path: Path, pg_url: str) -> None:
    env = {"STORYBOT_DATABASE_URL": pg_url}
    here = shared(tmp_path / "api1", pg_url)
    upgrade_database(here)
    made = ok_json(storybot("tokens", "create", "alice", "--json", data=tmp_path / "cli", env=env))
    store = TokenStore.of(here)
    alice = store.identify(made["token"])
    assert alice is not None and alice.name == "alice" and not alice.admin
    assert alice.webhook_secret is not None and alice.webhook_secret.get_secret_value() == made["webhook_secret"]

    replica = other_process(shared(tmp_path / "api2", pg_url))
    with ThreadPoolExecutor(8) as pool:  # two replicas making one name at once: one token
        outcomes = list(pool.map(lambda n: _try_create([store, replica][n % 2], "bob"), range(8)))
    assert outcomes.count(True) == 1
    assert [t.name for t in replica.list()] == [t.name for t in store.list()] == ["alice", "bob"]

    assert storybot("tokens", "revoke", "alice", data=tmp_path / "cli", env=env).returncode == 0
    assert store.identify(made["token"]) is None and replica.named("alice") is None
    replica.revoke("bob")
    assert store.named("bob") is None and [t.name for t in store.list()] == []
    assert not any(tmp_path.glob("*/service.sqlite"))  # nothing kept per machine


def _try_create(store: TokenStore, name: str) -> bool:
    try:
        store.create(name)
    except BadInput:
        return False
    return True


async def test_two_service_processes_send_each_webhook_once(tmp_path: Path, pg_url: str) -> None:
    upgraded = storybot("db", "upgrade", data=tmp_path / "admin", env={"STORYBOT_DATABASE_URL": pg_url})
    assert upgraded.returncode == 0, upgraded.stderr
    received: Counter[str] = Counter()

    def receive(request: Request) -> Reply:
        received[request.headers["webhook-id"]] += 1
        return Reply(204)

    first, second = shared(tmp_path / "api1", pg_url), shared(tmp_path / "api2", pg_url)
    with local_server(receive) as hook:
        async with JobService.open(first) as svc1, JobService.open(second) as svc2:
            store1, store2 = other_process(first), other_process(second)
            store1.create("alice")
            one, two = Webhooks(svc1, store1, first), Webhooks(svc2, store2, second)
            dead = Webhooks(svc1, other_process(first), first)  # claims one delivery, then dies
            jobs = [f"{n:012x}" for n in range(1, 12)]
            for n, job_id in enumerate(jobs):  # each job's hook attached by the replica that took it
                [one, two][n % 2].attach(job_id, f"{hook.url}/hook", "alice")
                svc1.store.add_event(job_id, "waiting", Event(job_id=job_id, kind="waiting").model_dump_json())
                svc1.store.add_event(job_id, "done", Event(job_id=job_id, kind="done").model_dump_json())
            dead.collect()
            deliveries = dead.db.deliveries
            orphan = f"msg_{jobs[-1]}_2"
            with dead.db.engine.connect() as db:
                seen = db.execute(select(deliveries.c.next_at).where(deliveries.c.id == orphan)).scalar_one()
            assert dead.claim(orphan, seen) is not None and two.claim(orphan, seen) is None
            await dead.close()

            one.start()
            two.start()
            try:
                await _until(lambda: len(received) == 2 * len(jobs) - 1)
                await asyncio.sleep(1.2)  # a second look by each sender (every POLL s) finds nothing more to send
                assert orphan not in received  # its sender's claim has not run out
                with one.db.engine.begin() as db:  # ... and now it has
                    db.execute(update(deliveries).where(deliveries.c.id == orphan).values(next_at=time.time() - 1))
                await _until(lambda: orphan in received)
                await asyncio.sleep(1.2)
            finally:
                await one.close()
                await two.close()
    assert len(received) == 2 * len(jobs) and set(received.values()) == {1}, received
    with one.db.engine.connect() as db:
        states = db.execute(select(deliveries.c.state)).scalars().all()
        answered = db.execute(select(one.db.attempts.c.delivery).where(one.db.attempts.c.status == 204)).scalars()
        assert states == ["delivered"] * len(received) and Counter(answered) == received  # one answer each


async def _until(done: Callable[[], bool], seconds: float = 15) -> None:
    """Until `done()` (the receiver's thread counts; 15 s at most)."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def test_a_service_sqlite_of_earlier_versions_is_used_as_it_is(tmp_path: Path) -> None:
    token = "sbt_" + "x" * 43
    with sqlite3.connect(tmp_path / "service.sqlite") as old:  # as sqlite-utils made it
        old.executescript(
            f"""
            CREATE TABLE "tokens" ("name" TEXT PRIMARY KEY, "hash" TEXT, "webhook_secret" TEXT,
              "admin" INTEGER, "created" REAL, "last_used" REAL, "revoked" REAL);
            CREATE UNIQUE INDEX "idx_tokens_hash" ON "tokens" ("hash");
            CREATE TABLE "hooks" ("job_id" TEXT PRIMARY KEY, "url" TEXT, "token" TEXT, "cursor" INTEGER,
              "closed" INTEGER);
            CREATE TABLE "deliveries" ("id" TEXT PRIMARY KEY, "job_id" TEXT, "type" TEXT, "body" TEXT,
              "state" TEXT, "attempts" INTEGER, "next_at" REAL);
            CREATE INDEX "idx_deliveries_state_next_at" ON "deliveries" ("state", "next_at");
            CREATE TABLE "attempts" ("delivery" TEXT, "at" REAL, "status" INTEGER, "error" TEXT, "seconds" REAL);
            INSERT INTO tokens VALUES ('ci', '{hashlib.sha256(token.encode()).hexdigest()}', 'whsec_AAAA', 1,
              1.0, NULL, NULL);
            INSERT INTO hooks VALUES ('00000000000c', 'https://example.com/h', 'ci', 3, 0);
            INSERT INTO deliveries VALUES ('msg_00000000000c_3', '00000000000c', 'job.waiting', '{{}}',
              'pending', 1, 5.0);
            """
        )
    settings = Settings(STORYBOT_DATA_DIR=tmp_path)
    store = TokenStore.of(settings)
    ci = store.identify(token)
    assert ci is not None and ci.name == "ci" and ci.admin and store.named("ci") == ci
    assert [(t.name, t.created) for t in store.list()] == [("ci", 1.0)]
    store.create("n8n")
    assert [t.name for t in store.list()] == ["ci", "n8n"]
    async with JobService.open(settings) as svc:
        webhooks = Webhooks(svc, store, settings)
        assert webhooks.claim("msg_00000000000c_3", 5.0) is not None  # an old pending delivery is taken up
        assert webhooks.claim("msg_00000000000c_3", 5.0) is None
        await webhooks.close()
    with sqlite3.connect(tmp_path / "service.sqlite") as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"tokens", "idx_tokens_hash", "hooks", "deliveries", "idx_deliveries_state_next_at", "attempts"} == {
        name for name in names if not name.startswith("sqlite_autoindex")
    }  # nothing added
