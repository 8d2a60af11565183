"""A local worker process: load one model family once, then serve JSON-line requests on stdin.

    python -m gpu_workers.serve FAMILY MODEL

Messages out go to the real stdout only; fd 1 is pointed at stderr so library prints and progress
bars can never corrupt the protocol. A reader thread keeps stdin flowing while a request runs, so
a `cancel` arrives mid-request and stops it at the next denoising step.

The worker dies with its client (PR_SET_PDEATHSIG on Linux; stdin closing abandons the request in
flight everywhere), exits after a CUDA error that is not OOM (the context is unusable; the client
starts a fresh one), frees cached GPU memory after every request, and exits when idle for
`STORYBOT_GPU_IDLE_UNLOAD` seconds so its memory goes back to the card (0: never).
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import sys
import threading
import time
from typing import IO, Any, cast

from gpu_workers.protocol import FAMILIES, Family, Message, Request

EXIT_FATAL = 70  # a CUDA error: the client restarts the worker
PR_SET_PDEATHSIG = 1


class Cancelled(Exception):
    pass


def error_kind(exc: BaseException) -> str:
    """Out-of-memory is reported as such (CUDA OOM, or the allocator's own message)."""
    from gpu_workers.families import is_fatal, is_oom

    if is_oom(exc):
        return "oom"
    if isinstance(exc, Cancelled):
        return "cancelled"
    if is_fatal(exc):
        return "fatal"
    if type(exc).__name__ == "ValidationError" or isinstance(exc, ValueError | KeyError):
        return "bad_request"
    return "error"


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:400]


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the process that started it dies (an orphaned LTX
    worker otherwise computes on for minutes); elsewhere stdin closing is the signal."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class Server:
    def __init__(self, out: IO[str], idle_unload: float = 0) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.cancelled: set[str] = set()
        self.pending: queue.Queue[Request | None] = queue.Queue()
        self.client_gone = threading.Event()
        self.idle_unload = idle_unload

    def send(self, message: Message) -> None:
        with self.lock:
            self.out.write(message.model_dump_json(exclude_none=True) + "\n")
            self.out.flush()

    def read(self, stream: IO[str]) -> None:
        for line in stream:
            if not line.strip():
                continue
            request = Request.model_validate_json(line)
            if request.op == "cancel":
                self.cancelled.add(request.id)
            else:
                self.pending.put(request)
        self.client_gone.set()  # stdin closed: the client is gone; abandon what is in flight
        self.pending.put(None)

    def _next(self) -> Request | None:
        try:
            return self.pending.get(timeout=self.idle_unload or None)
        except queue.Empty:
            print(f"idle for {self.idle_unload:.0f} s: unloading", file=sys.stderr)
            return None

    def serve(self, runner: Any) -> int:
        """Serve until the client goes, the worker idles out (0) or a CUDA error poisons it (EXIT_FATAL)."""
        from gpu_workers.families import free_memory, peak_bytes

        while (request := self._next()) is not None:

            def progress(step: int, total: int, rid: str = request.id) -> None:
                if rid in self.cancelled or self.client_gone.is_set():
                    raise Cancelled("cancelled by the client")
                self.send(Message(kind="progress", id=rid, step=step, total=total))

            kind = None
            try:
                if request.id in self.cancelled:
                    raise Cancelled("cancelled by the client")
                started = time.perf_counter()
                result = runner(request.params, progress)
                self.send(
                    Message(
                        kind="result",
                        id=request.id,
                        result=result.model_dump(),
                        run_seconds=round(time.perf_counter() - started, 6),
                        peak_bytes=peak_bytes(),
                    )
                )
            except Exception as exc:
                kind = error_kind(exc)
                self.send(Message(kind="error", id=request.id, error=one_line(exc), error_kind=kind))
            finally:
                self.cancelled.discard(request.id)
                free_memory()
            if kind == "fatal":
                return EXIT_FATAL
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in FAMILIES:
        print(f"usage: python -m gpu_workers.serve {{{','.join(FAMILIES)}}} MODEL", file=sys.stderr)
        return 2
    die_with_parent()
    family = cast(Family, argv[0])
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    server = Server(protocol_out, idle_unload=float(os.environ.get("STORYBOT_GPU_IDLE_UNLOAD") or 0))
    started = time.perf_counter()
    try:
        from gpu_workers.families import load

        runner = load(family, argv[1])
    except Exception as exc:
        server.send(
            Message(kind="error", error=f"{family} model {argv[1]} failed to load: {one_line(exc)}", error_kind="load")
        )
        return 1
    server.send(
        Message(kind="ready", load_seconds=round(time.perf_counter() - started, 3), info=getattr(runner, "info", None))
    )
    threading.Thread(target=server.read, args=(sys.stdin,), daemon=True).start()
    code = server.serve(runner)
    sys.stdout.flush()
    os._exit(code)  # no interpreter teardown: a poisoned CUDA context can hang it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
