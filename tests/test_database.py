"""The job tables on SQLite (the default) and on a real PostgreSQL: migrations, the schema check,
and the compare-and-set that makes an approval happen once, whichever machine answers."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic.script import ScriptDirectory

from graph.database import HEAD, MIGRATIONS
from graph.state import JobRequest
from graph.store import JobStore
from tests.cli import storybot
from tests.postgres_server import PostgresServer
from tools.settings import Settings

OLD_SCHEMA = Path(__file__).parent / "data" / "jobs_before_migrations.sql"  # as sqlite-utils made it


def test_the_schema_head_the_code_checks_is_alembics_newest_migration() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD


def test_a_jobs_sqlite_from_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "jobs.sqlite") as old:
        old.executescript(OLD_SCHEMA.read_text())
        old.execute(
            "INSERT INTO jobs (job_id, created, updated, requester, prompt, options, status) "
            "VALUES ('0123456789ab', 1.0, 2.0, 'cli:alice', 'a whale', ?, 'done')",
            [JobRequest(prompt="a whale").model_dump_json()],
        )
    listed = storybot("jobs", "--json", data=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"0123456789ab"' in listed.stdout and listed.stderr == ""
    with sqlite3.connect(tmp_path / "jobs.sqlite") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
        assert "runner_host" in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}


def test_postgres_refuses_an_old_schema_in_one_line_then_db_upgrade_runs_once_even_twice_at_once(
    tmp_path: Path, pg_url: str
) -> None:
    env = {"STORYBOT_DATABASE_URL": pg_url}
    before = storybot("jobs", data=tmp_path, env=env)
    assert before.returncode == 2 and before.stdout == ""
    assert before.stderr.count("\n") == 1 and "`storybot db upgrade`" in before.stderr, before.stderr

    both = [
        subprocess.Popen(
            [sys.executable, "-m", "storybot", "db", "upgrade", "--data", str(tmp_path)],
            env={**os.environ, **env},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in both:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    again = storybot("db", "upgrade", data=tmp_path, env=env)
    assert again.returncode == 0 and again.stderr.strip() == f"job tables at schema {HEAD}"
    listed = storybot("jobs", "--json", data=tmp_path, env=env)
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr


def test_of_two_machines_claiming_one_approval_exactly_one_wins(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_DATABASE_URL=pg_url)
    assert storybot("db", "upgrade", data=tmp_path, env={"STORYBOT_DATABASE_URL": pg_url}).returncode == 0
    store = JobStore.of(settings)
    store.create("00000000000a", "cli:alice", None, JobRequest(prompt="a whale"), ["write_script"])
    store.update("00000000000a", status="waiting", interrupt_id="i1")
    machines = [(f"box{n}", 100 + n) for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda m: store.claim("00000000000a", "waiting", m, interrupt_id="i1"), machines))
    assert won.count(True) == 1
    record = store.get("00000000000a")
    assert record is not None and record.status == "running"
    assert (record.runner_host, record.runner_pid) == machines[won.index(True)]


def test_a_store_call_while_the_database_restarts_waits_for_it(
    tmp_path: Path, pg_url: str, postgres: PostgresServer
) -> None:
    """A statement cut by a restart, or made while the server is away for a second, is made again on
    a fresh connection instead of failing the stage that called it."""
    settings = Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_DATABASE_URL=pg_url)
    assert storybot("db", "upgrade", data=tmp_path, env={"STORYBOT_DATABASE_URL": pg_url}).returncode == 0
    store = JobStore.of(settings)
    store.create("0123456789ab", "user:1", None, JobRequest(prompt="a whale"), ["script"])
    postgres.stop()
    back = threading.Timer(1.5, postgres.start)
    back.start()
    try:
        started = time.monotonic()
        assert store.add_event("0123456789ab", "notice", "{}") == 1  # made while the server was down
        assert time.monotonic() - started >= 1.0
    finally:
        back.join()
    assert store.events_after("0123456789ab", 0) == [(1, "{}")]
