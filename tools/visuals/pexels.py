"""Pexels search (https://www.pexels.com/api/documentation/): the key goes in the Authorization
header; videos at `/videos/search`, photos at `/v1/search`, each with `orientation`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from tools.models import Aspect
from tools.visuals.base import VisualError
from tools.visuals.fetch import Http
from tools.visuals.stock import Candidate, Site

PER_PAGE = 15


class _User(BaseModel):
    name: str = ""
    url: str = ""


class _VideoFile(BaseModel):
    link: str
    file_type: str | None = None
    width: int | None = None
    height: int | None = None


class _Video(BaseModel):
    id: int
    url: str = ""
    width: int
    height: int
    duration: float = 0
    user: _User = _User()
    video_files: list[_VideoFile] = []


class _PhotoSrc(BaseModel):
    original: str
    large2x: str | None = None


class _Photo(BaseModel):
    id: int
    url: str = ""
    width: int
    height: int
    photographer: str = ""
    src: _PhotoSrc


class _Videos(BaseModel):
    videos: list[_Video] = []


class _Photos(BaseModel):
    photos: list[_Photo] = []


def orientation(aspect: Aspect) -> str:
    return {Aspect.portrait: "portrait", Aspect.landscape: "landscape", Aspect.square: "square"}[aspect]


def pick_file(files: list[_VideoFile], aspect: Aspect) -> _VideoFile | None:
    """The smallest MP4 that still covers the output at full size, else the largest there is."""
    mp4 = [f for f in files if (f.file_type or "video/mp4") == "video/mp4" and f.width and f.height]
    if not mp4:
        return None
    w, h = aspect.size
    covering = [f for f in mp4 if max(w / f.width, h / f.height) <= 1.0]  # type: ignore[operator]
    if covering:
        return min(covering, key=lambda f: f.width * f.height)  # type: ignore[operator]
    return max(mp4, key=lambda f: f.width * f.height)  # type: ignore[operator]


class Pexels:
    name = "pexels"

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    async def search(self, http: Http, query: str, kind: Literal["image", "video"], aspect: Aspect) -> list[Candidate]:
        params: dict[str, Any] = {"query": query, "orientation": orientation(aspect), "per_page": PER_PAGE}
        path = "/videos/search" if kind == "video" else "/v1/search"
        data = await http.json("GET", self.base + path, params=params)
        try:
            if kind == "video":
                return [
                    Candidate(
                        provider=self.name,
                        id=str(v.id),
                        kind="video",
                        url=f.link,
                        page=v.url,
                        author=v.user.name,
                        width=v.width,
                        height=v.height,
                        seconds=v.duration,
                    )
                    for v in _Videos.model_validate(data).videos
                    if (f := pick_file(v.video_files, aspect))
                ]
            return [
                Candidate(
                    provider=self.name,
                    id=str(p.id),
                    kind="image",
                    url=p.src.large2x or p.src.original,
                    page=p.url,
                    author=p.photographer,
                    width=p.width,
                    height=p.height,
                )
                for p in _Photos.model_validate(data).photos
            ]
        except ValidationError as exc:
            raise VisualError(f"pexels: an unexpected reply ({exc.error_count()} fields wrong)") from None


SITE = Site(
    "pexels",
    "PEXELS_API_KEY",
    lambda settings: settings.pexels_api_key,
    lambda settings, key: (Pexels(settings.pexels_base_url), {"Authorization": key}),
)
