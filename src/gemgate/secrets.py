"""Masking of upstream keys: the only form in which a key may leave the secret store."""

from __future__ import annotations

import hashlib
import re

_GOOGLE_KEY = re.compile(rb"AIza[0-9A-Za-z_\-]{35}")
# Anything shaped like a secret gemgate itself hands out or holds: a Google key, a virtual key
# (gk- and 32 URL-safe characters). Masked in every log line, whoever wrote it.
SECRET_SHAPES = re.compile(r"AIza[0-9A-Za-z_\-]{35}|gk-[0-9A-Za-z_\-]{16,}")
SECRET_MARKERS = ("AIza", "gk-")


def mask_key(key: str) -> str:
    """`AIzaSyA…abcd` → `AIza…abcd`: enough to tell keys apart, never enough to use one."""
    key = key or ""
    if len(key) <= 8:  # too short to show any part without giving most of it away
        return "…" + key[-2:] if len(key) >= 6 else "…"
    return f"{key[:4]}…{key[-4:]}"


def key_id(secret: str) -> str:
    """How replicas name a key to each other: 16 hex digits of its SHA-256 (never the key)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def scrub(body: bytes, secret: str | None = None) -> bytes:
    """Masks `secret`, and anything shaped like a Google key, in bytes from upstream (Google
    spells keys out in some error messages)."""
    if secret and secret.encode() in body:
        body = body.replace(secret.encode(), mask_key(secret).encode())
    if b"AIza" not in body:
        return body
    return _GOOGLE_KEY.sub(lambda m: mask_key(m.group().decode()).encode(), body)


_KEY_CHARS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-")


def _unfinished(data: bytes, secret: bytes) -> int:
    """How many of `data`'s last bytes could be the start of a key the next chunk finishes:
    a prefix of `secret`, or `AIza…` cut short."""
    held = 0
    if secret:
        first = secret[:1]
        at = data.rfind(first, max(0, len(data) - len(secret) + 1))
        while at >= 0:
            if secret.startswith(data[at:]):
                held = len(data) - at
            at = data.rfind(first, max(0, len(data) - len(secret) + 1), at)
    at = data.rfind(b"A", max(0, len(data) - 38))
    while at >= 0:
        tail = data[at:]
        if (b"AIza".startswith(tail) or tail.startswith(b"AIza")) and \
                all(c in _KEY_CHARS for c in tail):
            held = max(held, len(tail))
        at = data.rfind(b"A", max(0, len(data) - 38), at)
    return held


class StreamScrubber:
    """Scrubs a stream chunk by chunk. A key cut in two by the network would slip past a
    per-chunk scrub, so when a chunk ends with what could be the start of one, those bytes
    wait for the next chunk. That never happens at an event's end (SSE events end with a blank
    line, JSON-array elements with `}`), so framing and latency are untouched in practice."""

    __slots__ = ("_held", "_secret", "_text")

    def __init__(self, secret: str | None) -> None:
        self._text = secret
        self._secret = secret.encode() if secret else b""
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk if self._held else chunk
        data = scrub(data, self._text)
        keep = _unfinished(data, self._secret)
        if keep:
            self._held, data = data[-keep:], data[:-keep]
        else:
            self._held = b""
        return data

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return scrub(held, self._text)


def _header_mask(key: str) -> str:
    return mask_key(key).replace("…", "...")  # header values are Latin-1


def _scrub_header(value: str, secret: str | None) -> str:
    if secret and secret in value:
        value = value.replace(secret, _header_mask(secret))
    return SECRET_SHAPES.sub(lambda m: _header_mask(m.group()), value)


def scrub_headers(headers: list[tuple[str, str]], secret: str | None) -> list[tuple[str, str]]:
    """Upstream's response headers with any key masked (a header may echo the request)."""
    return [(k, _scrub_header(v, secret)) if "AIza" in v or (secret and secret in v)
            else (k, v) for k, v in headers]


_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)([^@]*)(@)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A Redis or PostgreSQL URL fit for a log line: its password masked like a key."""
    return _URL_PASSWORD.sub(lambda m: m.group(1) + mask_key(m.group(2)) + m.group(3), url)


def url_password(url: str) -> str:
    """The password in a Redis or PostgreSQL URL ("" when there is none): a secret to mask."""
    found = _URL_PASSWORD.match(url)
    return found.group(2) if found else ""
