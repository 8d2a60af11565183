"""`storybot render`: the media engine alone, no approvals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from storybot.app import app, err, parse_aspect, run_async
from tools.errors import BadInput
from tools.media.compose import VideoEncoding
from tools.media.outputs import read_metadata
from tools.render import RenderOptions, choose_voice, render
from tools.settings import get_settings
from tools.text import read_script_file
from tools.visuals import parse_choice, resolve


@app.command("render")
def render_command(
    script: Annotated[Path, typer.Option(help="UTF-8 text file with the narration.")],
    images: Annotated[Path | None, typer.Option(help="Folder of images, one per shot, in name order.")] = None,
    clips: Annotated[Path | None, typer.Option(help="Folder of video clips, one per shot.")] = None,
    voice: Annotated[
        str | None, typer.Option(help="A voice name (provider:id, see `storybot voices`) or a recorded narration file.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="The script's language (en, es, ja...); default: detected.")
    ] = None,
    music: Annotated[Path | None, typer.Option(help="Music to duck under the voice.")] = None,
    aspect: Annotated[str, typer.Option(help="9:16, 16:9 or 1:1.")] = "9:16",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    visuals: Annotated[
        str, typer.Option(help="cards, stock, images, gpu or auto (without --images/--clips).")
    ] = "auto",
    upload_limit: Annotated[int, typer.Option(help="Bytes; a smaller copy is made above it.")] = 10 * 2**20,
    as_json: Annotated[bool, typer.Option("--json", help="Print artifact paths as JSON.")] = False,
) -> None:
    """Render a video from a script (the media engine alone, no approvals)."""
    if images and clips:
        raise BadInput("give --images or --clips, not both")
    if upload_limit <= 0:
        raise BadInput("--upload-limit must be a positive number of bytes")
    settings = get_settings()
    choice = parse_choice(visuals)
    resolve(choice, settings)  # refuses an unconfigured source before anything is written
    recording = (
        Path(voice)
        if voice and (Path(voice).is_file() or (":" not in voice and ("/" in voice or Path(voice).suffix)))
        else None
    )
    opts = RenderOptions(
        script=script,
        images=images,
        clips=clips,
        voice=recording,
        music=music,
        voice_name=None if recording else voice,
        language=language,
        aspect=parse_aspect(aspect),
        out=out,
        upload_limit_bytes=upload_limit,
        video=VideoEncoding(preset=settings.video_preset, crf=settings.video_crf),
        visuals=choice,
    )
    chosen = choose_voice(read_script_file(script), opts, settings) if recording is None else None
    if chosen and chosen.notice:
        err.print(chosen.notice, markup=False)
    with err.status("rendering", spinner="dots") as status:
        artifacts = run_async(render(opts, progress=lambda s: status.update(f"stage: {s}"), chosen=chosen))
    if as_json:
        print(json.dumps({"status": "done", "artifacts": artifacts.model_dump()}, ensure_ascii=False))
        return
    meta = read_metadata(Path(artifacts.metadata))
    err.print(f"voice: {meta.voice.name} ({meta.voice.provider})", markup=False)
    err.print(
        f"video: {meta.video.duration:.1f} s, {meta.loudness.integrated_lufs} LUFS, "
        f"{meta.video.size_bytes / 2**20:.1f} MiB, {meta.total_seconds or 0:.1f} s to render",
        markup=False,
    )
    if artifacts.discord_video:
        err.print(f"upload copy: {artifacts.discord_video}", markup=False)
    print(artifacts.final_video)
