"""Publishing over the HTTP API: rules answered at once, uploads in the background, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from graph.api import JobService
from service.app import serving
from service.tokens import TokenStore
from tests.fake_platforms import Platforms, platforms_server
from tools.settings import Settings, get_settings

pytestmark = pytest.mark.slow
SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."


@pytest.fixture
def fake() -> Iterator[Platforms]:
    with platforms_server() as platforms:
        yield platforms


@pytest.fixture
async def api(tmp_path: Path, fake: Platforms) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Path]]:
    base = get_settings().model_dump(by_alias=True)
    settings = Settings.model_validate(
        {**base, **fake.env(), "STORYBOT_DATA_DIR": str(tmp_path), "STORYBOT_HTTP_PORT": 0}
    )
    tokens = TokenStore(tmp_path)
    alice, bob = tokens.create("alice").token, tokens.create("bob").token
    async with JobService.open(settings) as svc, serving(svc, settings) as port:
        url = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {alice}"}, timeout=60) as a,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {bob}"}, timeout=60) as b,
        ):
            yield a, b, svc.jobs_dir


async def settled(client: httpx.AsyncClient, path: str, platforms: set[str]) -> dict[str, str]:
    """Each site's final state, once every one of `platforms` is done or refused."""
    async with asyncio.timeout(300):
        while True:
            found = {p["platform"]: p["state"] for p in (await client.get(path)).json()}
            if set(found) == platforms and set(found.values()) <= {"done", "refused"}:
                return found
            await asyncio.sleep(0.1)


async def test_publish_over_the_api(api: tuple[httpx.AsyncClient, httpx.AsyncClient, Path], fake: Platforms) -> None:
    alice, bob, jobs = api
    body = {"prompt": "keeper", "script": SCRIPT, "duration": 8}
    waiting = (await alice.post("/v1/jobs", json=body)).json()["job_id"]
    early = await alice.post(f"/v1/jobs/{waiting}/publish", json={"to": "youtube"})
    assert early.status_code == 422 and "not finished" in early.json()["error"]
    job_id = (await alice.post("/v1/jobs", json={**body, "auto_approve": True})).json()["job_id"]
    async with asyncio.timeout(300):
        while (await alice.get(f"/v1/jobs/{job_id}")).json()["status"] != "done":  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    unknown = await alice.post(f"/v1/jobs/{job_id}/publish", json={"to": "myspace"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "to"
    ruled = await alice.post(f"/v1/jobs/{job_id}/publish", json={"to": "instagram", "privacy": "private"})
    assert ruled.status_code == 422 and "public" in ruled.json()["error"] and not fake.uploads
    assert (await bob.post(f"/v1/jobs/{job_id}/publish", json={"to": "youtube"})).status_code == 404
    started = await alice.post(f"/v1/jobs/{job_id}/publish", json={"to": "youtube,tiktok"})
    assert started.status_code == 202 and started.json()["started"] is True, started.text
    done = await settled(alice, f"/v1/jobs/{job_id}/publications", {"youtube", "tiktok"})
    assert done == {"youtube": "done", "tiktok": "done"}
    master = (jobs / job_id / "final.mp4").read_bytes()
    (yt,) = fake.videos("youtube")
    assert bytes(yt.data) == master and yt.meta["status"]["containsSyntheticMedia"] is True
    assert yt.meta["status"]["privacyStatus"] == "private"
    (tt,) = fake.videos("tiktok")
    assert bytes(tt.data) == master and tt.meta["post_info"]["is_aigc"] is True
    # asked again: answered from the ledger, nothing sent twice
    received = fake.received
    again = await alice.post(f"/v1/jobs/{job_id}/publish", json={"to": "youtube,tiktok"})
    assert again.status_code == 202
    assert await settled(alice, f"/v1/jobs/{job_id}/publications", {"youtube", "tiktok"}) == done
    await asyncio.sleep(0.3)
    assert fake.received == received and len(fake.videos("youtube")) == 1
    assert (await bob.get(f"/v1/jobs/{job_id}/publications")).status_code == 404
