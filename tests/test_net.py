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


def _deflated(data: bytes, wbits: int) -> bytes:
    import zlib

    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "body", "expected"),
    [
        ("gzip", _deflated(b"ab", 31) + _deflated(b"cd", 31), b"abcd"),  # two members, as RFC 1952 allows
        ("deflate", _deflated(b"hello", 15), b"hello"),  # zlib-wrapped, as RFC 9110 says
        ("deflate", _deflated(b"hello", -15), b"hello"),  # raw, as some servers send it
        ("identity", b"plain", b"plain"),
        ("gzip", _deflated(b"x" * (2**20 + 1), 31), None),  # one byte over the limit
        ("gzip", b"\x1f\x8b not gzip at all", "broken"),
    ],
    ids=["gzip-members", "deflate-zlib", "deflate-raw", "identity", "gzip-over", "gzip-broken"],
)
async def test_the_bounded_reader_inflates_what_servers_send(encoding: str, body: bytes, expected: object) -> None:
    import httpx

    from tests.local_http import Reply, local_server
    from tools.net.bounded import TooLarge, bounded_transport, read_bounded

    with local_server(lambda _: Reply(200, body, {"Content-Encoding": encoding})) as server:
        async with httpx.AsyncClient() as http, http.stream("GET", server.url) as reply:
            if expected is None:
                with pytest.raises(TooLarge, match=r"^a reply over the 1 MB limit$"):
                    await read_bounded(reply, 2**20)
            elif expected == "broken":
                with pytest.raises(httpx.DecodingError, match=r"^the reply's gzip data is broken"):
                    await read_bounded(reply, 2**20)
            else:
                assert await read_bounded(reply, 2**20) == expected
        if isinstance(expected, bytes):  # the same through the transport an SDK's client is given
            async with httpx.AsyncClient(transport=bounded_transport(httpx, 2**20)) as http:
                whole = await http.get(server.url)
            assert whole.content == expected and "content-encoding" not in whole.headers
