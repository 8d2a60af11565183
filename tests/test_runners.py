"""Jobs across machines for real: PostgreSQL (state and the queue of job steps), an S3-compatible
server (files), and `storybot runner` processes, each with its own scratch folder as if on its own
box. Runners are killed with SIGKILL mid-stage, the database is restarted under a running job, and
one approval is answered from two places at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.checkpoints import open_saver
from tests.cli import storybot
from tests.postgres_server import PostgresServer
from tests.s3_server import S3Server
from tools.settings import Settings

PROMPT = "A lighthouse keeper who befriends a lost whale"


class Cluster:
    """A database, a bucket, and runners started on demand; every process stopped at the end."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.runners: list[subprocess.Popen[str]] = []

    def runner(self, name: str) -> subprocess.Popen[str]:
        log = (self.root / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "storybot", "runner", "--concurrency", "1", "--data", str(self.root / name)],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.runners.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command on a machine that runs no jobs (its own empty data folder)."""
        return storybot(*args, data=self.root / "client", env=self.env, timeout=timeout)

    def status(self, job_id: str) -> dict[str, Any]:
        """`status --json`; while the database restarts it says so in one line (exit 1): asked again."""
        deadline = time.monotonic() + 30
        while (result := self.run("status", job_id, "--json")).returncode == 1 and time.monotonic() < deadline:
            assert "the job database could not be used" in result.stderr, result.stderr
            time.sleep(0.5)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def wait(self, job_id: str, until: set[str], timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (found := self.status(job_id))["status"] not in until:
            assert time.monotonic() < deadline, f"job {job_id} still {found['status']}: {found}"
            time.sleep(0.5)
        return found

    def wait_stage(self, job_id: str, stage: str, timeout: float = 240, by: int | None = None) -> dict[str, Any]:
        """Until the job runs `stage` (in runner process `by`, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.status(job_id)
            mine = by is None or (found["runner"] or {}).get("pid") == by
            if mine and any(s["name"] == stage and s["status"] == "running" for s in found["stages"]):
                return found
            assert found["status"] not in ("done", "failed", "cancelled"), found
            assert time.monotonic() < deadline, f"job {job_id} never ran {stage}: {found}"
            time.sleep(0.2)

    def detach(self, *extra: str) -> str:
        made = self.run("make", PROMPT, "--duration", "8", "--detach", "--json", *extra)
        assert made.returncode == 0, made.stderr
        shown = json.loads(made.stdout)
        assert shown["status"] == "queued" and shown["waiting_for"] is None
        return str(shown["job_id"])

    def stop(self) -> None:
        for proc in self.runners:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.runners:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, s3: S3Server) -> Iterator[Cluster]:
    env = {"STORYBOT_DATABASE_URL": pg_url, **s3.env(s3.bucket())}
    made = Cluster(tmp_path, env)
    upgraded = made.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        yield made
    finally:
        made.stop()


def runs(status: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["runs"] for s in status["stages"]}


def test_two_runners_share_four_jobs_each_stage_running_once(cluster: Cluster, s3: S3Server) -> None:
    cluster.runner("box1")
    cluster.runner("box2")
    jobs = [cluster.detach("--yes") for _ in range(4)]
    for job_id in jobs:
        done = cluster.wait(job_id, {"done", "failed", "cancelled"})
        assert done["status"] == "done", done["error"]
        assert max(runs(done).values()) == 1, runs(done)
        assert done["runner"] is None  # nobody holds a finished job
        bucket_url = cluster.env["STORYBOT_STORAGE_URL"]
        assert done["artifacts"]["final_video"] == f"{bucket_url}/jobs/{job_id}/final.mp4"
    ran = {box: {p.name for p in (cluster.root / box / "jobs").iterdir()} for box in ("box1", "box2")}
    assert ran["box1"] | ran["box2"] == set(jobs)
    assert ran["box1"] and ran["box2"], f"one runner took every job: {ran}"
    bucket = cluster.env["STORYBOT_STORAGE_URL"].removeprefix("s3://").split("/")[0]
    stored = s3.objects(bucket)
    for job_id in jobs:
        assert stored[f"videos/jobs/{job_id}/final.mp4"][4:8] == b"ftyp"


def _checkpoint_chain(pg_url: str, job_id: str) -> list[tuple[str, str | None]]:
    """(checkpoint id, parent id) of the job's thread, newest first."""

    async def read() -> list[tuple[str, str | None]]:
        async with open_saver(Settings(STORYBOT_DATABASE_URL=pg_url)) as saver:
            return [
                (
                    c.config["configurable"]["checkpoint_id"],
                    (c.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
                )
                async for c in saver.alist({"configurable": {"thread_id": job_id}})
            ]

    return asyncio.run(read())


def test_a_runner_killed_mid_stage_leaves_the_job_to_another_which_redoes_only_that_stage(
    cluster: Cluster, pg_url: str, s3: S3Server
) -> None:
    first = cluster.runner("box1")
    job_id = cluster.detach("--yes")
    seen = cluster.wait_stage(job_id, "post_produce")
    assert seen["runner"]["pid"] == first.pid
    second = cluster.runner("box2")  # the standby starts only now, so the first runner had the job
    os.kill(first.pid, signal.SIGKILL)
    killed = time.monotonic()
    cluster.wait_stage(job_id, "post_produce", timeout=120, by=second.pid)
    taken_over_s = time.monotonic() - killed
    done = cluster.wait(job_id, {"done", "failed", "cancelled"})
    assert done["status"] == "done", done["error"]
    counted = runs(done)
    assert counted["post_produce"] == 2, counted
    assert all(n <= 1 for name, n in counted.items() if name != "post_produce"), counted
    assert taken_over_s < 30, taken_over_s
    # the checkpoints form one chain: no two runs wrote after the same checkpoint
    chain = _checkpoint_chain(pg_url, job_id)
    parents = [parent for _, parent in chain if parent is not None]
    assert len(parents) == len(set(parents)), "two checkpoints share a parent: the history split"
    ids = [cid for cid, _ in chain]
    assert all(parent in ids for parent in parents)
    bucket = cluster.env["STORYBOT_STORAGE_URL"].removeprefix("s3://").split("/")[0]
    assert s3.objects(bucket, f"videos/jobs/{job_id}/final.mp4")


def test_one_approval_answered_from_two_machines_at_once_is_taken_once_and_cancel_works_anywhere(
    cluster: Cluster,
) -> None:
    cluster.runner("box1")
    job_id = cluster.detach()
    waiting = cluster.wait(job_id, {"waiting"})
    assert waiting["waiting_for"] == "approve_script"
    answers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "storybot",
                "answer",
                job_id,
                "approve",
                "--json",
                "--data",
                str(cluster.root / f"m{n}"),
            ],
            env={**os.environ, **cluster.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = [(*proc.communicate(timeout=240), proc.returncode) for proc in answers]
    codes = sorted(code for _, _, code in results)
    assert codes == [0, 2], results
    lost = next(err for _, err, code in results if code == 2)
    assert lost.count("\n") == 1 and lost.startswith("storybot: error: that approval was already answered"), lost
    won = json.loads(next(out for out, _, code in results if code == 0))
    assert won["status"] == "waiting" and won["waiting_for"] == "approve_keyframes"
    assert runs(cluster.status(job_id))["approve_script"] == 2  # asked, then answered once

    cancelled = cluster.run("answer", job_id, "cancel", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_the_database_restarted_under_a_running_job_the_job_goes_on(cluster: Cluster, postgres: PostgresServer) -> None:
    box = cluster.runner("box1")
    job_id = cluster.detach("--yes")
    running = cluster.wait(job_id, {"running", "done", "failed", "cancelled"})
    assert running["status"] == "running" and running["runner"]["pid"] == box.pid, running
    postgres.restart()
    done = cluster.wait(job_id, {"done", "failed", "cancelled"})
    assert done["status"] == "done", done["error"]
    assert max(runs(done).values()) <= 2, runs(done)
    # and the runner still takes work: its queue connections came back with the database
    assert box.poll() is None
    after = cluster.wait(cluster.detach("--yes"), {"done", "failed", "cancelled"})
    assert after["status"] == "done", after["error"]


def test_a_runner_stopped_with_sigterm_hands_its_job_back_and_the_following_make_sees_it_done(
    cluster: Cluster,
) -> None:
    first = cluster.runner("box1")
    follower = subprocess.Popen(
        [sys.executable, "-m", "storybot", "make", PROMPT, "--duration", "8", "--yes", "--json"],
        env={**os.environ, **cluster.env, "STORYBOT_DATA_DIR": str(cluster.root / "client")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (jobs := json.loads(cluster.run("jobs", "--json").stdout)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    job_id = jobs[0]["job_id"]
    cluster.wait_stage(job_id, "post_produce", by=first.pid)
    second = cluster.runner("box2")
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) != 0
    out, err = follower.communicate(timeout=240)
    assert follower.returncode == 0, err
    shown = json.loads(out)
    assert shown["job_id"] == job_id and shown["status"] == "done", shown
    assert "its runner is stopping: another one carries on" in err
    done = cluster.status(job_id)
    counted = runs(done)
    assert all(n <= 1 for name, n in counted.items() if name != "post_produce"), counted
    assert counted["post_produce"] == 2, counted
    assert second.poll() is None
