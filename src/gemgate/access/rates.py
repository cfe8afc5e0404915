"""Each virtual key's own RPM and TPM limits, counted over a sliding minute.

These protect the team's shared quota from one member's runaway script; Google's per-project
limits are the scheduler's business, not these.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gemgate.access.vkeys import VirtualKey
from gemgate.state.windows import Bucket, SlidingWindow

MINUTE_S = 60.0


class KeyRates:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._requests: dict[str, SlidingWindow] = {}
        self._tokens: dict[str, SlidingWindow] = {}

    def _window(self, windows: dict[str, SlidingWindow], key_id: str) -> SlidingWindow:
        window = windows.get(key_id)
        if window is None:
            window = windows[key_id] = SlidingWindow(MINUTE_S, 0.0)
        return window

    def admit(self, key: VirtualKey, tokens: int) -> tuple[float, Bucket | None]:
        """(0, bucket to correct later) when the request fits the key's limits, else (seconds
        until it would fit, None). Nothing is counted for a refused request."""
        rpm, tpm, now = key.spec.rpm, key.spec.tpm, self.clock()
        wait = 0.0
        if rpm is not None:
            wait = self._window(self._requests, key.id).wait(now, 1, rpm)
        if tpm is not None and tokens:
            wait = max(wait, self._window(self._tokens, key.id).wait(now, tokens, tpm))
        if wait > 0:
            return wait, None
        if rpm is not None:
            self._window(self._requests, key.id).add(now, 1)
        if tpm is not None and tokens:
            return 0.0, self._window(self._tokens, key.id).add(now, tokens)
        return 0.0, None

    def settle(self, key: VirtualKey, bucket: Bucket, estimated: int, actual: int) -> None:
        """Replaces the estimate with the prompt tokens Google counted."""
        window = self._tokens.get(key.id)
        if window is not None:
            window.adjust(bucket, estimated, actual)

    def forget(self, live_ids: set[str]) -> None:
        """Drops the windows of keys that no longer exist."""
        for windows in (self._requests, self._tokens):
            for key_id in [k for k in windows if k not in live_ids]:
                del windows[key_id]
