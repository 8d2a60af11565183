"""The Typer app and the few helpers every command shares."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from tools.errors import BadInput
from tools.models import Aspect
from tools.settings import Settings, get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Turn a request or a script into a finished short video.",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, with SIGTERM taking Ctrl-C's path: the command is cancelled (JobService records
    a job it was running as interrupted and resumable, `render` removes its work folder), then
    KeyboardInterrupt: one line and exit 130, never a silent -15."""

    async def interruptible() -> T:
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert task is not None
        stopped = False

        def stop() -> None:
            nonlocal stopped
            stopped = True
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await work
        except asyncio.CancelledError:
            if stopped:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(interruptible())


@contextlib.contextmanager
def download_bars() -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars on stderr for downloads: yields `show(file, done, total)`, one bar per file."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err) as bar:
        tasks: dict[str, TaskID] = {}

        def show(file: str, done: int, total: int) -> None:
            if file not in tasks:
                tasks[file] = bar.add_task(file, total=total)
            bar.update(tasks[file], completed=done)

        yield show


def parse_aspect(value: str) -> Aspect:
    try:
        return Aspect(value)
    except ValueError:
        raise BadInput(f"unsupported aspect {value!r} (use 9:16, 16:9 or 1:1)") from None


def settings_for(data: Path | None) -> Settings:
    """`--data DIR` moves every database and job folder; otherwise STORYBOT_DATA_DIR or ./data."""
    if data is None:
        return get_settings()
    return get_settings().model_copy(update={"data_dir": data.resolve()})
