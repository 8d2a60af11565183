"""The one HTTP app: REST under `/v1`, MCP at `/mcp`, signed file links and job pages.

`storybot serve` runs it alone; `storybot bot` runs it beside the Discord client when
`STORYBOT_PUBLIC_URL` is set, so a deployment has one HTTP server. Public without a token:
`/healthz`, `/openapi.json` and the docs page (`/docs`, served from the package, no CDN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
from collections.abc import AsyncIterator
from importlib import resources

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from graph.api import JobService, Links, Settings, StorybotError, link_secret, links_storage
from service import files, jobs, pages, problems, publishing
from service.deps import Context
from service.mcp_tools import mcp_server, mount_mcp
from service.tokens import TokenStore
from service.webhooks import Webhooks
from tools.net.head_deadline import HeadDeadlineH11

log = logging.getLogger("storybot.service")


def create_app(service: JobService, settings: Settings) -> FastAPI:
    tokens = TokenStore.of(settings)
    links = Links(link_secret(settings), settings.public_url or "", settings.link_ttl, links_storage(settings))
    ctx = Context(service, settings, tokens, links, Webhooks(service, tokens, settings))
    mcp = mcp_server(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.webhooks.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            for task in ctx.publishing.values():  # an upload cut here resumes when asked again
                task.cancel()
            await ctx.webhooks.close()

    app = FastAPI(
        title="storybot",
        version="1",
        summary="Turn a prompt into a finished short video, with approvals along the way.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(publishing.router)
    app.include_router(files.router)
    app.include_router(pages.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Up and able to read its job table."""
        service.jobs(1)
        return {"status": "ok"}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(resources.files("service").joinpath("docs.html").read_text(encoding="utf-8"))

    mount_mcp(app, mcp, ctx)
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the command that runs it decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def _more_descriptors() -> None:
    """A server holds a descriptor per connection: take the hard limit rather than a soft 1024, so a
    crowd of idle connections does not starve real requests (issue 23 #11)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextlib.asynccontextmanager
async def serving(service: JobService, settings: Settings) -> AsyncIterator[int]:
    """The app on STORYBOT_HTTP_HOST:STORYBOT_HTTP_PORT until the block ends; yields the port bound."""
    _more_descriptors()
    config = uvicorn.Config(
        create_app(service, settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        server_header=False,
        http=HeadDeadlineH11,  # a half-sent request is closed after 10 s (uvicorn waits forever)
    )
    try:  # bound here, not by uvicorn, whose failure to bind is a SystemExit out of the event loop
        family = socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET
        sock = socket.create_server((settings.http_host, settings.http_port), family=family)
    except OSError as exc:
        raise StorybotError(
            f"cannot serve on {settings.http_host}:{settings.http_port} (STORYBOT_HTTP_HOST/PORT): "
            f"{exc.strerror or exc}"
        ) from None
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110  (uvicorn has no "started" event)
        await asyncio.sleep(0.02)
    port = int(sock.getsockname()[1])
    log.info("serving the API, MCP and links on %s:%s", settings.http_host, port)
    try:
        yield port
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
