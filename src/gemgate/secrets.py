"""Masking of upstream keys: the only form in which a key may leave the secret store."""

from __future__ import annotations


def mask_key(key: str) -> str:
    """`AIzaSyA…abcd` → `AIza…abcd`: enough to tell keys apart, never enough to use one."""
    key = key or ""
    if len(key) <= 8:
        return "…" + key[-2:] if key else "…"
    return f"{key[:4]}…{key[-4:]}"
