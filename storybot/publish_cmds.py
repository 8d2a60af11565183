"""`storybot accounts add|list|remove` and `storybot publish`: the CLI over graph.publish.

Tokens are read from standard input or a hidden prompt, never from an option (shell history, `ps`),
and never printed; `accounts list` shows names, scopes and expiry only.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast, get_args

import typer
from pydantic import BaseModel

from storybot.app import app, err, run_async, settings_for
from storybot.job_cmds import DataOpt, JsonFlag, _job_id
from tools.errors import BadInput

if TYPE_CHECKING:
    from tools.publish import Outcome, Publication

accounts_app = typer.Typer(
    help="Link the YouTube, TikTok and Instagram accounts `publish` uploads to.", no_args_is_help=True
)
app.add_typer(accounts_app, name="accounts")


def _read_token(label: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.read().strip()
    return getpass.getpass(f"{label} access token (hidden): ").strip()


@accounts_app.command("add")
def accounts_add(
    platform: Annotated[str, typer.Argument(help="youtube, tiktok or instagram")],
    user_id: Annotated[str | None, typer.Option("--user-id", help="Instagram: the Instagram user id.")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="YouTube: the OAuth client id.")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="YouTube: print the address only.")] = False,
    wait: Annotated[float, typer.Option(help="YouTube: seconds to wait for the browser.")] = 300.0,
    data: DataOpt = None,
) -> None:
    """Link an account: YouTube's browser sign-in, or a pasted token (TikTok, Instagram) on stdin."""
    from tools.publish import accounts
    from tools.publish import platform as row_of

    row = row_of(platform)
    settings = settings_for(data)
    token = _read_token(row.label) if row.pasted_token else None
    if row.pasted_token and not token:
        raise BadInput(f"no {row.label} token was given on standard input; nothing was saved")

    async def go() -> int:
        import httpx

        from tools.publish.http import TIMEOUT

        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            account = await row.add_account(
                settings,
                client,
                lambda line: err.print(line, markup=False),
                token=token,
                user_id=user_id,
                client_id=client_id,
                open_browser=not no_browser,
                wait=wait,
            )
        where = accounts.save(settings.data_dir, account)
        err.print(f"linked {row.label} account {account.name!r} (saved owner-only in {where})", markup=False)
        return 0

    run_async(go())


class _Linked(BaseModel):
    platform: str
    name: str
    user_id: str | None
    scopes: list[str]
    expires: str
    source: str


@accounts_app.command("list")
def accounts_list(as_json: JsonFlag = False, data: DataOpt = None) -> None:
    """The linked accounts: platform, name, scopes, expiry (never a token)."""
    from tools.publish import PLATFORMS, accounts

    settings = settings_for(data)
    rows = []
    for row in PLATFORMS.values():
        account = row.env_account(settings) or accounts.load(settings.data_dir, row.name)
        if account is not None:
            rows.append(
                _Linked(
                    platform=row.name,
                    name=account.name,
                    user_id=account.user_id,
                    scopes=account.scopes,
                    expires=account.expiry(),
                    source="environment" if account.source == "env" else "accounts add",
                )
            )
    if as_json:
        print(json.dumps([r.model_dump() for r in rows], ensure_ascii=False))
        return
    if not rows:
        err.print("no accounts linked: `storybot accounts add youtube|tiktok|instagram`", markup=False)
    for r in rows:
        print(f"{r.platform:<10} {r.name}  scopes: {' '.join(r.scopes) or '-'}  token: {r.expires}  ({r.source})")


@accounts_app.command("remove")
def accounts_remove(
    platform: Annotated[str, typer.Argument(help="youtube, tiktok or instagram")], data: DataOpt = None
) -> None:
    """Forget a linked account (its file; variables in the environment stay yours to unset)."""
    from tools.publish import accounts
    from tools.publish import platform as row_of

    row = row_of(platform)
    settings = settings_for(data)
    removed = accounts.remove(settings.data_dir, row.name)
    if row.env_account(settings) is not None:
        err.print(f"{row.label}: an account is still set by the STORYBOT_ environment variables", markup=False)
    if not removed:
        raise BadInput(f"no {row.label} account was linked with `accounts add`")
    err.print(f"removed the {row.label} account", markup=False)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(f"--at {value!r} is not an ISO time (e.g. 2027-01-31T18:00:00Z)") from None
    if when.tzinfo is None:
        raise BadInput("--at needs a time zone (e.g. 2027-01-31T18:00:00Z)")
    return when


def _line(o: Outcome) -> str:
    if o.state == "done":
        again = ", published earlier" if o.already else ""
        if o.link is None:  # a SELF_ONLY TikTok post has no public id: its publish_id is the answer
            return f"{o.platform}: {o.remote_label} {o.remote_id} ({o.privacy}: no public link{again})"
        return f"{o.platform}: {o.link} ({o.privacy}{again})"
    if o.state == "refused":
        return f"{o.platform}: {o.error or 'refused'}"
    return f"{o.platform}: not finished ({o.state}): {o.error or 'run the same command to resume'}"


@app.command()
def publish(
    job_id: str,
    to: Annotated[str, typer.Option("--to", help="youtube, tiktok, instagram (comma-separated).")],
    privacy: Annotated[
        str | None, typer.Option(help="private, unlisted or public (default: private / SELF_ONLY).")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="YouTube: publish at this ISO time (stays private until).")
    ] = None,
    made_for_kids: Annotated[bool, typer.Option("--made-for-kids", help="YouTube: declare it made for kids.")] = False,
    title: Annotated[str | None, typer.Option(help="The title (default: the job's, cut to each site's limit).")] = None,
    description: Annotated[str | None, typer.Option(help="The description (default: the job's).")] = None,
    ai_label: Annotated[
        bool, typer.Option("--ai-label/--no-ai-label", help="The sites' AI-generated label (on unless turned off).")
    ] = True,
    inbox: Annotated[
        bool, typer.Option("--inbox", help="TikTok: send to the creator's inbox instead of posting.")
    ] = False,
    as_json: JsonFlag = False,
    data: DataOpt = None,
) -> None:
    """Publish a finished job's video; a killed upload resumes, a finished one is never repeated."""
    from graph.publish import publish_job
    from tools.publish import Choice, Privacy

    job = _job_id(job_id, data)
    if privacy is not None and privacy not in get_args(Privacy):
        raise BadInput(f"--privacy {privacy!r}: use private, unlisted or public")
    choice = Choice(
        title=title,
        description=description,
        privacy=cast("Privacy | None", privacy),  # checked against Privacy above
        publish_at=_when(at),
        made_for_kids=made_for_kids,
        ai_label=ai_label,
        inbox=inbox,
    )
    settings = settings_for(data)

    async def go() -> int:
        with err.status(f"publishing {job}", spinner="dots") as status:

            def progress(record: Publication) -> None:
                mb = 1024 * 1024
                held, total = record.confirmed_bytes / mb, record.total_bytes / mb
                status.update(f"{record.platform}: {record.state} {held:.1f} of {total:.1f} MB")

            outcomes = await publish_job(
                settings, job, to, choice, progress, lambda line: err.print(f"  ! {line}", markup=False)
            )
        failed = [o for o in outcomes if o.state != "done"]
        if as_json:
            print(json.dumps({"job_id": job, "publications": [o.model_dump() for o in outcomes]}, ensure_ascii=False))
        else:
            for o in outcomes:
                if o.state == "done":
                    print(_line(o))
        for o in failed:  # one line each, as every error of the CLI reads
            err.print(f"storybot: error: {_line(o)}", markup=False)
        return 1 if failed else 0

    code = run_async(go())
    if code:
        sys.exit(code)
