"""The `local` backend: one persistent worker subprocess per model family on this machine.

A worker loads its model once (`ready`) and then serves requests one at a time; callers queue in
front of it up to `queue_size`. A worker that dies mid-request is restarted and the request retried
(at most `retries` times); a model that fails to load, or takes longer than `load_timeout`, fails
the stage with one line instead of hanging. Cancelling the awaiting task cancels the request.

Each worker sees only its family's card (`STORYBOT_GPU_DEVICES`, e.g. `sdxl=0,ltx=1`, becomes its
`CUDA_VISIBLE_DEVICES`), picks its offload (`STORYBOT_GPU_OFFLOAD`) and exits when idle
(`STORYBOT_GPU_IDLE_UNLOAD`); a worker that exits (idle, or after a CUDA error) is started afresh on
the next request. Workers die with this process (see gpu_workers/serve.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from collections import deque
from typing import Any

from gpu_workers.protocol import FAMILIES, Family, Message, Request
from tools.errors import StorybotError
from tools.gpu.client import GpuClient, ProgressFn
from tools.gpu.errors import GpuError

log = logging.getLogger("storybot.gpu")
STREAM_LIMIT = 1 << 24  # a result line (a long transcript) may exceed asyncio's 64 KiB default


class WorkerDied(Exception):
    pass


def parse_devices(text: str | None) -> dict[Family, str]:
    """`sdxl=0,ltx=1,vision=0,whisper=0` → {family: CUDA_VISIBLE_DEVICES value}."""
    devices: dict[Family, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        family, _, device = part.partition("=")
        if family.strip() not in FAMILIES or not device.strip():
            raise GpuError(
                f"STORYBOT_GPU_DEVICES: {part!r} is not FAMILY=DEVICE (families: {', '.join(FAMILIES)})", "load"
            )
        devices[family.strip()] = device.strip()  # type: ignore[index]
    return devices


class LocalWorker:
    """One family's subprocess and the lock that serialises requests to it."""

    def __init__(
        self,
        family: Family,
        model: str,
        *,
        load_timeout: float,
        request_timeout: float,
        retries: int,
        queue_size: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.family, self.model = family, model
        self.env = env or {}
        self.info: dict[str, Any] = {}  # the worker's own report: device, dtype, offload, tiling
        self.load_seconds = 0.0
        self.peak_bytes = 0
        self.load_timeout, self.request_timeout = load_timeout, request_timeout
        self.retries, self.queue_size = retries, queue_size
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.starts = 0
        self.last_run_seconds = 0.0  # the worker's own time for the last request (see bench/workers.py)
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._ids = itertools.count(1)
        self._stderr_task: asyncio.Task[None] | None = None

    def _label(self) -> str:
        return f"{self.family} worker ({self.model})"

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            if text := line.decode(errors="replace").strip():
                self.stderr_tail.append(text)

    async def _read(self, proc: asyncio.subprocess.Process, seconds: float) -> Message:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), seconds)
        if not line:
            await proc.wait()
            raise WorkerDied(f"exit code {proc.returncode}")
        return Message.model_validate_json(line)

    async def start(self) -> asyncio.subprocess.Process:
        if self.proc is not None and self.proc.returncode is None:
            return self.proc
        self.starts += 1
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gpu_workers.serve",
            self.family,
            self.model,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=STREAM_LIMIT,
            env={**os.environ, **self.env},
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(proc))  # ends with the process
        try:
            message = await self._read(proc, self.load_timeout)
        except TimeoutError:
            await self._kill(proc)
            raise GpuError(f"{self._label()} did not load within {self.load_timeout:.0f} s", "load") from None
        except WorkerDied as exc:
            detail = self.stderr_tail[-1] if self.stderr_tail else str(exc)
            raise GpuError(f"{self._label()} failed to load: {detail}", "load") from None
        if message.kind != "ready":
            await self._kill(proc)
            raise GpuError(message.error or f"{self._label()} failed to load", "load")
        self.proc = proc
        self.info = message.info or {}
        self.load_seconds = message.load_seconds or 0.0
        return proc

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def _send(self, proc: asyncio.subprocess.Process, request: Request) -> None:
        assert proc.stdin is not None
        proc.stdin.write((request.model_dump_json() + "\n").encode())
        await proc.stdin.drain()

    async def _once(self, params: dict[str, Any], progress: ProgressFn | None) -> dict[str, Any]:
        proc = await self.start()
        rid = f"{self.family}-{next(self._ids)}"
        try:
            await self._send(proc, Request(id=rid, params=params))
            while True:
                message = await self._read(proc, self.request_timeout)
                if message.id != rid:
                    continue  # a late message of an earlier, cancelled request
                if message.kind == "progress" and progress and message.step is not None and message.total:
                    progress(message.step, message.total)
                elif message.kind == "result":
                    self.last_run_seconds = message.run_seconds or 0.0
                    self.peak_bytes = max(self.peak_bytes, message.peak_bytes or 0)
                    return message.result or {}
                elif message.kind == "error" and message.error_kind == "fatal":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 30)
                    await self._kill(proc)
                    raise WorkerDied(message.error or "fatal CUDA error")
                elif message.kind == "error":
                    raise GpuError(f"{self.family}: {message.error}", message.error_kind or "error")
        except asyncio.CancelledError:
            with contextlib.suppress(OSError, RuntimeError):
                await self._send(proc, Request(id=rid, op="cancel"))
            await self._settle(proc, rid)
            raise
        except TimeoutError:
            await self._kill(proc)
            raise GpuError(f"{self._label()}: no answer within {self.request_timeout:.0f} s", "timeout") from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerDied(str(exc)) from exc

    async def _settle(self, proc: asyncio.subprocess.Process, rid: str) -> None:
        """After a cancel, read until the worker finishes that request so the next one starts clean."""
        try:
            async with asyncio.timeout(30):
                while (message := await self._read(proc, 30)).id != rid or message.kind == "progress":
                    pass
        except (TimeoutError, WorkerDied, ValueError):
            await self._kill(proc)

    async def run(self, params: dict[str, Any], progress: ProgressFn | None) -> dict[str, Any]:
        if self.waiting >= self.queue_size:
            raise GpuError(f"{self.family} queue is full ({self.queue_size} requests waiting)", "busy")
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        try:
            for attempt in itertools.count():
                try:
                    return await self._once(params, progress)
                except WorkerDied as exc:
                    self.proc = None
                    if attempt >= self.retries:
                        raise GpuError(
                            f"{self._label()} crashed {attempt + 1} times ({exc}); giving up", "crashed"
                        ) from None
        finally:
            self.lock.release()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                await self._kill(self.proc)
        self.proc = None


class LocalBackend(GpuClient):
    """Workers start lazily, on a family's first request, and stay up until `close` (or idle unload)."""

    def __init__(
        self,
        models: dict[Family, str],
        *,
        load_timeout: float = 600,
        request_timeout: float = 1800,
        retries: int = 2,
        queue_size: int = 16,
        devices: dict[Family, str] | None = None,
        offload: str = "auto",
        idle_unload: float = 0,
        hub_url: str = "",
        lease: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.models = models
        self.hub_url, self.lease, self.extra_env = hub_url, lease, env or {}
        self._pull_lock = asyncio.Lock()
        self._card_locks: dict[str, asyncio.Lock] = {}
        self.load_timeout, self.request_timeout = load_timeout, request_timeout
        self.retries, self.queue_size = retries, queue_size
        self.devices = devices or {}
        self.offload, self.idle_unload = offload, idle_unload
        self.workers: dict[Family, LocalWorker] = {}

    def _env(self, family: Family) -> dict[str, str]:
        env = {
            **self.extra_env,
            "STORYBOT_GPU_OFFLOAD": self.offload,
            "STORYBOT_GPU_IDLE_UNLOAD": str(self.idle_unload),
        }
        if family in self.devices:
            env["CUDA_VISIBLE_DEVICES"] = self.devices[family]
        return env

    def worker(self, family: Family) -> LocalWorker:
        if family not in self.workers:
            if not self.configured(family):
                raise GpuError(f"no {family} model configured", "load")
            self.workers[family] = LocalWorker(
                family,
                self.models[family],
                load_timeout=self.load_timeout,
                request_timeout=self.request_timeout,
                retries=self.retries,
                queue_size=self.queue_size,
                env=self._env(family),
            )
        return self.workers[family]

    async def _ensure_local(self, worker: LocalWorker) -> None:
        """A hub id loads from its pulled folder; one not pulled (nor in the Hugging Face cache) is
        pulled here first, with its own per-file deadlines, so the load timeout counts no download."""
        from tools.gpu.pull import in_hf_cache, is_hub_id, is_pulled, pull_family, pulled_folder

        model = self.models[worker.family]
        if worker.model != model or not is_hub_id(model):
            return
        if is_pulled(worker.family, model):
            worker.model = str(pulled_folder(worker.family, model))
            return
        if not self.hub_url or os.environ.get("HF_HUB_OFFLINE") or in_hf_cache(model):
            return
        async with self._pull_lock:
            log.warning(
                "%s: pulling %s before its first load (`storybot models pull` does this ahead)", worker.family, model
            )
            try:
                worker.model = str(await pull_family(self.hub_url, worker.family, model))
            except StorybotError as exc:
                raise GpuError(f"{worker.family}: pulling {model} failed: {exc}", "load") from None

    def _card(self, family: Family) -> str:
        return self.devices.get(family, os.environ.get("CUDA_VISIBLE_DEVICES", "0"))

    async def _take_card(self, family: Family) -> None:
        """The lease (profiles below 80 GB): before a family runs, the other families' workers on its
        card are stopped (after their request in flight), so only one model is resident."""
        card = self._card(family)
        for other, worker in list(self.workers.items()):
            if other != family and self._card(other) == card and worker.proc is not None:
                async with worker.lock:
                    await worker.close()

    async def request(self, family: Family, params: dict[str, Any], progress: ProgressFn | None) -> dict[str, Any]:
        worker = self.worker(family)
        await self._ensure_local(worker)
        if not self.lease:
            return await worker.run(params, progress)
        lock = self._card_locks.setdefault(self._card(family), asyncio.Lock())
        async with lock:
            await self._take_card(family)
            return await worker.run(params, progress)

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.workers.values()))
        self.workers.clear()
