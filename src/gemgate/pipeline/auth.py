"""The auth stage: which tenant a gemgate token belongs to, and whether it may call now.

Tokens come as `x-goog-api-key` (what the SDKs send), `?key=`, or `Authorization: Bearer`.
Configured tokens and virtual keys (`gk-…`) are both looked up by SHA-256 digest, so the lookup
time does not depend on how much of a guessed token is right. A virtual key is refused with its
own reason when revoked, expired, disabled or used from an address outside its allowlist; a
real Google key sent by mistake is refused with a clear reason too.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time

from gemgate.access.book import KeyBook
from gemgate.access.vkeys import VirtualKey
from gemgate.config import TenantConfig
from gemgate.core.call import Tenant
from gemgate.problems import ProblemId

log = logging.getLogger("gemgate.auth")
_GOOGLE_KEY = re.compile(r"^AIza[0-9A-Za-z_\-]{35}$")
ANONYMOUS = Tenant("anonymous")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    def __init__(self, tenants: list[TenantConfig], book: KeyBook,
                 open_when_empty: bool) -> None:
        self._by_digest = {
            _digest(t.token): Tenant(t.name, t.priority, t.weight, t.fallback, None, t.cache,
                                     t.semantic_cache, t.cache_ttl_s, t.semantic_threshold,
                                     t.guardrails)
            for t in tenants}
        self.book = book
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

    def authenticate(self, token: str | None,
                     client_ip: str | None) -> tuple[Tenant | None, ProblemId | None]:
        """The tenant, or the id of the problem that refuses the request."""
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

    def tenant_by_id(self, tenant_id: str,
                     client_ip: str | None) -> tuple[Tenant | None, ProblemId | None]:
        """The tenant that `Tenant.id` names, refused as its token would be now (a credential
        minted for it — an ephemeral Live token — is worth no more than the tenant's own)."""
        kind, _, name = tenant_id.partition(":")
        if kind == "vkey":
            key = self.book.by_id(name)
            return (None, ProblemId.TOKEN_INVALID) if key is None else \
                self._key_tenant(key, client_ip)
        if tenant_id == ANONYMOUS.id:
            return (ANONYMOUS, None) if self.open else (None, ProblemId.TOKEN_INVALID)
        found = next((t for t in self._by_digest.values() if t.id == tenant_id), None)
        return (found, None) if found is not None else (None, ProblemId.TOKEN_INVALID)

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
