"""API tokens: who is calling the service. A token is an identity; only its hash is stored.

`storybot tokens create NAME` prints the token once. Each token also owns a webhook secret
(`whsec_...`, the Standard Webhooks form) that signs every webhook of its jobs, so a receiver can
check that a call came from us. The table lives in `service.sqlite` under the data folder, readable
by its owner only (it holds the webhook secrets), or in a shared database's `service_tokens` (service/db.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy import Engine, RowMapping, Select, bindparam, select, update

from graph.api import BadInput, Requester, Settings, engine_for, is_postgres
from service import db as service_db
from tools.sql import upsert

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
    def __init__(self, data_dir: Path, engine: Engine | None = None) -> None:
        """The tokens in `DATA_DIR/service.sqlite`, or, given a shared database's `engine`, in its tables."""
        self.db = service_db.sqlite_file(data_dir) if engine is None else service_db.shared(engine)
        tokens = self.db.tokens
        live = select(tokens).where(tokens.c.revoked.is_(None))
        # built once: identify runs on the event loop for every API request
        self._by_hash = live.where(tokens.c.hash == bindparam("key"))
        self._by_name = live.where(tokens.c.name == bindparam("key"))

    @classmethod
    def of(cls, settings: Settings) -> TokenStore:
        """The configured place: the shared database's tables, else `DATA_DIR/service.sqlite`."""
        engine = engine_for(settings) if is_postgres(settings) else None
        return cls(settings.data_dir, engine)

    def create(self, name: str, admin: bool = False) -> NewToken:
        check_name(name)
        if name == LOCAL:
            raise BadInput(f"{LOCAL!r} is the name of the local identity (storybot mcp): choose another")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        whsec = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        row = {
            "name": name,
            "hash": _hash(token),
            "webhook_secret": whsec,
            "admin": int(admin),
            "created": time.time(),
            "last_used": None,
            "revoked": None,
        }
        # one statement: a revoked token's name is taken over, a live one's is not (even by a replica at once)
        tokens = self.db.tokens
        sql = upsert(self.db.engine, tokens).values(row)
        taken = sql.on_conflict_do_update(
            index_elements=["name"], set_={k: sql.excluded[k] for k in row}, where=tokens.c.revoked.is_not(None)
        )
        with self.db.engine.begin() as db:
            if db.execute(taken.returning(tokens.c.name)).first() is None:
                raise BadInput(f"a token named {name!r} exists: revoke it first, or choose another name")
        return NewToken(name=name, token=token, webhook_secret=whsec)

    def revoke(self, name: str) -> None:
        tokens = self.db.tokens
        sql = update(tokens).where(tokens.c.name == check_name(name), tokens.c.revoked.is_(None))
        with self.db.engine.begin() as db:
            if db.execute(sql.values(revoked=time.time())).rowcount != 1:
                raise BadInput(f"no token named {name!r}")

    def list(self) -> list[TokenInfo]:
        tokens = self.db.tokens
        with self.db.engine.connect() as db:
            rows = db.execute(select(tokens).where(tokens.c.revoked.is_(None)).order_by(tokens.c.name)).mappings()
            return [
                TokenInfo(name=r["name"], admin=bool(r["admin"]), created=r["created"], last_used=r["last_used"])
                for r in rows
            ]

    def identify(self, token: str) -> Identity | None:
        """The owner of a live token; None for anything else (compared by hash, in constant time)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        digest = _hash(token)
        row = self._live(self._by_hash, digest)
        if row is None or not hmac.compare_digest(row["hash"], digest):
            return None
        if row["last_used"] is None or time.time() - row["last_used"] > 60:  # a write a minute at most
            with self.db.engine.begin() as db:
                db.execute(
                    update(self.db.tokens).where(self.db.tokens.c.name == row["name"]).values(last_used=time.time())
                )
        return _identity(row)

    def named(self, name: str) -> Identity | None:
        """A live token's owner by name (`storybot mcp --as NAME`, and webhooks of its jobs)."""
        row = self._live(self._by_name, name)
        return None if row is None else _identity(row)

    def _live(self, sql: Select[Any], key: str) -> RowMapping | None:
        with self.db.engine.connect() as db:
            return db.execute(sql, {"key": key}).mappings().first()


def _identity(row: RowMapping) -> Identity:
    return Identity(name=row["name"], admin=bool(row["admin"]), webhook_secret=SecretStr(row["webhook_secret"]))
