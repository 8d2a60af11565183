"""`storybot render` end to end: real videos, measured the way a user would check them."""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
from pathlib import Path

import av
import numpy as np
import pysubs2
import pytest
from PIL import Image

from tests.cli import storybot
from tests.media_checks import audio_rms_db, top_level_atoms
from tools.media.ffmpeg import run_ffmpeg
from tools.media.loudness import measure_file
from tools.media.probe import probe
from tools.models import Aspect
from tools.render import RenderOptions, render

pytestmark = pytest.mark.slow

SCRIPT = (
    'Crème brûlée at the café: "perfect," she said. The waiter [smiling] bowed!\n\n'
    "Outside, rain fell on C:\\new\\Name and {braces} alike. Then the sun came out, and everyone "
    "cheered."
)


def check_video(path: Path, aspect: Aspect, voice_seconds: float) -> None:
    info = probe(path)
    assert info.video and info.audio
    assert (info.video.width, info.video.height) == aspect.size
    assert info.video.codec == "h264" and info.video.profile == "High"
    assert info.video.pix_fmt == "yuv420p"
    assert info.video.fps == pytest.approx(30, abs=0.01)
    assert info.audio.codec == "aac" and info.audio.sample_rate == 48000 and info.audio.channels == 2
    assert voice_seconds <= info.duration <= voice_seconds + 1.0
    atoms = top_level_atoms(path)
    assert atoms.index("moov") < atoms.index("mdat"), atoms


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One offline render (script only) shared by the checks below."""
    root = tmp_path_factory.mktemp("portrait")
    (root / "story.txt").write_text(SCRIPT, encoding="utf-8")
    out = root / "out dir, with: 'quotes' [and] brackets"
    result = storybot("render", "--script", str(root / "story.txt"), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "done"
    return out


def test_offline_render_meets_output_targets(portrait: Path) -> None:
    meta = json.loads((portrait / "metadata.json").read_text())
    check_video(portrait / "final.mp4", Aspect.portrait, meta["voice"]["duration"])
    assert meta["loudness"]["integrated_lufs"] == pytest.approx(-14, abs=1.0)
    assert meta["loudness"]["true_peak_dbtp"] <= -1.0
    assert set(meta["stage_seconds"]) >= {"voice", "subtitles", "keyframes", "animate", "post_produce"}
    # the default voice is the bundled Piper one, offline
    assert meta["voice"]["provider"] == "piper" and meta["voice"]["name"] == "piper:en_US-joe-medium"
    assert meta["encoder"]["video"]["profile"] == "high"
    assert not (portrait / "final.discord.mp4").exists()
    assert not [p for p in portrait.iterdir() if p.name.startswith(".")], "work files left behind"


def test_loudness_measured_independently(portrait: Path) -> None:
    """Re-measure with FFmpeg's ebur128 rather than trusting metadata.json."""
    _, log = asyncio.run(
        run_ffmpeg(["-nostats", "-i", portrait / "final.mp4", "-vn", "-af", "ebur128=peak=true", "-f", "null", "-"])
    )
    summary = log[log.rfind("Summary:") :]
    integrated = float(summary.split("I:")[1].split("LUFS")[0])
    peak = float(summary.split("Peak:")[1].split("dBFS")[0])
    assert -15.0 <= integrated <= -13.0
    assert peak <= -1.0


def subtitle_words(path: Path) -> list[str]:
    """The words a viewer reads, taken from the raw file (pysubs2 would read `C:\\new` as a newline)."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".ass":
        lines = [ln.split(",", 9)[9] for ln in raw.splitlines() if ln.startswith("Dialogue:")]
        text = " ".join(re.sub(r"\{\\k\d+\}", "", ln).replace("\\N", " ") for ln in lines)
        text = text.replace("\\{", "{").replace("\\}", "}").replace("\u2060", "")
    else:
        blocks = [b.splitlines() for b in raw.strip().split("\n\n")]
        cues = [b[b.index(next(ln for ln in b if "-->" in ln)) + 1 :] for b in blocks if any("-->" in ln for ln in b)]
        text = " ".join(" ".join(c) for c in cues)
        text = html.unescape(text) if path.suffix == ".vtt" else text
    return text.split()


def test_subtitles_carry_every_script_word_in_order(portrait: Path) -> None:
    script = (portrait / "script.txt").read_text(encoding="utf-8")
    words = json.loads((portrait / "words.json").read_text(encoding="utf-8"))
    assert [w["word"] for w in words] == script.split()
    assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(words))
    for name in ("subtitles.srt", "subtitles.vtt", "subtitles.ass"):
        assert subtitle_words(portrait / name) == script.split(), name
        for ev in pysubs2.load(str(portrait / name)):
            assert 1000 <= ev.end - ev.start <= 7000


def assert_shot_clips(folder: Path, aspect: Aspect, count: int) -> None:
    """clips/shot_NN.mp4: each shot's span of the master (starting on a keyframe), together all of it."""
    shots = json.loads((folder / "shots.json").read_text())
    clips = sorted((folder / "clips").glob("shot_*.mp4"))
    assert [c.name for c in clips] == [f"shot_{n:02d}.mp4" for n in range(1, count + 1)]
    total = 0
    for clip, shot in zip(clips, shots, strict=True):
        info = probe(clip)
        assert info.video and info.video.codec == "h264" and (info.video.width, info.video.height) == aspect.size
        assert info.audio and info.audio.codec == "aac"
        with av.open(str(clip)) as container:
            packets = [p for p in container.demux(video=0) if p.size]
        assert packets[0].is_keyframe, clip.name
        total += len(packets)
        if shot is not shots[-1]:  # the last shot also carries the tail after the last word
            assert len(packets) / 30 == pytest.approx(shot["end"] - shot["start"], abs=1.5 / 30), clip.name
    with av.open(str(folder / "final.mp4")) as container:
        assert total == sum(1 for p in container.demux(video=0) if p.size)


def test_artifacts_shots_keyframes_clips_thumbnail(portrait: Path) -> None:
    shots = json.loads((portrait / "shots.json").read_text())
    keyframes = sorted((portrait / "keyframes").glob("shot_*.png"))
    assert len(shots) == len(keyframes) >= 1
    assert_shot_clips(portrait, Aspect.portrait, len(shots))
    meta = json.loads((portrait / "metadata.json").read_text())
    assert shots[-1]["end"] == pytest.approx(meta["voice"]["duration"], abs=0.01)
    with Image.open(portrait / "thumbnail.png") as thumb:
        assert thumb.size == Aspect.portrait.size
        assert np.asarray(thumb.convert("L")).std() > 10


def test_music_bed_is_audible_but_under_the_voice(portrait: Path) -> None:
    final = portrait / "final.mp4"
    words = json.loads((portrait / "words.json").read_text())
    voice_end = words[-1]["end"]
    duration = probe(final).duration
    tail = audio_rms_db(final, voice_end + 0.05, duration - 0.1)  # bed alone, after the last word
    speech = audio_rms_db(final, words[0]["start"], voice_end)
    assert tail > -60, "the music bed is not audible"
    assert speech - tail >= 10, f"bed too loud: speech {speech:.1f} dB, bed {tail:.1f} dB"


def test_images_voice_music_and_square_aspect(tmp_path: Path) -> None:
    """User media: odd images (grey, palette, RGBA, 16-bit, tiny), a recorded voice, music."""
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("L", (40, 30), 90).save(images / "shot1.png")
    Image.new("RGBA", (3000, 500), (200, 30, 30, 128)).save(images / "shot2.png")
    Image.new("P", (7, 5), 3).save(images / "shot10.gif")
    Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)).save(images / "shot3.png")
    voice = tmp_path / "voice.ogg"
    music = tmp_path / "music.mp3"
    asyncio.run(_make_audio(voice, music))
    script = tmp_path / "s.txt"
    script.write_text("First line here. Second one now. Third is this. And the last.", encoding="utf-8")
    out = tmp_path / "out"
    artifacts = asyncio.run(
        render(RenderOptions(script=script, images=images, voice=voice, music=music, aspect=Aspect.square, out=out))
    )
    meta = json.loads(Path(artifacts.metadata).read_text())
    check_video(out / "final.mp4", Aspect.square, meta["voice"]["duration"])
    assert meta["voice"]["timings_estimated"] is True and meta["encoder"]["music"] == "supplied"
    assert meta["shots"] == 4 and len(artifacts.keyframes) == 4
    assert meta["loudness"]["integrated_lufs"] == pytest.approx(-14, abs=1.0)
    # images are used in natural name order: shot10 (palette) is last
    with Image.open(artifacts.keyframes[3]) as last:
        assert last.size == Aspect.square.size


async def _make_audio(voice: Path, music: Path) -> None:
    # a voice-like signal: four bursts of a modulated tone with pauses between them
    await run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "sine=f=180:d=9",
            "-af",
            "volume='if(lt(mod(t,2.2),1.6),0.5,0)':eval=frame",
            "-c:a",
            "libopus",
            voice,
        ]
    )
    await run_ffmpeg(["-f", "lavfi", "-i", "sine=f=440:d=3", "-c:a", "libmp3lame", music])


def mean_rgb(video: Path, seconds: float) -> np.ndarray:
    """Mean colour of the top half (above the subtitles) of the frame shown at `seconds`."""
    with av.open(str(video)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time is not None and frame.time >= seconds:
                rgb = frame.to_ndarray(format="rgb24")
                return rgb[: rgb.shape[0] // 2].reshape(-1, 3).mean(axis=0)
    raise AssertionError(f"no frame at {seconds} s")


def test_clips_of_any_size_landscape_and_upload_copy_in_the_same_run(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    # a short, small, 24 fps red clip (slowed then held, never looped) and a long 60 fps portrait one
    asyncio.run(
        run_ffmpeg(["-f", "lavfi", "-i", "color=c=0xd01010:s=320x240:r=24:d=1,noise=alls=20:allf=t", clips / "a.mp4"])
    )
    asyncio.run(run_ffmpeg(["-f", "lavfi", "-i", "mandelbrot=s=500x900:r=60", "-t", "9", clips / "b.mkv"]))
    script = tmp_path / "s.txt"
    script.write_text("A short clip that is slowed down. Then a long one that is trimmed to fit.", encoding="utf-8")
    out = tmp_path / "out"
    limit = 400_000
    result = storybot(
        "render",
        "--script",
        str(script),
        "--clips",
        str(clips),
        "--aspect",
        "16:9",
        "--out",
        str(out),
        "--upload-limit",
        str(limit),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    artifacts = json.loads(result.stdout)["artifacts"]
    meta = json.loads(Path(artifacts["metadata"]).read_text())
    final = out / "final.mp4"
    check_video(final, Aspect.landscape, meta["voice"]["duration"])
    assert artifacts["keyframes"] == []
    assert artifacts["clips"] == [str(out.resolve() / "clips" / f"shot_{n:02d}.mp4") for n in (1, 2)]
    assert_shot_clips(out, Aspect.landscape, 2)
    assert meta["sources"] == ["clip", "clip"]
    assert final.stat().st_size > limit
    assert 0.5 < meta["predicted_master_bytes"] / final.stat().st_size < 3.0, meta["predicted_master_bytes"]
    fitted = Path(artifacts["discord_video"])
    assert fitted.stat().st_size <= limit
    assert meta["discord"]["same_run"] is True and meta["discord"]["attempts"] == 1
    info = probe(fitted)
    assert info.video and info.audio
    assert info.video.codec == "h264" and info.video.profile == "High" and info.video.pix_fmt == "yuv420p"
    assert info.video.fps == pytest.approx(30, abs=0.01) and info.video.width == meta["discord"]["width"]
    assert info.audio.codec == "aac" and info.audio.sample_rate == 48000 and info.audio.channels == 2
    assert info.duration == pytest.approx(probe(final).duration, abs=0.1)
    atoms = top_level_atoms(fitted)
    assert atoms.index("moov") < atoms.index("mdat")
    copy_loudness = asyncio.run(measure_file(fitted))
    assert copy_loudness.integrated_lufs == pytest.approx(-14, abs=1.0) and copy_loudness.true_peak_dbtp <= -1.0
    shots = json.loads((out / "shots.json").read_text())
    first, second = ((s["start"] + s["end"]) / 2 for s in shots)
    for video in (final, fitted):  # the frames come from the clips: red first, then the mandelbrot
        red, other = mean_rgb(video, first), mean_rgb(video, second)
        assert red[0] > 120 and red[0] > 2 * red[1], red
        assert not (other[0] > 120 and other[0] > 2 * other[1]), other
