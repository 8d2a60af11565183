"""`storybot render`: the media engine end to end, from a script (and optional media) to a video.

Work happens in a hidden folder inside the output folder; artifacts are moved into place only
when every stage has succeeded, so a failed render leaves nothing half-written behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from tools import provenance, visuals
from tools.errors import BadInput
from tools.files import write_json_atomic, write_text_atomic
from tools.llm.usage import metered
from tools.media import compose, keyframes, motion, outdir, shots, subtitles, upload
from tools.media.finish import finish, finish_metadata, music_or_bed, signed_sizes
from tools.media.outputs import Artifacts, Metadata, StageMeta, SubtitleMeta, VisualMeta, VoiceMeta, collect_artifacts
from tools.media.probe import probe, require_audio_sample, require_clip_size, require_video_frame
from tools.models import Aspect, Shot
from tools.settings import Settings, get_settings
from tools.text import natural_key, read_script_file
from tools.tts import Chosen, VoiceRequest, get_voice, voice_for_audio
from tools.visuals import Choice
from tools.visuals.user import VIDEO_SUFFIXES

Progress = Callable[[str], None]


class RenderOptions(BaseModel):
    script: Path
    images: Path | None = None
    clips: Path | None = None
    voice: Path | None = None
    music: Path | None = None
    aspect: Aspect = Aspect.portrait
    out: Path
    upload_limit_bytes: int = upload.DEFAULT_LIMIT
    seed: int = 0
    voice_name: str | None = None  # a catalogue name; None: chosen by the script's language
    language: str | None = None
    video: compose.VideoEncoding = compose.VideoEncoding()
    title: str = ""  # shown on the first card only
    visuals: Choice = "auto"  # where pictures come from when no --images/--clips are given


def _require_audio(path: Path | None, what: str) -> None:
    if path is None:
        return
    outdir.require_regular_file(path, what)
    if probe(path).audio is None:
        raise BadInput(f"{path.name}: has no audio stream")
    require_audio_sample(path)


def list_clips(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BadInput(f"clips folder not found: {folder}")
    found = sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: natural_key(p.name)
    )
    clips = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES]
    if not clips:
        raise BadInput(f"no video clips in {folder}")
    for clip in clips:
        video = probe(clip).video
        if video is None:
            raise BadInput(f"{clip.name}: has no video stream")
        require_clip_size(clip, video)
        require_video_frame(clip)
    return clips


class _Stages:
    """Per-stage wall seconds, for metadata.json and the benchmark."""

    def __init__(self, progress: Progress | None) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


async def render(opts: RenderOptions, progress: Progress | None = None, chosen: Chosen | None = None) -> Artifacts:
    """Render a video into `opts.out`; raise BadInput (nothing written) when an input is unusable."""
    opts = absolute_paths(opts)
    outdir.check_out(opts.out, _inputs(opts))
    text = read_script_file(opts.script)
    _require_audio(opts.voice, "voice")
    _require_audio(opts.music, "music")
    images = keyframes.list_images(opts.images) if opts.images else None
    clips_in = list_clips(opts.clips) if opts.clips else None
    narrator = chosen if chosen is not None else await asyncio.to_thread(choose_voice, text, opts)

    created_out = not opts.out.exists()
    work = outdir.make_work_dir(opts.out)
    try:
        meta = await _render_into(work, text, opts, narrator, images, clips_in, _Stages(progress))
        return _publish(work, opts.out, meta)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created_out and not any(opts.out.iterdir()):
            opts.out.rmdir()
        raise


def choose_voice(text: str, opts: RenderOptions, settings: Settings | None = None) -> Chosen:
    """The narrating voice: the recording when one is given, else the named or best offline voice."""
    if opts.voice:
        return Chosen(voice_for_audio(opts.voice))
    return get_voice(settings or get_settings(), VoiceRequest(name=opts.voice_name, language=opts.language, text=text))


async def _pictures(
    plan: list[Shot], work: Path, opts: RenderOptions, images: list[Path] | None
) -> tuple[list[visuals.Visual], list[str]]:
    """Pictures (and footage) for every shot: the user's own pictures through the same `user` source
    as the graph's (a picture that does not decode is refused, naming it), else the chosen visual
    source (misses become cards)."""
    settings = get_settings()
    name = "user" if images else visuals.resolve(opts.visuals, settings)
    if name == "gpu":
        raise BadInput("--visuals gpu runs in `storybot make` (it needs the GPU workers); use cards, stock or images")
    briefs = [
        visuals.brief(
            s,
            s.prompt or s.text,
            settings.sdxl_negative_prompt,
            seed=opts.seed,
            title=opts.title or None,
            topic=opts.title or " ".join(shot.text for shot in plan),  # the script's own subject
        )
        for s in plan
    ]
    job = visuals.Job(aspect=opts.aspect, folder=work, shots=len(plan))
    with metered() as used:
        async with visuals.open_source(name, settings, visuals.Opening(user_files=images or [])) as source:
            if images:  # the user's own pictures: one that will not do is bad input, not a card
                answered = await source.make(briefs, job)
                if missed := [m for m in answered if isinstance(m, visuals.Miss)]:
                    raise BadInput(missed[0].reason)
                made = [v for v in answered if isinstance(v, visuals.Visual)]
            else:
                made = await visuals.make_visuals(source, briefs, job)
    visuals.write_records(work, [visuals.record(v, work) for v in made])
    if used:
        write_json_atomic(work / "usage.json", [{"provider": p, "unit": u, "amount": n} for (p, u), n in used.items()])
    return made, [v.notice for v in made if v.notice]


async def _media_of(made: list[visuals.Visual], plan: list[Shot]) -> list[motion.StillShot | motion.ClipShot]:
    """What every shot shows for the final cut: footage (lengths probed) or a still to move."""
    return [
        motion.ClipShot(sources=[await asyncio.to_thread(motion.clip_source, c) for c in v.clips])
        if v.clips
        else motion.StillShot(  # a card with icons: its landscape moves, its icons drift over it
            image=v.backdrop if v.backdrop and v.layer else v.keyframe,
            layer=v.layer if v.backdrop and v.layer else None,
            motion=s.motion,
        )
        for v, s in zip(made, plan, strict=True)
    ]


async def _render_into(
    work: Path,
    text: str,
    opts: RenderOptions,
    chosen: Chosen,
    images: list[Path] | None,
    clips_in: list[Path] | None,
    st: _Stages,
) -> Metadata:
    write_text_atomic(work / "script.txt", text + "\n")
    started = time.perf_counter()
    with st.stage("voice"):
        speech = await chosen.voice.synthesize(text, work / "voice.wav")
        write_json_atomic(work / "words.json", [w.model_dump() for w in speech.words])
    with st.stage("subtitles"):
        subs = subtitles.write_subtitles(text, speech.words, opts.aspect, work)
    with st.stage("plan_scenes"):
        count = len(images) if images else len(clips_in) if clips_in else None
        plan = shots.plan_shots(text, speech.words, speech.duration, count=count, seed=opts.seed)
        shots.write_shots(plan, work / "shots.json")
    cut = compose.plan_cut(plan)
    music = await music_or_bed(opts.music, work, cut.total, opts.seed)
    # audio analysis needs no pictures: run it while the clips are animated
    audio = asyncio.create_task(compose.prepare_audio(work / "voice.wav", music, cut.total))
    notices = [speech.notice] if speech.notice else []
    try:
        if clips_in:
            with st.stage("animate"):  # clips are fitted inside the final cut: only their lengths are read
                media: list[motion.StillShot | motion.ClipShot] = [
                    motion.ClipShot(sources=[await asyncio.to_thread(motion.clip_source, c)]) for c in clips_in
                ]
        else:
            with st.stage("keyframes"):
                made, missed = await _pictures(plan, work, opts, images)
                notices += missed
            with st.stage("animate"):  # footage is fitted and stills move inside the final cut
                media = await _media_of(made, plan)
        with st.stage("post_produce"):
            done = await finish(
                work,
                media,
                cut,
                work / "voice.wav",
                music,
                subs.ass,
                opts.aspect,
                opts.video,
                opts.upload_limit_bytes,
                mix=await audio,
            )
    finally:
        if not audio.done():
            audio.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await audio
    visual_records = visuals.read_records(work).values()
    sources = [r.source for r in visual_records] or ["user"] * len(plan)
    credits = [c for r in visual_records for c in r.credits]
    videos = [p for p in (done.final, done.discord) if p is not None]
    signed = await asyncio.to_thread(
        provenance.sign_finished, get_settings(), videos, speech.provider, sources, credits
    )
    done = signed_sizes(done)
    return Metadata(
        **dict(finish_metadata(done, opts.video, cut, opts.music is not None, opts.upload_limit_bytes)),
        voice=VoiceMeta.of(speech, chosen.voice, chosen.notice),
        aspect=opts.aspect.value,
        shots=len(plan),
        visuals=[VisualMeta.model_validate(r.model_dump()) for r in visual_records]
        or [VisualMeta(shot=s.index + 1, source="user") for s in plan],
        notices=notices,
        provenance=signed,
        subtitles=SubtitleMeta(cues=len(subs.cues), font_size=subs.font_size),
        stage_seconds=st.seconds,
        stages={name: StageMeta(runs=1, seconds=seconds) for name, seconds in st.seconds.items()},
        sources=[m.kind for m in media],
        total_seconds=round(time.perf_counter() - started, 3),
    )


def absolute_paths(opts: RenderOptions) -> RenderOptions:
    """Every path absolute: a relative name such as `-dash` never reaches FFmpeg as an option."""
    fields = ("script", "images", "clips", "voice", "music", "out")
    return opts.model_copy(update={f: getattr(opts, f).absolute() for f in fields if getattr(opts, f)})


def _inputs(opts: RenderOptions) -> dict[str, Path]:
    named = {
        "--script": opts.script,
        "--images": opts.images,
        "--clips": opts.clips,
        "--voice": opts.voice,
        "--music": opts.music,
    }
    return {name: path for name, path in named.items() if path is not None}


def _publish(work: Path, out: Path, meta: Metadata) -> Artifacts:
    """Move finished artifacts from the work folder into `out`, then write metadata.json last."""
    for name in outdir.ARTIFACT_DIRS:
        if (work / name).is_dir():
            shutil.rmtree(out / name, ignore_errors=True)
            (work / name).replace(out / name)
    for name in outdir.ARTIFACT_FILES:
        if (work / name).exists():
            (work / name).replace(out / name)
        else:  # a file an earlier render here wrote and this one did not (e.g. credits of stock media)
            (out / name).unlink(missing_ok=True)
    meta.write(out / "metadata.json")
    shutil.rmtree(work, ignore_errors=True)
    return collect_artifacts(out)
