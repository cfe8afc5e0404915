"""Key and project health shared by replicas: a key one replica finds invalid (or a project it
sees cooling or failing, a provider key resting, a limit learnt from a 429) is so on every
replica. Each pool publishes its changes and
applies the others'; a networked backend (Redis pub/sub) carries them within a second.

`LocalHealth` is the embedded default — one process, nothing to share. `MemoryHub` connects
several pools in one process (workers embedded in a test or a program)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from gemgate.core.events import Shared

Apply = Callable[[Shared], None]


class HealthState(Protocol):
    async def publish(self, change: Shared) -> None:
        """Tells every other replica."""

    async def listen(self, apply: Apply) -> None:
        """Applies other replicas' changes as they come, until cancelled."""


class LocalHealth:
    async def publish(self, change: Shared) -> None:
        return None

    async def listen(self, apply: Apply) -> None:
        return None


class MemoryHub:
    """Pools of one process, each joined with `member()`, see each other's changes."""

    def __init__(self) -> None:
        self._members: list[_Member] = []

    def member(self) -> _Member:
        joined = _Member(self)
        self._members.append(joined)
        return joined

    def _send(self, sender: _Member, change: Shared) -> None:
        for member in self._members:
            if member is not sender and member.joined is not None:
                loop, apply = member.joined
                loop.call_soon_threadsafe(apply, change)  # each pool on its own loop


class _Member:
    def __init__(self, hub: MemoryHub) -> None:
        self.hub = hub
        self.joined: tuple[asyncio.AbstractEventLoop, Apply] | None = None

    async def publish(self, change: Shared) -> None:
        self.hub._send(self, change)

    async def listen(self, apply: Apply) -> None:
        self.joined = (asyncio.get_running_loop(), apply)
