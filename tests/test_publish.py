"""Publishing a finished job to YouTube, TikTok and Instagram, against local servers speaking their
upload protocols (tests/fake_platforms.py): the bytes each received are final.mp4's, the AI label
and the private defaults are sent, a kill -9 mid-upload resumes the same session from the offset
the site reports, and nothing is ever posted twice.

One real job (`storybot make --yes`, ~10 s) serves the module; each test starts a fresh fake and a
fresh ledger.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import storybot
from tests.fake_platforms import (
    CLIENT_SECRET,
    INSTAGRAM_TOKEN,
    REFRESH_TOKEN,
    TIKTOK_TOKEN,
    Fault,
    Platforms,
    platforms_server,
)

SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, TIKTOK_TOKEN, INSTAGRAM_TOKEN)


class Job:
    def __init__(self, data: Path, job_id: str, final: Path) -> None:
        self.data, self.id, self.final = data, job_id, final
        self.bytes = final.read_bytes()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    data = tmp_path_factory.mktemp("publish-data")
    made = storybot(
        "make", "A lighthouse keeper finds a message in a bottle", "--yes", "--duration", "5", "--json", data=data
    )
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    return Job(data, out["job_id"], Path(out["artifacts"]["final_video"]))


@pytest.fixture
def fake(job: Job) -> Iterator[Platforms]:
    for leftover in job.data.glob("publications.sqlite*"):
        leftover.unlink()
    with platforms_server() as platforms:
        yield platforms


def publish(
    job: Job, fake: Platforms, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = storybot("publish", job.id, *args, data=job.data, env={**fake.env(), **(env or {})}, timeout=120)
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    return result


def publications(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return {p["platform"]: p for p in json.loads(result.stdout)["publications"]}


def start_publish(job: Job, fake: Platforms, to: str) -> subprocess.Popen[str]:
    env = {**os.environ, "STORYBOT_DATA_DIR": str(job.data), **fake.env()}
    return subprocess.Popen(
        [sys.executable, "-m", "storybot", "publish", job.id, "--to", to, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when_held(proc: subprocess.Popen[str], fake: Platforms) -> None:
    assert fake.holding.wait(60), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    fake.release.set()
    time.sleep(0.1)  # the held handler returns


def ledger_row(job: Job, platform: str) -> dict[str, Any]:
    import sqlite3

    con = sqlite3.connect(job.data / "publications.sqlite")
    con.row_factory = sqlite3.Row
    row = con.execute("select * from publications where job_id = ? and platform = ?", (job.id, platform)).fetchone()
    con.close()
    return dict(row)


def test_publishes_to_all_three_with_ai_label_and_private_defaults(job: Job, fake: Platforms) -> None:
    done = publications(publish(job, fake, "--to", "youtube,tiktok,instagram", "--json"))
    assert {p["state"] for p in done.values()} == {"done"}

    (yt,) = fake.videos("youtube")
    assert bytes(yt.data) == job.bytes
    status = yt.meta["status"]
    assert status["containsSyntheticMedia"] is True
    assert status["selfDeclaredMadeForKids"] is False  # sent explicitly
    assert status["privacyStatus"] == "private" and "publishAt" not in status
    assert 0 < len(yt.meta["snippet"]["title"]) <= 100
    (init,) = fake.calls("POST /yt/upload/youtube/v3/videos")
    assert init[2]["X-Upload-Content-Length"] == str(len(job.bytes))
    assert done["youtube"]["link"] == f"https://youtu.be/{yt.published}"
    assert fake.thumbnails[yt.published or ""] == (job.final.parent / "thumbnail.png").read_bytes()

    (tt,) = fake.videos("tiktok")
    assert bytes(tt.data) == job.bytes
    post_info, source = tt.meta["post_info"], tt.meta["source_info"]
    assert post_info["is_aigc"] is True and post_info["privacy_level"] == "SELF_ONLY"
    assert post_info["disable_duet"] is True  # the creator turned duets off
    assert post_info["brand_content_toggle"] is False and post_info["brand_organic_toggle"] is False
    assert source == {
        "source": "FILE_UPLOAD",
        "video_size": len(job.bytes),
        "chunk_size": len(job.bytes),
        "total_chunk_count": 1,
    }
    tt_calls = [c[1] for c in fake.calls("POST /tt/")]
    assert tt_calls.index("/tt/v2/post/publish/creator_info/query/") < tt_calls.index("/tt/v2/post/publish/video/init/")
    assert done["tiktok"]["link"] is None and done["tiktok"]["remote_id"] == tt.id  # SELF_ONLY: the publish_id

    (ig,) = fake.videos("instagram")
    assert bytes(ig.data) == job.bytes
    assert ig.meta["media_type"] == "REELS" and ig.meta["is_ai_generated"] is True
    assert done["instagram"]["link"] == f"https://www.instagram.com/reel/R{ig.published}/"

    # a second publish answers from the ledger: nothing is sent again
    received, sessions = fake.received, len(fake.uploads)
    again = publish(job, fake, "--to", "youtube,tiktok,instagram")
    assert again.returncode == 0, again.stderr
    assert "published earlier" in again.stdout and f"https://youtu.be/{yt.published}" in again.stdout
    assert fake.received == received and len(fake.uploads) == sessions


def test_kill_9_mid_youtube_upload_resumes_the_same_session(job: Job, fake: Platforms) -> None:
    fake.hold_at = 300_000  # inside the second 256 KiB chunk
    kill_when_held(start_publish(job, fake, "youtube"), fake)
    row = ledger_row(job, "youtube")
    assert row["state"] == "uploading" and row["session"] and row["confirmed_bytes"] == 256 * 1024

    done = publications(publish(job, fake, "--to", "youtube", "--json"))
    (video,) = fake.videos("youtube")
    assert len(fake.sessions("youtube")) == 1  # the same session, resumed
    assert bytes(video.data) == job.bytes
    resent = fake.received - len(job.bytes)
    assert resent == 0  # the server kept what arrived before the kill; the 308 Range said where to go on
    resumed_at = [r for sid, r in fake.pieces if sid == video.id][-1]
    assert resumed_at.startswith("bytes 300000-")
    assert done["youtube"]["state"] == "done"


def test_kill_9_mid_tiktok_upload_resumes_from_the_chunk_index(job: Job, fake: Platforms) -> None:
    fake.hold_at = 200_000
    kill_when_held(start_publish(job, fake, "tiktok"), fake)
    assert ledger_row(job, "tiktok")["state"] == "uploading"

    publications(publish(job, fake, "--to", "tiktok", "--json"))
    (post,) = fake.videos("tiktok")
    assert len(fake.sessions("tiktok")) == 1 and len(fake.calls("POST /tt/v2/post/publish/video/init/")) == 1
    assert bytes(post.data) == job.bytes
    assert fake.received - len(job.bytes) == 200_000  # TikTok keeps whole chunks: chunk 0 went again


def test_kill_9_mid_instagram_upload_resumes_at_the_offset(job: Job, fake: Platforms) -> None:
    fake.hold_at = 150_000
    kill_when_held(start_publish(job, fake, "instagram"), fake)

    publications(publish(job, fake, "--to", "instagram", "--json"))
    (reel,) = fake.videos("instagram")
    assert (
        len(fake.sessions("instagram")) == 1 and len(fake.calls("POST /ig/v23.0/17841400000000001/media_publish")) == 1
    )
    assert bytes(reel.data) == job.bytes
    assert fake.received - len(job.bytes) == 0
    assert [r for sid, r in fake.pieces if sid == reel.id] == ["offset 0", "offset 150000"]


def test_cut_connection_429_and_token_expiry_mid_upload(job: Job, fake: Platforms) -> None:
    fake.cut_at = 100_000  # the connection drops inside the first chunk
    fake.expire_after_puts = 2  # the access token stops working mid-upload
    fake.faults.append(
        Fault(
            "POST /yt/upload/youtube/v3/videos",
            429,
            {"error": {"code": 429, "message": "slow down", "errors": [{"reason": "rateLimited"}]}},
            {"Retry-After": "1"},
        )
    )
    fake.faults.append(Fault("POST /tt/v2/post/publish/status/fetch/", 503, {"error": {"code": "internal_error"}}))
    started = time.monotonic()
    done = publications(publish(job, fake, "--to", "youtube,tiktok", "--json"))
    assert time.monotonic() - started >= 1  # Retry-After was waited out
    assert {p["state"] for p in done.values()} == {"done"}
    (video,) = fake.videos("youtube")
    assert bytes(video.data) == job.bytes
    assert ("yt-session-" in video.id) and any(r.startswith("bytes 100000-") for _, r in fake.pieces)  # after the cut
    assert fake.refreshes >= 2  # the first token, then a new one after the 401
    assert all(f.times == 0 for f in fake.faults)  # the 429 and the 503 were both met
    assert [c for c in fake.calls("POST /token") if b"grant_type=refresh_token" in c[3]]


def test_quota_refusal_is_one_line_and_can_be_tried_again(job: Job, fake: Platforms) -> None:
    quota = {
        "error": {
            "code": 403,
            "message": "The request cannot be completed because you have exceeded your quota.",
            "errors": [{"reason": "quotaExceeded", "domain": "youtube.quota"}],
        }
    }
    fake.faults.append(Fault("POST /yt/upload/youtube/v3/videos", 403, quota))
    refused = publish(job, fake, "--to", "youtube")
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("storybot: error:")]
    assert len(errors) == 1 and "quotaExceeded" in errors[0]
    assert ledger_row(job, "youtube")["state"] == "refused"
    assert not fake.videos("youtube")

    again = publish(job, fake, "--to", "youtube")
    assert again.returncode == 0, again.stderr
    assert len(fake.videos("youtube")) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--to", "tiktok", "--at", "2099-01-01T10:00:00Z"], "schedules YouTube uploads only"),
        (["--to", "instagram", "--privacy", "private"], "public"),
        (["--to", "youtube", "--title", "a <b> title"], "< or >"),
        (["--to", "youtube", "--title", "x" * 101], "at most 100"),
        (["--to", "youtube", "--privacy", "public", "--at", "2099-01-01T10:00:00Z"], "--at"),
        (["--to", "youtube", "--at", "2001-01-01T10:00:00Z"], "future"),
        (["--to", "youtube,tiktok", "--privacy", "public"], "SELF_ONLY"),  # creator_info, before any upload
        (["--to", "vimeo"], "unknown platform"),
    ],
)
def test_bad_input_is_one_line_and_sends_nothing(job: Job, fake: Platforms, args: list[str], words: str) -> None:
    result = publish(job, fake, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("storybot: error:") and words in lines[0]
    assert not fake.uploads and fake.received == 0
    assert not (job.data / "publications.sqlite").exists() or not ledger_rows(job)


def ledger_rows(job: Job) -> list[Any]:
    import sqlite3

    con = sqlite3.connect(job.data / "publications.sqlite")
    try:
        return con.execute("select * from publications").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_scheduled_youtube_upload_and_the_label_turned_off(job: Job, fake: Platforms) -> None:
    result = publish(job, fake, "--to", "youtube", "--at", "2099-01-01T10:00:00Z", "--no-ai-label", "--made-for-kids")
    assert result.returncode == 0, result.stderr
    assert "AI-content label is off" in result.stderr
    (video,) = fake.videos("youtube")
    assert video.meta["status"] == {
        "privacyStatus": "private",
        "publishAt": "2099-01-01T10:00:00Z",
        "selfDeclaredMadeForKids": True,
        "containsSyntheticMedia": False,
    }


def test_accounts_add_list_remove(job: Job, fake: Platforms, tmp_path: Path) -> None:
    linked = ("STORYBOT_YOUTUBE_REFRESH_TOKEN", "STORYBOT_TIKTOK_ACCESS_TOKEN", "STORYBOT_INSTAGRAM_ACCESS_TOKEN")
    env = {k: v for k, v in fake.env().items() if k not in linked}
    added = storybot("accounts", "add", "tiktok", data=tmp_path, env=env, input_text=TIKTOK_TOKEN)
    assert added.returncode == 0, added.stderr
    added = storybot(
        "accounts",
        "add",
        "instagram",
        "--user-id",
        "17841400000000001",
        data=tmp_path,
        env=env,
        input_text=INSTAGRAM_TOKEN,
    )
    assert added.returncode == 0, added.stderr
    for name in ("tiktok", "instagram"):
        f = tmp_path / "accounts" / f"{name}.json"
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "accounts").stat().st_mode) == 0o700

    # YouTube: the installed-app flow, answered on its loopback redirect as the browser would
    proc = subprocess.Popen(
        [sys.executable, "-m", "storybot", "accounts", "add", "youtube", "--no-browser", "--wait", "30"],
        env={**os.environ, **env, "STORYBOT_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    url = ""
    while not url.startswith("https://"):
        url = proc.stderr.readline().strip()
        assert url or proc.poll() is None
    from urllib.parse import parse_qs, urlsplit

    import httpx

    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["access_type"] == ["offline"]
    answer = httpx.get(query["redirect_uri"][0], params={"code": "good-code", "state": query["state"][0]})
    assert answer.status_code == 200
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    listed = storybot("accounts", "list", "--json", data=tmp_path, env=env)
    rows = {r["platform"]: r for r in json.loads(listed.stdout)}
    assert rows["youtube"]["name"] == "Fake Channel" and rows["tiktok"]["name"] == "fakecreator"
    assert rows["instagram"]["name"] == "fake.reels" and rows["instagram"]["user_id"] == "17841400000000001"
    for secret in SECRETS:
        assert secret not in listed.stdout + listed.stderr + added.stderr + err
    assert REFRESH_TOKEN in (tmp_path / "accounts" / "youtube.json").read_text()

    removed = storybot("accounts", "remove", "tiktok", data=tmp_path, env=env)
    assert removed.returncode == 0 and not (tmp_path / "accounts" / "tiktok.json").exists()
    assert storybot("accounts", "remove", "tiktok", data=tmp_path, env=env).returncode == 2


def test_redaction_masks_linked_account_tokens(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from tools.net.redact import redact
    from tools.publish import accounts
    from tools.settings import Settings

    accounts.save(tmp_path, accounts.Account(platform="tiktok", name="x", access_token=SecretStr(TIKTOK_TOKEN)))
    settings = Settings(STORYBOT_DATA_DIR=tmp_path)
    assert redact(f"TikTok said: bad token {TIKTOK_TOKEN}", settings) == "TikTok said: bad token [redacted]"


def test_final_video_carries_a_signed_c2pa_manifest(job: Job) -> None:
    """Read back with c2pa's Reader: made by storybot, composite of procedural cards and a synthetic
    voice, still faststart, and metadata.json's measured properties are the signed file's."""
    from tests.media_checks import top_level_atoms
    from tools.media.probe import probe
    from tools.provenance import read_manifest

    store = read_manifest(job.final)
    assert store["validation_state"] == "Valid"  # hashes match; the local root is merely untrusted
    codes = {s["code"] for s in store.get("validation_status", [])}
    assert codes <= {"signingCredential.untrusted"}
    manifest = store["manifests"][store["active_manifest"]]
    assert manifest["claim_generator_info"][0]["name"] == "storybot"
    assert manifest["signature_info"]["common_name"] == "storybot signer"
    (actions,) = [a["data"]["actions"] for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")

    atoms = top_level_atoms(job.final)
    assert atoms.index("moov") < atoms.index("mdat") and atoms[1] == "uuid"  # the manifest box after ftyp
    meta = json.loads((job.final.parent / "metadata.json").read_text())
    measured = probe(job.final)
    assert meta["video"]["size_bytes"] == job.final.stat().st_size
    assert meta["video"]["video"] == measured.video.model_dump() if measured.video else False
    assert meta["provenance"]["signer"] == "local (self-issued)" and "local certificate" in meta["provenance"]["notice"]
    assert meta["provenance"]["signed"] == ["final.mp4"]
    for name in ("root.key", "signer.key"):
        assert stat.S_IMODE((job.data / "c2pa" / name).stat().st_mode) == 0o600


def test_tiktok_inbox_is_explicit_and_warns_about_the_label(job: Job, fake: Platforms) -> None:
    result = publish(job, fake, "--to", "tiktok", "--inbox", "--json")
    done = publications(result)
    assert done["tiktok"]["state"] == "done"
    assert "set the AI-generated label there" in result.stderr
    (init,) = fake.calls("POST /tt/v2/post/publish/inbox/video/init/")
    assert "post_info" not in json.loads(init[3])  # the inbox flow carries no label: hence the warning
    assert not fake.calls("POST /tt/v2/post/publish/video/init/")
    (post,) = fake.videos("tiktok")
    assert bytes(post.data) == job.bytes


def test_an_account_file_others_can_read_is_refused(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from tools.errors import BadInput
    from tools.publish import accounts

    where = accounts.save(tmp_path, accounts.Account(platform="tiktok", name="x", access_token=SecretStr("t" * 20)))
    assert accounts.load(tmp_path, "tiktok") is not None
    where.chmod(0o644)
    with pytest.raises(BadInput, match="readable by others"):
        accounts.load(tmp_path, "tiktok")


def test_a_second_process_publishing_the_same_job_is_refused(job: Job, fake: Platforms) -> None:
    fake.hold_at = 100_000
    first = start_publish(job, fake, "youtube")
    assert fake.holding.wait(60)
    second = publish(job, fake, "--to", "youtube")
    assert second.returncode == 1 and "being published by another storybot process" in second.stderr
    fake.release.set()
    assert first.wait(60) == 0, first.communicate()
    assert len(fake.sessions("youtube")) == 1 and len(fake.videos("youtube")) == 1


def test_an_expired_youtube_session_starts_a_new_one_without_a_second_video(job: Job, fake: Platforms) -> None:
    fake.hold_at = 300_000
    kill_when_held(start_publish(job, fake, "youtube"), fake)
    (old,) = fake.sessions("youtube")
    del fake.uploads[old.id]  # a week later: Google answers 404 for the session
    publications(publish(job, fake, "--to", "youtube", "--json"))
    (video,) = fake.videos("youtube")
    assert video.id != old.id and bytes(video.data) == job.bytes


def test_a_stored_tiktok_token_is_refreshed_before_it_expires(job: Job, fake: Platforms) -> None:
    from tests.fake_platforms import TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET, TIKTOK_REFRESH

    data = job.data
    env = {k: v for k, v in fake.env().items() if k != "STORYBOT_TIKTOK_ACCESS_TOKEN"}
    env |= {"STORYBOT_TIKTOK_CLIENT_KEY": TIKTOK_CLIENT_KEY, "STORYBOT_TIKTOK_CLIENT_SECRET": TIKTOK_CLIENT_SECRET}
    pasted = json.dumps(  # TikTok's token reply as the user got it, about to expire
        {
            "access_token": TIKTOK_TOKEN,
            "expires_in": 30,
            "refresh_token": TIKTOK_REFRESH,
            "open_id": "open-1",
            "scope": "user.info.basic,video.publish",
        }
    )
    try:
        added = storybot("accounts", "add", "tiktok", data=data, env=env, input_text=pasted)
        assert added.returncode == 0, added.stderr
        stored = json.loads((data / "accounts" / "tiktok.json").read_text())
        assert stored["refresh_token"] == fake.tiktok_refresh != TIKTOK_REFRESH  # rotated and kept at once
        result = storybot("publish", job.id, "--to", "tiktok", data=data, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        (post,) = fake.videos("tiktok")
        assert bytes(post.data) == job.bytes
        assert len(fake.calls("POST /tt/v2/oauth/token/")) == 1  # refreshed once, then good for a day
        for secret in (TIKTOK_CLIENT_SECRET, fake.tiktok_refresh, *fake.tiktok_tokens):
            assert secret not in added.stdout + added.stderr + result.stdout + result.stderr
    finally:
        (data / "accounts" / "tiktok.json").unlink(missing_ok=True)
