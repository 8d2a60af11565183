"""The job page in headless Chromium: it loads with no outside assets, its buttons move the job on,
it follows the job's events, and the finished video plays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from graph.api import JobService
from service.app import serving
from service.tokens import TokenStore
from tests.browser import CHROMIUM, chromium
from tools.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="make test installs chromium")]
SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, JobService]]:
    settings = get_settings().model_copy(update={"data_dir": tmp_path, "http_port": 0, "public_url": None})
    token = TokenStore(tmp_path).create("alice").token
    async with JobService.open(settings) as svc, serving(svc, settings) as port:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            yield client, svc


async def status(client: httpx.AsyncClient, job_id: str, *wanted: str) -> dict[str, object]:
    async with asyncio.timeout(300):
        while (job := (await client.get(f"/v1/jobs/{job_id}")).json())["status"] not in wanted:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    return job


async def test_the_job_page_answers_follows_and_plays(api: tuple[httpx.AsyncClient, JobService]) -> None:
    client, svc = api
    job_id = (await client.post("/v1/jobs", json={"prompt": "keeper", "script": SCRIPT, "duration": 8})).json()[
        "job_id"
    ]
    job = await status(client, job_id, "waiting")
    page_url = str(job["page_url"])
    async with httpx.AsyncClient() as anonymous:  # the signature is the key: without it, a bare 404
        assert (await anonymous.get(page_url.split("?")[0])).status_code == 404
        tampered = await anonymous.get(page_url[:-2] + ("AA" if not page_url.endswith("AA") else "BB"))
        assert (tampered.status_code, tampered.text) == (404, "Not found")
    async with chromium() as page:
        await page.goto(page_url)
        assert await page.js("document.getElementById('script').textContent") == SCRIPT
        assert await page.js("[...document.querySelectorAll('script[src],link[href]')].length") == 0
        await page.js("document.querySelector('button.approve').click()")
        await status(client, job_id, "waiting", "running")
        # the page hears the job reach the keyframes and shows them, loaded
        frames = await page.until(
            "document.querySelectorAll('.frame img').length && "
            "[...document.querySelectorAll('.frame img')].every((i) => i.complete && i.naturalWidth > 0) && "
            "document.querySelectorAll('.frame img').length"
        )
        assert frames == len(svc.get(job_id).approval.keyframes)  # type: ignore[union-attr]
        await page.js("document.querySelector('button.approve').click()")
        await page.until("document.getElementById('video') !== null", seconds=120)
        assert (await status(client, job_id, "done"))["status"] == "done"
        played = await page.js(
            """(async () => {
                const v = document.getElementById('video'); v.muted = true;
                await v.play(); await new Promise((r) => setTimeout(r, 1500));
                return {time: v.currentTime, width: v.videoWidth, height: v.videoHeight, error: v.error};
            })()"""
        )
        assert played["error"] is None and played["time"] > 0.5, played
        assert (played["width"], played["height"]) == (1080, 1920)
