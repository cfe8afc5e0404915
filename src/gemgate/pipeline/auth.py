"""The auth stage: which tenant a gemgate token belongs to, and whether it may call now.

Tokens come as `x-goog-api-key` (what the SDKs send), `?key=`, or `Authorization: Bearer`.
Configured tokens and virtual keys (`gk-…`) are both looked up by SHA-256 digest, so the lookup
time does not depend on how much of a guessed token is right. A virtual key is refused with its
own reason when revoked, expired, disabled or used from an address outside its allowlist; a
real Google key sent by mistake is refused with a clear reason too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import time

from aiohttp import web

from gemgate.access.book import KeyBook
from gemgate.access.vkeys import VirtualKey
from gemgate.config import TenantConfig
from gemgate.pipeline.call import Tenant
from gemgate.problems import ProblemId

log = logging.getLogger("gemgate.auth")
_GOOGLE_KEY = re.compile(r"^AIza[0-9A-Za-z_\-]{35}$")
ANONYMOUS = Tenant("anonymous")


def client_token(request: web.Request) -> str | None:
    token = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not token:
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:]
    token = (token or "").strip()
    return token or None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


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


class Authenticator:
    def __init__(self, tenants: list[TenantConfig], book: KeyBook,
                 address: ClientAddress, open_when_empty: bool) -> None:
        self._by_digest = {_digest(t.token): Tenant(t.name, t.priority, t.weight, t.fallback)
                           for t in tenants}
        self.book = book
        self.address = address
        # Loopback development with no tokens and no virtual keys: anyone local may call.
        self._open_when_empty = open_when_empty and not tenants
        self._was_open: bool | None = None

    @property
    def open(self) -> bool:
        """Open loopback mode: no configured token and no active virtual key, on loopback.

        Decided, not implied: the mode follows whether a virtual key exists — the first one
        closes it (or else its rights and budget could be bypassed with any other token), and
        revoking the last one opens it again — and every change is logged at once, with why,
        so the banner's `any-token` snippet failing with 401 is never a mystery."""
        now_open = self._open_when_empty and not self.book.active
        if now_open != self._was_open:
            if self._was_open is not None or (not now_open and self._open_when_empty):
                self._announce(now_open)
            self._was_open = now_open
        return now_open

    def _announce(self, now_open: bool) -> None:
        if now_open:
            log.warning("open loopback mode is ON again: no configured token and no active "
                        "virtual key, so any local client may call with any token")
        else:
            log.warning("open loopback mode is OFF: %d virtual key(s) exist, so every client "
                        "must now send a gemgate token (a configured token or a gk-… key); "
                        "revoke every virtual key to open it again", self.book.active)

    def authenticate(self, request: web.Request,
                     client_ip: str | None) -> tuple[Tenant | None, ProblemId | None]:
        """The tenant, or the id of the problem that refuses the request."""
        token = client_token(request)
        if token and _GOOGLE_KEY.match(token):
            return None, ProblemId.GOOGLE_KEY_SENT
        if self.open:
            return ANONYMOUS, None
        if token is None:
            return None, ProblemId.TOKEN_MISSING
        key = self.book.find(token)
        if key is not None:
            return self._key_tenant(key, client_ip)
        tenant = self._by_digest.get(_digest(token))
        if tenant is None:
            return None, ProblemId.TOKEN_INVALID
        return tenant, None

    @staticmethod
    def _key_tenant(key: VirtualKey,
                    address: str | None) -> tuple[Tenant | None, ProblemId | None]:
        if key.revoked_at is not None:
            return None, ProblemId.KEY_REVOKED
        if key.expired(time.time()):
            return None, ProblemId.KEY_EXPIRED
        if not key.spec.enabled:
            return None, ProblemId.KEY_DISABLED
        if not key.allows_ip(address):
            return None, ProblemId.IP_NOT_ALLOWED
        return Tenant(key.name, key.spec.priority, key=key), None
