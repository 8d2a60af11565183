"""The `storybot` command line: a thin front end over the media engine and (later) JobService.

Bad input exits with code 2 and one line on stderr; `--json` prints one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from tools.errors import BadInput, StorybotError
from tools.models import Aspect

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Turn a request or a script into a finished short video.")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"storybot: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def parse_aspect(value: str) -> Aspect:
    try:
        return Aspect(value)
    except ValueError:
        raise BadInput(f"unsupported aspect {value!r} (use 9:16, 16:9 or 1:1)") from None


@app.command()
def render(
    script: Annotated[Path, typer.Option(help="UTF-8 text file with the narration.")],
    images: Annotated[Path | None, typer.Option(help="Folder of images, one per shot, in name order.")] = None,
    clips: Annotated[Path | None, typer.Option(help="Folder of video clips, one per shot.")] = None,
    voice: Annotated[Path | None, typer.Option(help="A recorded narration to use instead of TTS.")] = None,
    music: Annotated[Path | None, typer.Option(help="Music to duck under the voice.")] = None,
    aspect: Annotated[str, typer.Option(help="9:16, 16:9 or 1:1.")] = "9:16",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    upload_limit: Annotated[int, typer.Option(help="Bytes; a smaller copy is made above it.")] = 10 * 2**20,
    as_json: Annotated[bool, typer.Option("--json", help="Print artifact paths as JSON.")] = False,
) -> None:
    """Render a video from a script (the media engine alone, no approvals)."""
    from tools.compose import VideoEncoding
    from tools.render import RenderOptions
    from tools.render import render as run_render
    from tools.settings import get_settings

    if images and clips:
        raise BadInput("give --images or --clips, not both")
    if upload_limit <= 0:
        raise BadInput("--upload-limit must be a positive number of bytes")
    settings = get_settings()
    opts = RenderOptions(script=script, images=images, clips=clips, voice=voice, music=music,
                         aspect=parse_aspect(aspect), out=out, upload_limit_bytes=upload_limit,
                         video=VideoEncoding(preset=settings.video_preset, crf=settings.video_crf),
                         concurrency=settings.media_concurrency)
    with err.status("rendering", spinner="dots") as status:
        artifacts = asyncio.run(run_render(opts, progress=lambda s: status.update(f"stage: {s}")))
    if as_json:
        print(json.dumps({"status": "done", "artifacts": artifacts.model_dump()}, ensure_ascii=False))
        return
    meta = json.loads(Path(artifacts.metadata).read_text(encoding="utf-8"))
    err.print(f"video: {meta['video']['duration']:.1f} s, {meta['loudness']['integrated_lufs']} LUFS, "
              f"{meta['video']['size_bytes'] / 2**20:.1f} MiB, {meta['total_seconds']:.1f} s to render",
              markup=False)
    if artifacts.discord_video:
        err.print(f"upload copy: {artifacts.discord_video}", markup=False)
    print(artifacts.final_video)


@app.callback()
def _root() -> None:
    """Turn a request or a script into a finished short video."""


def main() -> None:
    """Entry point: every bad input, Typer's own usage errors included, becomes one line and exit 2."""
    try:
        result = app(standalone_mode=False)
    except BadInput as exc:
        fail(str(exc))
    except StorybotError as exc:
        fail(str(exc), 1)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except Exception as exc:
        # Typer vendors its own click, so its usage errors are recognised by shape, not class.
        message = getattr(exc, "format_message", None)
        if getattr(exc, "exit_code", None) != 2 or not callable(message):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            err.print(message(), markup=False)
            sys.exit(2)
        fail(message())
    sys.exit(result if isinstance(result, int) else 0)
