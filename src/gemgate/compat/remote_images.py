"""Image URLs in OpenAI messages, fetched by the gateway — only from hosts the operator allows,
only up to a size, and never (through a wildcard) from a private or loopback address, so a
client cannot make the gateway read its own network."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from gemgate.compat.chat_request import RequestInvalid
from gemgate.config import RemoteImagesConfig


class RemoteImages:
    def __init__(self, config: RemoteImagesConfig) -> None:
        self.hosts = [h.lower() for h in config.allowed_hosts]
        self.max_bytes, self.timeout_s = config.max_bytes, config.timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def fetch_all(self, urls: list[str]) -> dict[str, dict[str, Any]]:
        """Each URL's image as an inlineData part; RequestInvalid names the first refused."""
        if not urls:
            return {}
        if not self.hosts:
            raise RequestInvalid("this gateway does not fetch image URLs; send the image as a "
                                 "data: URL (data:image/png;base64,…)", "messages")
        unique = list(dict.fromkeys(urls))
        parts = await asyncio.gather(*(self._fetch(url) for url in unique))
        return dict(zip(unique, parts, strict=True))

    def _allowed(self, url: str) -> bool:
        """The host is allowed: named exactly (the operator vouches for it, wherever it
        points), or matched by a wildcard — then an address written in the URL is judged here,
        and a name is judged by the resolver when the connection is made."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            return False
        if host in self.hosts:
            return True
        if not any(fnmatchcase(host, pattern) for pattern in self.hosts):
            return False
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return True  # a name: JudgingResolver decides, on the addresses it connects to
        return is_public(literal)

    async def _fetch(self, url: str) -> dict[str, Any]:
        shown = url if len(url) <= 120 else url[:117] + "..."
        if not self._allowed(url):
            raise RequestInvalid(f"image URL {shown} is not on this gateway's allowed hosts",
                                 "messages")
        if self._session is None or self._session.closed:
            # No DNS cache: each connection resolves, judges and connects to the same answer.
            connector = aiohttp.TCPConnector(resolver=JudgingResolver(self.hosts),
                                             use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector)
        try:
            async with self._session.get(url, allow_redirects=False, timeout=aiohttp.ClientTimeout(
                    total=self.timeout_s)) as answer:
                if answer.status != 200:
                    raise RequestInvalid(f"image URL {shown} answered HTTP {answer.status}",
                                         "messages")
                mime = answer.content_type
                if not mime.startswith("image/"):
                    raise RequestInvalid(f"image URL {shown} is {mime}, not an image",
                                         "messages")
                data = bytearray()
                async for piece in answer.content.iter_chunked(64 * 1024):
                    data += piece
                    if len(data) > self.max_bytes:  # stop reading: never hold more
                        raise RequestInvalid(f"image URL {shown} is larger than this "
                                             f"gateway's limit of {self.max_bytes} bytes",
                                             "messages")
        except (aiohttp.ClientError, TimeoutError, OSError):
            raise RequestInvalid(f"image URL {shown} could not be fetched", "messages") from None
        return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48), 6to4 (2002::/16) and Teredo."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    packed = address.packed
    if packed[:12] == bytes(12) and packed[12:] != bytes(4):  # ::a.b.c.d (deprecated form)
        return ipaddress.IPv4Address(packed[12:])
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(packed[12:])
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether fetching from `address` reaches the public internet only: every IPv6 form that
    embeds an IPv4 address is judged by that address, and anything private, loopback,
    link-local, multicast, reserved or unspecified is refused."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return is_public(inner)
    return address.is_global and not (address.is_multicast or address.is_unspecified
                                       or address.is_link_local or address.is_reserved)


class JudgingResolver(AbstractResolver):
    """Resolves a wildcard-allowed host and refuses the connection unless every address it
    resolved to is public. aiohttp connects to exactly the addresses this returns, so the
    address judged is the address used: no second lookup for a DNS rebinding to slip into."""

    def __init__(self, exact_hosts: list[str],
                 resolver: AbstractResolver | None = None) -> None:
        self.exact = frozenset(exact_hosts)
        self.resolver = resolver or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.resolver.resolve(host, port, family)
        if host.lower() not in self.exact and (not found or not all(
                is_public(ipaddress.ip_address(entry["host"])) for entry in found)):
            raise OSError(f"{host} resolves to an address that is not public")
        return found

    async def close(self) -> None:
        await self.resolver.close()
