"""The certificate a manifest is signed with: the user's (STORYBOT_C2PA_CERT / _KEY), else a local one.

The C2PA SDK refuses a self-signed leaf, so the local identity is a root CA made once under the data
folder and an ES256 signing certificate under it with what the SDK's verify-after-sign asks for
(KeyUsage digitalSignature, ExtendedKeyUsage emailProtection, SubjectKeyIdentifier and
AuthorityKeyIdentifier; facts checked in LAB_NOTES.md). Keys are written owner-only.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel

from tools.errors import BadInput
from tools.settings import Settings

FOLDER = "c2pa"  # under the data folder
LOCAL_NOTICE = "signed with storybot's local certificate (self-issued: readers show it as untrusted)"


class SigningIdentity(BaseModel):
    """A PEM chain (leaf first) and its PKCS#8 key; `local` when storybot issued it itself."""

    chain: bytes
    key: bytes
    local: bool


def signing_identity(settings: Settings) -> SigningIdentity:
    """The configured certificate and key, or the local identity (made on first use)."""
    cert, key = settings.c2pa_cert, settings.c2pa_key
    if cert is None and key is None:
        return local_identity(settings.data_dir / FOLDER)
    if cert is None or key is None:
        raise BadInput("STORYBOT_C2PA_CERT and STORYBOT_C2PA_KEY must be set together")
    try:
        return SigningIdentity(chain=cert.read_bytes(), key=key.read_bytes(), local=False)
    except OSError as exc:
        raise BadInput(f"cannot read the C2PA certificate or key: {exc.strerror or exc}") from None


def local_identity(folder: Path) -> SigningIdentity:
    """The root CA and signing certificate under `folder`, made once (0700 folder, 0600 keys)."""
    chain_path, key_path = folder / "signer.pem", folder / "signer.key"
    if not (chain_path.is_file() and key_path.is_file()):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        root_key, root = _root(folder)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _leaf(leaf_key, root_key, root)
        pem = serialization.Encoding.PEM
        _write_private(
            key_path, leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        _write_private(chain_path, leaf.public_bytes(pem) + root.public_bytes(pem))
    return SigningIdentity(chain=chain_path.read_bytes(), key=key_path.read_bytes(), local=True)


def _name(common: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "storybot"), x509.NameAttribute(NameOID.COMMON_NAME, common)]
    )


def _root(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The local root CA, kept (its key too) so every signing certificate chains to one root."""
    cert_path, key_path = folder / "root.pem", folder / "root.key"
    if cert_path.is_file() and key_path.is_file():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("storybot local root CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write_private(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(pem))
    return key, cert


def _leaf(
    key: ec.EllipticCurvePrivateKey, root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("storybot signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Owner-only from the first byte (no window where the key is world-readable), then renamed in."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
