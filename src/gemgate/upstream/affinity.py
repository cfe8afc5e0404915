"""Who owns each resource created through gemgate, and which project holds it.

Google keeps files, cached contents, batches, file search stores, tuned models and corpora per
Google Cloud project; every tenant of a gateway shares those projects. So gemgate keeps, for
every resource a tenant creates through it, the tenant that created it and the project that
holds it. Then:

- a call that names a resource (in its path, or in a `fileUri`, `cachedContent` or `fileName`
  of its body) is answered 404 unless the caller owns it — the same answer as for a resource
  that does not exist, so a tenant cannot even learn that another's exists;
- an owned resource's calls go to its project (Google answers 403 from any other);
- a list shows only the caller's own, gathered from every project that holds one of them.

Ownership is durable (kept in the ledger's database when there is one) and never moves: a
name already owned is never given to another tenant. Resources made outside gemgate (with a
Google key directly) are not reachable through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gemgate.core.call import Call

KINDS = ("files", "cachedContents", "batches", "fileSearchStores", "tunedModels", "corpora",
         "interactions")
_KIND = "|".join(KINDS)
_IN_PATH = re.compile(rf"^((?:{_KIND})/[A-Za-z0-9_\-.]+)")
# A body names a resource by its name or by its URI on a Gemini API host.
_IN_VALUE = re.compile(rf"(?:^|/(?:v1beta|v1|v1alpha)/)((?:{_KIND})/[A-Za-z0-9_\-.]+)")
_CREATED = re.compile(rf'"name"\s*:\s*"((?:{_KIND})/[A-Za-z0-9_\-.]+)'.encode())
_MARKERS = tuple(f"{kind}/".encode() for kind in KINDS)
_REF_FIELDS = frozenset({"fileUri", "file_uri", "cachedContent", "cached_content", "fileName",
                         "file_name", "fileSearchStoreNames", "file_search_store_names",
                         "source", "model"})


@dataclass(frozen=True, slots=True)
class Owner:
    tenant: str  # Tenant.id of the creator
    project: str  # the Google Cloud project (pool name) that holds it


class OwnerStore(Protocol):
    """Where ownership is kept beyond the process (the ledger's database)."""

    async def load(self) -> list[tuple[str, str, str]]:
        """Every (name, tenant, project)."""

    async def find(self, names: list[str]) -> list[tuple[str, str, str]]:
        """(name, tenant, project) of those of `names` that are owned (a store shared by
        replicas is asked for what another replica created)."""

    async def save(self, name: str, tenant: str, project: str) -> None: ...

    async def delete(self, name: str) -> None: ...


def kind_of(name: str) -> str:
    return name.partition("/")[0]


def single(call: Call) -> str | None:
    """The one resource a call is about (DELETE files/abc); None for other calls."""
    found = _IN_PATH.match(call.path)
    return found.group(1) if found and found.end() == len(call.path) else None


def collection(call: Call) -> str | None:
    """The kind a call lists (GET files, GET cachedContents, …); None for other calls."""
    return call.path if call.method == "GET" and call.path in KINDS else None


def _strings(value: Any, field: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, field)


def referenced(call: Call) -> list[str]:
    """The resources a call names: in its path, and in the reference fields of its body (an
    interaction continued by `previous_interaction_id` is named by its bare id)."""
    names = [m.group(1) for m in [_IN_PATH.match(call.path)] if m]
    if call.path == "interactions" and b"revious" in call.body:
        try:
            body = orjson.loads(call.body)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            found = body.get("previous_interaction_id") or body.get("previousInteractionId")
            if isinstance(found, str) and found:
                names.append(f"interactions/{found}")
    if call.body and any(marker in call.body for marker in _MARKERS):
        body = call.parsed
        if body is None:
            try:
                body = orjson.loads(call.body)
            except orjson.JSONDecodeError:
                body = None
        for field, text in _strings(body):
            if field in _REF_FIELDS:
                names += _IN_VALUE.findall(text)
    return names


class ResourceOwners:
    def __init__(self, store: OwnerStore | None = None) -> None:
        self._owners: dict[str, Owner] = {}
        self._store = store

    async def load(self) -> None:
        if self._store is not None:
            self._owners = {name: Owner(tenant, project)
                            for name, tenant, project in await self._store.load()}

    async def check(self, call: Call) -> bool:
        """Whether the caller may name every resource its call names; sets the call's
        affinity to the project that holds them. A name this replica has not seen is looked
        up in the store (another replica may have created it)."""
        tenant = call.tenant.id if call.tenant is not None else ""
        names = referenced(call)
        unseen = [name for name in names if name not in self._owners]
        if unseen and self._store is not None:
            for name, owner_tenant, project in await self._store.find(unseen):
                self._owners[name] = Owner(owner_tenant, project)
        for name in names:
            owner = self._owners.get(name)
            if owner is None or owner.tenant != tenant:
                return False
            call.affinity = call.affinity or owner.project
        return True

    async def sync(self) -> None:
        """Catches up on what other replicas created (before a list: it must show them)."""
        await self.load()

    def projects_of(self, tenant: str, kind: str) -> list[str]:
        """The projects holding a tenant's resources of one kind, in a stable order."""
        return sorted({o.project for n, o in self._owners.items()
                       if o.tenant == tenant and kind_of(n) == kind})

    def owns(self, tenant: str, name: str) -> bool:
        owner = self._owners.get(name)
        return owner is not None and owner.tenant == tenant

    async def created(self, tenant: str, body: bytes, project: str) -> None:
        """Notes the resource a successful create answered with (its first `name`), unless
        that name is owned already; durable before the answer goes out."""
        found = _CREATED.search(body[:1_000_000])
        if found is None:
            return
        name = found.group(1).decode()
        if name in self._owners:
            return
        self._owners[name] = Owner(tenant, project)
        if self._store is not None:
            await self._store.save(name, tenant, project)

    async def adopt(self, name: str, tenant: str, project: str) -> None:
        """A resource Google made for a tenant's own (a batch job's results file)."""
        if name in self._owners:
            return
        self._owners[name] = Owner(tenant, project)
        if self._store is not None:
            await self._store.save(name, tenant, project)

    async def deleted(self, name: str) -> None:
        if self._owners.pop(name, None) is not None and self._store is not None:
            await self._store.delete(name)

    def view(self) -> list[dict[str, str]]:
        """Every owned resource (for the admin, who sees all tenants)."""
        return [{"name": n, "tenant": o.tenant, "project": o.project}
                for n, o in sorted(self._owners.items())]
