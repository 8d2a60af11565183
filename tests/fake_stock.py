"""A small Pexels + Pixabay for tests, on 127.0.0.1, serving real media made with FFmpeg.

Each served item has its own solid colour (`COLOURS`), so a frame of a final video tells which item
it came from (`frame_at`, `colour_of`). Searches answer with the hits set per query in `videos` and
`photos` (names from `NAMES`, ids 1000 + index for Pexels videos, 2000 for its photos, 3000 and 4000
for Pixabay's), only with the right `KEY`; `faults` are served first, in order; some names serve
broken downloads (an HTML page, nothing, a corrupt or truncated clip).
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from tests.local_http import Reply, Request, local_server
from tools.media.ffmpeg import ffmpeg_exe

KEY = "sekrit-key-0123456789"
NAMES = [
    "red.mp4",
    "green.mp4",
    "blue.mp4",
    "yellow.mp4",
    "audio.mp4",
    "magenta.png",
    "cyan.png",
    "page.png",
    "empty.mp4",
    "corrupt.mp4",
    "truncated.mp4",
]
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "magenta": (210, 30, 210),
    "cyan": (30, 210, 210),
}


def make_clip(path: Path, colour: str, seconds: float, size: str = "270x480", audio_only: bool = False) -> Path:
    r, g, b = COLOURS[colour]
    src = (
        f"anullsrc=r=48000:cl=mono:d={seconds}"
        if audio_only
        else f"color=c=0x{r:02x}{g:02x}{b:02x}:s={size}:d={seconds}:r=25"
    )
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            src,
            *(["-c:a", "aac"] if audio_only else ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def png_bytes(colour: str, size: tuple[int, int] = (300, 500)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, COLOURS[colour]).save(buf, format="PNG")
    return buf.getvalue()


def header_only(clip: Path, front: Path) -> bytes:
    """`clip` with its index first and its frames cut off: a header that promises a video whose
    frames are not there (a download cut short, served as if whole)."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(front)],
        check=True,
        timeout=60,
    )
    data, at = front.read_bytes(), 0
    while data[at + 4 : at + 8] != b"mdat":
        at += int.from_bytes(data[at : at + 4], "big")
    return data[: at + 64]


def served_media(root: Path) -> dict[str, bytes]:
    """The files the fake serves by name, made in `root`: solid-colour clips (yellow is short), an
    audio-only clip, a clip cut off after its header, and two pictures."""
    files = {f"{c}.mp4": make_clip(root / f"{c}.mp4", c, 2.5).read_bytes() for c in ("red", "green", "blue")}
    files["yellow.mp4"] = make_clip(root / "yellow.mp4", "yellow", 1.2).read_bytes()  # short: must be chained
    files["audio.mp4"] = make_clip(root / "audio.mp4", "red", 1.0, audio_only=True).read_bytes()
    files["truncated.mp4"] = header_only(root / "red.mp4", root / "front.mp4")
    files["magenta.png"] = png_bytes("magenta")
    files["cyan.png"] = png_bytes("cyan")
    return files


class Stock:
    """A fake Pexels + Pixabay: hits per query, files by name; faults to serve first, in order."""

    def __init__(self, media: dict[str, bytes], videos: dict[str, list[str]], photos: dict[str, list[str]]) -> None:
        self.media, self.videos, self.photos = media, videos, photos
        self.faults: list[Reply] = []
        self.base = ""
        self.links: dict[str, str] = {}  # name -> the download URL a reply names instead of our own
        self.redirects: dict[str, str] = {}  # name -> where a download of it is redirected
        self.served: dict[str, Callable[[], Reply]] = {}  # name -> a reply of its own (a fault, a trickle)

    def handle(self, req: Request) -> Reply:
        url = urlsplit(req.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/files/"):
            name = url.path.removeprefix("/files/")
            if name in self.redirects:
                return Reply(302, b"", {"Location": self.redirects[name]})
            if name in self.served:
                return self.served[name]()
            if name == "page.png":
                return Reply(200, b"<!DOCTYPE html><html>rate limited</html>", {"Content-Type": "image/png"})
            if name == "empty.mp4":
                return Reply(200, b"", {"Content-Type": "video/mp4"})
            if name == "corrupt.mp4":
                return Reply(200, self.media["red.mp4"][:40] + b"\0" * 500, {"Content-Type": "video/mp4"})
            return Reply(200, self.media[name], {"Content-Type": "application/octet-stream"})
        if self.faults:
            return self.faults.pop(0)
        if url.path in ("/videos/search", "/v1/search"):
            if req.headers.get("Authorization") != KEY:
                return Reply.json({"error": "unauthorised"}, 401)
            names = (self.videos if url.path == "/videos/search" else self.photos).get(q["query"], [])
            return Reply.json(self._pexels(url.path, names))
        if url.path in ("/api/", "/api/videos/"):
            if q.get("key") != KEY:
                return Reply(400, b"[ERROR 400] Invalid or missing API key")
            names = (self.videos if url.path == "/api/videos/" else self.photos).get(q["q"], [])
            return Reply.json(self._pixabay(url.path, names))
        return Reply(404, b"not found")

    def link(self, name: str) -> str:
        return self.links.get(name, f"{self.base}/files/{name}")

    def _pexels(self, path: str, names: list[str]) -> dict[str, object]:
        if path == "/videos/search":
            return {
                "page": 1,
                "per_page": 15,
                "total_results": len(names),
                "videos": [
                    {
                        "id": 1000 + NAMES.index(n),
                        "width": 270,
                        "height": 480,
                        "duration": 2,
                        "url": f"https://www.pexels.com/video/{n}/",
                        "user": {"name": f"Author {n}", "url": "https://www.pexels.com/@a"},
                        "video_files": [
                            {
                                "id": 1,
                                "quality": "sd",
                                "file_type": "video/mp4",
                                "width": 270,
                                "height": 480,
                                "fps": 25,
                                "link": self.link(n),
                            }
                        ],
                    }
                    for n in names
                ],
            }
        return {
            "page": 1,
            "per_page": 15,
            "total_results": len(names),
            "photos": [
                {
                    "id": 2000 + NAMES.index(n),
                    "width": 300,
                    "height": 500,
                    "url": f"https://www.pexels.com/photo/{n}/",
                    "photographer": f"Photographer {n}",
                    "src": {"original": self.link(n), "large2x": self.link(n)},
                }
                for n in names
            ],
        }

    def _pixabay(self, path: str, names: list[str]) -> dict[str, object]:
        if path == "/api/videos/":
            return {
                "total": len(names),
                "totalHits": len(names),
                "hits": [
                    {
                        "id": 3000 + NAMES.index(n),
                        "pageURL": f"https://pixabay.com/videos/{n}/",
                        "duration": 2,
                        "user": f"px {n}",
                        "videos": {
                            "large": {"url": "", "width": 0, "height": 0},
                            "small": {"url": self.link(n), "width": 270, "height": 480},
                        },
                    }
                    for n in names
                ],
            }
        return {
            "total": len(names),
            "totalHits": len(names),
            "hits": [
                {
                    "id": 4000 + NAMES.index(n),
                    "pageURL": f"https://pixabay.com/photos/{n}/",
                    "user": f"px {n}",
                    "largeImageURL": self.link(n),
                    "imageWidth": 300,
                    "imageHeight": 500,
                }
                for n in names
            ],
        }


@contextmanager
def fake_stock(media: dict[str, bytes]) -> Iterator[tuple[Stock, str, list[Request]]]:
    """A `Stock` serving `media` on 127.0.0.1, with no hits yet: (the fake, its URL, the requests it got)."""
    stock = Stock(media, {}, {})
    with local_server(stock.handle) as server:
        stock.base = server.url
        yield stock, server.url, server.requests


def colour_of(rgb: np.ndarray) -> str:
    return min(COLOURS, key=lambda c: float(np.abs(rgb - np.array(COLOURS[c])).sum()))


def frame_at(video: Path, seconds: float) -> np.ndarray:
    """The mean colour of the top half of the frame at `seconds` (subtitles sit lower)."""
    out = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-ss",
            f"{seconds:.3f}",
            "-i",
            str(video),
            "-frames:v",
            "1",
            "-vf",
            "scale=54:96",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    frame = np.frombuffer(out, dtype=np.uint8).reshape(96, 54, 3).astype(float)
    return frame[10:40, 10:44].reshape(-1, 3).mean(axis=0)
