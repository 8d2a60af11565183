"""`make`, `resume`, `answer`, `status`, `jobs`: the headless front end over JobService."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from storybot.app import app, err, parse_aspect, run_async, settings_for
from tools.errors import BadInput
from tools.text import read_script_file

if TYPE_CHECKING:
    from graph.events import Event
    from graph.service import JobRecord, JobService, Requester

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
YesFlag = Annotated[bool, typer.Option("--yes", help="Approve every approval automatically.")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder for databases and job folders.")]
EXIT = {"done": 0, "waiting": 0, "cancelled": 0, "failed": 1}


def _me() -> Requester:
    from graph.service import Requester

    return Requester(id=f"cli:{getpass.getuser()}", name=getpass.getuser())


def _job_id(value: str, data: Path | None) -> str:
    """A well-formed id of a job that can exist, checked before any database is opened (or created)."""
    from graph.store import valid_job_id

    job_id = value.strip().lower()
    if not valid_job_id(job_id):
        raise BadInput(f"unknown job id {value!r}: not a job id (job ids are 12 hexadecimal characters)")
    settings = settings_for(data)
    if settings.database_url is None and not (settings.data_dir / "jobs.sqlite").is_file():
        raise BadInput(f"unknown job id: {job_id!r} (there are no jobs yet)")
    return job_id


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _show(event: Event) -> None:
    if event.kind == "stage_finished":
        err.print(f"  ✓ {event.stage} ({event.message})", markup=False)
    elif event.kind == "notice":
        err.print(f"  ! {event.message}", markup=False)
    elif event.kind == "failed":
        err.print(f"  ✗ failed: {event.message}", markup=False)


async def _follow(svc: JobService, job_id: str, events: Any, as_json: bool) -> int:
    """Show progress until the job stops here, then report it; returns the exit code."""
    with err.status(f"job {job_id}", spinner="dots") as status:
        async for event in events:
            if event.kind in ("stage_started", "progress"):
                pct = f" {event.percent:.0f}%" if event.percent is not None else ""
                status.update(f"job {job_id}: {event.stage}{pct}")
            _show(event)
    return _report(svc, await svc.wait(job_id), as_json)


def _report(svc: JobService, record: JobRecord, as_json: bool) -> int:
    from graph.api import artifact_locations

    artifacts = artifact_locations(svc.settings, record.job_id, record.result)
    if as_json or record.status in ("queued", "running"):  # --detach
        approval = record.approval.model_dump(mode="json") if record.approval else None
        print(
            json.dumps(
                {
                    "job_id": record.job_id,
                    "status": record.status,
                    "waiting_for": record.waiting_for,
                    "approval": approval,
                    "error": record.error,
                    "artifacts": artifacts,
                },
                ensure_ascii=False,
            )
        )
        return EXIT.get(record.status, 0)
    if record.status == "waiting":
        _print_approval(record)
    elif record.status == "done":
        err.print(f"job {record.job_id} done", markup=False)
        print(artifacts.get("final_video") or "")
    elif record.status == "failed":
        err.print(
            f"job {record.job_id} failed: {record.error}. Try again with: storybot resume {record.job_id}", markup=False
        )
    else:
        err.print(f"job {record.job_id} {record.status}", markup=False)
    return EXIT[record.status]


def _print_approval(record: JobRecord) -> None:
    from graph.state import IdeaApproval, KeyframeApproval, ScriptApproval

    shown = record.approval
    if shown is None:
        print(f"job {record.job_id} is waiting for {record.waiting_for}")
        return
    out = [f"job {record.job_id} is waiting: {shown.question()}"]
    if isinstance(shown, ScriptApproval):
        out += [f"note: {shown.writer_notice}"] if shown.writer_notice else []
        out += ["", shown.script, ""]
    elif isinstance(shown, IdeaApproval):
        out += [f"  {n}. {idea.title}: {idea.logline}" for n, idea in enumerate(shown.ideas, start=1)]
    elif isinstance(shown, KeyframeApproval):
        out += [f"  {path}" for path in shown.keyframes]
    out.append("answer with:")
    out += [f"  storybot answer {record.job_id} {a}" for a in shown.hints()]
    print("\n".join(out))


def _run(coro: Any) -> None:
    code = run_async(coro)
    if code:
        sys.exit(code)


@app.command()
def make(
    prompt: Annotated[str, typer.Argument(help="What the video should be about (optional with --ideas).")] = "",
    script: Annotated[Path | None, typer.Option(help="Your own script (skips ideas and writing).")] = None,
    duration: Annotated[float, typer.Option(help="Target length in seconds (5 to 180).")] = 45.0,
    aspect: Annotated[str, typer.Option(help="9:16, 16:9 or 1:1.")] = "9:16",
    voice: Annotated[str | None, typer.Option(help="Voice name, provider:id (see `storybot voices`).")] = None,
    language: Annotated[
        str | None, typer.Option(help="The script's language (en, es, ja...); default: detected.")
    ] = None,
    ideas: Annotated[
        bool,
        typer.Option(
            "--ideas",
            help="Collect and score ideas to pick from first (from the prompt, or the configured sources without one).",
        ),
    ] = False,
    visuals: Annotated[str, typer.Option(help="Pictures from: cards, stock, images, gpu or auto.")] = "auto",
    yes: YesFlag = False,
    as_json: JsonFlag = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="With a database URL: print the job id at once, leave it to the runners.")
    ] = False,
    data: DataOpt = None,
) -> None:
    """Make a video from a prompt (the prompt is the idea); stops at the first approval unless --yes."""
    from graph.state import JobRequest
    from tools.tts import VoiceRequest, get_voice
    from tools.visuals import parse_choice, resolve

    settings = settings_for(data)
    choice = parse_choice(visuals)
    resolve(choice, settings)  # an unconfigured source is bad input before any job exists
    request = JobRequest(
        prompt=prompt,
        script_text=read_script_file(script) if script else None,
        duration=duration,
        aspect=parse_aspect(aspect),
        voice=voice,
        language=language,
        ideas=ideas,
        visuals=choice,
    )
    chosen = get_voice(
        settings, VoiceRequest(name=voice, language=language, text=request.script_text or request.prompt)
    )
    if chosen.notice:
        err.print(chosen.notice, markup=False)
    if not as_json:
        err.print(f"voice: {chosen.voice.name}", markup=False)

    async def go() -> int:
        from graph.service import JobService

        async with JobService.open(settings) as svc:
            if detach and svc.steps is None:
                raise BadInput("--detach needs STORYBOT_DATABASE_URL and runners: here the job runs in this process")
            job_id = await svc.start(request, _me(), auto_approve=yes)
            if detach:
                return _report(svc, svc.get(job_id), as_json=True)
            return await _follow(svc, job_id, svc.events(job_id, after=0), as_json)

    _run(go())


@app.command()
def resume(job_id: str, yes: YesFlag = False, as_json: JsonFlag = False, data: DataOpt = None) -> None:
    """Continue a job that stopped (killed, failed, or waiting: with --yes, approve and go on)."""
    job_id = _job_id(job_id, data)

    async def go() -> int:
        from graph.service import JobService

        async with JobService.open(settings_for(data)) as svc:
            record = svc.get(job_id)
            if record.status == "waiting" and not yes:
                return _report(svc, record, as_json)
            events = svc.events(job_id)
            await svc.resume(job_id, _me(), auto_approve=yes)
            return await _follow(svc, job_id, events, as_json)

    _run(go())


def _reply(action: str, arg: str | None) -> tuple[str, str | None]:
    """`storybot answer` as a chat reply: the words as text, `replace FILE` as an attached script."""
    if action.lower() == "replace":
        if not arg:
            raise BadInput("answer replace needs FILE")
        return "", read_script_file(Path(arg), "replacement script")
    return " ".join(w for w in (action, arg) if w), None


@app.command()
def answer(
    job_id: str,
    action: Annotated[
        str,
        typer.Argument(
            help="approve | pick N | revise NOTE | longer | shorter | replace FILE | "
            "regenerate | reroll N[,M] | cancel (or N, or a note)"
        ),
    ],
    arg: Annotated[str | None, typer.Argument(help="The note, file, or numbers the action needs.")] = None,
    yes: YesFlag = False,
    as_json: JsonFlag = False,
    data: DataOpt = None,
) -> None:
    """Answer the approval a job is waiting for, then carry on (the same rules as a reply in Discord)."""
    job_id = _job_id(job_id, data)
    text, attachment = _reply(action, arg)

    async def go() -> int:
        from graph.service import JobService

        async with JobService.open(settings_for(data)) as svc:
            record = svc.get(job_id)
            if record.status != "waiting" or record.approval is None:
                raise svc.not_waiting(record)
            reply = record.approval.parse(text, attachment)
            events = svc.events(job_id)
            await svc.answer(job_id, _me(), reply, auto_approve=yes)
            return await _follow(svc, job_id, events, as_json)

    _run(go())


@app.command()
def status(job_id: str, as_json: JsonFlag = False, data: DataOpt = None) -> None:
    """A job's status and its stages in graph order."""
    job_id = _job_id(job_id, data)

    async def go() -> int:
        from graph.api import artifact_locations
        from graph.service import JobService

        settings = settings_for(data)
        async with JobService.open(settings) as svc:
            st = svc.status(job_id)
            place = svc.queue_position(job_id)
        job = st.job
        if as_json:
            print(
                json.dumps(
                    {
                        "job_id": job.job_id,
                        "status": job.status,
                        "stage": job.stage,
                        "waiting_for": job.waiting_for,
                        "created": _iso(job.created),
                        "prompt": job.prompt,
                        "error": job.error,
                        "artifacts": artifact_locations(settings, job.job_id, job.result),
                        "max_loop_lag_ms": job.max_loop_lag_ms,
                        "runner": {"host": job.runner_host, "pid": job.runner_pid} if job.runner_pid else None,
                        "stages": [
                            s.model_dump(include={"name", "status", "runs", "seconds", "provider"}) for s in st.stages
                        ],
                        "usage": st.usage,  # {provider: {unit: amount}}: tokens, characters
                        "queue_position": place,  # 1: the next to run; null: not waiting in the queue
                    },
                    ensure_ascii=False,
                )
            )
            return 0
        waits = f" (position {place} in the queue)" if place else ""
        print(f"{job.job_id}  {job.status}{waits}  {job.prompt}")
        for s in st.stages:
            print(f"  {s.name:<18} {s.status:<8} runs {s.runs}  {s.seconds:6.2f} s  {s.provider or ''}")
        return 0

    _run(go())


@app.command()
def jobs(as_json: JsonFlag = False, data: DataOpt = None) -> None:
    """Jobs, newest first."""

    async def go() -> int:
        from graph.service import JobService

        async with JobService.open(settings_for(data)) as svc:
            records = svc.jobs()
        rows = [
            {"job_id": r.job_id, "status": r.status, "stage": r.stage, "created": _iso(r.created), "prompt": r.prompt}
            for r in records
        ]
        if as_json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            for row in rows:
                print(f"{row['job_id']}  {row['created']}  {row['status']:<9} {row['stage'] or '':<18} {row['prompt']}")
        return 0

    _run(go())
