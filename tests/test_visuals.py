"""Visual sources against local servers that speak the Pexels, Pixabay and OpenAI Images protocols and
serve real media made with FFmpeg: each served item has its own solid colour, so a frame of the final
video tells which item it came from."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.fake_stock import KEY, NAMES, colour_of, fake_stock, frame_at, header_only, png_bytes
from tests.local_http import Reply, Request, local_server, peak_rss_mib
from tools.errors import BadInput
from tools.llm.usage import metered
from tools.media import motion
from tools.media.ffmpeg import ffmpeg_exe
from tools.models import Aspect, Shot
from tools.net.guard import Guard, RefusedURL
from tools.render import RenderOptions, render
from tools.settings import Settings, get_settings
from tools.visuals import Job, Visual, brief, footage, make_visuals, open_source, parse_choice, resolve
from tools.visuals import fetch as fetch_module
from tools.visuals.images import nearest_size
from tools.visuals.terms import search_terms


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setattr(fetch_module, "BACKOFF", 0.01)
    for name in (
        "PEXELS_API_KEY",
        "PIXABAY_API_KEY",
        "STORYBOT_IMAGE_MODEL",
        "STORYBOT_SDXL_MODEL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORYBOT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def settings_for(**env: str) -> Settings:
    return Settings(STORYBOT_DATA_DIR=env.pop("data"), **env)  # type: ignore[arg-type]


def shot(index: int, text: str, seconds: float = 3.0) -> Shot:
    return Shot(
        index=index,
        start=index * seconds,
        end=(index + 1) * seconds,
        first_word=0,
        last_word=0,
        text=text,
        key_phrase="",
    )


def run_make(
    source_name: str, settings: Settings, briefs: list, tmp_path: Path, exclude: set[str] | None = None
) -> list[Visual]:
    async def go() -> list[Visual]:
        job = Job(aspect=Aspect.portrait, folder=tmp_path / "job", shots=len(briefs), exclude=exclude or set())
        async with open_source(resolve(parse_choice(source_name), settings), settings) as source:
            return await make_visuals(source, briefs, job)

    return asyncio.run(go())


# --- choosing the source -----------------------------------------------------------------------------


def test_auto_picks_gpu_then_images_then_stock_then_cards(tmp_path: Path) -> None:
    data = str(tmp_path)
    assert resolve("auto", settings_for(data=data)) == "cards"
    assert resolve("auto", settings_for(data=data, PIXABAY_API_KEY=KEY)) == "stock"
    assert resolve("auto", settings_for(data=data, PEXELS_API_KEY=KEY, STORYBOT_IMAGE_MODEL="gpt-image-1")) == "images"
    assert resolve("auto", settings_for(data=data, STORYBOT_IMAGE_MODEL="m", STORYBOT_SDXL_MODEL="/m")) == "gpu"
    with pytest.raises(BadInput, match="PEXELS_API_KEY or PIXABAY_API_KEY"):
        resolve("stock", settings_for(data=data))
    with pytest.raises(BadInput, match="unknown visuals"):
        parse_choice("pictures")


def test_search_terms_are_things_a_camera_can_film() -> None:
    terms = search_terms("The old lighthouse keeper climbed the stairs every night to light the lamp.")
    assert 2 <= len(terms) <= 4 and terms[0] == "old lighthouse" and "keeper" in terms
    assert not {"the", "every", "climbed", "old"} & set(terms)


# --- stock --------------------------------------------------------------------------------------------


def test_stock_render_uses_served_footage_once_each_with_credits(
    stock_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stock, url, requests = stock_server
    stock.videos = {
        "lighthouse": ["red.mp4", "green.mp4"],
        "harbour": ["green.mp4", "blue.mp4"],
        "storm": ["yellow.mp4", "green.mp4", "blue.mp4"],
    }
    monkeypatch.setenv("PEXELS_API_KEY", KEY)
    monkeypatch.setenv("PEXELS_BASE_URL", url)
    get_settings.cache_clear()
    script = tmp_path / "s.txt"
    script.write_text(
        "A lighthouse stood alone at the end of the world, and its keeper climbed up every single evening. "
        "The harbour below was quiet and grey, with fishing boats resting there until the morning came. "
        "Then the storm rolled in over the water, and the waves grew taller than anyone remembered.",
        encoding="utf-8",
    )
    started = time.perf_counter()
    art = asyncio.run(render(RenderOptions(script=script, out=tmp_path / "out", visuals="stock")))
    elapsed = time.perf_counter() - started
    meta = json.loads(Path(art.metadata).read_text(encoding="utf-8"))
    shots = json.loads(Path(art.shots).read_text(encoding="utf-8"))
    assert len(shots) >= 2
    assert [v["source"] for v in meta["visuals"]] == ["pexels"] * len(shots) and not meta["notices"]
    ids = [m for v in meta["visuals"] for m in v["media_ids"]]
    assert len(ids) == len(set(ids)), "media reused across shots"
    credits = json.loads(Path(art.credits or "").read_text(encoding="utf-8"))
    assert {c["shot"] for c in credits} == set(range(1, len(shots) + 1))
    assert all(c["author"] and c["url"].startswith("https://www.pexels.com/") and c["id"] for c in credits)
    for s in shots:
        first = next(c for c in credits if c["shot"] == s["index"] + 1)
        want = NAMES[int(first["id"]) - 1000].removesuffix(".mp4")
        assert colour_of(frame_at(Path(art.final_video), s["start"] + 0.6)) == want, s
    assert colour_of(frame_at(Path(art.final_video), shots[0]["start"] + 0.6)) == "red"
    assert all(r.headers.get("Authorization") == KEY for r in requests if "search" in r.path)
    for name in ("metadata.json", "credits.json", "visuals.json"):
        assert KEY not in (tmp_path / "out" / name).read_text(encoding="utf-8")
    print(f"\nstock render: {elapsed / len(shots):.2f} s per shot ({elapsed:.1f} s, {len(shots)} shots)")


def test_short_footage_is_chained_with_the_next_hit_not_looped(stock_server, tmp_path: Path) -> None:
    stock, url, _ = stock_server
    stock.videos = {"storm": ["yellow.mp4", "blue.mp4"]}
    settings = settings_for(data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url)
    started = time.perf_counter()
    made = run_make("stock", settings, [brief(shot(0, "The storm came.", 3.0), "p")], tmp_path)
    print(f"\nstock (2 downloads, chained): {time.perf_counter() - started:.2f} s per shot")
    assert [c.id for c in made[0].credits] == ["1003", "1002"] and len(made[0].clips) == 2
    shot_clip = tmp_path / "shot.mp4"  # the clips as the final cut plays them
    sources = [motion.clip_source(c) for c in made[0].clips]
    asyncio.run(motion.render_shot(motion.ClipShot(sources=sources), 90, Aspect.portrait, shot_clip))
    seen = [colour_of(frame_at(shot_clip, t)) for t in (0.3, 1.0, 1.6, 2.8)]
    assert seen == ["yellow", "yellow", "blue", "blue"], "chained with the next hit, never looped"


def test_faults_are_retried_and_empty_results_broaden_then_fall_back(stock_server, tmp_path: Path) -> None:
    stock, url, requests = stock_server
    stock.videos = {"harbour": ["blue.mp4"]}
    stock.photos = {"kittens": ["cyan.png"]}
    stock.faults = [
        Reply(429, b"slow down", {"Retry-After": "0"}),
        Reply(503, b"busy"),
        Reply(200, b"<html>proxy error</html>", {"Content-Type": "text/html"}),
    ]
    settings = settings_for(
        data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url, STORYBOT_PROVIDER_RETRIES="3"
    )
    briefs = [
        brief(shot(0, "A quiet old harbour at dawn."), "harbour"),
        brief(shot(1, "Nothing matches zzyzx."), "x", title="Kittens"),
        brief(shot(2, "Qqqq wwww."), "y"),
    ]
    made = run_make("stock", settings, briefs, tmp_path)
    assert made[0].source == "pexels" and made[0].clips and made[0].notice is None
    assert made[1].source == "pexels" and not made[1].clips, "the broader title term found a photo"
    assert made[2].source == "cards" and "no stock media" in (made[2].notice or "")
    queries = [parse_qs(urlsplit(r.path).query).get("query", [""])[0] for r in requests if "search" in r.path]
    assert "kittens" in queries and "zzyzx" in queries
    assert Image.open(made[1].keyframe).size == Aspect.portrait.size


@pytest.mark.parametrize("bad", ["page.png", "empty.mp4", "corrupt.mp4", "audio.mp4", "truncated.mp4"])
def test_bad_downloads_are_refused_and_the_next_hit_used(stock_server, tmp_path: Path, bad: str) -> None:
    stock, url, _ = stock_server
    stock.videos = {"lighthouse": [bad, "green.mp4"]}
    settings = settings_for(data=str(tmp_path / "d"), PIXABAY_API_KEY=KEY, PIXABAY_BASE_URL=url)
    made = run_make("stock", settings, [brief(shot(0, "lighthouse"), "p")], tmp_path)
    assert made[0].source == "pixabay" and made[0].media_ids == ["pixabay:video:3001"]
    assert made[0].clips
    cache = tmp_path / "d" / "cache" / "visuals" / "pixabay"
    assert sorted(p.name for p in cache.iterdir()) == ["video_3001.mp4"], "no half or bad file left in the cache"


def test_reroll_takes_the_next_hit_and_never_another_shots_media(stock_server, tmp_path: Path) -> None:
    stock, url, _ = stock_server
    stock.videos = {"lighthouse": ["red.mp4", "green.mp4", "blue.mp4"]}
    settings = settings_for(data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url)
    first = run_make(
        "stock", settings, [brief(shot(0, "lighthouse", 2), "p"), brief(shot(1, "lighthouse", 2), "p")], tmp_path
    )
    assert [v.media_ids for v in first] == [["pexels:video:1000"], ["pexels:video:1001"]]
    again = run_make(
        "stock",
        settings,
        [brief(shot(0, "lighthouse", 2), "p", seed=7919)],
        tmp_path,
        exclude={*first[0].media_ids, *first[1].media_ids},
    )
    assert again[0].media_ids == ["pexels:video:1002"]


def test_a_wrong_key_falls_back_to_cards_without_showing_the_key(stock_server, tmp_path: Path) -> None:
    _, url, _ = stock_server
    settings = settings_for(data=str(tmp_path / "d"), PIXABAY_API_KEY="wrong-" + KEY, PIXABAY_BASE_URL=url)
    made = run_make("stock", settings, [brief(shot(0, "lighthouse"), "p")], tmp_path)
    assert made[0].source == "cards" and "HTTP 400" in (made[0].notice or "")
    assert KEY not in (made[0].notice or "")


# --- keys stay home (issue 23, P0) ---------------------------------------------------------------


@pytest.mark.parametrize("provider", ["pexels", "pixabay"])
def test_the_key_goes_to_the_api_only_and_downloads_go_nowhere_a_reply_chooses(
    stock_server, tmp_path: Path, provider: str
) -> None:
    """A hostile search reply names media on another port of this machine, at the cloud metadata
    address, behind a redirect to another host, and with a broken URL: none is contacted, no
    download carries the key, and the shot takes the one honest hit."""
    stock, url, requests = stock_server
    with local_server(lambda req: Reply(200, stock.media["red.mp4"])) as elsewhere:
        stock.videos = {"lighthouse": ["red.mp4", "blue.mp4", "yellow.mp4", "audio.mp4", "green.mp4"]}
        stock.links = {
            "red.mp4": f"{elsewhere.url}/files/red.mp4",  # another port: the leak the red team found
            "blue.mp4": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "audio.mp4": "https://exa\u0000mple.com:99999/x.mp4",
        }
        stock.redirects = {"yellow.mp4": f"{elsewhere.url}/files/yellow.mp4"}
        env = {"PEXELS_API_KEY": KEY, "PEXELS_BASE_URL": url}
        if provider == "pixabay":
            env = {"PIXABAY_API_KEY": KEY, "PIXABAY_BASE_URL": url}
        settings = settings_for(data=str(tmp_path / "d"), **env)
        made = run_make("stock", settings, [brief(shot(0, "lighthouse", 2.0), "p")], tmp_path)
        assert elsewhere.requests == [], "nothing a reply names off the configured host is fetched"
    assert made[0].source == provider and made[0].clips, made[0].notice
    assert [c.id for c in made[0].credits] == [str((1000 if provider == "pexels" else 3000) + NAMES.index("green.mp4"))]
    downloads = [r for r in requests if r.path.startswith("/files/")]
    assert [r.path for r in downloads] == ["/files/yellow.mp4", "/files/green.mp4"]
    assert all(r.headers.get("Authorization") is None and KEY not in r.path for r in downloads)
    searches = [r for r in requests if not r.path.startswith("/files/")]
    assert searches and all(KEY in (r.headers.get("Authorization") or "") + r.path for r in searches)


def test_another_servers_media_of_the_same_id_is_not_taken_from_the_cache(
    stock_media: dict[str, bytes], tmp_path: Path
) -> None:
    """Issue 23 #10: the cache was keyed by provider and id only, so job 2 asking another server for
    media 1000 got job 1's file."""
    swapped = {**stock_media, "red.mp4": stock_media["blue.mp4"]}  # the same id, other content
    colours = []
    for media in (stock_media, swapped):
        with fake_stock(media) as (stock, url, _):
            stock.videos = {"lighthouse": ["red.mp4"]}
            settings = settings_for(data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url)
            made = run_make("stock", settings, [brief(shot(0, "lighthouse", 2), "p")], tmp_path / str(len(colours)))
        assert made[0].media_ids == ["pexels:video:1000"]
        colours.append(colour_of(frame_at(made[0].clips[0], 0.5)))
    assert colours == ["red", "blue"]


def test_a_gzip_bomb_of_a_search_reply_is_refused_at_the_byte_ceiling(stock_server, tmp_path: Path) -> None:
    """Issue 23 #4: a 1 MiB gzip reply took RSS to 2.1 GB; replies are counted after decompression."""
    import gzip

    stock, url, requests = stock_server
    inflated = b'{"videos": [' + b" " * (48 * 2**20) + b"]}"
    bomb = Reply(200, gzip.compress(inflated, 9), {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    stock.faults = [bomb]
    settings = settings_for(
        data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url, STORYBOT_PROVIDER_RETRIES="2"
    )
    made = run_make("stock", settings, [brief(shot(0, "lighthouse"), "p")], tmp_path)
    assert made[0].source == "cards" and "over the 32 MB limit" in (made[0].notice or "")
    assert len([r for r in requests if "search" in r.path]) == 1, "a reply too large is not asked for again"


def test_a_search_reply_nested_100000_deep_costs_a_card_not_the_job(stock_server, tmp_path: Path) -> None:
    """Issue 23 #5: `json.loads` raised RecursionError, a traceback in `render`."""
    stock, url, _ = stock_server
    deep = Reply(200, b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"})
    stock.faults = [deep] * 2
    settings = settings_for(
        data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url, STORYBOT_PROVIDER_RETRIES="1"
    )
    made = run_make("stock", settings, [brief(shot(0, "lighthouse"), "p")], tmp_path)
    assert made[0].source == "cards" and "nested too deep" in (made[0].notice or "")


def test_a_failing_download_is_tried_once_per_job_and_a_trickle_is_cut_off(
    stock_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23 #3: a URL trickling bytes was tried for every query of every shot (hours), a 503 URL
    downloaded 24 times for one shot. Now: one deadline per download, retries included, and a URL
    that failed is not asked again in the job's stage."""
    stock, url, requests = stock_server
    monkeypatch.setattr(fetch_module, "DOWNLOAD_DEADLINE", 1.0)

    def trickle() -> Reply:
        def drip() -> Iterator[bytes]:
            yield stock.media["red.mp4"][:64]  # a real MP4's first bytes, then 10 bytes a second
            for byte in stock.media["red.mp4"][64:164]:
                time.sleep(0.1)
                yield bytes([byte])

        return Reply(200, drip(), {"Content-Type": "video/mp4"})

    stock.served = {"red.mp4": trickle, "blue.mp4": lambda: Reply(503, b"busy")}
    stock.videos = {"lighthouse": ["red.mp4", "blue.mp4", "green.mp4", "yellow.mp4"]}
    settings = settings_for(
        data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url, STORYBOT_PROVIDER_RETRIES="1"
    )
    started = time.perf_counter()
    made = run_make(
        "stock", settings, [brief(shot(0, "lighthouse", 2), "p"), brief(shot(1, "lighthouse", 2), "p")], tmp_path
    )
    took = time.perf_counter() - started
    fetched = [r.path for r in requests if r.path.startswith("/files/")]
    assert fetched.count("/files/red.mp4") == 1, fetched
    assert fetched.count("/files/blue.mp4") == 2, "one download with its one retry, then never again"
    assert [v.media_ids for v in made] == [["pexels:video:1001"], ["pexels:video:1003"]]  # green, yellow
    assert 1.0 <= took < 15, f"{took:.1f} s"  # the trickle was given its second, once


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://cdn.example.com/a.mp4", "https only"),
        ("https://localhost/a.mp4", "loopback, private"),
        ("https://127.0.0.1:8443/a.mp4", "loopback, private"),
        ("https://10.1.2.3/a.mp4", "loopback, private"),
        ("https://169.254.169.254/latest/", "loopback, private"),
        ("https://[::ffff:127.0.0.1]/a.mp4", "loopback, private"),
        ("https://[fd00:ec2::254]/", "loopback, private"),
        ("https://100.64.0.1/a.mp4", "loopback, private"),
        ("https://a.example:99999/a.mp4", "valid host and port"),
        ("https://a\u0000b.example/a.mp4", "invalid URL"),
        ("file:///etc/passwd", "https only"),
    ],
)
def test_download_urls_must_be_https_to_a_public_address(url: str, why: str) -> None:
    guard = Guard.for_bases("http://127.0.0.1:9")
    with pytest.raises(RefusedURL, match=why):
        asyncio.run(guard.check(url))


def test_the_configured_origin_and_public_addresses_pass_pinned_to_the_checked_address() -> None:
    guard = Guard.for_bases("http://127.0.0.1:9/v1")
    assert str(asyncio.run(guard.check("http://127.0.0.1:9/files/a.mp4")).url) == "http://127.0.0.1:9/files/a.mp4"
    public = asyncio.run(guard.check("https://1.1.1.1/a.mp4"))
    assert str(public.url) == "https://1.1.1.1/a.mp4"


# --- hosted Images API ---------------------------------------------------------------------------


def images_server(answer: Callable[[Request, str], dict[str, object]], base: list[str]):
    def handle(req: Request) -> Reply:
        if req.path.startswith("/files/"):
            return Reply(200, png_bytes("green", (1024, 1536)), {"Content-Type": "image/png"})
        if req.path != "/v1/images/generations" or req.headers.get("Authorization") != f"Bearer {KEY}":
            return Reply.json({"error": {"message": "no"}}, 401)
        return Reply.json(answer(req, base[0]))

    return handle


def test_images_api_b64_and_url_nearest_size_usage(tmp_path: Path) -> None:
    calls: list[dict[str, object]] = []

    def answer(req: Request, base: str) -> dict[str, object]:
        body = req.json()
        calls.append(body)
        if len(calls) == 1:
            data = base64.b64encode(png_bytes("blue", (1024, 1536))).decode()
            return {"created": 1, "data": [{"b64_json": data}], "usage": {"input_tokens": 30, "output_tokens": 4000}}
        return {"created": 1, "data": [{"url": f"{base}/files/x.png"}]}

    base: list[str] = []
    with local_server(images_server(answer, base)) as server:
        base.append(server.url)
        settings = settings_for(
            data=str(tmp_path / "d"),
            STORYBOT_IMAGE_MODEL="gpt-image-1",
            STORYBOT_IMAGE_BASE_URL=server.url + "/v1",
            STORYBOT_IMAGE_API_KEY=KEY,
        )
        briefs = [
            brief(shot(0, "A lighthouse."), "a lighthouse at dusk", "text, watermark"),
            brief(shot(1, "A harbour."), "a harbour"),
        ]
        with metered() as used:
            started = time.perf_counter()
            made = run_make("images", settings, briefs, tmp_path)
            elapsed = time.perf_counter() - started
    assert [c["size"] for c in calls] == ["1024x1536", "1024x1536"] and all(c["n"] == 1 for c in calls)
    assert calls[0]["model"] == "gpt-image-1" and "Avoid: text, watermark" in str(calls[0]["prompt"])
    assert [v.source for v in made] == ["images:gpt-image-1"] * 2, [v.notice for v in made]
    for visual, want in zip(made, ("blue", "green"), strict=True):
        img = Image.open(visual.keyframe)
        assert img.size == Aspect.portrait.size
        assert colour_of(np.asarray(img.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)) == want
    assert used[("images:gpt-image-1", "images")] == 2 and used[("images:gpt-image-1", "output_tokens")] == 4000
    assert nearest_size("dall-e-3", Aspect.landscape) == (1792, 1024)
    assert nearest_size("gpt-image-1", Aspect.square) == (1024, 1024)
    print(f"\nimages: {elapsed / 2:.2f} s per shot")


def test_images_api_garbage_falls_back_to_a_card(tmp_path: Path) -> None:
    def answer(req: Request, base: str) -> dict[str, object]:
        return {"created": 1, "data": [{"b64_json": base64.b64encode(b"<html>oops</html>").decode()}]}

    base: list[str] = []
    with local_server(images_server(answer, base)) as server:
        base.append(server.url)
        settings = settings_for(
            data=str(tmp_path / "d"),
            STORYBOT_IMAGE_MODEL="gpt-image-1",
            OPENAI_BASE_URL=server.url + "/v1",
            OPENAI_API_KEY=KEY,
        )
        made = run_make("images", settings, [brief(shot(0, "A lighthouse."), "p")], tmp_path)
    assert made[0].source == "cards" and "a card stands in" in (made[0].notice or "")


def test_cards_per_shot_speed(tmp_path: Path) -> None:
    settings = settings_for(data=str(tmp_path / "d"))
    briefs = [brief(shot(i, "words"), "p", title="The Keeper") for i in range(3)]
    started = time.perf_counter()
    made = run_make("cards", settings, briefs, tmp_path)
    elapsed = time.perf_counter() - started
    assert [v.source for v in made] == ["cards"] * 3
    print(f"\ncards: {elapsed / 3:.2f} s per shot")


@pytest.mark.parametrize(
    "visuals,needs",
    [
        ("stock", "PEXELS_API_KEY or PIXABAY_API_KEY"),
        ("images", "STORYBOT_IMAGE_MODEL"),
        ("pictures", "unknown visuals"),
    ],
)
def test_cli_refuses_an_unconfigured_source_with_exit_2(tmp_path: Path, visuals: str, needs: str) -> None:
    import os
    import sys

    script = tmp_path / "s.txt"
    script.write_text("A lighthouse.", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEXELS", "PIXABAY", "STORYBOT_IMAGE"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "storybot",
            "render",
            "--script",
            str(script),
            "--out",
            str(tmp_path / "out"),
            "--visuals",
            visuals,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "STORYBOT_DATA_DIR": str(tmp_path / "d")},
    )
    assert result.returncode == 2 and needs in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_provider_that_keeps_failing_is_not_asked_again_for_each_shot(stock_server, tmp_path: Path) -> None:
    stock, url, requests = stock_server
    stock.faults = [Reply(503, b"down")] * 100
    settings = settings_for(
        data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL=url, STORYBOT_PROVIDER_RETRIES="2"
    )
    briefs = [brief(shot(i, "The lighthouse and the harbour at dawn."), "p") for i in range(3)]
    started = time.perf_counter()
    made = run_make("stock", settings, briefs, tmp_path)
    assert [v.source for v in made] == ["cards"] * 3 and all("HTTP 503" in (v.notice or "") for v in made)
    assert len(requests) == 3, "one search, retried twice, then the provider is skipped for this video"
    assert time.perf_counter() - started < 10


def test_a_vision_rank_picks_the_best_of_the_first_candidates(stock_server, tmp_path: Path) -> None:
    """With a vision model configured, the frame it scores highest against the shot's words is used."""
    from tools.visuals.pexels import Pexels
    from tools.visuals.stock import StockSource

    stock, url, _ = stock_server
    stock.videos = {"lighthouse": ["red.mp4", "green.mp4", "blue.mp4"]}
    judged: list[tuple[str, str]] = []

    async def rank(frame: Path, text: str) -> float | None:
        colour = colour_of(np.asarray(Image.open(frame).convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0))
        judged.append((colour, text))
        return {"red": 3.0, "green": None, "blue": 8.0}[colour]

    async def go() -> list[Visual]:
        source, client = StockSource.open([(Pexels(url), {"Authorization": KEY}, [KEY])], tmp_path / "cache", 0, rank)
        async with client:
            job = Job(aspect=Aspect.portrait, folder=tmp_path / "job", shots=1)
            return await make_visuals(source, [brief(shot(0, "A lighthouse.", 2.0), "p")], job)

    made = asyncio.run(go())
    assert [c for c, _ in judged] == ["red", "green", "blue"] and judged[0][1] == "A lighthouse."
    assert made[0].media_ids == ["pexels:video:1002"], "blue scored best"
    assert not list((tmp_path / "job" / "media").glob("*.candidate*")), "candidate frames are not left behind"


def test_footage_whose_later_frames_are_missing_shows_its_first_frame(tmp_path: Path) -> None:
    """The approval's keyframe is a third into a clip; a clip cut short before that shows its start."""
    clip = tmp_path / "grain.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=0xdc1e1e:s=270x480:d=2.5:r=25,noise=alls=40:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
        timeout=60,
    )
    index = len(header_only(clip, tmp_path / "front.mp4"))
    whole = (tmp_path / "front.mp4").read_bytes()
    frame = (len(whole) - index) // 62  # about one frame's bytes (62 grainy frames of similar size)
    short = tmp_path / "short.mp4"
    short.write_bytes(whole[: index + 3 * frame])  # the index and the first few frames
    png = asyncio.run(footage.clip_keyframe(short, Aspect.portrait, tmp_path / "kf.png"))
    with Image.open(png) as img:
        assert img.size == Aspect.portrait.size
        r, g, b = np.asarray(img.convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 90 and b < 90, (r, g, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.mp4", "grain.mp4", "kf.png", "short.mp4"]


def test_a_b64_picture_past_the_byte_ceiling_is_a_card_in_bounded_memory(tmp_path: Path) -> None:
    """Issue 23 #4: a 300 MB `b64_json` picture was accepted (1.5 GB RSS); the reply is now refused at
    32 MB after decompression (here 96 MB of base64 sent gzipped), and the shot gets a card."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"created": 1, "data": [{"b64_json": "')]
    parts += [packer.compress(b"A" * 2**20) for _ in range(96)]
    body = b"".join(parts) + packer.compress(b'"}]}') + packer.flush()

    def handle(req: Request) -> Reply:
        return Reply(200, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})

    with local_server(handle) as server:
        settings = settings_for(
            data=str(tmp_path / "d"),
            STORYBOT_IMAGE_MODEL="gpt-image-1",
            STORYBOT_IMAGE_BASE_URL=server.url + "/v1",
            STORYBOT_IMAGE_API_KEY=KEY,
        )
        before = peak_rss_mib()
        made = run_make("images", settings, [brief(shot(0, "A lighthouse."), "p")], tmp_path)
        grew = peak_rss_mib() - before
    assert made[0].source == "cards" and "over the 32 MB limit" in (made[0].notice or ""), made[0].notice
    assert grew < 160, grew


def test_a_file_url_says_what_it_is_and_is_not_retried(tmp_path: Path) -> None:
    """Issue 23 #15: a `file://` base URL was 'UnsupportedProtocol (no answer in time)', asked three times."""
    settings = settings_for(
        data=str(tmp_path / "d"), PEXELS_API_KEY=KEY, PEXELS_BASE_URL="file:///etc", STORYBOT_PROVIDER_RETRIES="2"
    )
    started = time.monotonic()
    made = run_make("stock", settings, [brief(shot(0, "lighthouse"), "p")], tmp_path)
    assert made[0].source == "cards" and "pexels: the URL is not http or https" in (made[0].notice or "")
    assert "in time" not in (made[0].notice or "") and time.monotonic() - started < 2
