"""`.env.example` is a working `.env`: copied as it is, it loads, and it names every setting."""

from __future__ import annotations

import re
from pathlib import Path

from tools.settings import Settings

EXAMPLE = Path(__file__).parent.parent / ".env.example"


def test_the_example_loads_as_a_dotenv_file() -> None:
    settings = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    assert settings.approver_role_id is None and settings.delivery_channel_id is None
    assert settings.webhook_attempts == 6 and settings.webhook_allow_private is False


def test_the_example_names_every_setting() -> None:
    """Configuration names are a contract: each one a user can set is in the example, set or commented."""
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))
    settings = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert settings <= named, sorted(settings - named)
