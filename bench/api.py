"""Benchmark: the HTTP service under load while a job renders.

Prints requests per second for `GET /v1/jobs/{id}` (clients in another process, many connections),
the time for one event to reach 100 SSE listeners and whether each got every event, and the
largest event-loop lag of the serving process during each phase (target under 50 ms; the
service's test holds 250 ms on a loaded CI machine).

    .venv/bin/python bench/api.py [--requests 2000] [--concurrency 50] [--listeners 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

from graph.api import JobService, Requester
from service.app import serving
from service.tokens import TokenStore
from tools.settings import get_settings

SCRIPT = (Path(__file__).parent / "story60.txt").read_text(encoding="utf-8")
LOAD = """
import asyncio, json, sys, time
import httpx
base, token, path, total, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
async def main():
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer " + token}, limits=limits) as c:
        left, codes, started = total, [], time.perf_counter()
        errors = 0
        async def worker():
            nonlocal left, errors
            while left > 0:
                left -= 1
                try:
                    codes.append((await c.get(path)).status_code)
                except httpx.TransportError:
                    errors += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "ok": codes.count(200), "all": len(codes) + errors, "errors": errors}))
asyncio.run(main())
"""
LISTEN = """
import asyncio, json, sys, time
import httpx
base, token, path, listeners = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
async def listen(c, ids):
    async with c.stream("GET", path) as reply:
        async for line in reply.aiter_lines():
            if line.startswith("id:"):
                ids.append((int(line[3:]), time.time()))
async def main():
    limits = httpx.Limits(max_connections=listeners + 5)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer " + token}, limits=limits,
                                 timeout=None) as c:
        got = [[] for _ in range(listeners)]
        await asyncio.gather(*(listen(c, ids) for ids in got))
    print(json.dumps(got))
asyncio.run(main())
"""


async def run_child(code: str, *args: str) -> object:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    return json.loads(out)


async def main(requests: int, concurrency: int, listeners: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = get_settings().model_copy(update={"data_dir": data, "http_port": 0, "public_url": None})
        token = TokenStore(data).create("bench").token
        async with JobService.open(settings) as svc, serving(svc, settings) as port:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
                # 1. status reads with nothing else running, then while a 45 s job renders
                body = {"prompt": "bench", "script": SCRIPT, "duration": 45, "auto_approve": True}
                job = (await client.post("/v1/jobs", json={**body, "auto_approve": False})).json()["job_id"]
                await svc.wait(job)  # waiting for its script approval: nothing renders
                rates: list[float] = []
                for phase in ("idle", "while a job renders"):
                    if rates:
                        await svc.resume(job, Requester(id="token:bench"), auto_approve=True)
                    svc.lag.max_ms = 0.0
                    load = await run_child(LOAD, base, token, f"/v1/jobs/{job}", str(requests), str(concurrency))
                    assert isinstance(load, dict)
                    rates.append(load["all"] / load["seconds"])
                    print(
                        f"GET /v1/jobs/{{id}} {phase}: {rates[-1]:.0f} requests/s ({load['ok']}/{load['all']} ok, "
                        f"{load['errors']} connection errors, {concurrency} connections), "
                        f"loop lag {svc.lag.max_ms:.1f} ms"
                    )
                print(f"  ratio rendering/idle: {rates[1] / rates[0]:.2f}")
                # 2. 100 SSE listeners on a second job, from its start to its end
                job2 = (await client.post("/v1/jobs", json=body)).json()["job_id"]
                svc.lag.max_ms = 0.0
                started = time.perf_counter()
                got = await run_child(LISTEN, base, token, f"/v1/jobs/{job2}/events", str(listeners))
                assert isinstance(got, list)
                wall = time.perf_counter() - started
                logged = svc.store.last_event(job2)
                complete = sum(1 for ids in got if [i for i, _ in ids] == list(range(1, logged + 1)))
                spreads = []
                for n in range(1, logged + 1):
                    times = [t for ids in got for i, t in ids if i == n]
                    spreads.append(max(times) - min(times))
                spreads.sort()
                print(
                    f"SSE fan-out: {listeners} listeners x {logged} events over {wall:.1f} s; "
                    f"{complete}/{listeners} got every event in order; one event reaches all listeners within "
                    f"{1000 * spreads[len(spreads) // 2]:.1f} ms (median), {1000 * spreads[-1]:.1f} ms (worst); "
                    f"loop lag {svc.lag.max_ms:.1f} ms"
                )
                await svc.wait(job)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--listeners", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.listeners))
