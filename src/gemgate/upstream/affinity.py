"""Which project owns a file, cached content or batch.

Such resources live in the Google Cloud project whose key created them; a later request that
names one must use a key of the same project, or Google answers 403/404.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from gemgate.pipeline.call import Call

_NAMED = re.compile(rb"\b((?:files|cachedContents|batches)/[A-Za-z0-9_\-.]+)")
_CREATED = re.compile(rb'"name"\s*:\s*"((?:files|cachedContents|batches)/[A-Za-z0-9_\-.]+)"')
_MARKERS = (b"files/", b"cachedContents/", b"batches/")


class ResourceOwners:
    def __init__(self, capacity: int = 100_000) -> None:
        self._owners: OrderedDict[bytes, str] = OrderedDict()
        self._capacity = capacity

    def owner_of(self, call: Call) -> str | None:
        if not self._owners:
            return None
        names = _NAMED.findall(call.path.encode())
        if call.body and any(marker in call.body for marker in _MARKERS):
            names += _NAMED.findall(call.body)
        for name in names:
            owner = self._owners.get(name)
            if owner is not None:
                return owner
        return None

    def remember(self, body: bytes, project: str) -> None:
        """Notes the resources a successful answer created (their `name` fields)."""
        for name in _CREATED.findall(body[:1_000_000]):
            self._owners[name] = project
            self._owners.move_to_end(name)
        while len(self._owners) > self._capacity:
            self._owners.popitem(last=False)
