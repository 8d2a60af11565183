"""Pixabay search (https://pixabay.com/api/docs/): the key is a query parameter (so URLs are never
shown); photos at `/api/`, videos at `/api/videos/` with large/medium/small/tiny renditions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from tools.models import Aspect
from tools.visuals.base import VisualError
from tools.visuals.fetch import Http
from tools.visuals.stock import Candidate, Site

PER_PAGE = 20
MAX_QUERY = 100  # characters Pixabay accepts in `q`


class _Rendition(BaseModel):
    url: str = ""
    width: int = 0
    height: int = 0


class _VideoHit(BaseModel):
    id: int
    pageURL: str = ""
    duration: float = 0
    user: str = ""
    videos: dict[str, _Rendition]


class _ImageHit(BaseModel):
    id: int
    pageURL: str = ""
    user: str = ""
    largeImageURL: str
    imageWidth: int
    imageHeight: int


class _Videos(BaseModel):
    hits: list[_VideoHit] = []


class _Images(BaseModel):
    hits: list[_ImageHit] = []


def _rendition(videos: dict[str, _Rendition], aspect: Aspect) -> _Rendition | None:
    """The smallest rendition that covers the output, else the largest."""
    usable = [r for r in videos.values() if r.url and r.width and r.height]
    if not usable:
        return None
    w, h = aspect.size
    covering = [r for r in usable if max(w / r.width, h / r.height) <= 1.0]
    return (
        min(covering, key=lambda r: r.width * r.height) if covering else max(usable, key=lambda r: r.width * r.height)
    )


class Pixabay:
    name = "pixabay"

    def __init__(self, base_url: str, key: str) -> None:
        self.base, self._key = base_url.rstrip("/"), key

    async def search(self, http: Http, query: str, kind: Literal["image", "video"], aspect: Aspect) -> list[Candidate]:
        params: dict[str, Any] = {"key": self._key, "q": query[:MAX_QUERY], "per_page": PER_PAGE, "safesearch": "true"}
        if kind == "image":
            params |= {
                "image_type": "photo",
                "orientation": {Aspect.portrait: "vertical", Aspect.landscape: "horizontal"}.get(aspect, "all"),
            }
        data = await http.json("GET", self.base + ("/api/videos/" if kind == "video" else "/api/"), params=params)
        try:
            if kind == "video":
                return [
                    Candidate(
                        provider=self.name,
                        id=str(v.id),
                        kind="video",
                        url=r.url,
                        page=v.pageURL,
                        author=v.user,
                        width=r.width,
                        height=r.height,
                        seconds=v.duration,
                    )
                    for v in _Videos.model_validate(data).hits
                    if (r := _rendition(v.videos, aspect))
                ]
            return [
                Candidate(
                    provider=self.name,
                    id=str(p.id),
                    kind="image",
                    url=p.largeImageURL,
                    page=p.pageURL,
                    author=p.user,
                    width=p.imageWidth,
                    height=p.imageHeight,
                )
                for p in _Images.model_validate(data).hits
            ]
        except ValidationError as exc:
            raise VisualError(f"pixabay: an unexpected reply ({exc.error_count()} fields wrong)") from None


SITE = Site(
    "pixabay",
    "PIXABAY_API_KEY",
    lambda settings: settings.pixabay_api_key,
    lambda settings, key: (Pixabay(settings.pixabay_base_url, key), {}),  # the key travels in the query
)
