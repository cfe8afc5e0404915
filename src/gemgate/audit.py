"""The audit log: who changed what through the admin API or the console, and when.

An entry names its target by mask or id, never by secret; `detail` is scrubbed of anything
shaped like a key before it is written, whoever wrote it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gemgate.secrets import SECRET_SHAPES, mask_key


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts: float
    actor: str  # "admin-api", or "console" (a session)
    action: str  # "upstream.add", "upstream.disable", "vkey.rotate", …
    target: str  # a masked key, a project, a virtual key's id
    detail: str = ""

    def scrubbed(self) -> AuditEntry:
        def clean(text: str) -> str:
            return SECRET_SHAPES.sub(lambda m: mask_key(m.group()), text)

        return AuditEntry(self.ts, self.actor, self.action, clean(self.target),
                          clean(self.detail))

    def view(self) -> dict[str, Any]:
        return {"ts": self.ts, "actor": self.actor, "action": self.action,
                "target": self.target, "detail": self.detail}


class AuditStore(Protocol):
    async def write(self, entry: AuditEntry) -> None: ...

    async def recent(self, limit: int = 100) -> list[AuditEntry]: ...
