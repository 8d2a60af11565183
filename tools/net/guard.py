"""Where a URL named by a provider's reply may take us.

A search reply or an Images API reply names the media URLs we then download. Such a URL is
refused unless it is `https` and every address its host resolves to is a public one (no loopback,
private, link-local, cloud metadata, multicast or reserved range), and the connection is then made
to the address that was checked (the name goes in `Host` and TLS's SNI), so a second DNS answer
cannot swap in an internal host. The one exception is the origin the user configured for the
provider (a local test server, a self-hosted API): URLs on it are fetched as they are.

Credentials never travel with these requests: they belong to the API calls alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

import httpx

MAX_REDIRECTS = 5


class RefusedURL(ValueError):
    """A URL we will not fetch; the message says why without quoting the URL (it may hold a key)."""


def parse(url: str | httpx.URL) -> httpx.URL:
    """The URL parsed; RefusedURL (not a traceback) for one with a NUL, a bad port or worse."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
        _ = parsed.port  # a port past 65535 fails only when read
    except (httpx.InvalidURL, ValueError, TypeError, OverflowError) as exc:
        raise RefusedURL(f"an invalid URL ({type(exc).__name__})") from None
    return parsed


def origin(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in."""
    parsed = parse(url)
    return parsed.scheme, parsed.host.lower(), parsed.port or {"https": 443, "http": 80}.get(parsed.scheme, 0)


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (IPv4-mapped IPv6 judged as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Target:
    """A checked request: the URL to connect to, and the headers and extensions that name the host."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Guard:
    """The download rules of one provider: `trusted` are the origins its user configured."""

    trusted: frozenset[tuple[str, str, int]] = frozenset()

    @classmethod
    def for_bases(cls, *bases: str | None) -> Guard:
        return cls(frozenset(origin(b) for b in bases if b))

    async def check(self, url: str | httpx.URL) -> Target:
        """The request to make for `url`, pinned to a checked public address; RefusedURL otherwise."""
        parsed = parse(url)
        where = origin(parsed)
        if where in self.trusted:
            return Target(parsed)
        scheme, host, port = where
        if scheme != "https":
            raise RefusedURL(f"a URL with scheme {scheme or 'none'!r} (downloads are https only)")
        if not host or not 0 < port < 65536:
            raise RefusedURL("a URL without a valid host and port")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise RefusedURL(f"a host that does not resolve ({type(exc).__name__})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses or not all(is_public(a) for a in addresses):
            raise RefusedURL("a host on a loopback, private, link-local or reserved address")
        if _is_ip(host):
            return Target(parsed)
        return Target(
            parsed.copy_with(host=addresses[0]),
            headers={"Host": parsed.netloc.decode("ascii")},
            extensions={"sni_hostname": host},
        )

    def next_hop(self, current: httpx.URL, response: httpx.Response, hops: int) -> httpx.URL:
        """The URL a redirect names (checked again by the caller); RefusedURL past MAX_REDIRECTS."""
        if hops >= MAX_REDIRECTS:
            raise RefusedURL(f"more than {MAX_REDIRECTS} redirects")
        location = response.headers.get("location", "")
        try:
            return parse(current.join(location))
        except (httpx.InvalidURL, ValueError, TypeError, OverflowError) as exc:
            raise RefusedURL(f"a redirect to an invalid URL ({type(exc).__name__})") from None
