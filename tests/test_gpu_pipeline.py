"""`storybot make` with every model variable pointing at the tiny models: every GPU stage runs for
real (Whisper, SDXL, the VLM, LTX) on local workers and the result is a valid 9:16 video."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from PIL import Image

from tests.cli import storybot_json
from tests.gpu_fixtures import TINY_ENV

pytestmark = pytest.mark.slow
SCRIPT = "The keeper lit the lamp at dusk. A lost whale answered from the dark water below."


def test_make_runs_every_gpu_stage_with_tiny_models(tiny_models: dict[str, str], tmp_path: Path) -> None:
    env = {**TINY_ENV, **tiny_models, "STORYBOT_DATA_DIR": str(tmp_path / "data")}
    (tmp_path / "script.txt").write_text(SCRIPT, encoding="utf-8")
    first = storybot_json("make", "a lighthouse", "--script", tmp_path / "script.txt", env=env)
    assert first["waiting_for"] == "approve_script"
    shown = storybot_json("answer", first["job_id"], "approve", env=env)
    assert shown["waiting_for"] == "approve_keyframes"
    verdicts = shown["approval"]["verdicts"]  # the VLM's verdicts are shown beside the keyframes
    assert len(verdicts) == len(shown["approval"]["keyframes"]) >= 1
    assert all(
        set(v) == {"shot", "parsed", "score", "missing", "unwanted", "adherence", "quality", "critique", "consistent"}
        for v in verdicts
    )
    final = storybot_json("answer", first["job_id"], "approve", env=env)
    assert final["status"] == "done"

    job = Path(final["artifacts"]["final_video"]).parent
    status = storybot_json("status", first["job_id"], env=env)
    providers = {s["name"]: s["provider"] for s in status["stages"]}
    assert providers["keyframes"].startswith("sdxl") and providers["animate"].startswith("ltx")
    assert providers["vision_guidance"].startswith("vlm") and "whisper" in providers["subtitles"]
    for png in final["artifacts"]["keyframes"]:
        assert Image.open(png).size == (1080, 1920)  # SDXL's native size scaled to the output in post
    vision = json.loads((job / "vision.json").read_text())
    assert vision["skipped"] is False and len(vision["shots"]) == len(final["artifacts"]["keyframes"])
    asr = json.loads((job / "asr.json").read_text())
    assert asr["applied"] is False  # espeak-ng has real timings: Whisper only checks them
    with av.open(final["artifacts"]["final_video"]) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (1080, 1920) and video.codec_context.name == "h264"
        seconds = float(container.duration) / 1e6
    voice = json.loads((job / "metadata.json").read_text())["voice"]["duration"]
    assert voice <= seconds <= voice + 1.05
    assert len(final["artifacts"]["clips"]) == len(final["artifacts"]["keyframes"])
    for clip in final["artifacts"]["clips"]:  # LTX's own clips, at its native size: the final cut fits them
        with av.open(clip) as container:
            assert container.streams.video[0].width < 1080
    media = json.loads((job / "clips" / "media.json").read_text())
    assert [m["kind"] for m in media] == ["clip"] * len(final["artifacts"]["clips"])
