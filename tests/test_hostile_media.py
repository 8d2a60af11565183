"""Hostile media given to `storybot render`: clips whose header lies or that hold no video, empty WAVs,
FIFOs in place of files, pictures truncated or over the pixel cap, and recordings with more pauses than
words. Each is refused fast with one clear line, or rendered into a real video.

The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from tests.hostile_helpers import (
    clip,
    refused,
    render_args,
    rendered,
    report_worst_refusal,
    script,
    storybot,
    zero_sample_wav,
)
from tools.errors import BadInput
from tools.media.probe import probe
from tools.text import word_spans
from tools.tts import from_recording, synthesize
from tools.tts.recording import estimate_times

# the fixtures from tests/hostile_helpers.py that this module uses
__all__ = ["clip", "report_worst_refusal", "script"]


# --- 2. media whose header lies --------------------------------------------------------------------


def test_clip_whose_header_promises_missing_frames_is_refused_fast(tmp_path: Path, script: Path, clip: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    data = clip.read_bytes()
    (clips / "a.mp4").write_bytes(data[: data.index(b"mdat") + 4])  # moov promises 25 frames; no data
    assert probe(clips / "a.mp4").video is not None  # the header alone looks fine
    out = tmp_path / "out"
    result = storybot(*render_args(script, out, "--clips", str(clips)), timeout=60)
    refused(result, "no video frame can be decoded", case="2 clip without frames")
    assert result.elapsed < 30 and not out.exists()  # type: ignore[attr-defined]


@pytest.mark.parametrize("option", ["--music", "--voice"])
def test_wav_with_zero_samples_is_refused_fast(tmp_path: Path, script: Path, option: str) -> None:
    wav = zero_sample_wav(tmp_path / "empty.wav")
    out = tmp_path / "out"
    result = storybot(*render_args(script, out, option, str(wav)), timeout=60)
    refused(result, "empty.wav", case=f"2 zero-sample {option}")
    assert result.elapsed < 30 and not out.exists()  # type: ignore[attr-defined]


def test_a_recording_hours_long_is_refused_from_its_header(tmp_path: Path, script: Path) -> None:
    """Issue 23 #4: a 4 GB sparse WAV as --voice was decoded whole (5.6 GB RSS over 42 s) to render
    a 12-hour video; it is refused from the header, before any decoding."""
    import struct

    wav = tmp_path / "long.wav"
    size = 4 * 2**30 - 64
    with wav.open("wb") as f:
        f.write(b"RIFF" + struct.pack("<I", size + 36) + b"WAVE")
        f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 48000, 96000, 2, 16))
        f.write(b"data" + struct.pack("<I", size))
        f.truncate(size + 44)  # sparse: nothing is written to disk
    out = tmp_path / "out"
    result = storybot(*render_args(script, out, "--voice", str(wav)), timeout=60)
    refused(result, "a narration is at most 10 min", case="4 GB sparse WAV as --voice")
    assert result.elapsed < 20 and not out.exists()  # type: ignore[attr-defined]


# --- 3. a recorded voice with as many pauses as words, or more --------------------------------------


async def test_recordings_with_as_many_or_more_pauses_than_words(tmp_path: Path) -> None:
    # the off-by-one left no candidate cut when every segment needed exactly one token
    three = estimate_times(word_spans("Yes. No. Maybe."), [(0.0, 0.4), (1.0, 1.4), (2.0, 2.6)])
    assert [round(t[0], 1) for t in three.values()] == [0.0, 1.0, 2.0]
    few = estimate_times(word_spans("Hello there."), [(0.0, 1.0), (1.5, 2.0), (2.5, 4.0), (5.0, 5.2)])
    assert len(few) == 2 and all(a < b for a, b in few.values())
    long_wav = tmp_path / "long.wav"
    await synthesize("One sentence here. Another one follows. And a third. Then a fourth. The end.", long_wav)
    speech = await from_recording(long_wav, "Hello there.", tmp_path / "voice.wav")
    assert [w.word for w in speech.words] == ["Hello", "there."] and speech.words[1].end <= speech.duration


def test_render_with_its_own_yes_no_maybe_recording(tmp_path: Path) -> None:
    text = "Yes. No. Maybe."
    (tmp_path / "s.txt").write_text(text, encoding="utf-8")
    asyncio.run(synthesize(text, tmp_path / "me.wav"))
    out = tmp_path / "out"
    rendered(storybot(*render_args(tmp_path / "s.txt", out, "--voice", str(tmp_path / "me.wav"))), out)
    words = json.loads((out / "words.json").read_text())
    assert [w["word"] for w in words] == text.split()


# --- 17. a picture over the pixel cap ----------------------------------------------------------------


def test_a_refusal_during_keyframes_while_audio_is_analysed(tmp_path: Path, script: Path) -> None:
    """17 and 18: a picture over the pixel cap is refused at the keyframes stage, while FFmpeg measures
    the audio in parallel; repeated, every run gives exactly one line and leaves nothing."""
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("L", (8000, 7000)).save(images / "huge.png", compress_level=1)  # 56 MP, just over the cap
    out = tmp_path / "out"
    for _ in range(3):
        refused(
            storybot(*render_args(script, out, "--images", str(images))), "over 50 megapixels", case="17 56 MP picture"
        )
        assert not out.exists()


# --- cases that already passed, kept so they stay passing ------------------------------------------


def test_fifo_as_voice_or_clip_never_blocks(tmp_path: Path, script: Path) -> None:
    os.mkfifo(tmp_path / "voice.wav")
    refused(
        storybot(*render_args(script, tmp_path / "out", "--voice", str(tmp_path / "voice.wav")), timeout=30),
        "not a regular file",
    )
    clips = tmp_path / "clips"
    clips.mkdir()
    os.mkfifo(clips / "a.mp4")
    refused(storybot(*render_args(script, tmp_path / "out", "--clips", str(clips)), timeout=30), "no video clips")


def test_odd_clips_audio_only_and_a_gif(tmp_path: Path, script: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(clips / "a.mp4")],
        check=True,
    )
    refused(storybot(*render_args(script, tmp_path / "out", "--clips", str(clips))), "has no video stream")
    (clips / "a.mp4").unlink()
    frames = [Image.new("RGB", (40, 40), (n * 40, 0, 0)) for n in range(5)]
    frames[0].save(clips / "b.gif", save_all=True, append_images=frames[1:], duration=100)
    out = tmp_path / "out"
    rendered(storybot(*render_args(script, out, "--clips", str(clips))), out)


def test_truncated_and_oversized_images(tmp_path: Path, script: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (64, 64), "red").save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (images / "b.png").write_bytes(data[: len(data) // 2])
    refused(storybot(*render_args(script, tmp_path / "out", "--images", str(images))), "b.png")
    (images / "b.png").unlink()
    header = bytearray(data)  # a PNG whose header claims 100000 x 100000 pixels
    header[16:24] = (100_000).to_bytes(4, "big") * 2
    (images / "c.png").write_bytes(bytes(header))
    refused(storybot(*render_args(script, tmp_path / "out", "--images", str(images))), "c.png")
    assert not (tmp_path / "out").exists()


def _many_channel_wav(path: Path, channels: int, seconds: float = 2.0) -> Path:
    import wave

    t = np.arange(int(16_000 * seconds)) / 16_000
    tone = ((np.sin(2 * np.pi * 220 * t) * 8000) * (t % 1 < 0.6)).astype("<i2")  # spoken, then a pause
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())
    return path


async def test_a_64_channel_recording_is_mixed_down_and_65_refused_in_our_words(tmp_path: Path) -> None:
    """Issue 23 #15: a valid 64-channel WAV was refused in FFmpeg's words ('Rematrix is needed...')."""
    wav = _many_channel_wav(tmp_path / "wide.wav", 64)
    speech = await from_recording(wav, "Hello there.", tmp_path / "voice.wav")
    assert abs(speech.duration - 2.0) < 0.05 and [w.word for w in speech.words] == ["Hello", "there."]
    assert probe(tmp_path / "voice.wav").audio.channels == 1  # type: ignore[union-attr]
    wider = _many_channel_wav(tmp_path / "wider.wav", 65, 0.5)
    with pytest.raises(BadInput, match=r"^wider\.wav: 65 audio channels; a narration has at most 64$"):
        await from_recording(wider, "Hello there.", tmp_path / "voice2.wav")
    assert not (tmp_path / "voice2.wav").exists()


def test_a_clip_over_8k_is_refused_from_its_header(tmp_path: Path, script: Path) -> None:
    """Issue 23 #15: an 8192x8192 clip was rendered at 4x the time, with no dimension cap."""
    clips = tmp_path / "clips"
    clips.mkdir()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=black:s=8192x8192:d=0.04:r=25",
            *encode,
            clips / "huge.mp4",
        ],
        check=True,
        timeout=120,
    )
    out = tmp_path / "out"
    result = storybot(*render_args(script, out, "--clips", str(clips)), timeout=60)
    line = refused(result, "huge.mp4: 8192x8192 is more than 8K (33 megapixels a frame)", case="15 8192x8192 clip")
    assert "scale it down" in line and result.elapsed < 30 and not out.exists()  # type: ignore[attr-defined]


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def test_a_chat_clip_over_8k_costs_its_shot_a_line_not_the_render(tmp_path: Path) -> None:
    """The same cap where Discord attachments and `make --clips` arrive (the user source)."""
    from tools.models import Aspect, Shot
    from tools.visuals import Job, brief
    from tools.visuals.base import Miss
    from tools.visuals.user import UserSource

    huge = tmp_path / "huge.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=black:s=8192x4352:d=0.04:r=25",
            *X264,
            huge,
        ],
        check=True,
        timeout=120,
    )
    job = Job(aspect=Aspect.portrait, folder=tmp_path / "job", shots=1, exclude=set())
    shot = Shot(index=0, start=0.0, end=2.0, first_word=0, last_word=0, text="A lamp.", key_phrase="")
    made = asyncio.run(UserSource([huge]).make([brief(shot, "p")], job))
    assert isinstance(made[0], Miss) and made[0].reason.startswith("huge.mp4: 8192x4352 is more than 8K")
    assert not list((tmp_path / "job").rglob("*.png"))
