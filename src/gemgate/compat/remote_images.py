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

    async def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            return False
        if host in self.hosts:
            return True  # named exactly: the operator vouches for it, wherever it points
        if not any(fnmatchcase(host, pattern) for pattern in self.hosts):
            return False
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443,
                                                                  type=socket.SOCK_STREAM)
        except OSError:
            return False
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
        return bool(addresses) and all(a.is_global for a in addresses)

    async def _fetch(self, url: str) -> dict[str, Any]:
        shown = url if len(url) <= 120 else url[:117] + "..."
        if not await self._allowed(url):
            raise RequestInvalid(f"image URL {shown} is not on this gateway's allowed hosts",
                                 "messages")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
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
