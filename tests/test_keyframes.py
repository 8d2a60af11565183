"""Keyframes: users' pictures in every odd shape, procedural art cards, and the stage's files."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.errors import BadInput
from tools.media.keyframes import MATTE, list_images, load_image_cover
from tools.models import Aspect, Shot
from tools.settings import get_settings
from tools.visuals import Job, Opening, SourceName, brief, make_visuals, open_source
from tools.visuals.painter import TITLE_MARGIN, draw_art_card, drawable, fit_title

SIZES = [a.size for a in Aspect]
SMALL_SIZES = [(w // 4, h // 4) for w, h in SIZES]  # same proportions, 16x fewer pixels


def shot(index: int, phrase: str = "The lighthouse keeper") -> Shot:
    return Shot(
        index=index, start=index * 3.0, end=index * 3.0 + 3.0, first_word=0, last_word=1, text=phrase, key_phrase=phrase
    )


def rgb(img: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(img)[y, x])


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# --- odd pictures ----------------------------------------------------------------------------------


def _bands(size: tuple[int, int], colours: list[tuple[int, int, int]]) -> Image.Image:
    """Vertical bands of colour, left to right, equal widths."""
    img = Image.new("RGB", size)
    w = size[0] // len(colours)
    for i, colour in enumerate(colours):
        img.paste(colour, (i * w, 0, size[0] if i == len(colours) - 1 else (i + 1) * w, size[1]))
    return img


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("odd")
    ramp16 = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    palette = Image.new("P", (64, 48), 1)
    palette.putpalette([255, 0, 0, 0, 160, 255])
    makers = {
        "grey.png": lambda p: Image.new("L", (64, 48), 128).save(p),
        "bilevel.png": lambda p: Image.new("1", (64, 48), 1).save(p),
        "bilevel.bmp": lambda p: Image.new("1", (64, 48), 1).save(p),
        "palette.gif": lambda p: palette.save(p),
        "palette_transparent.png": lambda p: palette.save(p, transparency=1),
        "rgba.png": lambda p: Image.new("RGBA", (64, 48), (255, 0, 0, 0)).save(p),
        "la.png": lambda p: Image.new("LA", (64, 48), (200, 0)).save(p),
        "cmyk.jpg": lambda p: Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(p),
        "cmyk.tif": lambda p: Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(p),
        "grey16.png": lambda p: Image.fromarray(ramp16).save(p),
        "grey16.tif": lambda p: Image.fromarray(ramp16).save(p),
        "grey32.tif": lambda p: Image.fromarray(ramp16.astype(np.int32)).save(p),
        "float.tif": lambda p: Image.fromarray((ramp16 / 65535).astype(np.float32)).save(p),
        "tiny.png": lambda p: Image.new("RGB", (3, 2), (0, 200, 0)).save(p),
        "wide.webp": lambda p: Image.new("RGB", (900, 40), (0, 0, 200)).save(p),
        "tall.jpg": lambda p: Image.new("RGB", (40, 900), (0, 0, 200)).save(p),
    }
    paths = {}
    for name, make in makers.items():
        paths[name] = d / name
        make(paths[name])
    return paths


@pytest.mark.parametrize("size", SIZES, ids=[a.value for a in Aspect])
def test_every_odd_mode_comes_out_rgb_at_exactly_the_size(odd_images: dict[str, Path], size: tuple[int, int]) -> None:
    for name, path in odd_images.items():
        img = load_image_cover(path, size)
        assert (img.mode, img.size) == ("RGB", size), name


def test_cover_crop_keeps_the_centre(tmp_path: Path) -> None:
    path = tmp_path / "band.png"
    wide = Image.new("RGB", (3000, 500), (0, 0, 255))
    wide.paste((255, 0, 0), (1400, 0, 1600, 500))  # a red band in the middle
    wide.save(path)
    img = load_image_cover(path, (1080, 1920))
    assert rgb(img, 540, 960) == (255, 0, 0)
    assert rgb(img, 240, 960) == (255, 0, 0)  # cropped, not squeezed: the band fills most
    assert rgb(img, 2, 960) == (0, 0, 255)


def test_transparency_sits_on_the_dark_matte_not_on_hidden_colour(odd_images: dict[str, Path]) -> None:
    for name in ("rgba.png", "la.png", "palette_transparent.png"):
        img = load_image_cover(odd_images[name], (1080, 1920))
        assert rgb(img, 540, 960) == MATTE, name  # not black, and not the hidden red
    assert MATTE != (0, 0, 0)


def test_sixteen_bit_grey_is_scaled_not_clipped(odd_images: dict[str, Path]) -> None:
    for name in ("grey16.png", "grey16.tif", "grey32.tif", "float.tif"):
        values = pixels(load_image_cover(odd_images[name], (64, 48)))[..., 0]
        assert values.min() < 10 and values.max() > 245, name
        assert len(np.unique(values)) > 150, name


def test_cmyk_and_palette_colours_survive(odd_images: dict[str, Path]) -> None:
    r, g, b = rgb(load_image_cover(odd_images["cmyk.tif"], (64, 48)), 32, 24)
    assert r > 200 and g < 60 and b < 60
    assert rgb(load_image_cover(odd_images["palette.gif"], (64, 48)), 32, 24) == (0, 160, 255)


def test_exif_orientation_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to show
    _bands((300, 100), [(255, 0, 0), (0, 255, 0), (0, 0, 255)]).save(path, exif=exif.tobytes(), quality=95)
    img = load_image_cover(path, (100, 300))
    top, bottom = rgb(img, 50, 20), rgb(img, 50, 280)
    assert top[0] > 200 and top[2] < 60  # the left (red) band is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_huge_jpeg_is_decoded_small_and_fast(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (12000, 9000), (20, 120, 200)).save(path, quality=70)
    start = time.perf_counter()
    img = load_image_cover(path, (1080, 1920))
    assert time.perf_counter() - start < 2.0
    assert img.size == (1080, 1920)
    assert all(abs(a - b) <= 3 for a, b in zip(rgb(img, 540, 960), (20, 120, 200), strict=True))


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims a huge size: a decompression bomb's signature."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _unreadable(d: Path) -> list[Path]:
    Image.new("RGB", (400, 300), (200, 0, 0)).save(d / "good.png")
    Image.new("RGB", (400, 300), (200, 0, 0)).save(d / "good.jpg")
    files = {
        "empty.png": b"",
        "notes.jpg": b"this is not a picture\n",
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "truncated.png": (d / "good.png").read_bytes()[:120],
        "truncated.jpg": (d / "good.jpg").read_bytes()[:500],
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    _png_claiming(d / "bomb.png", 40_000, 40_000)
    _png_claiming(d / "big.png", 13_000, 12_000)
    return [d / name for name in files] + [d / "bomb.png", d / "big.png", d / "missing.png"]


def test_unreadable_files_raise_bad_input_naming_the_file(tmp_path: Path) -> None:
    for path in _unreadable(tmp_path):
        with pytest.raises(BadInput) as caught:
            load_image_cover(path, (1080, 1920))
        message = str(caught.value)
        assert message.startswith(f"{path.name}: not a readable image ("), message
        assert "\n" not in message and str(tmp_path) not in message


def test_bombs_are_reported_as_too_large(tmp_path: Path) -> None:
    _png_claiming(tmp_path / "bomb.png", 40_000, 40_000)
    with pytest.raises(BadInput, match="too large"):
        load_image_cover(tmp_path / "bomb.png", (1080, 1920))


# --- list_images ---------------------------------------------------------------------------------


def test_list_images_natural_order_skips_hidden_and_other_files(tmp_path: Path) -> None:
    for name in ("shot10.png", "shot2.jpg", "Shot1.webp", ".hidden.png", "notes.txt", "clip.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["Shot1.webp", "shot2.jpg", "shot10.png"]


def test_list_images_rejects_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such folder"):
        list_images(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(BadInput, match="no pictures"):
        list_images(tmp_path)


# --- art cards -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=[a.value for a in Aspect])
def test_card_size_and_not_flat(size: tuple[int, int]) -> None:
    card = draw_art_card(shot(0), size, seed=0)
    assert (card.mode, card.size) == ("RGB", size)
    assert pixels(card).std() > 20


def test_cards_are_distinct_between_shots_and_deterministic() -> None:
    size = (540, 960)
    cards = [pixels(draw_art_card(shot(i), size, seed=5)) for i in range(4)]
    for a, b in itertools.pairwise(cards):
        assert np.abs(a - b).mean() > 10
    assert np.array_equal(cards[2], pixels(draw_art_card(shot(2), size, seed=5)))
    assert np.abs(cards[0] - pixels(draw_art_card(shot(0), size, seed=6))).mean() > 10


def _title_box(phrase: str, size: tuple[int, int], index: int = 0) -> tuple[int, int, int, int]:
    """Bounding box of what the title changed: the same card drawn with and without it."""
    with_title = pixels(draw_art_card(shot(index, "ignored words"), size, seed=1, title=phrase))
    without = pixels(draw_art_card(shot(index, "ignored words"), size, seed=1))
    ys, xs = np.nonzero(np.abs(with_title - without).max(axis=2) > 0)
    assert len(xs) > 500, "no title pixels"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize("index", range(5))
def test_title_is_in_the_upper_third(index: int) -> None:
    left, top, right, bottom = _title_box("The lighthouse keeper", (540, 960), index)
    assert top > 0 and bottom < 960 / 3
    assert left > 0 and right < 540


def test_long_and_foreign_phrases_stay_inside_the_image() -> None:
    long_phrase = " ".join(["extraordinarily"] * 40) + " " + "x" * 200
    cases = [(long_phrase, size) for size in SMALL_SIZES] + [
        (long_phrase, (1080, 1920)),
        ("Café crème ☕🎬 東京の夜 naïve", (1080, 1920)),
        ("🙂🙂 ok", (480, 270)),
    ]
    for phrase, size in cases:
        left, top, right, bottom = _title_box(phrase, size)
        assert left > 0 and right < size[0] - 1, (phrase, size)
        assert top > 0 and bottom < size[1] / 3, (phrase, size)


def test_phrases_without_drawable_glyphs_draw_no_title() -> None:
    size = (270, 480)
    plain = pixels(draw_art_card(shot(0, ""), size, seed=0))
    for phrase in ("🙂🎬", "東京の夜", "\u200d\u200b"):
        assert np.array_equal(plain, pixels(draw_art_card(shot(0, phrase), size, seed=0, title=phrase))), phrase


def test_cards_carry_no_words_from_the_shot() -> None:
    """The subtitles carry the words: a card is the same picture whatever its shot says."""
    size = (270, 480)
    plain = pixels(draw_art_card(shot(1, ""), size, seed=3))
    assert np.array_equal(plain, pixels(draw_art_card(shot(1, "rocky stretch coast lived"), size, seed=3)))


def test_drawable_keeps_accents_and_drops_what_lato_lacks() -> None:
    assert drawable("Café ☕ crème 東京 naïve!") == "Café crème naïve!"
    assert drawable("  many\t\nspaces  ") == "many spaces"
    assert drawable("🙂") == ""


def test_fit_title_wraps_shrinks_and_ellipsizes() -> None:
    w, h = 1080, 1920
    width = w * (1 - 2 * TITLE_MARGIN)
    font, lines = fit_title("Hope", (w, h))
    assert lines == ["Hope"]
    big = font.size
    font, lines = fit_title(" ".join(["wonderful"] * 60), (w, h))
    assert font.size < big and 1 < len(lines) <= 3 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= width for line in lines)
    font, lines = fit_title("x" * 400, (w, h))  # one unbreakable word
    assert all(font.getlength(line) <= width for line in lines) and lines[-1].endswith("…")


def test_card_is_fast_enough() -> None:
    draw_art_card(shot(0), (1080, 1920), seed=0)  # warm caches (font, glyph checks)
    times = []
    for i in range(1, 4):
        start = time.perf_counter()
        draw_art_card(shot(i), (1080, 1920), seed=0)
        times.append(time.perf_counter() - start)
    assert sorted(times)[1] < 0.5  # budget 0.3 s; headroom for a busy test machine


# --- keyframes from the sources (cards, the user's pictures) ------------------------------------


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _keyframes(source: SourceName, shots: list[Shot], aspect: Aspect, folder: Path, files: list[Path]) -> list[Path]:
    async def go() -> list[Path]:
        job = Job(aspect=aspect, folder=folder, shots=len(shots))
        async with open_source(source, get_settings(), Opening(user_files=files)) as src:
            made = await make_visuals(src, [brief(s, s.text, "") for s in shots], job)
        return [v.keyframe for v in made]

    return asyncio.run(go())


def test_cards_are_written_with_exact_names(tmp_path: Path) -> None:
    paths = _keyframes("cards", [shot(0), shot(1), shot(9)], Aspect.square, tmp_path, [])
    folder = tmp_path / "keyframes"
    assert paths == [folder / "shot_01.png", folder / "shot_02.png", folder / "shot_10.png"]
    assert _files(folder) == ["shot_01.png", "shot_02.png", "shot_10.png"]  # no temp files left
    for path in paths:
        with Image.open(path) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (1080, 1080))


def test_the_users_pictures_become_the_keyframes_in_order(tmp_path: Path) -> None:
    red, blue = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGB", (50, 50), (255, 0, 0)).save(red)
    Image.new("RGB", (50, 50), (0, 0, 255)).save(blue, quality=95)
    paths = _keyframes("user", [shot(0), shot(1)], Aspect.landscape, tmp_path / "job", [red, blue])
    assert [p.name for p in paths] == ["shot_01.png", "shot_02.png"]
    with Image.open(paths[0]) as first, Image.open(paths[1]) as second:
        assert first.size == (1920, 1080) and rgb(first, 960, 540) == (255, 0, 0)
        assert rgb(second, 960, 540)[2] > 240
