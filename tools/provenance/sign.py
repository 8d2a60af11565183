"""Signing a finished MP4 with its manifest, as the last write to it.

c2pa embeds one `uuid` box after `ftyp` and hashes the rest of the file (a BMFF hash), so `moov` stays
before `mdat` (faststart) and the streams are untouched; any rewrite afterwards breaks that hash, so
nothing may touch the file after `sign_video`. The signed file replaces the original atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import c2pa

from tools.errors import MediaError
from tools.provenance.certs import LOCAL_NOTICE, SigningIdentity, signing_identity
from tools.provenance.manifest import Ingredient, Provenance, ProvenanceMeta, manifest_json, source_type
from tools.settings import Settings
from tools.visuals.base import Credit

MIME = "video/mp4"


def sign_video(path: Path, provenance: Provenance, identity: SigningIdentity) -> None:
    """Embed a signed manifest in `path` (replaced atomically; on failure the file is left as it was)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-c2pa.tmp{path.suffix}")
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity.chain, identity.key, None)
    try:
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(manifest_json(provenance)) as builder,
            path.open("rb") as src,
            tmp.open("wb") as dst,
        ):
            builder.sign(signer, MIME, src, dst)
        os.replace(tmp, path)
    except c2pa.C2paError as exc:
        raise MediaError(f"could not sign {path.name} with its C2PA manifest: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(path: Path) -> dict[str, Any]:
    """The file's manifest store as c2pa's Reader reports it (with `validation_state`)."""
    with c2pa.Reader(str(path)) as reader:
        store: dict[str, Any] = json.loads(reader.json())
        store["validation_state"] = reader.get_validation_state()
    return store


def sign_outputs(videos: list[Path], provenance: Provenance, identity: SigningIdentity) -> None:
    """Sign the master and its upload copy (each titled by its own name), the last write to either."""
    for video in videos:
        sign_video(video, provenance.model_copy(update={"title": video.name}), identity)


def sign_finished(
    settings: Settings, videos: list[Path], voice: str, visuals: list[str], credits: list[Credit]
) -> ProvenanceMeta:
    """Sign a finished job's or render's videos (what `render` and the post_produce stage share)."""
    identity = signing_identity(settings)
    made = Provenance(
        title=videos[0].name if videos else "",
        source_type=source_type(visuals, voice),
        voice=voice,
        visuals=visuals,
        ingredients=[Ingredient(title=f"{c.source} {c.id} by {c.author}", url=c.url, author=c.author) for c in credits],
    )
    sign_outputs(videos, made, identity)
    return ProvenanceMeta(
        signed=[v.name for v in videos],
        source_type=made.source_type,
        signer="local (self-issued)" if identity.local else "STORYBOT_C2PA_CERT",
        notice=LOCAL_NOTICE if identity.local else None,
    )
