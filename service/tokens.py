"""API tokens: who is calling the service. A token is an identity; only its hash is stored.

`storybot tokens create NAME` prints the token once. Each token also owns a webhook secret
(`whsec_...`, the Standard Webhooks form) that signs every webhook of its jobs, so a receiver can
check that a call came from us. The table lives in `service.sqlite` under the data folder,
readable by its owner only (it holds the webhook secrets).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

import sqlite_utils
from pydantic import BaseModel, SecretStr

from graph.api import BadInput, Requester

TOKEN_PREFIX = "sbt_"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
LOCAL = "local"  # the identity of `storybot mcp` over stdio: the machine's own user


class Identity(BaseModel):
    """A token's owner, as the job service sees it."""

    name: str
    admin: bool = False
    webhook_secret: SecretStr | None = None

    @property
    def requester(self) -> Requester:
        return Requester(id=f"token:{self.name}", name=self.name, approver=self.admin)


class TokenInfo(BaseModel):
    """What `tokens list` shows: never the token or the secret."""

    name: str
    admin: bool
    created: float
    last_used: float | None = None


class NewToken(BaseModel):
    name: str
    token: str
    webhook_secret: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadInput(f"token name {name[:70]!r} is not usable: 1 to 64 letters, digits, '.', '_' or '-'")
    return name


class TokenStore:
    def __init__(self, data_dir: Path) -> None:
        path = data_dir / "service.sqlite"
        data_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # holds webhook secrets: owner only
        self.db = sqlite_utils.Database(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.tokens = self.db.table("tokens")
        if not self.tokens.exists():
            self.tokens.create(
                {
                    "name": str,
                    "hash": str,
                    "webhook_secret": str,
                    "admin": int,
                    "created": float,
                    "last_used": float,
                    "revoked": float,
                },
                pk="name",
                if_not_exists=True,
            )
            self.tokens.create_index(["hash"], unique=True, if_not_exists=True)

    def create(self, name: str, admin: bool = False) -> NewToken:
        check_name(name)
        if name == LOCAL:
            raise BadInput(f"{LOCAL!r} is the name of the local identity (storybot mcp): choose another")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        whsec = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        row = {"name": name, "hash": _hash(token), "webhook_secret": whsec, "admin": int(admin)}
        with self.db.conn:
            if any(True for _ in self.tokens.rows_where("name = ? AND revoked IS NULL", [name])):
                raise BadInput(f"a token named {name!r} exists: revoke it first, or choose another name")
            self.tokens.upsert({**row, "created": time.time(), "last_used": None, "revoked": None}, pk="name")
        return NewToken(name=name, token=token, webhook_secret=whsec)

    def revoke(self, name: str) -> None:
        with self.db.conn:
            cursor = self.db.execute(
                "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", [time.time(), check_name(name)]
            )
        if cursor.rowcount != 1:
            raise BadInput(f"no token named {name!r}")

    def list(self) -> list[TokenInfo]:
        rows = self.tokens.rows_where("revoked IS NULL", order_by="name")
        return [
            TokenInfo(name=r["name"], admin=bool(r["admin"]), created=r["created"], last_used=r["last_used"])
            for r in rows
        ]

    def identify(self, token: str) -> Identity | None:
        """The owner of a live token; None for anything else (compared by hash, in constant time)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        digest = _hash(token)
        rows = list(self.tokens.rows_where("hash = ? AND revoked IS NULL", [digest]))
        if not rows or not hmac.compare_digest(rows[0]["hash"], digest):
            return None
        row = rows[0]
        if row["last_used"] is None or time.time() - row["last_used"] > 60:  # a write a minute at most
            with self.db.conn:
                self.tokens.update(row["name"], {"last_used": time.time()})
        return Identity(name=row["name"], admin=bool(row["admin"]), webhook_secret=SecretStr(row["webhook_secret"]))

    def named(self, name: str) -> Identity | None:
        """A live token's owner by name (`storybot mcp --as NAME`, and webhooks of its jobs)."""
        rows = list(self.tokens.rows_where("name = ? AND revoked IS NULL", [name]))
        if not rows:
            return None
        row = rows[0]
        return Identity(name=row["name"], admin=bool(row["admin"]), webhook_secret=SecretStr(row["webhook_secret"]))
