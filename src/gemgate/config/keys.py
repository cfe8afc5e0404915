"""Cleaning what people paste: keys with stray quotes or spaces, placeholders from the docs,
proxy URLs. Used by the settings and by `gemgate doctor`."""

from __future__ import annotations

import re

from gemgate.secrets import mask_key

_KEY_CHARS = re.compile(r"^[A-Za-z0-9_.\-]+$")
_QUOTES = "\"'`“”‘’"


class ConfigError(Exception):
    """Every problem found in the configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def clean_key(raw: str) -> str:
    """Strips the spaces and quotes that copy-paste and .env files leave around keys; refuses
    keys that are still malformed, saying why (without printing the key)."""
    key = raw.strip()
    while len(key) >= 2 and key[0] in _QUOTES and key[-1] in _QUOTES:
        key = key[1:-1].strip()
    if not key:
        raise ValueError("an empty key")
    if not _KEY_CHARS.match(key):
        raise ValueError(f"key {mask_key(key)} contains spaces, quotes or other characters "
                         "that no API key has")
    if _looks_like_placeholder(key):
        raise ValueError(f"key {mask_key(key)} looks like a placeholder from the docs, not a "
                         "real key: paste your own key from https://aistudio.google.com/apikey")
    return key


def _looks_like_placeholder(key: str) -> bool:
    """`AIza...one` (the README's own example), `YOUR_API_KEY` and the like. A real Google key
    is `AIza` and 35 more characters, never with `...` in it; a key cut a little short is left
    for Google to call invalid (doctor then says so), one cut to a stub is a placeholder."""
    lowered = key.lower()
    if "..." in key or lowered.startswith(("your_", "your-", "<")) or lowered in (
            "changeme", "xxx", "api_key", "your_api_key"):
        return True
    return key.startswith("AIza") and len(key) < 20


def check_proxy(proxy: str | None) -> str | None:
    if proxy and proxy.startswith("https://"):
        # TLS to the proxy itself is not supported; an HTTP proxy carries HTTPS through CONNECT.
        raise ValueError("use http:// for an HTTP proxy (HTTPS to Google is tunnelled "
                         "through it); https:// proxies are not supported")
    if proxy and not re.match(r"^(http|socks5h?|socks4)://", proxy):
        raise ValueError("proxy must start with http://, socks5://, socks5h:// or socks4://")
    return proxy or None


def proxy_options(proxy: str) -> tuple[str, dict[str, bool]]:
    """The URL and options python-socks takes: socks5h:// is socks5:// resolving names at the
    proxy (where Google's name may be the only one that resolves truthfully)."""
    if proxy.startswith("socks5h://"):
        return "socks5://" + proxy[len("socks5h://"):], {"rdns": True}
    return proxy, {}
