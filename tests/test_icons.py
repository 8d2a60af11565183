"""Offline pictures that show the words: a shot's terms matched to the shipped Noto Emoji icons,
drawn with resvg and set into the art card, and named per shot in visuals.json and metadata.json."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.cli import storybot_json
from tools.media.motion import StillShot, render_shot
from tools.media.shots import read_shots
from tools.models import Aspect, Motion, Shot
from tools.visuals import painter
from tools.visuals.base import Job, ShotBrief
from tools.visuals.cards import draw_card
from tools.visuals.icons import ICONS_FILE, SYNONYMS, icon_set, is_tile, match, render, term_icon
from tools.visuals.terms import search_terms

WHALE = "A lighthouse keeper who befriends a lost whale"
PORTRAIT = Aspect.portrait


def test_terms_find_the_icons_a_viewer_would_expect() -> None:
    expected = {
        "lost whale": "whale",
        "lighthouse keeper": "lighthouse",
        "octopus": "octopus",
        "octopuses": "octopus",
        "heart": "red-heart",
        "rain": "cloud-with-rain",
        "city": "office-building",
        "stormy sea": "water-wave",
        "dragons": "dragon",
        "old library": "books",
        "polar bear": "polar-bear",  # the whole term names an icon: not just a bear
    }
    assert {term: term_icon(term) for term in expected} == expected
    for nothing in ("", "question", "the", "source", "comments"):
        assert term_icon(nothing) is None, nothing


def test_every_synonym_is_a_real_icon_that_reads_on_a_landscape() -> None:
    icons = icon_set().icons
    assert not [name for name in SYNONYMS.values() if name not in icons]
    assert not [name for name in SYNONYMS.values() if is_tile(name)]
    assert is_tile("cityscape") and is_tile("sunset") and not is_tile("whale")  # judged by what it draws


def test_a_shot_gets_its_subject_first_then_companions_and_the_video_subject_when_it_has_none() -> None:
    broader = ["lighthouse keeper", "lost whale"]
    stormy = match(search_terms("One stormy night a lost whale appeared near the rocks."), broader)
    assert [i.name for i in stormy] == ["whale", "crescent-moon", "rock"]
    vague = match(search_terms("Nobody expected it. Then everything changed."), broader)
    assert [(i.name, i.term) for i in vague] == [("lighthouse", "lighthouse keeper")]
    assert match(["thing"], ["nothing"]) == []


def test_the_shipped_set_and_its_licence() -> None:
    shipped = icon_set()
    assert shipped.prefix == "noto" and len(shipped.icons) == 1114
    assert ICONS_FILE.stat().st_size < 2 * 1024 * 1024
    folder = ICONS_FILE.parent
    assert "Apache License" in (folder / "LICENSE-Apache-2.0.txt").read_text()
    readme = (folder / "README.md").read_text()
    assert "Noto Emoji" in readme and "Apache" in readme and "@iconify-json/noto" in readme
    whale = render("whale", 256)
    assert whale.size == (256, 256) and whale.mode == "RGBA"
    alpha = np.asarray(whale.getchannel("A"))
    assert 0.15 < (alpha > 128).mean() < 0.8  # a drawn whale, on transparency


def brief(index: int, text: str) -> ShotBrief:
    """As the keyframes stage makes it (tools.visuals.produce.brief): the title goes with every shot."""
    return ShotBrief(
        index=index, text=text, prompt=text, terms=search_terms(text), broader=[], seconds=4, seed=11, title=WHALE
    )


def test_the_card_shows_the_icons_in_the_middle_and_leaves_title_and_subtitles_clear(tmp_path: Path) -> None:
    job = Job(aspect=Aspect.portrait, folder=tmp_path, shots=2)
    made = draw_card(brief(1, "One stormy night a lost whale appeared near the rocks."), job)
    assert made.icons == ["whale", "crescent-moon", "rock"]
    shot = Shot(index=1, start=0, end=4, first_word=0, last_word=0, text="", key_phrase="")
    plain = np.asarray(painter.draw_art_card(shot, Aspect.portrait.size, 11).convert("RGB"), dtype=np.int16)
    assert made.keyframe.name == "shot_02.png"
    drawn = np.asarray(Image.open(made.keyframe).convert("RGB"), dtype=np.int16)
    changed = np.abs(drawn - plain).max(axis=2) > 24
    h = changed.shape[0]
    assert changed[int(h * 0.35) : int(h * 0.65)].mean() > 0.05  # the whale is there
    assert changed[: int(h * 0.14)].mean() < 0.001  # nothing under the top overlays
    assert changed[int(h * 0.76) :].mean() < 0.001  # nor where the subtitles go
    blank = draw_card(brief(0, "It was quiet there."), job)  # no term of its own: the video's subject
    assert blank.icons == ["lighthouse"]


def test_visuals_json_and_metadata_name_the_icons_of_each_shot(tmp_path: Path) -> None:
    done = storybot_json("make", WHALE, "--yes", "--duration", "20", "--visuals", "cards", data=tmp_path)
    folder = Path(done["artifacts"]["final_video"]).parent
    records = json.loads((folder / "visuals.json").read_text())
    shots = read_shots(folder / "shots.json")
    assert len(records) == len(shots) >= 2
    assert all(r["source"] == "cards" and r["icons"] for r in records), records
    named = {name for r in records for name in r["icons"]}
    assert {"whale", "lighthouse"} & named
    meta = json.loads((folder / "metadata.json").read_text())
    assert [v["icons"] for v in meta["visuals"]] == [r["icons"] for r in records]
    cut = json.loads((folder / "clips" / "media.json").read_text())  # the cut moves landscape and icons apart
    assert [(m["image"], m["layer"]) for m in cut] == [(r["backdrop"], r["layer"]) for r in records]


async def test_in_the_cut_the_icons_drift_over_the_moving_landscape(tmp_path: Path) -> None:
    """The same shot through the final cut's chain with and without its icon layer: the landscape is
    the same frame for frame, and the icons (where the two differ) move on their own."""
    job = Job(aspect=Aspect.portrait, folder=tmp_path, shots=2)
    made = draw_card(brief(1, "One stormy night a lost whale appeared near the rocks."), job)
    assert made.backdrop and made.layer and Image.open(made.layer).mode == "RGBA"
    frames = 90
    layered, plain = tmp_path / "layered.mp4", tmp_path / "plain.mp4"
    move = Motion.zoom_in
    await render_shot(StillShot(image=made.backdrop, layer=made.layer, motion=move), frames, PORTRAIT, layered)
    await render_shot(StillShot(image=made.backdrop, motion=move), frames, PORTRAIT, plain)

    def grey(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as video:
            return [f.to_ndarray(format="gray").astype(np.int16) for f in video.decode(video=0)]

    with_icons, without = grey(layered), grey(plain)
    assert len(with_icons) == len(without) == frames

    def centre(k: int) -> tuple[float, float]:
        ys, xs = np.nonzero(np.abs(with_icons[k] - without[k]) > 30)
        assert len(ys) > 10_000  # the icons are there, every frame
        return float(xs.mean()), float(ys.mean())

    (x0, y0), (x1, y1) = centre(0), centre(75)
    assert abs(y1 - y0) > 8 and abs(y1 - y0) < 0.02 * 1920  # a gentle drift, not a jump
    assert abs(x1 - x0) < 0.02 * 1080
