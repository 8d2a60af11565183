"""Benchmark: storybot on several machines' worth of processes, on this one machine.

Starts its own PostgreSQL (tests/postgres_server.py: loopback, fsync=off as in the tests) and, unless
--no-storage, an S3 server (moto, tests/s3_server.py), so each `storybot runner` works in a data folder
of its own as a separate machine would. With the offline defaults (`--duration 10 --yes`) it prints:

- jobs per hour and queue-to-first-stage latency (p50, p95, nearest rank) for a burst of N jobs on 1
  and on 2 runners (`storybot runner --concurrency 1 --data DIR`, one process each, warmed by one job
  first). Latency is a job's `created` time to its first `stage_started` event, both read from the
  job tables, so it includes waiting behind the burst's earlier jobs. The jobs are enqueued by this
  process through JobService.start, the call `storybot make --detach` makes, so the burst is
  simultaneous; one `make --detach` is timed on its own in the kill test;
- a runner's hand-over: one job's `done` event to that runner's next job's first `stage_started`;
- checkpoint writes: the checkpoint sequence of a finished job replayed (aput_writes + aput, the calls
  LangGraph's durability="sync" makes per step) into the PostgreSQL saver and the SQLite saver;
- one JobStore row write (`update`, `add_event`) on PostgreSQL (fsync off, then on) and on SQLite: the
  store writes synchronously, inline on the event loop, so this is how long each write blocks it;
- `kill -9` of the runner in the middle of a job's post_produce: seconds from the kill to that job's
  next `stage_started` (on the other runner), the stages that ran twice, and the work lost.

    .venv/bin/python bench/scale.py [--jobs 6] [--no-storage]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/postgres_server.py, tests/s3_server.py

from sqlalchemy import select  # noqa: E402

from graph import tables as t  # noqa: E402
from graph.store import JobStore  # noqa: E402
from tests.postgres_server import PostgresServer, postgres_server  # noqa: E402

STORYBOT = str(Path(sys.executable).parent / "storybot")
PROMPT = "A lighthouse keeper who befriends a lost whale"
DURATION = 10.0
KILL_IN = "post_produce"  # the longest stage of the offline job: the runner dies 1 s into it
FINAL = ("done", "failed", "cancelled")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 6 samples p95 is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(values: list[float]) -> str:
    return f"{1000 * pct(values, 0.5):6.2f} / {1000 * pct(values, 0.95):6.2f} ms"


# runners ---------------------------------------------------------------------


@dataclass
class Runner:
    name: str
    data: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def start_runner(name: str, base: Path, env: dict[str, str]) -> Runner:
    data = base / name
    data.mkdir(parents=True, exist_ok=True)
    log = base / f"{name}.log"
    with log.open("wb") as out:  # the runner writes its own copy; ours closes at once
        process = subprocess.Popen(
            [STORYBOT, "runner", "--concurrency", "1", "--data", str(data)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    runner = Runner(name, data, process, log)
    deadline = time.monotonic() + 60
    while "storybot runner" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"runner {name} did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return runner


def cpu_seconds(runners: list[Runner]) -> float:
    """CPU time of the runners and their finished children (FFmpeg, the voice), from /proc."""
    total = 0.0
    for runner in runners:
        fields = Path(f"/proc/{runner.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return total


def stop_runner(runner: Runner) -> None:
    if runner.process.poll() is None:
        runner.process.terminate()
        try:
            runner.process.wait(30)
        except subprocess.TimeoutExpired:
            runner.process.kill()
            runner.process.wait()


# reading the job tables ---------------------------------------------------------


@dataclass
class Timeline:
    job_id: str
    created: float
    events: list[tuple[float, str, str | None]] = field(default_factory=list)  # (at, kind, stage)
    runner: str | None = None

    def first(self, kind: str, stage: str | None = None, after: float = 0.0) -> float | None:
        found = [at for at, k, s in self.events if k == kind and (stage is None or s == stage) and at > after]
        return min(found) if found else None


def timeline(store: JobStore, job_id: str) -> Timeline:
    record = store.get(job_id)
    assert record is not None
    sql = select(t.events.c.at, t.events.c.kind, t.events.c.body).where(t.events.c.job_id == job_id)
    with store.engine.connect() as db:
        events = [(float(at), kind, json.loads(body).get("stage")) for at, kind, body in db.execute(sql)]
    line = Timeline(job_id, record.created, sorted(events))
    if record.result is not None:  # which runner: the folder its final video was made in
        line.runner = Path(record.result.artifacts.final_video).parts[-4]
    return line


def wait_done(store: JobStore, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        records = [store.get(j) for j in job_ids]
        if all(r is not None and r.status in FINAL for r in records):
            bad = [(r.job_id, r.status, r.error) for r in records if r is not None and r.status != "done"]
            if bad:
                raise RuntimeError(f"jobs did not finish: {bad}")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still running after {timeout:.0f} s: {[r and r.status for r in records]}")
        time.sleep(0.25)


async def enqueue(settings: Any, count: int) -> list[str]:
    """`count` jobs at once, through the call `storybot make --detach --yes` makes."""
    from graph.service import JobService, Requester
    from graph.state import JobRequest

    async with JobService.open(settings) as svc:
        return [
            await svc.start(JobRequest(prompt=PROMPT, duration=DURATION), Requester(id="bench"), auto_approve=True)
            for _ in range(count)
        ]


@dataclass
class Burst:
    runners: int
    jobs: int
    seconds: float
    latency: list[float]
    handover: list[float]
    overhead: list[float]  # per job: wall - sum of stage seconds (graph, checkpoints, job records)
    per_runner: dict[str, int]
    job_ids: list[str]
    cpu_per_job: float  # CPU seconds of the runners and their children per job

    @property
    def per_hour(self) -> float:
        return 3600 * self.jobs / self.seconds


def burst(settings: Any, store: JobStore, runners: list[Runner], count: int) -> Burst:
    cpu = cpu_seconds(runners)
    job_ids = asyncio.run(enqueue(settings, count))
    wait_done(store, job_ids, timeout=120 + 60 * count)
    cpu = cpu_seconds(runners) - cpu
    lines = [timeline(store, j) for j in job_ids]
    starts = {ln.job_id: ln.first("stage_started") or math.nan for ln in lines}
    dones = {ln.job_id: ln.first("done") or math.nan for ln in lines}
    handover: list[float] = []
    by_runner: dict[str, list[Timeline]] = {}
    for ln in lines:
        by_runner.setdefault(ln.runner or "?", []).append(ln)
    for mine in by_runner.values():
        mine.sort(key=lambda ln: starts[ln.job_id])
        handover += [starts[b.job_id] - dones[a.job_id] for a, b in itertools.pairwise(mine)]
    overhead = []
    for job_id in job_ids:
        record = store.get(job_id)
        assert record is not None and record.wall_seconds is not None
        overhead.append(record.wall_seconds - sum(s.seconds for s in store.stage_list(job_id)))
    return Burst(
        runners=len(runners),
        jobs=count,
        seconds=max(dones.values()) - min(ln.created for ln in lines),
        latency=[starts[ln.job_id] - ln.created for ln in lines],
        handover=handover,
        overhead=overhead,
        per_runner={k: len(v) for k, v in sorted(by_runner.items())},
        job_ids=job_ids,
        cpu_per_job=cpu / count,
    )


# the runner killed mid-job ---------------------------------------------------------


@dataclass
class Kill:
    detach_s: float
    detach_enqueued: float  # from the command's start to the job's row (start-up, imports, connections)
    detach_status: str
    forks: int  # checkpoints sharing a parent: a split history (must be 0)
    killed_after: float  # seconds into KILL_IN when the runner died
    recovery: float  # kill -> next stage_started
    next_stage: str
    moved_to: str
    twice: list[str]
    more: list[str]  # stages that ran more than twice (must be none)
    status: str


def kill_test(settings: Any, store: JobStore, env: dict[str, str], front: Path, runners: list[Runner]) -> Kill:
    began = time.perf_counter()
    began_at = time.time()
    made = subprocess.run(
        [STORYBOT, "make", PROMPT, "--duration", str(DURATION), "--yes", "--json", "--detach", "--data", str(front)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    detach_s = time.perf_counter() - began
    if made.returncode != 0:
        raise RuntimeError(f"storybot make --detach exited {made.returncode}: {made.stderr.strip()[-2000:]}")
    shown = json.loads(made.stdout)
    job_id = shown["job_id"]
    deadline = time.monotonic() + 180
    while (started := timeline(store, job_id).first("stage_started", KILL_IN)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} never reached {KILL_IN}")
        time.sleep(0.05)
    time.sleep(max(0.0, started + 1.0 - time.time()))
    record = store.get(job_id)
    assert record is not None and record.runner_pid is not None, record
    if store.stage(job_id, KILL_IN).status != "running":
        raise RuntimeError(f"{KILL_IN} ended within 1 s: nothing to kill in the middle of")
    victim = next(r for r in runners if r.pid == record.runner_pid)
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.time()
    victim.process.wait()
    deadline = time.monotonic() + 120
    moved_to = "?"
    while (resumed := timeline(store, job_id).first("stage_started", after=killed)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not move on within 120 s of the kill")
        time.sleep(0.05)
    record = store.get(job_id)
    if record is not None and record.runner_pid is not None:
        moved_to = next((r.name for r in runners if r.pid == record.runner_pid), str(record.runner_pid))
    line = timeline(store, job_id)
    next_stage = next(s or "?" for at, k, s in line.events if k == "stage_started" and at == resumed)
    wait_done(store, [job_id], timeout=180)
    status = subprocess.run(
        [STORYBOT, "status", job_id, "--json", "--data", str(front)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    stages = json.loads(status.stdout)["stages"]
    created = store.get(job_id)
    assert created is not None
    return Kill(
        detach_s=detach_s,
        detach_enqueued=created.created - began_at,
        forks=asyncio.run(forks(settings, job_id)),
        detach_status=shown["status"],
        killed_after=killed - started,
        recovery=resumed - killed,
        next_stage=next_stage,
        moved_to=moved_to,
        twice=[s["name"] for s in stages if s["runs"] == 2],
        more=[s["name"] for s in stages if s["runs"] > 2],
        status=json.loads(status.stdout)["status"],
    )


async def forks(settings: Any, job_id: str) -> int:
    """Checkpoints of the job that share a parent with another: two runners having run one step."""
    from graph.checkpoints import open_saver

    async with open_saver(settings) as saver:
        parents = [
            c.parent_config["configurable"]["checkpoint_id"] if c.parent_config else None
            async for c in saver.alist({"configurable": {"thread_id": job_id, "checkpoint_ns": ""}})
        ]
    return len(parents) - len(set(parents))


# checkpoint and row writes ---------------------------------------------------------


async def checkpoint_writes(pg: Any, lite: Any, job_id: str, rounds: int) -> dict[str, Any]:
    """Replay a finished job's checkpoints (oldest first) into both savers: each step's pending writes
    (aput_writes, grouped by task) and then the checkpoint (aput, with the channels it changed)."""
    from graph.checkpoints import open_saver

    async with open_saver(pg) as source:
        steps = [c async for c in source.alist({"configurable": {"thread_id": job_id, "checkpoint_ns": ""}})]
    steps.reverse()
    out: dict[str, Any] = {"checkpoints": len(steps)}
    for name, settings in (("postgresql", pg), ("sqlite", lite)):
        puts: list[float] = []
        writes: list[float] = []
        per_job: list[float] = []
        async with open_saver(settings) as saver:
            for _ in range(rounds):
                thread = uuid.uuid4().hex
                parent: str | None = None
                versions: dict[str, Any] = {}
                total = 0.0
                for step in steps:
                    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
                    if parent is not None:
                        config["configurable"]["checkpoint_id"] = parent
                    checkpoint = step.checkpoint
                    changed = {k: v for k, v in checkpoint["channel_versions"].items() if versions.get(k) != v}
                    began = time.perf_counter()
                    await saver.aput(config, checkpoint, step.metadata, changed)
                    puts.append(time.perf_counter() - began)
                    total += puts[-1]
                    by_task: dict[str, list[tuple[str, Any]]] = {}
                    for task_id, channel, value in step.pending_writes or []:
                        by_task.setdefault(task_id, []).append((channel, value))
                    written: Any = {
                        "configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint["id"]}
                    }
                    for task_id, pairs in by_task.items():
                        began = time.perf_counter()
                        await saver.aput_writes(written, pairs, task_id)
                        writes.append(time.perf_counter() - began)
                        total += writes[-1]
                    parent, versions = checkpoint["id"], dict(checkpoint["channel_versions"])
                per_job.append(total)
        out[name] = {"aput": puts, "aput_writes": writes, "per_job": per_job}
    return out


def row_writes(store: JobStore, job_id: str, count: int) -> dict[str, list[float]]:
    updates, events = [], []
    body = json.dumps({"job_id": job_id, "kind": "progress", "stage": "voice", "percent": 50.0})
    for n in range(count):
        began = time.perf_counter()
        store.update(job_id, stage=f"bench-{n % 7}")
        updates.append(time.perf_counter() - began)
        began = time.perf_counter()
        store.add_event(job_id, "progress", body)
        events.append(time.perf_counter() - began)
    return {"update": updates, "add_event": events}


def new_job(store: JobStore) -> str:
    from graph.state import STAGES, JobRequest
    from graph.store import new_job_id

    job_id = new_job_id()
    store.create(job_id, "bench", None, JobRequest(prompt=PROMPT, duration=DURATION), STAGES)
    return job_id


def restart_with_fsync(server: PostgresServer) -> None:
    """The tests' server runs with fsync=off on its command line (which ALTER SYSTEM cannot override):
    restart it with fsync=on, as a production server runs, for the write figures."""
    import psycopg

    from tests.postgres_server import _bin

    options = f"-p {server.port} -k {server.folder} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
    command = [str(_bin() / "pg_ctl"), "-D", str(server.folder / "data"), "-w", "-l", str(server.folder / "log")]
    subprocess.run(
        server._as_owner(*command, "-o", options, "-m", "fast", "restart"), check=True, capture_output=True, timeout=60
    )
    with psycopg.connect(server.url(), autocommit=True) as conn:
        shown = conn.execute("SHOW fsync").fetchone()
    assert shown is not None and shown[0] == "on", shown


# the whole run ---------------------------------------------------------------------


@contextlib.contextmanager
def object_storage(enabled: bool) -> Iterator[dict[str, str]]:
    if not enabled:
        yield {}
        return
    from tests.s3_server import s3_server

    with s3_server() as s3:
        yield s3.env(s3.bucket())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6, help="jobs in each burst")
    parser.add_argument("--no-storage", action="store_true", help="runners share this machine's files (no S3)")
    parser.add_argument("--writes", type=int, default=300, help="row writes timed per database")
    args = parser.parse_args()
    clock = time.perf_counter()
    print(
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start (other work on the box "
        f"skews every figure); offline defaults, --duration {DURATION:.0f} --yes; {args.jobs} jobs a burst"
    )

    with tempfile.TemporaryDirectory(prefix="storybot-scale-") as tmp, postgres_server() as server:
        base = Path(tmp)
        url = server.database()
        with object_storage(not args.no_storage) as storage:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYBOT_", "AWS_"))}
            env |= {"STORYBOT_DATABASE_URL": url, **storage}
            os.environ.update({"STORYBOT_DATABASE_URL": url, **storage})
            from tools.settings import get_settings

            front = base / "front"
            settings = get_settings().model_copy(update={"data_dir": front})
            subprocess.run([STORYBOT, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
            store = JobStore.of(settings)
            print(f"PostgreSQL {server.url()} (fsync=off); files: {'S3 (moto) ' if storage else 'local folders'}")

            runners: list[Runner] = []
            try:
                runners.append(start_runner("runner1", base, env))
                warm = time.perf_counter()
                burst(settings, store, runners, 1)
                first_job = time.perf_counter() - warm
                one = burst(settings, store, runners, args.jobs)
                print(f"  1 runner: {one.jobs} jobs in {one.seconds:.1f} s")
                runners.append(start_runner("runner2", base, env))
                burst(settings, store, runners, 2)  # the second runner's first job (its voice model loads)
                two = burst(settings, store, runners, args.jobs)
                print(f"  2 runners: {two.jobs} jobs in {two.seconds:.1f} s, split {two.per_runner}")
                kill = kill_test(settings, store, env, front, runners)
                print(f"  kill -9: job moved on in {kill.recovery:.1f} s")
            finally:
                for runner in runners:
                    stop_runner(runner)

            done_job = one.job_ids[-1]  # a job that ran undisturbed
            lite = get_settings().model_copy(update={"data_dir": base / "sqlite", "database_url": None})
            lite_store = JobStore.of(lite)
            rows = {
                "sqlite (WAL, synchronous=NORMAL)": row_writes(lite_store, new_job(lite_store), args.writes),
                "postgresql fsync=off": row_writes(store, new_job(store), args.writes),
            }
            ckpt_off = asyncio.run(checkpoint_writes(settings, lite, done_job, rounds=10))
            restart_with_fsync(server)
            rows["postgresql fsync=on"] = row_writes(store, new_job(store), args.writes)
            ckpt_on = asyncio.run(checkpoint_writes(settings, lite, done_job, rounds=10))

    report(one, two, first_job, kill, rows, ckpt_off, ckpt_on, args.no_storage)
    print(f"\nbench wall time {time.perf_counter() - clock:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")


def report(
    one: Burst,
    two: Burst,
    first_job: float,
    kill: Kill,
    rows: dict[str, dict[str, list[float]]],
    ckpt_off: dict[str, Any],
    ckpt_on: dict[str, Any],
    no_storage: bool,
) -> None:
    print("\nRunners (same machine: both runners share its CPU cores)")
    head = (
        f"{'jobs/hour':>9} {'burst s':>8} {'queue->1st stage p50 / p95':>27} {'idle pick-up':>13} "
        f"{'hand-over p50':>14} {'orch./job':>10} {'CPU s/job':>10}"
    )
    print(f"  {'':<10} {head}")
    for b in (one, two):
        handover = f"{pct(b.handover, 0.5):.2f} s" if b.handover else "-"
        print(
            f"  {b.runners} runner{'s' if b.runners > 1 else ' '}  {b.per_hour:9.0f} {b.seconds:8.1f} "
            f"{pct(b.latency, 0.5):12.2f} s / {pct(b.latency, 0.95):6.2f} s {min(b.latency):11.2f} s "
            f"{handover:>14} {pct(b.overhead, 0.5):8.2f} s {b.cpu_per_job:8.1f} s"
        )
    print(f"  2 runners / 1 runner: {two.per_hour / one.per_hour:.2f}x jobs per hour; jobs per runner {two.per_runner}")
    print(f"  a fresh runner's first job (voice model loads, not in the figures above): {first_job:.1f} s")
    print(
        "  queue->1st stage: a job's created time to its first stage_started (waiting behind the burst included); "
        "idle pick-up: the burst's\n  quickest (a runner was free); hand-over: a runner's done event to its next "
        "job's first stage; orch./job: wall - sum of stage\n  seconds (graph, checkpoints, job rows, events); "
        "CPU s/job: the runners' and their FFmpeg children's CPU time per job"
    )
    ceiling = 3600 / one.cpu_per_job
    print(
        f"  at {one.cpu_per_job:.1f} CPU s a job, each core that storybot has to itself is worth about "
        f"{ceiling:.0f} jobs/hour of these"
    )

    print("\nKill -9 of the runner 1 s into a job's post_produce")
    print(
        f"  make --detach returned in {kill.detach_s:.1f} s (status {kill.detach_status}); the job's row existed "
        f"{kill.detach_enqueued:.1f} s after the command started (Python start-up, imports, connections)"
    )
    print(
        f"  killed {kill.killed_after:.1f} s into {KILL_IN}; next stage_started ({kill.next_stage}) "
        f"{kill.recovery:.1f} s later, on {kill.moved_to}"
    )
    print(
        f"  ran twice: {', '.join(kill.twice) or 'nothing'}; more than twice: {', '.join(kill.more) or 'nothing'}; "
        f"job {kill.status}; checkpoints with a shared parent (a split history): {kill.forks}"
    )

    print("\nOne JobStore write, p50 / p95 (blocks the event loop for that long; target loop lag < 50 ms)")
    for name, timed in rows.items():
        print(f"  {name:<34} update {ms(timed['update'])}   add_event {ms(timed['add_event'])}")

    for label, ckpt in (("fsync=off", ckpt_off), ("fsync=on", ckpt_on)):
        replayed = f"a real job's {ckpt['checkpoints']} checkpoints replayed 10 times"
        print(f"\nCheckpoint writes, {replayed} (PostgreSQL {label})")
        for name in ("postgresql", "sqlite"):
            timed = ckpt[name]
            print(
                f"  {name:<11} aput {ms(timed['aput'])}   aput_writes {ms(timed['aput_writes'])}   "
                f"per job {pct(timed['per_job'], 0.5) * 1000:6.1f} ms"
            )
    files = "local folders (--no-storage)" if no_storage else "S3 (moto on loopback): every stage uploads"
    busy = one.cpu_per_job / (one.seconds / one.jobs)
    print(
        f"\nFiles: {files}. More cores: one runner kept {busy:.1f} cores busy on average (CPU s per job over wall s "
        "per job); jobs/hour\ngrows with runners until the cores are busy (the ceiling above). Here 2 runners share "
        f"{os.cpu_count()} cores with PostgreSQL, moto,\nthis process and whatever else runs on the box, so the "
        "2-runner figure is a floor; runners on machines of their own each add their own cores."
    )


if __name__ == "__main__":
    main()
