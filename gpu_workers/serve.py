"""A local worker process: load one model family once, then serve JSON-line requests on stdin.

    python -m gpu_workers.serve FAMILY MODEL

Messages out go to the real stdout only; fd 1 is pointed at stderr so library prints and progress
bars can never corrupt the protocol. A reader thread keeps stdin flowing while a request runs, so
a `cancel` arrives mid-request and stops it at the next denoising step.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import IO, Any, cast

from gpu_workers.protocol import FAMILIES, Family, Message, Request


class Cancelled(Exception):
    pass


def error_kind(exc: BaseException) -> str:
    """Out-of-memory is reported as such (CUDA OOM, or the allocator's own message)."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "outofmemory" in text or "out of memory" in text:
        return "oom"
    if isinstance(exc, Cancelled):
        return "cancelled"
    if type(exc).__name__ == "ValidationError" or isinstance(exc, ValueError | KeyError):
        return "bad_request"
    return "error"


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:400]


class Server:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.cancelled: set[str] = set()
        self.pending: queue.Queue[Request | None] = queue.Queue()

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
        self.pending.put(None)  # stdin closed: the client is gone

    def serve(self, runner: Any) -> None:
        while (request := self.pending.get()) is not None:
            def progress(step: int, total: int, rid: str = request.id) -> None:
                if rid in self.cancelled:
                    raise Cancelled("cancelled by the client")
                self.send(Message(kind="progress", id=rid, step=step, total=total))

            try:
                if request.id in self.cancelled:
                    raise Cancelled("cancelled by the client")
                started = time.perf_counter()
                result = runner(request.params, progress)
                self.send(Message(kind="result", id=request.id, result=result,
                                  run_seconds=round(time.perf_counter() - started, 6)))
            except Exception as exc:
                self.send(Message(kind="error", id=request.id, error=one_line(exc), error_kind=error_kind(exc)))
            finally:
                self.cancelled.discard(request.id)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in FAMILIES:
        print(f"usage: python -m gpu_workers.serve {{{','.join(FAMILIES)}}} MODEL", file=sys.stderr)
        return 2
    family = cast(Family, argv[0])
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    server = Server(protocol_out)
    started = time.perf_counter()
    try:
        from gpu_workers.families import load

        runner = load(family, argv[1])
    except Exception as exc:
        server.send(Message(kind="error", error=f"{family} model {argv[1]} failed to load: {one_line(exc)}",
                            error_kind="load"))
        return 1
    server.send(Message(kind="ready", load_seconds=round(time.perf_counter() - started, 3)))
    threading.Thread(target=server.read, args=(sys.stdin,), daemon=True).start()
    server.serve(runner)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
