"""What every provider client shares (tools/net): Retry-After parsing and the one redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tools.net.redact import MASK, redact
from tools.net.retry import retry_after
from tools.settings import Settings


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 12 ", 12.0), ("²", None), ("9" * 5000, None), ("-1", None), ("soon", None), ("", None)],
)
def test_retry_after_takes_ascii_seconds_or_a_date_and_nothing_else(header: str, seconds: float | None) -> None:
    assert retry_after({"retry-after": header}) == seconds


def test_retry_after_as_an_http_date_in_the_past_is_no_wait() -> None:
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_redaction_knows_every_configured_secret_raw_and_url_encoded(tmp_path: Path) -> None:
    (tmp_path / "link_secret").write_text("generated-link-secret-123", encoding="utf-8")
    settings = Settings.model_validate(
        {
            "STORYBOT_DATA_DIR": str(tmp_path),
            "STORYBOT_VISION_API_KEY": "sk-vision/abc+123",
            "PIXABAY_API_KEY": "pixabay-0123456789",
        }
    )
    settings = settings.model_copy(update={"discord_token": SecretStr("discord.token.value")})
    text = (
        "vision sk-vision/abc+123 encoded sk-vision%2Fabc%2B123 pixabay ?key=pixabay-0123456789 "
        "token discord.token.value link generated-link-secret-123"
    )
    shown = redact(text, settings)
    for secret in ("sk-vision", "pixabay-0123456789", "discord.token.value", "generated-link-secret-123"):
        assert secret not in shown
    assert shown.count(MASK) == 5
