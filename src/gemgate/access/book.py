"""The gateway's in-memory copy of the virtual keys, looked up by the digest of the secret.

Reloaded whole whenever the database's `keys_version` moves (an admin API change reloads at
once; a CLI change is seen by the next poll), so a request never waits for the database.
"""

from __future__ import annotations

import hmac

from gemgate.access.vkeys import PREFIX, VirtualKey, digest_of


class KeyBook:
    def __init__(self) -> None:
        self._by_digest: dict[str, VirtualKey] = {}
        self._by_id: dict[str, VirtualKey] = {}
        self.version = -1
        self.active = 0  # keys not revoked

    def load(self, keys: list[VirtualKey], version: int) -> None:
        self._by_digest = {key.digest: key for key in keys}
        self._by_id = {key.id: key for key in keys}
        self.version = version
        self.active = sum(key.revoked_at is None for key in keys)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def keys(self) -> list[VirtualKey]:
        return list(self._by_id.values())

    def by_id(self, key_id: str) -> VirtualKey | None:
        return self._by_id.get(key_id)

    def find(self, secret: str) -> VirtualKey | None:
        """The key whose secret this is, or None. The dict lookup is by digest, so its timing
        says nothing about the secret; the final comparison is constant-time all the same."""
        if not secret.startswith(PREFIX):
            return None
        digest = digest_of(secret)
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            return None
        return key
