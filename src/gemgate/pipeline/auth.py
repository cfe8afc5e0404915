"""The auth stage: which tenant a gemgate token belongs to.

Tokens come as `x-goog-api-key` (what the SDKs send), `?key=`, or `Authorization: Bearer`.
They are looked up by SHA-256 digest, so the lookup time does not depend on how much of a
guessed token is right. A real Google key sent by mistake is refused with a clear reason.
"""

from __future__ import annotations

import hashlib
import re

from aiohttp import web

from gemgate.config import TenantConfig
from gemgate.pipeline.call import Tenant

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


class Authenticator:
    def __init__(self, tenants: list[TenantConfig]) -> None:
        self._by_digest = {_digest(t.token): Tenant(t.name, t.priority, t.weight, t.fallback)
                           for t in tenants}
        # Tokens already proven valid, so the digest is paid once per token, not per request.
        # Only valid tokens enter, so guesses cannot fill it.
        self._known: dict[str, Tenant] = {}
        self.open = not tenants  # loopback development without tokens

    def authenticate(self, request: web.Request) -> tuple[Tenant | None, str | None]:
        """The tenant, or the id of the problem that refuses the request."""
        token = client_token(request)
        if token and _GOOGLE_KEY.match(token):
            return None, "GOOGLE_KEY_SENT"
        if self.open:
            return ANONYMOUS, None
        if token is None:
            return None, "TOKEN_MISSING"
        tenant = self._known.get(token)
        if tenant is None:
            tenant = self._by_digest.get(_digest(token))
            if tenant is None:
                return None, "TOKEN_INVALID"
            if len(self._known) < 10_000:
                self._known[token] = tenant
        return tenant, None
