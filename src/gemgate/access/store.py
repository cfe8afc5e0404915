"""What the key service needs from storage: virtual keys, kept where every replica reads them.
Backends (gemgate.storage) implement it; the access layer depends on nothing below it."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from gemgate.access.vkeys import KeySpec, VirtualKey


class KeyNotFound(LookupError):
    pass


class KeyConflict(ValueError):
    pass


class KeyInvalid(ValueError):
    """The spec or patch is not valid; `problems` lists each field's fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def validate_spec(data: dict[str, Any]) -> KeySpec:
    try:
        return KeySpec.model_validate(data)
    except ValidationError as exc:
        raise KeyInvalid([f"{'.'.join(str(p) for p in e['loc']) or 'key'}: "
                          f"{str(e['msg']).removeprefix('Value error, ')}"
                          for e in exc.errors()]) from None


def spec_json(spec: KeySpec) -> str:
    return orjson.dumps(spec.model_dump(mode="json")).decode()


class KeyStore(Protocol):
    """Virtual keys. Raises KeyNotFound, KeyConflict or KeyInvalid (storage.sqlite.keys)."""

    async def version(self) -> int:
        """A number that moves whenever any key changes (replicas reload on it)."""

    async def all(self, include_revoked: bool = True) -> list[VirtualKey]: ...

    async def get(self, ref: str) -> VirtualKey: ...

    async def create(self, data: dict[str, Any]) -> tuple[VirtualKey, str]: ...

    async def update(self, ref: str, patch: dict[str, Any]) -> VirtualKey: ...

    async def rotate(self, ref: str) -> tuple[VirtualKey, str]: ...

    async def revoke(self, ref: str) -> VirtualKey: ...

    async def spent(self, key_id: str, start: float, end: float) -> float:
        """USD a key spent in [start, end) — where budget counters start from."""
