"""`/files/{job}/{name}?expires=&sig=`: the signed links that chat messages carry (tools/links.py).

Only names in `ARTIFACTS` of a finished job's own record are served, inside the data folder.
Anything wrong (an unknown name, a bad or expired signature, an unfinished job, a missing file) is
the same bare 404: no detail, no listing. Range requests are answered (206), so players seek.
With remote storage (`STORYBOT_STORAGE_URL`) new links are the store's presigned URLs already; a link
of ours still valid is redirected to one that expires when it does.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

from graph.api import ARTIFACTS, BadInput
from service.deps import Context, Ctx

router = APIRouter(include_in_schema=False)


def linked_file(ctx: Context, job_id: str, name: str) -> Path | None:
    """The file a valid link names: an artifact of a finished job, inside the data folder."""
    try:
        record = ctx.service.get(job_id)
    except BadInput:
        return None
    if record.status != "done" or record.result is None:
        return None
    path = Path(ARTIFACTS[name](record.result.artifacts)).resolve()
    if not path.is_file() or not path.is_relative_to(ctx.settings.data_dir.resolve()):
        return None
    return path


def stored_url(ctx: Context, job_id: str, name: str, expires: int) -> str | None:
    """A presigned URL, valid until the link's own expiry, of an artifact of a finished job."""
    try:
        record = ctx.service.get(job_id)
    except BadInput:
        return None
    if record.status != "done" or record.result is None or ctx.links.storage is None:
        return None
    return ctx.links.url(job_id, name, expires)


@router.get("/files/{job_id}/{name}")
async def signed_file(job_id: str, name: str, request: Request, ctx: Ctx) -> Response:
    expires, sig = request.query_params.get("expires", ""), request.query_params.get("sig", "")
    if ctx.links.storage is not None:  # remote storage: the store serves it, until the same expiry
        url = stored_url(ctx, job_id, name, int(expires)) if ctx.links.valid(job_id, name, expires, sig) else None
        if url is None:
            return PlainTextResponse("Not found", status_code=404)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "private, no-store"})
    path = linked_file(ctx, job_id, name) if ctx.links.valid(job_id, name, expires, sig) else None
    if path is None:
        return PlainTextResponse("Not found", status_code=404)
    return FileResponse(
        path,
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": f'inline; filename="storybot-{job_id}-{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
