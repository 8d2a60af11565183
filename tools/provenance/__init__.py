"""C2PA provenance for finished videos: what made them, signed into the file itself (`sign_video`)."""

from tools.provenance.certs import LOCAL_NOTICE, SigningIdentity, local_identity, signing_identity
from tools.provenance.manifest import Ingredient, Provenance, ProvenanceMeta, source_type
from tools.provenance.sign import read_manifest, sign_finished, sign_outputs, sign_video

__all__ = [
    "LOCAL_NOTICE",
    "Ingredient",
    "Provenance",
    "ProvenanceMeta",
    "SigningIdentity",
    "local_identity",
    "read_manifest",
    "sign_finished",
    "sign_outputs",
    "sign_video",
    "signing_identity",
    "source_type",
]
