"""TikTok's chunk rules on a file big enough for several chunks (in process, against the local
TikTok): chunks of 10 MB in order with `Content-Range`, the last one taking the remainder, and after a
connection cut mid-chunk the upload goes on at the chunk `status/fetch` reports, resending only it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fake_platforms import platforms_server
from tools.media.ffmpeg import ffmpeg_exe
from tools.publish import Choice, Ledger, Texts, measure, plan_all, publish_all
from tools.publish.registry import platform
from tools.publish.tiktok import CHUNK
from tools.settings import Settings


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """Over 20 MB of lossless test pattern: two TikTok chunks."""
    big = tmp_path / "big.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=720x1280:d=11:r=30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-movflags",
            "+faststart",
            str(big),
        ],
        check=True,
        timeout=120,
    )
    return big


async def test_tiktok_chunks_in_order_and_resume_at_the_reported_chunk(big: Path, tmp_path: Path) -> None:
    size = big.stat().st_size
    assert 2 * CHUNK <= size < 3 * CHUNK
    with platforms_server() as fake:
        fake.cut_at = CHUNK + 3_000_000  # inside the second (last) chunk
        settings = Settings.model_validate({**fake.env(), "STORYBOT_DATA_DIR": tmp_path / "data"})
        texts = Texts(title="Test pattern", description="Colour bars", hashtags=["#fyp", "#test"])
        planned = plan_all(settings, [platform("tiktok")], lambda row: texts, Choice(), measure(big))
        seen: list[int] = []
        (outcome,) = await publish_all(
            settings,
            Ledger(settings.data_dir),
            "0123456789ab",
            planned,
            lambda record: seen.append(record.confirmed_bytes),
            lambda line: None,
        )
        assert outcome.state == "done", outcome.error
        (post,) = fake.videos("tiktok")
        assert bytes(post.data) == big.read_bytes()
        assert post.meta["source_info"] == {
            "source": "FILE_UPLOAD",
            "video_size": size,
            "chunk_size": CHUNK,
            "total_chunk_count": 2,
        }
        assert post.meta["post_info"]["title"] == "Test pattern Colour bars #fyp #test"
        last = f"bytes {CHUNK}-{size - 1}/{size}"
        assert [r for _, r in fake.pieces] == [f"bytes 0-{CHUNK - 1}/{size}", last, last]
        assert fake.received - size == 3_000_000  # only the cut chunk's part went twice
        assert seen == [CHUNK, size]  # progress after each confirmed chunk
