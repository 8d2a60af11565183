"""`storybot serve`, `storybot mcp` and `storybot tokens`: the service front end (service/)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from storybot.app import app, err, run_async, settings_for
from tools.errors import BadInput
from tools.net.redact import redact_logs

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder for databases and job folders.")]
tokens_app = typer.Typer(help="API tokens: each is an identity for the HTTP API and MCP.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@app.command()
def serve(data: DataOpt = None) -> None:
    """Run the HTTP API (/v1), MCP (/mcp), signed links and job pages on STORYBOT_HTTP_HOST:PORT."""
    from graph.api import JobService, link_secret
    from service.app import serving

    settings = settings_for(data)
    if settings.database_url is not None:
        link_secret(settings)  # replicas must share it: one clear line when STORYBOT_LINK_SECRET is unset
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    redact_logs(settings)

    async def go() -> int:
        async with JobService.open(settings) as svc, serving(svc, settings) as port:
            err.print(f"storybot serving on http://{settings.http_host}:{port} (API docs at /docs)", markup=False)
            await asyncio.Event().wait()  # until Ctrl-C or SIGTERM: run_async cancels us
        return 0

    run_async(go())


@app.command()
def mcp(
    as_name: Annotated[str | None, typer.Option("--as", help="Act as this token's owner (default: local).")] = None,
    data: DataOpt = None,
) -> None:
    """MCP over stdio, for a desktop assistant: the same tools as /mcp, as the local identity."""
    from graph.api import JobService, Links, link_secret, links_storage
    from service.deps import Context
    from service.mcp_tools import mcp_server
    from service.tokens import LOCAL, Identity, TokenStore
    from service.webhooks import Webhooks

    settings = settings_for(data)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)  # stdout is the protocol
    redact_logs(settings)
    tokens = TokenStore.of(settings)
    if as_name is None:
        who = Identity(name=LOCAL, admin=True)  # the machine's own user, who can read data/ anyway
    elif (named := tokens.named(as_name)) is not None:
        who = named
    else:
        raise BadInput(f"no token named {as_name!r} (see `storybot tokens list`)")

    async def go() -> int:
        async with JobService.open(settings) as svc:
            links = Links(link_secret(settings), settings.public_url or "", settings.link_ttl, links_storage(settings))
            ctx = Context(svc, settings, tokens, links, Webhooks(svc, tokens, settings))
            ctx.webhooks.start()
            try:
                await mcp_server(ctx, who).run_stdio_async()
            finally:
                await ctx.webhooks.close()
        return 0

    run_async(go())


@tokens_app.command("create")
def tokens_create(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="May see and steer every job.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    data: DataOpt = None,
) -> None:
    """Make a token and print it once (only its hash is kept), with its webhook secret."""
    from service.tokens import TokenStore

    made = TokenStore.of(settings_for(data)).create(name, admin=admin)
    if as_json:
        print(json.dumps(made.model_dump()))
        return
    print(made.token)
    err.print(f"token {name!r} made; it is shown once. Webhooks of its jobs are signed with {made.webhook_secret}")


@tokens_app.command("list")
def tokens_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False, data: DataOpt = None
) -> None:
    """Live tokens: names, admin flag, when made and last used (never the token)."""
    from service.tokens import TokenStore

    rows = TokenStore.of(settings_for(data)).list()
    if as_json:
        print(json.dumps([r.model_dump() for r in rows]))
        return
    for r in rows:
        used = datetime.fromtimestamp(r.last_used, UTC).isoformat(timespec="seconds") if r.last_used else "never"
        made = datetime.fromtimestamp(r.created, UTC).date().isoformat()
        print(f"{r.name}{'  (admin)' if r.admin else ''}  made {made}  used {used}")


@tokens_app.command("revoke")
def tokens_revoke(name: str, data: DataOpt = None) -> None:
    """Revoke a token at once: its calls get 401, its jobs stay."""
    from service.tokens import TokenStore

    TokenStore.of(settings_for(data)).revoke(name)
    err.print(f"token {name!r} revoked", markup=False)
