"""`storybot make --visuals stock` through the graph against a local Pexels: the approval shows the
served footage, a re-roll takes the next hit, the video plays it, and credits reach the artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import ok_json, storybot
from tests.fake_stock import KEY, NAMES, Stock, colour_of, frame_at

pytestmark = pytest.mark.slow

SCRIPT = (
    "The lighthouse stood on the rocks above the sea. A fishing boat came home through the harbour "
    "at dusk. Snow fell on the empty beach all night long."
)


def test_make_with_stock_reroll_and_credits(stock_server: tuple[Stock, str, list], tmp_path: Path) -> None:
    stock, url, _ = stock_server
    stock.videos = {
        "lighthouse": ["red.mp4", "green.mp4"],
        "rocks": ["red.mp4"],
        "sea": ["blue.mp4"],
        "boat": ["green.mp4", "blue.mp4"],
        "fishing boat": ["green.mp4", "blue.mp4"],
        "beach": ["yellow.mp4"],
    }
    stock.photos = {"snow": ["cyan.png"], "beach": ["magenta.png"]}
    script = tmp_path / "story.txt"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {"PEXELS_API_KEY": KEY, "PEXELS_BASE_URL": url, "STORYBOT_PROVIDER_RETRIES": "1"}
    data = tmp_path / "data"

    missing = storybot("make", "x", "--script", str(script), "--visuals", "images", data=data)
    assert missing.returncode == 2 and "STORYBOT_IMAGE_MODEL" in missing.stderr
    first = ok_json(
        storybot("make", "A lighthouse", "--script", str(script), "--visuals", "stock", "--json", data=data, env=env)
    )
    job = first["job_id"]
    shown = ok_json(storybot("answer", job, "approve", "--json", data=data, env=env))
    assert shown["waiting_for"] == "approve_keyframes"
    folder = data / "jobs" / job
    before = json.loads((folder / "visuals.json").read_text(encoding="utf-8"))
    assert before[0]["source"] == "pexels" and before[0]["clips"]
    rerolled = ok_json(storybot("answer", job, "reroll", "1", "--json", data=data, env=env))
    assert rerolled["waiting_for"] == "approve_keyframes"
    after = json.loads((folder / "visuals.json").read_text(encoding="utf-8"))
    assert after[0]["media_ids"] != before[0]["media_ids"] and after[1:] == before[1:]
    taken = [m for r in after for m in r["media_ids"]]
    assert len(taken) == len(set(taken)), "no media reused across shots"

    done = ok_json(storybot("answer", job, "approve", "--json", data=data, env=env))
    assert done["status"] == "done"
    art = done["artifacts"]
    meta = json.loads(Path(art["metadata"]).read_text(encoding="utf-8"))
    assert [v["source"] for v in meta["visuals"]] == [r["source"] for r in after]
    credits = json.loads(Path(art["credits"]).read_text(encoding="utf-8"))
    assert {c["shot"] for c in credits} == {r["shot"] for r in after if r["source"] in ("pexels", "pixabay")}
    shots = json.loads(Path(art["shots"]).read_text(encoding="utf-8"))
    for s, rec in zip(shots, after, strict=True):
        first_id = rec["media_ids"][0].rsplit(":", 1)[1]
        kind = rec["media_ids"][0].split(":")[1]
        want = NAMES[int(first_id) - (1000 if kind == "video" else 2000)].rsplit(".", 1)[0]
        assert colour_of(frame_at(Path(art["final_video"]), s["start"] + 0.6)) == want, (s, rec)
    for name in ("metadata.json", "visuals.json", "credits.json", "scenes.json"):
        assert KEY not in (folder / name).read_text(encoding="utf-8")
