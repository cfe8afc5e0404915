"""What only the HTTP edge knows: where the client put its token, and who the client is behind
a trusted reverse proxy (its address, and the scheme and host it used)."""

from __future__ import annotations

import ipaddress

from aiohttp import web


def client_token(request: web.Request) -> str | None:
    token = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not token:
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:]
    token = (token or "").strip()
    return token or None


class ClientAddress:
    """The caller's IP: the peer, or — when the peer is a trusted reverse proxy — the last
    address in X-Forwarded-For that is not itself a trusted proxy."""

    def __init__(self, trusted_proxies: list[str]) -> None:
        self.trusted = [ipaddress.ip_network(c) for c in trusted_proxies]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def from_proxy(self, request: web.Request) -> bool:
        """Whether the peer is a trusted reverse proxy, whose X-Forwarded-* are believed."""
        peer = request.remote
        return bool(self.trusted) and peer is not None and self._is_trusted(peer)

    def public_origin(self, request: web.Request) -> str:
        """scheme://host the client used: behind a trusted proxy that terminates TLS, its
        X-Forwarded-Proto and X-Forwarded-Host (first hop); else the request's own."""
        scheme, host = request.scheme, request.host
        if self.from_proxy(request):
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            forwarded_host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
            scheme = proto if proto in ("http", "https") else scheme
            host = forwarded_host or host
        return f"{scheme}://{host}"

    def of(self, request: web.Request) -> str | None:
        peer = request.remote
        if not self.trusted or peer is None or not self._is_trusted(peer):
            return peer
        forwarded = request.headers.get("X-Forwarded-For", "")
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            if not self._is_trusted(hop):
                return hop
        return peer
