"""Object storage (tools/storage, graph/stored.py) against a real S3-compatible server (moto's, one
per session), and the default (the data folder) left as it was."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import httpx
import pytest

from bot.links import job_links, links_from
from graph import stored
from graph.api import ARTIFACTS, JobRequest, JobResult, JobService, Links, link_secret
from graph.stored import MANIFEST, artifact_locations, fetch_job, local_copy, synced, upload_job
from service.app import serving
from tests.cli import ok_json, storybot
from tests.fake_stock import fake_stock, png_bytes
from tests.s3_server import KEY_ID, REGION, S3Server
from tools.media.outputs import Artifacts, collect_artifacts
from tools.net.guard import Guard
from tools.settings import Settings
from tools.storage import StorageError, StorageNotFound, check_key, content_key, get_storage, job_key
from tools.storage.local import LocalStorage
from tools.visuals.fetch import Http

JOB = "0123456789ab"


def remote_settings(s3: S3Server, bucket: str, data: Path, prefix: str = "videos") -> Settings:
    return Settings(STORYBOT_DATA_DIR=data, **s3.env(bucket, prefix))  # type: ignore[arg-type]


# keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "/jobs/x", "jobs//x", "jobs/../etc", "jobs/..", "jobs/a b", "jobs/x\n", "a/" + "x" * 600, "ü"]
)
def test_a_key_that_is_not_ours_is_refused(key: str) -> None:
    with pytest.raises(StorageError):
        check_key(key)


def test_keys_come_from_job_ids_and_our_names() -> None:
    assert job_key(JOB, "keyframes/shot_01.png") == f"jobs/{JOB}/keyframes/shot_01.png"
    assert job_key(JOB, ".voice.json") == f"jobs/{JOB}/.voice.json"
    for bad in ("../../etc", "0123456789AB", "0123456789a", "x" * 12):
        with pytest.raises(StorageError):
            job_key(bad, "final.mp4")
    assert content_key("stock", "ab" * 16, ".jpg") == f"cache/stock/{'ab' * 16}.jpg"
    with pytest.raises(StorageError):
        content_key("stock", "not hex")


def test_an_unknown_scheme_or_a_bad_s3_url_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no storage backend for gs://"):
        get_storage(Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_STORAGE_URL="gs://b/p"))  # type: ignore[call-arg]
    with pytest.raises(StorageError, match="s3://bucket/prefix"):
        get_storage(Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_STORAGE_URL="s3:///p"))  # type: ignore[call-arg]


# the backends ----------------------------------------------------------------


async def round_trip(storage: Any, tmp_path: Path) -> None:
    body = os.urandom(3 << 20) + b"end"
    source = tmp_path / "source.bin"
    source.write_bytes(body)
    key = job_key(JOB, "clips/shot_01.mp4")
    await storage.put_file(key, source)
    await storage.put_bytes(job_key(JOB, "metadata.json"), b"{}")
    assert await storage.exists(key) and not await storage.exists(job_key(JOB, "final.mp4"))
    assert await storage.list(f"jobs/{JOB}") == [f"jobs/{JOB}/clips/shot_01.mp4", f"jobs/{JOB}/metadata.json"]
    assert await storage.list("jobs/fedcba987654") == []
    await storage.get_file(key, tmp_path / "back" / "copy.bin")
    assert (tmp_path / "back" / "copy.bin").read_bytes() == body
    assert [p.name for p in (tmp_path / "back").iterdir()] == ["copy.bin"], "no temporary left behind"
    assert b"".join([chunk async for chunk in storage.open(key)]) == body
    with pytest.raises(StorageNotFound):
        await storage.get_file(job_key(JOB, "final.mp4"), tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()
    await storage.delete(key)
    await storage.delete(key)  # gone already: no error
    assert not await storage.exists(key)


async def test_s3_put_get_exists_list_stream_delete(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    storage = get_storage(remote_settings(s3, bucket, tmp_path / "data"))
    assert storage.remote and storage.name == "s3"
    await round_trip(storage, tmp_path)
    assert set(s3.objects(bucket)) == {f"videos/jobs/{JOB}/metadata.json"}, "keys live under the URL's prefix"


async def test_local_backend_is_the_data_folder(tmp_path: Path) -> None:
    storage = get_storage(Settings(STORYBOT_DATA_DIR=tmp_path / "data"))  # type: ignore[call-arg]
    assert isinstance(storage, LocalStorage) and not storage.remote
    await round_trip(storage, tmp_path)
    assert (tmp_path / "data" / "jobs" / JOB / "metadata.json").read_bytes() == b"{}"
    assert storage.presign(job_key(JOB, "metadata.json"), 60) is None


async def test_a_presigned_url_gets_the_bytes_and_carries_the_link_expiry(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.bucket()
    storage = get_storage(remote_settings(s3, bucket, tmp_path / "data"))
    body = b"master video bytes" * 1000
    await storage.put_bytes(job_key(JOB, "final.mp4"), body)
    url = storage.presign(job_key(JOB, "final.mp4"), 300)
    assert url is not None and url.startswith(f"{s3.endpoint}/{bucket}/videos/jobs/{JOB}/final.mp4?")
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(url)
    assert reply.status_code == 200 and reply.content == body
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert query["X-Amz-Expires"] == "300" and abs(signed_at.timestamp() - time.time()) < 60
    assert query["X-Amz-Credential"].startswith(f"{KEY_ID}/") and f"/{REGION}/s3/" in query["X-Amz-Credential"]
    # moto does not enforce expiry, so the signature is checked here: botocore signs the same request
    # at the same instant and must come to the same SigV4 signature (real S3 refuses it after 300 s)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at.replace(tzinfo=None))
    expected = s3.client().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": f"videos/jobs/{JOB}/final.mp4"}, ExpiresIn=300
    )
    assert parse_qs(urlsplit(expected).query)["X-Amz-Signature"][0] == query["X-Amz-Signature"]
    longest = storage.presign(job_key(JOB, "final.mp4"), 30 * 24 * 3600)
    assert longest is not None and "X-Amz-Expires=604800" in longest, "capped at SigV4's 7 days"


# a job folder mirrored around each stage -------------------------------------


def job_folder(root: Path) -> Path:
    folder = root / "jobs" / JOB
    (folder / "keyframes").mkdir(parents=True)
    (folder / ".render-123-abcd").mkdir()
    (folder / "script.txt").write_text("Once upon a time.")
    (folder / ".voice.json").write_text('{"key": "abc"}')
    (folder / "keyframes" / "shot_01.png").write_bytes(b"png" * 100)
    (folder / ".final.123-0a1b2c3d.tmp.mp4").write_bytes(b"half a video")
    (folder / ".render-123-abcd" / "work.wav").write_bytes(b"scratch")
    return folder


async def test_upload_is_by_digest_and_fetch_restores_a_missing_folder(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    storage = get_storage(remote_settings(s3, bucket, tmp_path / "data"))
    folder = job_folder(tmp_path / "data")
    wanted = [".voice.json", "keyframes/shot_01.png", "script.txt"]
    assert await upload_job(storage, JOB, folder) == wanted, "temporaries and work folders stay local"
    assert await upload_job(storage, JOB, folder) == [], "nothing changed, nothing uploaded"
    (folder / "script.txt").write_text("Once upon a time.")  # rewritten with the same bytes
    assert await upload_job(storage, JOB, folder) == []
    (folder / "script.txt").write_text("A new script.")
    (folder / "keyframes" / "shot_01.png").unlink()
    assert await upload_job(storage, JOB, folder) == ["script.txt"]
    objects = s3.objects(bucket, f"videos/jobs/{JOB}/")
    assert sorted(objects) == [f"videos/jobs/{JOB}/{n}" for n in (".stored.json", ".voice.json", "script.txt")]
    assert objects[f"videos/jobs/{JOB}/script.txt"] == b"A new script."
    # another machine: no folder at all
    elsewhere = tmp_path / "other" / "jobs" / JOB
    assert sorted(await fetch_job(storage, JOB, elsewhere)) == [".voice.json", "script.txt"]
    assert (elsewhere / "script.txt").read_text() == "A new script." and (elsewhere / ".voice.json").is_file()
    assert await fetch_job(storage, JOB, elsewhere) == [], "what is here already is not fetched again"
    (elsewhere / "script.txt").write_text("a failed attempt's leftovers")
    assert await fetch_job(storage, JOB, elsewhere) == ["script.txt"], "the stored copy is the truth"
    assert (elsewhere / "script.txt").read_text() == "A new script."


async def test_the_default_makes_no_storage_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> None:
        raise AssertionError("no storage with the default")

    monkeypatch.setattr(stored, "get_storage", refuse)
    settings = Settings(STORYBOT_DATA_DIR=tmp_path)  # type: ignore[call-arg]
    folder = job_folder(tmp_path)

    class Ctx:
        def __init__(self) -> None:
            self.settings, self.job_id, self.job_dir = settings, JOB, folder

    async def node(state: Any, ctx: Any) -> str:
        return "ran"

    assert await synced(node, {}, Ctx()) == "ran"  # type: ignore[arg-type]
    assert not (folder / MANIFEST).exists()
    assert await local_copy(settings, JOB, "script.txt") == folder / "script.txt"
    assert await local_copy(settings, JOB, "final.mp4") is None


def objects_with_times(s3: S3Server, bucket: str, job: str) -> dict[str, tuple[str, Any]]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"videos/jobs/{job}/")["Contents"]
    return {o["Key"].split(f"{job}/", 1)[1]: (o["ETag"], o["LastModified"]) for o in listed}


@pytest.mark.slow
def test_a_job_lands_in_the_bucket_and_resumes_on_a_machine_without_its_folder(s3: S3Server, tmp_path: Path) -> None:
    """A real offline job with STORYBOT_STORAGE_URL=s3://...: killed after `animate`, its folder removed
    (another runner, fresh scratch), resumed: the folder comes back from the bucket, the re-run stage
    uploads nothing it had uploaded, and every file of the job is in the bucket with the same bytes."""
    bucket = s3.bucket()
    env = s3.env(bucket)
    killed = storybot(
        "make",
        "A fox who learns to sail",
        "--yes",
        "--duration",
        "6",
        data=tmp_path,
        env={**env, "STORYBOT_CRASH_AT": "animate:end"},
    )
    assert killed.returncode == -9, killed.stderr
    job = ok_json(storybot("jobs", "--json", data=tmp_path))[0]["job_id"]
    before = objects_with_times(s3, bucket, job)
    assert {"script.txt", "voice.wav", "words.json", "keyframes/shot_01.png", "clips/media.json"} <= set(before)
    assert "final.mp4" not in before
    shutil.rmtree(tmp_path / "jobs" / job)
    time.sleep(1.1)  # LastModified has whole seconds: a second upload would show
    resumed = ok_json(storybot("resume", job, "--yes", "--json", data=tmp_path, env=env))
    assert resumed["status"] == "done"
    after = objects_with_times(s3, bucket, job)
    for name, seen in before.items():
        if name != MANIFEST:
            assert after[name] == seen, f"{name} was uploaded again"
    folder = tmp_path / "jobs" / job
    objects = s3.objects(bucket, f"videos/jobs/{job}/")
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    assert {"final.mp4", "metadata.json", "thumbnail.png", "subtitles.srt", "clips/shot_01.mp4"} <= files
    assert {f"videos/jobs/{job}/{name}" for name in files} | {f"videos/jobs/{job}/{MANIFEST}"} == set(objects)
    for name in files:
        assert objects[f"videos/jobs/{job}/{name}"] == (folder / name).read_bytes(), name
    digests = json.loads(objects[f"videos/jobs/{job}/{MANIFEST}"])["files"]
    assert digests["final.mp4"] == hashlib.sha256((folder / "final.mp4").read_bytes()).hexdigest()
    # --json's artifacts can name the objects
    record = Artifacts.model_validate(resumed["artifacts"])
    where = artifact_locations(Settings(STORYBOT_DATA_DIR=tmp_path, **env), job, type("R", (), {"artifacts": record}))  # type: ignore[arg-type]
    assert where["final_video"] == f"s3://{bucket}/videos/jobs/{job}/final.mp4" and where["discord_video"] is None
    assert where["keyframes"] == [f"s3://{bucket}/videos/jobs/{job}/keyframes/shot_01.png"]


async def test_a_machine_without_the_file_fetches_it_for_delivery(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    runner = remote_settings(s3, bucket, tmp_path / "runner")
    folder = job_folder(tmp_path / "runner")
    (folder / "final.mp4").write_bytes(b"the master")
    await upload_job(get_storage(runner), JOB, folder)
    bot = remote_settings(s3, bucket, tmp_path / "bot")
    path = await local_copy(bot, JOB, "final.mp4")
    assert path == tmp_path / "bot" / "jobs" / JOB / "final.mp4" and path.read_bytes() == b"the master"
    assert await local_copy(bot, JOB, "final.discord.mp4") is None
    assert artifact_locations(runner, JOB, None) == {}


async def test_links_become_presigned_urls_with_the_same_expiry(s3: S3Server, tmp_path: Path) -> None:
    """With remote storage the bot needs no public address for links; a link of ours still valid is
    redirected by the HTTP service to the store until its own expiry."""
    bucket = s3.bucket()
    settings = remote_settings(s3, bucket, tmp_path).model_copy(update={"http_port": 0, "link_ttl": 3600})
    async with JobService.open(settings) as service:
        folder = tmp_path / "jobs" / JOB
        folder.mkdir(parents=True)
        (folder / "final.mp4").write_bytes(b"the master" * 1000)
        for name in ("subtitles.srt", "subtitles.vtt", "subtitles.ass", "thumbnail.png"):
            (folder / name).write_bytes(name.encode())
        await upload_job(get_storage(settings), JOB, folder)
        service.store.create(JOB, "discord:1", None, JobRequest(prompt="a fox"), ["post_produce"])
        service.store.update(JOB, status="done", result=JobResult(artifacts=collect_artifacts(folder)))
        links = links_from(settings)
        assert links is not None and links.storage is not None
        expires = int(time.time()) + 600
        url = links.url(JOB, "final.mp4", expires)
        assert url.startswith(f"{s3.endpoint}/{bucket}/videos/jobs/{JOB}/final.mp4?")
        assert abs(int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0]) - 600) <= 1
        assert [name for name, _ in job_links(links, service.get(JOB))] == list(ARTIFACTS)
        ours = Links(link_secret(settings), "http://127.0.0.1:1", 3600)  # the HMAC link of before
        async with serving(service, settings) as port, httpx.AsyncClient(timeout=10) as client:
            base = f"http://127.0.0.1:{port}"
            hmac_url = base + ours.url(JOB, "final.mp4", expires).removeprefix("http://127.0.0.1:1")
            moved = await client.get(hmac_url)
            assert moved.status_code == 307 and moved.headers["location"].startswith(s3.endpoint)
            query = parse_qs(urlsplit(moved.headers["location"]).query)
            assert abs(int(query["X-Amz-Expires"][0]) - 600) <= 1
            fetched = await client.get(moved.headers["location"])
            assert fetched.content == b"the master" * 1000
            wrong = hmac_url.replace("sig=", "sig=x")
            assert (await client.get(wrong)).status_code == 404


async def test_a_stock_download_is_shared_by_runners_through_the_bucket(s3: S3Server, tmp_path: Path) -> None:
    """Two runners (two data folders) need the same stock picture: the provider is asked once."""
    bucket = s3.bucket()
    shared = get_storage(remote_settings(s3, bucket, tmp_path / "a"))
    with fake_stock({"whale.png": png_bytes("cyan")}) as (_, url, requests):
        async with httpx.AsyncClient() as client:
            got = [
                await Http(client, "pexels", 0, guard=Guard.for_bases(url), shared=shared).download(
                    f"{url}/files/whale.png", tmp_path / box / "cache", "17", "image"
                )
                for box in ("a", "b")
            ]
    assert [p.parent for p in got] == [tmp_path / "a" / "cache" / "pexels", tmp_path / "b" / "cache" / "pexels"]
    assert got[0].read_bytes() == got[1].read_bytes() == png_bytes("cyan")
    assert [r.path for r in requests] == ["/files/whale.png"]
    assert [k for k in s3.objects(bucket) if k.startswith("videos/cache/visuals/")]
