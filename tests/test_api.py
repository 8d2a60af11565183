"""The HTTP API over real HTTP: tokens, ownership, errors, answers, SSE with reconnects, files, webhooks."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from graph.api import JobService
from service.app import serving
from service.schemas import Answer
from service.tokens import Identity, NewToken, TokenStore
from service.webhooks import check_url
from tests.local_http import Reply, Request, local_server
from tools.errors import BadInput
from tools.settings import get_settings

SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."


@dataclass
class Api:
    base: str
    svc: JobService
    alice: NewToken
    bob: NewToken
    admin: NewToken

    def client(self, who: NewToken | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {who.token}"} if who else {}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=30, trust_env=False)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = get_settings().model_copy(
        update={
            "data_dir": tmp_path,
            "http_port": 0,
            "public_url": None,
            "webhook_allow_private": True,
            "webhook_backoff": 0.2,
            "webhook_attempts": 3,
            "max_active_jobs_per_user": 2,
        }
    )
    tokens = TokenStore(tmp_path)
    people = [tokens.create("alice"), tokens.create("bob"), tokens.create("root", admin=True)]
    async with JobService.open(settings) as svc, serving(svc, settings) as port:
        yield Api(f"http://127.0.0.1:{port}", svc, *people)


async def until(client: httpx.AsyncClient, job_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.2)


async def test_public_routes_and_the_token_rule(api: Api) -> None:
    async with api.client(None) as anon:
        assert (await anon.get("/healthz")).json() == {"status": "ok"}
        spec = (await anon.get("/openapi.json")).json()
        assert "/v1/jobs" in spec["paths"] and "/v1/jobs/{job_id}/answer" in spec["paths"]
        page = await anon.get("/docs")
        assert page.status_code == 200 and "/openapi.json" in page.text and "cdn" not in page.text.lower()
        for method, path in [
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("GET", "/v1/voices"),
            ("GET", "/v1/jobs/0123456789ab"),
        ]:
            reply = await anon.request(method, path, json={})
            assert reply.status_code == 401 and reply.json()["error"].startswith("an API token is needed"), path
    async with httpx.AsyncClient(base_url=api.base, headers={"Authorization": "Bearer sbt_nope"}) as bad:
        reply = await bad.get("/v1/jobs")
        assert reply.status_code == 401 and reply.json() == {"error": "a valid API token is needed"}
        assert reply.headers["www-authenticate"] == "Bearer"


async def test_bad_requests_name_the_field_and_make_nothing(api: Api) -> None:
    async with api.client(api.alice) as alice:
        cases = [
            ({"prompt": "a fox", "duration": 999}, "duration"),
            ({"prompt": "a fox", "aspect": "4:3"}, "aspect"),
            ({"prompt": "a fox", "colour": "red"}, "colour"),
            ({"prompt": "   "}, "prompt"),
            ({"prompt": "a fox", "voice": "piper:nobody-here"}, "voice"),
            ({"prompt": "a fox", "visuals": "stock"}, "visuals"),  # no stock key configured
            ({"prompt": "a fox", "webhook_url": "ftp://example.com/hook"}, "webhook_url"),
            ({"prompt": "a fox", "webhook_url": "http://[::1"}, "webhook_url"),
        ]
        for body, field in cases:
            reply = await alice.post("/v1/jobs", json=body)
            assert reply.status_code == 422, (body, reply.text)
            problem = reply.json()
            assert problem["error"] and "Traceback" not in reply.text
            if field:
                assert problem["field"] == field, (body, problem)
        broken = await alice.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 422 and broken.json()["field"] == "body"
        assert (await alice.get("/v1/jobs")).json()["jobs"] == []
        unknown = await alice.get("/v1/jobs/0123456789ab")
        assert unknown.status_code == 404 and unknown.json() == {"error": "no job '0123456789ab'"}
        assert (await alice.get("/v1/jobs/..%2F..%2Fetc")).status_code == 404


@pytest.mark.slow
async def test_a_job_through_its_approvals_with_ownership_sse_and_files(api: Api) -> None:
    async with api.client(api.alice) as alice, api.client(api.bob) as bob, api.client(api.admin) as root:
        created = await alice.post("/v1/jobs", json={"prompt": "keeper", "script": SCRIPT, "duration": 8})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        assert created.json()["links"]["events"].endswith(f"/v1/jobs/{job_id}/events")
        job = await until(alice, job_id, "waiting")
        assert job["waiting_for"] == "approve_script"
        shown = job["waiting"]
        assert shown["approval"] == "approve_script" and shown["script"].startswith("The lamp went dark.")
        assert shown["words"] == len(SCRIPT.split()) and "approve" in shown["actions"]
        assert job["page_url"].startswith(f"{api.base}/jobs/{job_id}?expires=")
        # another token sees nothing and answers nothing; an admin sees it
        assert (await bob.get(f"/v1/jobs/{job_id}")).status_code == 404
        assert (await bob.post(f"/v1/jobs/{job_id}/answer", json={"action": "approve"})).status_code == 404
        assert (await bob.get(f"/v1/jobs/{job_id}/events")).status_code == 404
        assert [j["job_id"] for j in (await bob.get("/v1/jobs")).json()["jobs"]] == []
        assert (await root.get(f"/v1/jobs/{job_id}")).status_code == 200
        # answers the approval does not take: 409 naming what it takes; bad values: 422 naming the field
        wrong = await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "reroll", "shots": [1]})
        assert wrong.status_code == 409 and "approve" in wrong.json()["expected"], wrong.text
        empty = await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "revise", "note": " "})
        assert empty.status_code == 422 and empty.json()["field"] == "note"
        unknown = await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "dance"})
        assert unknown.status_code == 422 and unknown.json()["field"] == "action"
        # approve the script; follow the events until the keyframes wait, then reconnect mid-way
        ok = await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "approve"})
        assert ok.status_code == 200 and ok.json()["status"] in ("running", "waiting")
        events = await read_sse(alice, f"/v1/jobs/{job_id}/events", stop_at="waiting", skip_waiting=1)
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] == 1
        assert any(e["event"] == "stage_finished" and e["data"]["stage"] == "voice" for e in events)
        middle = ids[len(ids) // 2]
        later_waits = sum(1 for e in events if e["event"] == "waiting" and int(e["id"]) > middle)
        again = await read_sse(
            alice, f"/v1/jobs/{job_id}/events", stop_at="waiting", skip_waiting=later_waits - 1, last_id=middle
        )
        assert [int(e["id"]) for e in again] == [i for i in ids if i > middle]  # nothing missed, nothing twice
        job = await until(alice, job_id, "waiting")
        frames = job["waiting"]["keyframes"]
        assert job["waiting_for"] == "approve_keyframes" and frames
        png = await alice.get(frames[0]["url"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert (await bob.get(frames[0]["url"])).status_code == 404
        bad_shot = await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "reroll", "shots": [99]})
        assert bad_shot.status_code == 422 and bad_shot.json()["field"] == "shots"
        await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "approve"})
        job = await until(alice, job_id, "done", "failed")
        assert job["status"] == "done", job
        video = job["artifacts"]["final.mp4"]
        whole = await alice.get(video)
        assert whole.status_code == 200 and whole.content == (api.svc.jobs_dir / job_id / "final.mp4").read_bytes()
        part = await alice.get(video, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole.content[100:200]
        assert (await alice.get(f"/v1/jobs/{job_id}/artifacts/../jobs.sqlite")).status_code == 404
        assert (await alice.get(f"/v1/jobs/{job_id}/artifacts/.hidden")).status_code == 404
        # a finished job's stream replays and ends after done
        tail = await read_sse(alice, f"/v1/jobs/{job_id}/events", stop_at=None, last_id=ids[-1])
        assert tail[-1]["event"] == "done"
        late = await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "approve"})
        assert late.status_code == 409 and "not waiting" in late.json()["error"]


async def arrived(requests: list[Request], count: int) -> None:
    """Until a local server has had `count` requests (10 s at most)."""
    deadline = time.monotonic() + 10
    while len(requests) < count and time.monotonic() < deadline:  # noqa: ASYNC110  (another thread appends)
        await asyncio.sleep(0.05)


async def read_sse(
    client: httpx.AsyncClient, path: str, stop_at: str | None, skip_waiting: int = 0, last_id: int | None = None
) -> list[dict[str, Any]]:
    """The events of a stream until `stop_at` (after `skip_waiting` of those), or until it ends."""
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
    out: list[dict[str, Any]] = []
    seen = 0
    async with client.stream("GET", path, headers=headers, timeout=120) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for line in reply.aiter_lines():
            if line.startswith("id:"):
                event["id"] = line[3:].strip()
            elif line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("data:"):
                event["data"] = json.loads(line[5:])
            elif not line and "id" in event:
                out.append(event)
                if event["event"] == stop_at:
                    seen += 1
                    if seen > skip_waiting:
                        return out
                event = {}
    return out


async def test_webhook_urls_on_private_addresses_are_refused_unless_allowed() -> None:
    closed = get_settings().model_copy(update={"webhook_allow_private": False})
    for url in ["https://169.254.169.254/hook", "https://127.0.0.1:9/x", "http://example.com/x", "https://10.0.0.8/x"]:
        with pytest.raises(BadInput, match="webhook_url is refused"):
            await check_url(url, closed)
    opened = closed.model_copy(update={"webhook_allow_private": True})
    assert await check_url("http://127.0.0.1:9/x", opened) == "http://127.0.0.1:9/x"


@pytest.mark.slow
async def test_webhooks_are_signed_retried_and_recorded(api: Api, tmp_path: Path) -> None:
    answers = iter([500, 200, 200, 200])

    def receive(request: Request) -> Reply:
        return Reply(next(answers, 200))

    with local_server(receive) as hook:
        got = hook.requests
        async with api.client(api.alice) as alice:
            created = await alice.post(
                "/v1/jobs",
                json={"prompt": "keeper", "script": SCRIPT, "duration": 8, "webhook_url": f"{hook.url}/hook"},
            )
            assert created.status_code == 201
            secret = created.json()["webhook_secret"]
            assert secret == api.alice.webhook_secret and secret.startswith("whsec_")
            job_id = created.json()["job_id"]
            await until(alice, job_id, "waiting")
            await arrived(got, 2)
            await alice.post(f"/v1/jobs/{job_id}/answer", json={"action": "cancel"})
            await arrived(got, 3)
    assert len(got) == 3, [r.body for r in got]
    verifier = Webhook(secret)
    payloads = [verifier.verify(r.body, dict(r.headers)) for r in got]
    assert [p["type"] for p in payloads] == ["job.waiting", "job.waiting", "job.cancelled"]
    assert payloads[0]["data"] == payloads[1]["data"] and payloads[0]["data"]["waiting_for"] == "approve_script"
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]  # a retry is the same message
    with pytest.raises(WebhookVerificationError):
        Webhook(api.bob.webhook_secret).verify(got[0].body, dict(got[0].headers))
    # every attempt is recorded in service.sqlite, next to the tokens
    rows = sqlite3.connect(tmp_path / "service.sqlite").execute("SELECT status FROM attempts ORDER BY at").fetchall()
    assert [r[0] for r in rows] == [500, 200, 200]


@pytest.mark.slow
async def test_a_webhook_reports_what_happened_while_the_service_was_down(tmp_path: Path) -> None:
    settings = get_settings().model_copy(
        update={"data_dir": tmp_path, "http_port": 0, "public_url": None, "webhook_allow_private": True}
    )
    alice = TokenStore(tmp_path).create("alice")
    with local_server(lambda request: Reply(204)) as hook:
        body = {"prompt": "keeper", "script": SCRIPT, "duration": 8, "webhook_url": f"{hook.url}/h"}
        headers = {"Authorization": f"Bearer {alice.token}"}
        async with JobService.open(settings) as svc, serving(svc, settings) as port:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                job_id = (await client.post("/v1/jobs", json=body)).json()["job_id"]
            await svc.wait(job_id)
            await arrived(hook.requests, 1)
        # the service is down; another process (the CLI, a runner) cancels the job meanwhile
        async with JobService.open(settings) as other:
            await other.cancel(job_id, Identity(name="alice").requester)
            assert (await other.wait(job_id)).status == "cancelled"
        assert len(hook.requests) == 1
        async with JobService.open(settings) as svc, serving(svc, settings):
            await arrived(hook.requests, 2)
    kinds = [Webhook(alice.webhook_secret).verify(r.body, dict(r.headers))["type"] for r in hook.requests]
    assert kinds == ["job.waiting", "job.cancelled"]


async def test_per_user_limits_apply_to_tokens(api: Api) -> None:
    async with api.client(api.alice) as alice, api.client(api.bob) as bob:
        for _ in range(2):
            assert (
                await alice.post("/v1/jobs", json={"prompt": "keeper", "script": SCRIPT, "duration": 8})
            ).status_code == 201
        third = await alice.post("/v1/jobs", json={"prompt": "keeper", "script": SCRIPT, "duration": 8})
        assert third.status_code == 429 and "the limit is 2" in third.json()["error"]
        assert (
            await bob.post("/v1/jobs", json={"prompt": "keeper", "script": SCRIPT, "duration": 8})
        ).status_code == 201


@pytest.mark.slow
async def test_200_status_reads_and_a_dropped_stream_while_a_job_renders(api: Api) -> None:
    async with api.client(api.alice) as alice:
        created = await alice.post(
            "/v1/jobs", json={"prompt": "keeper", "script": SCRIPT, "duration": 8, "auto_approve": True}
        )
        job_id = created.json()["job_id"]
        # a client that goes away mid-stream: the server drops its stream, the job goes on
        async with alice.stream("GET", f"/v1/jobs/{job_id}/events") as dropped:
            async for line in dropped.aiter_lines():
                if line.startswith("id:"):
                    break
        follower = asyncio.create_task(read_sse(alice, f"/v1/jobs/{job_id}/events", stop_at=None))
        await until(alice, job_id, "running")
        api.svc.lag.max_ms = 0.0
        replies = await burst(api.base, api.alice.token, f"/v1/jobs/{job_id}", 200)
        assert [status for status, _ in replies] == [200] * 200
        assert {body["job_id"] for _, body in replies} == {job_id}
        lag = api.svc.lag.max_ms
        events = await follower
        assert events[-1]["event"] == "done" and (await until(alice, job_id, "done"))["artifacts"]
    print(f"largest event-loop lag during 200 concurrent status reads: {lag:.1f} ms")
    # 169 ms measured here with nothing else running (bench/api.py reports the figures); the bound
    # catches a blocking call in the request path without failing on a busy CI machine
    assert lag < 1000, lag


BURST = """
import asyncio, json, sys
import httpx
base, token, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
async def main():
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    headers = {"Authorization": "Bearer " + token}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as many:
        replies = await asyncio.gather(*(many.get(path) for _ in range(count)))
    print(json.dumps([[r.status_code, r.json()] for r in replies]))
asyncio.run(main())
"""


async def burst(base: str, token: str, path: str, count: int) -> list[tuple[int, Any]]:
    """`count` GETs at once from another process, as clients on other machines would send them (a
    client in this process would share the server's event loop or its GIL, and measure itself)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BURST, base, token, path, str(count), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return [(status, body) for status, body in json.loads(out)]


def test_the_n8n_example_speaks_this_api() -> None:
    """docs/n8n-storybot.json: each request names a route of this API and a body it accepts."""
    workflow = json.loads((Path(__file__).parent.parent / "docs" / "n8n-storybot.json").read_text())
    nodes = {n["name"]: n for n in workflow["nodes"]}
    chain, name = [], "Start"
    while name in workflow["connections"]:
        name = workflow["connections"][name]["main"][0][0]["node"]
        chain.append(nodes[name]["type"].rsplit(".", 1)[1])
    assert chain == ["httpRequest", "wait", "httpRequest", "wait", "httpRequest", "wait", "httpRequest"]
    calls = [n["parameters"] for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]
    assert calls[0]["url"].endswith("/v1/jobs") and "webhook_url: $execution.resumeUrl" in calls[0]["jsonBody"]
    for answer in calls[1:3]:
        assert answer["url"].endswith("/answer") and Answer.model_validate_json(answer["jsonBody"]).action == "approve"
    assert calls[3]["url"].endswith("/artifacts/final.mp4")
    assert all(c["headerParameters"]["parameters"][0]["name"] == "Authorization" for c in calls)
