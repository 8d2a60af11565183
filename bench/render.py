"""Benchmark: a 60 s, 8-shot 9:16 render against one FFmpeg graph doing the same work.

Case `clips` (default): eight textured (noisy, hard to compress) 1080x1920 clips of mixed frame
rates, a 60 s voice, a music bed and the default 10 MiB upload limit, so the Discord copy is made
too. Case `cards`: the offline defaults (art cards with Ken Burns). Case `stock`: the same eight
clips found through `--visuals stock`, served by a local server speaking the Pexels protocol at
`--mbps` megabytes a second; it also times a plain download of the same files from that server, so
the fetching overhead (searching, checking, keyframes) is what the keyframes stage took beyond it.
After our render, the bench builds the reference: one FFmpeg command at `veryfast` that fits the
same media (cover-crop, 30 fps, trim, hold a short clip's last frame; zoompan for stills),
cross-fades with a plain xfade chain, burns the same subtitles, ducks the music and normalises
loudness in one pass, into a master only. It prints our seconds per stage, both wall times and
FFmpeg CPU times, and the ratios (target: ours <= 1.5x).

    .venv/bin/python bench/render.py [--case clips|cards|stock] [--media DIR] [--keep DIR] [--mbps 40]

`--media DIR` keeps the generated clips there and reuses them on the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

from tools.assets import FONTS_DIR
from tools.media.compose import TAIL, VideoEncoding, mp4_args, plan_cut
from tools.media.ffmpeg import escape_filter_value, run_ffmpeg
from tools.media.motion import FPS, ken_burns_filter
from tools.media.music import synth_bed
from tools.media.shots import read_shots
from tools.models import Aspect
from tools.render import RenderOptions, render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' local HTTP server
from tests.local_http import Reply, Request, local_server

HERE = Path(__file__).resolve().parent
CLIP_SECONDS = 9.0
CLIP_RATES = [30, 25, 60, 30, 24, 30, 50, 30]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def make_clips(folder: Path) -> list[Path]:
    """Eight 1080x1920 clips: a fine random texture drifting across the frame, with film grain."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, rate in enumerate(CLIP_RATES):
        clip = folder / f"clip{i + 1}.mp4"
        clips.append(clip)
        if clip.exists():
            continue
        texture = folder / f".texture{i}.png"
        rng = np.random.default_rng(i)
        noise = (rng.random((2400 // 4, 1400 // 4, 3)) * 255).astype(np.uint8)
        Image.fromarray(noise).resize((1400, 2400), Image.Resampling.BICUBIC).save(texture)
        await run_ffmpeg(
            [
                "-v",
                "error",
                "-loop",
                "1",
                "-framerate",
                str(rate),
                "-i",
                texture,
                "-vf",
                f"crop=1080:1920:x='160+150*sin(t/3+{i})':y='240+25*t',noise=alls=4:allf=t,format=yuv420p",
                "-t",
                str(CLIP_SECONDS),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "23",
                "-r",
                str(rate),
                clip,
            ]
        )
        texture.unlink()
    return clips


def reference_command(
    out: Path, media: list[Path], stills: bool, voice: Path, music: Path, ass: Path, aspect: Aspect
) -> list[str | Path]:
    """The one-graph reference: its filters built here independently of tools.media.compose, its encoder ours."""
    plan = read_shots(out / "shots.json")
    cut = plan_cut(plan)
    w, h = aspect.size
    t = cut.transition_frames / FPS
    inputs: list[str | Path] = []
    parts = []
    for i, (src, frames) in enumerate(zip(media, cut.clip_frames, strict=True)):
        if stills:
            inputs += ["-i", src]
            parts.append(f"[{i}:v]{ken_burns_filter(plan[i].motion, frames, aspect)},settb=AVTB[v{i}]")
        else:
            inputs += ["-t", f"{frames / FPS + 0.25:.3f}", "-i", src]
            parts.append(
                f"[{i}:v]fps={FPS},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},"
                f"setsar=1,format=yuv420p,tpad=stop_mode=clone:stop={frames},trim=end_frame={frames},"
                f"setpts=PTS-STARTPTS,settb=AVTB[v{i}]"
            )
    last, offset = "[v0]", 0.0
    for i in range(1, len(media)):
        offset += cut.clip_frames[i - 1] / FPS - t
        parts.append(f"{last}[v{i}]xfade=transition=fade:duration={t:.4f}:offset={offset:.4f}[x{i}]")
        last = f"[x{i}]"
    parts.append(
        f"{last}ass=filename={escape_filter_value(str(ass))}:"
        f"fontsdir={escape_filter_value(str(FONTS_DIR))},format=yuv420p[vout]"
    )
    n = len(media)
    fmt = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
    parts += [
        f"[{n}:a]{fmt},apad=whole_dur={cut.total},asplit=2[voice][key]",
        f"[{n + 1}:a]{fmt},atrim=0:{cut.total},volume=-18dB[bed]",
        "[bed][key]sidechaincompress=threshold=0.02:ratio=6[ducked]",
        "[voice][ducked]amix=inputs=2:duration=first:normalize=0,loudnorm=I=-14:TP=-2:LRA=11,aresample=48000[aout]",
    ]
    return [
        "-v",
        "error",
        *inputs,
        "-i",
        voice,
        "-stream_loop",
        "-1",
        "-i",
        music,
        "-filter_complex",
        ";".join(parts),
        "-map",
        "[vout]",
        "-map",
        "[aout]",
        *mp4_args(cut, VideoEncoding()),
        out / "reference.mp4",
    ]


class StockServer:
    """Pexels' video search answering every query with the eight clips, files sent at `mbps` MB/s."""

    def __init__(self, clips: list[Path], mbps: float) -> None:
        self.clips, self.mbps, self.base = clips, mbps, ""

    def handle(self, req: Request) -> Reply:
        path = urlsplit(req.path).path
        if path.startswith("/files/"):
            clip = next(c for c in self.clips if c.name == path.removeprefix("/files/"))
            size = clip.stat().st_size
            return Reply(200, self._throttled(clip), {"Content-Type": "video/mp4", "Content-Length": str(size)})
        if path == "/videos/search":
            videos = [
                {
                    "id": n + 1,
                    "url": f"https://www.pexels.com/video/{n + 1}/",
                    "width": 1080,
                    "height": 1920,
                    "duration": CLIP_SECONDS,
                    "user": {"name": f"author {n + 1}", "url": ""},
                    "video_files": [
                        {"link": f"{self.base}/files/{c.name}", "file_type": "video/mp4", "width": 1080, "height": 1920}
                    ],
                }
                for n, c in enumerate(self.clips)
            ]
            return Reply.json({"page": 1, "per_page": 15, "total_results": len(videos), "videos": videos})
        return Reply.json({"page": 1, "per_page": 15, "total_results": 0, "photos": []})

    def _throttled(self, clip: Path) -> Iterator[bytes]:
        chunk = 256 * 1024
        start = time.perf_counter()
        with clip.open("rb") as f:
            sent = 0
            while block := f.read(chunk):
                yield block
                sent += len(block)
                time.sleep(max(0.0, sent / (self.mbps * 1e6) - (time.perf_counter() - start)))


def plain_download(base: str, clips: list[Path], folder: Path) -> float:
    """Seconds to fetch the clips one after another with nothing else done: the download time."""
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for clip in clips:
            with client.stream("GET", f"{base}/files/{clip.name}") as r, (folder / clip.name).open("wb") as f:
                for block in r.iter_bytes():
                    f.write(block)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["clips", "cards", "stock"], default="clips")
    parser.add_argument("--mbps", type=float, default=40.0, help="stock case: download speed, MB/s")
    parser.add_argument("--media", type=Path, help="keep the generated clips here and reuse them")
    parser.add_argument("--keep", type=Path, help="render into this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        out = args.keep or root / "out"
        clips = asyncio.run(make_clips(args.media or root / "clips")) if args.case != "cards" else None
        download = None
        if args.case == "stock" and clips:
            stock = StockServer(clips, args.mbps)
            stock.base = stack.enter_context(local_server(stock.handle)).url
            download = plain_download(stock.base, clips, root / "downloaded")
            data = str(root / "data")
            os.environ.update(PEXELS_API_KEY="bench-key", PEXELS_BASE_URL=stock.base, STORYBOT_DATA_DIR=data)
        music = root / "music.wav"
        synth_bed(65.0, music, seed=3)
        cpu0, start = _children_cpu(), time.perf_counter()
        artifacts = asyncio.run(
            render(
                RenderOptions(
                    script=HERE / "story60.txt",
                    out=out,
                    music=music,
                    clips=clips[0].parent if clips and args.case == "clips" else None,
                    visuals="stock" if args.case == "stock" else "auto",
                )
            )
        )
        ours, ours_cpu = time.perf_counter() - start, _children_cpu() - cpu0
        meta = json.loads(Path(artifacts.metadata).read_text())
        media = clips or [Path(k) for k in artifacts.keyframes]
        if args.case == "stock":
            if meta["sources"] != ["clip"] * len(media):  # every shot must get its own clip
                raise SystemExit(f"stock: not every shot got footage: {meta['sources']} {meta['notices']}")
            media = media[: meta["shots"]]
        cmd = reference_command(
            out, media, clips is None, Path(artifacts.voice), music, Path(artifacts.subtitles_ass), Aspect.portrait
        )
        cpu0, start = _children_cpu(), time.perf_counter()
        asyncio.run(run_ffmpeg(cmd))
        ref, ref_cpu = time.perf_counter() - start, _children_cpu() - cpu0
        ref_mib = (out / "reference.mp4").stat().st_size / 2**20
    video = meta["video"]["duration"]
    discord = meta["discord"]
    print(
        f"case {args.case}: {video:.1f} s video (voice {meta['voice']['duration']:.1f} s + {TAIL} s tail), "
        f"{meta['shots']} shots, master {meta['video']['size_bytes'] / 2**20:.1f} MiB "
        f"(predicted {meta['predicted_master_bytes'] / 2**20:.1f}), "
        f"{meta['loudness']['integrated_lufs']} LUFS, {meta['loudness']['true_peak_dbtp']} dBTP"
    )
    if discord:
        how = "same run" if discord["same_run"] else f"re-encoded, attempt {discord['attempts']}"
        print(
            f"discord copy: {discord['size_bytes'] / 2**20:.2f} MiB at {discord['video_kbps']} kb/s, "
            f"{discord['width']}x{discord['height']} ({how}); limit {meta['upload_limit_bytes'] / 2**20:.0f} MiB"
        )
    else:
        print("discord copy: none needed")
    for name, seconds in meta["stage_seconds"].items():
        print(f"  {name:<14} {seconds:7.2f} s")
    for name, seconds in meta["post_produce_seconds"].items():
        print(f"    {name:<12} {seconds:7.2f} s")
    print(f"ours:      {ours:6.1f} s wall, {ours_cpu:6.1f} s FFmpeg CPU (whole render, Discord copy included)")
    print(
        f"reference: {ref:6.1f} s wall, {ref_cpu:6.1f} s FFmpeg CPU (one graph, veryfast, master only, "
        f"{ref_mib:.1f} MiB)"
    )
    print(f"ratio:     {ours / ref:.2f}x wall, {ours_cpu / ref_cpu:.2f}x CPU (target <= 1.5x)")
    if download is not None:
        fetch = meta["stage_seconds"]["keyframes"]
        shots = meta["shots"]
        print(
            f"stock:     keyframes stage {fetch:.1f} s ({fetch / shots:.2f} s per shot) against a plain download of "
            f"the same {len(clips or [])} files in {download:.1f} s at {args.mbps:g} MB/s: fetching added "
            f"{fetch - download:+.1f} s; without the download, {(ours - fetch) / ref:.2f}x the reference"
        )


if __name__ == "__main__":
    main()
