"""Masking of upstream keys: the only form in which a key may leave the secret store."""

from __future__ import annotations

import re

_GOOGLE_KEY = re.compile(rb"AIza[0-9A-Za-z_\-]{35}")


def mask_key(key: str) -> str:
    """`AIzaSyA…abcd` → `AIza…abcd`: enough to tell keys apart, never enough to use one."""
    key = key or ""
    if len(key) <= 8:  # too short to show any part without giving most of it away
        return "…" + key[-2:] if len(key) >= 6 else "…"
    return f"{key[:4]}…{key[-4:]}"


def scrub(body: bytes, secret: str | None = None) -> bytes:
    """Masks `secret`, and anything shaped like a Google key, in bytes from upstream (Google
    spells keys out in some error messages)."""
    if secret and secret.encode() in body:
        body = body.replace(secret.encode(), mask_key(secret).encode())
    if b"AIza" not in body:
        return body
    return _GOOGLE_KEY.sub(lambda m: mask_key(m.group().decode()).encode(), body)
