"""Linked accounts: one per site, kept as `DATA_DIR/accounts/<site>.json`, readable by the owner only.

Tokens are `SecretStr` in memory (never printed, never in a repr) and plain only in these files,
which are created 0600 inside a 0700 folder (no moment where another user could read them);
`tools.net.redact` reads them too, so a site that echoes a token into an error cannot carry it out.
The STORYBOT_* variables of a site override its file (automation and tests).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr, ValidationError

from tools.errors import BadInput
from tools.net.redact import ACCOUNT_SECRET_FIELDS, ACCOUNTS_DIR

FOLDER = ACCOUNTS_DIR
SECRET_FIELDS = ACCOUNT_SECRET_FIELDS  # tools.net.redact masks these values


class Account(BaseModel):
    platform: str
    name: str  # the channel, creator or user name the site reported
    user_id: str | None = None
    scopes: list[str] = []
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    expires_at: float | None = None  # when the access token expires (unix time)
    source: Literal["file", "env"] = "file"

    def expiry(self) -> str:
        if self.expires_at is None:
            return "refreshed as needed" if self.refresh_token else "unknown"
        left = self.expires_at - time.time()
        return "expired" if left <= 0 else f"in {left / 3600:.1f} h" if left < 172800 else f"in {left / 86400:.0f} days"


def given(value: SecretStr | None) -> SecretStr | None:
    """A secret from the environment, or None when the variable is unset or empty (.env.example)."""
    return value if value is not None and value.get_secret_value().strip() else None


def folder(data_dir: Path) -> Path:
    return data_dir / FOLDER


def path_of(data_dir: Path, platform: str) -> Path:
    return folder(data_dir) / f"{platform}.json"


def save(data_dir: Path, account: Account) -> Path:
    """Write the account file owner-only, atomically (a crash leaves the old file or the new one)."""
    where = folder(data_dir)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(where, 0o700)
    data = account.model_dump(mode="json", exclude={"source"})
    for name in SECRET_FIELDS:
        value = getattr(account, name)
        data[name] = value.get_secret_value() if value is not None else None
    target = path_of(data_dir, account.platform)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)
    os.replace(tmp, target)
    return target


def load(data_dir: Path, platform: str) -> Account | None:
    """The stored account of a site; a file others can read is refused, not used."""
    target = path_of(data_dir, platform)
    try:
        mode = target.stat().st_mode
        raw = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadInput(f"cannot read the {platform} account ({exc.strerror})") from None
    if mode & 0o077:
        raise BadInput(f"the {platform} account file {target} is readable by others: chmod 600 it or add it again")
    try:
        return Account.model_validate_json(raw)
    except ValidationError:
        raise BadInput(f"the {platform} account file {target} is damaged: add the account again") from None


def remove(data_dir: Path, platform: str) -> bool:
    target = path_of(data_dir, platform)
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    return True
