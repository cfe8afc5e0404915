"""Upstream keys changed by the operator while the gateway runs (the console or the admin
API): added with a tag, removed, held out of use, brought back, re-probed.

Each change is applied to the pool at once (no restart), kept in the store — so a restart, and
every replica sharing the store, see the same pool — and written to the audit log. The store's
`upstream_keys` table is the secret store for keys added this way; a key leaves it only masked
(pages, logs, the audit log). A key from the configuration file is never written there: only
that it was held or removed, by its id (a digest prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from gemgate.audit import AuditEntry, AuditStore
from gemgate.config.keys import clean_key
from gemgate.core.classify import Verdict
from gemgate.problems import ProblemId, problem
from gemgate.scheduling.limits import LimitBook
from gemgate.secrets import key_id, mask_key
from gemgate.upstream.pool import KeyPool, KeyState
from gemgate.upstream.prober import Prober

log = logging.getLogger("gemgate.pool")
TIERS = ("free", "tier1", "tier2", "tier3")


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    project: str
    tier: str
    tag: str
    secret: str | None  # a key added at run time; None for one from the configuration
    held: bool  # taken out of use by the operator: the prober leaves it alone
    removed: bool
    changed_at: float


class KeyringStore(Protocol):
    async def rows(self) -> list[KeyRow]: ...

    async def save(self, row: KeyRow) -> None:
        """Inserts or replaces the row of `row.key_id`."""


class KeyringError(Exception):
    """An operator's request that cannot be done (no such key, a bad tier): said plainly."""

    def __init__(self, message: str, found: ProblemId = ProblemId.INVALID_REQUEST) -> None:
        super().__init__(message)
        self.problem = found


class Keyring:
    def __init__(self, pool: KeyPool, limits: LimitBook, prober: Prober,
                 store: KeyringStore | None, audit: AuditStore | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.pool, self.limits, self.prober = pool, limits, prober
        self.store, self.audit, self.clock = store, audit, clock
        self._task: asyncio.Task[None] | None = None

    # ---- what the store says ----------------------------------------------------------------

    async def load(self) -> None:
        """Applies the kept changes: keys added earlier come back, held and removed ones stay
        so. Run at start, and regularly when replicas share the store."""
        if self.store is None:
            return
        for row in await self.store.rows():
            self._apply(row)

    def _apply(self, row: KeyRow) -> None:
        key = self.pool.find_key(row.key_id)
        if row.removed:
            if key is not None:
                self.pool.remove_key(key)
            return
        if key is None and row.secret:
            self.limits.add_project(row.project, row.tier)
            key = self.pool.add_key(row.project, row.tier, row.secret, row.tag)
        if key is not None and row.held != key.held:
            (self.pool.hold if row.held else self.pool.unhold)(key)

    def start(self, interval_s: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow(interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.load()
            except Exception as exc:  # the store away: the pool stays as it is
                log.warning("could not read the upstream keys' changes: %s", exc)

    # ---- the operator's changes -------------------------------------------------------------

    async def add(self, project: str, tier: str, tag: str, pasted: list[str],
                  actor: str, lang: str = "en") -> list[dict[str, Any]]:
        """Checks each pasted key on the spot and adds those Google accepts; returns one
        verdict per line (the key masked). A key Google refuses is not added."""
        project, tag = project.strip(), tag.strip()
        if not project or len(project) > 100 or any(c.isspace() for c in project):
            raise KeyringError("name the project (no spaces, at most 100 characters)")
        if tier not in TIERS:
            raise KeyringError(f"tier must be one of {', '.join(TIERS)}")
        known = self.pool.project(project)
        if known is not None:
            tier = known.tier
        results = []
        for line in pasted:
            if not line.strip():
                continue
            results.append(await self._add_one(project, tier, tag, line, actor, lang))
        return results

    async def _add_one(self, project: str, tier: str, tag: str, line: str,
                       actor: str, lang: str) -> dict[str, Any]:
        try:
            secret = clean_key(line)
        except ValueError as exc:
            return {"key": mask_key(line.strip()), "verdict": "refused",
                    "problem": ProblemId.UPSTREAM_KEY_MALFORMED,
                    "hint": f"{_hint(ProblemId.UPSTREAM_KEY_MALFORMED, lang)} ({exc})"}
        shown = mask_key(secret)
        if self.pool.find_key(key_id(secret)) is not None:
            return {"key": shown, "verdict": "duplicate",
                    "problem": ProblemId.UPSTREAM_KEY_DUPLICATE,
                    "hint": _hint(ProblemId.UPSTREAM_KEY_DUPLICATE, lang)}
        verdict = await self.prober.check_secret(secret, self.pool.project(project))
        if verdict is not None and not _works(verdict):
            await self._audit(actor, "upstream.refused", shown, f"{project}: {verdict.problem}")
            return {"key": shown, "verdict": "refused", "problem": verdict.problem,
                    "hint": _hint(verdict.problem, lang)}
        self.limits.add_project(project, tier)
        key = self.pool.add_key(project, tier, secret, tag)
        await self._save(key, secret=secret)
        await self._audit(actor, "upstream.add", shown, f"{project} ({tier}) tag={tag!r}")
        if verdict is None:  # the network said nothing about the key: added, unchecked
            return {"key": shown, "id": key.id, "verdict": "added-unchecked",
                    "problem": ProblemId.UPSTREAM_KEY_UNCHECKED,
                    "hint": _hint(ProblemId.UPSTREAM_KEY_UNCHECKED, lang)}
        return {"key": shown, "id": key.id, "verdict": "added", "problem": None, "hint": None}

    async def remove(self, ref: str, actor: str) -> dict[str, Any]:
        key = self._key(ref)
        self.pool.remove_key(key)
        await self._save(key, removed=True)
        await self._audit(actor, "upstream.remove", key.masked, key.project.name)
        return {"key": key.masked, "removed": True}

    async def hold(self, ref: str, actor: str) -> dict[str, Any]:
        key = self._key(ref)
        self.pool.hold(key)
        await self._save(key)
        await self._audit(actor, "upstream.disable", key.masked, key.project.name)
        return key.view(self.pool.clock())

    async def unhold(self, ref: str, actor: str) -> dict[str, Any]:
        key = self._key(ref)
        self.pool.unhold(key)
        await self._save(key)
        await self._audit(actor, "upstream.enable", key.masked, key.project.name)
        return key.view(self.pool.clock())

    async def probe(self, ref: str | None, actor: str,
                    lang: str = "en") -> list[dict[str, Any]]:
        """Re-probes one key now, or every disabled one: a key that works comes back (one held
        by the operator stays held; its verdict is still shown)."""
        keys = [self._key(ref)] if ref else [k for p in self.pool.projects for k in p.keys
                                             if not k.active]
        results = []
        for key in keys:
            verdict = await self.prober.check(key)
            works = verdict is not None and _works(verdict)
            if works and not key.held:
                self.pool.enable(key)
            results.append({"key": key.masked, "id": key.id, "works": works,
                            "state": key.view(self.pool.clock())["state"],
                            "problem": None if works else verdict.problem if verdict
                            else ProblemId.UPSTREAM_UNREACHABLE,
                            "hint": None if works else _hint(verdict.problem, lang) if verdict
                            else _hint(ProblemId.UPSTREAM_UNREACHABLE, lang)})
        await self._audit(actor, "upstream.probe", ref or "every disabled key",
                          f"{sum(r['works'] for r in results)}/{len(results)} work")
        return results

    async def history(self, limit: int = 100) -> list[AuditEntry]:
        return [] if self.audit is None else await self.audit.recent(limit)

    # ---- helpers ------------------------------------------------------------------------------

    def _key(self, ref: str) -> KeyState:
        key = self.pool.find_key(ref)
        if key is None:
            raise KeyringError(f"no upstream key with id {ref!r} (ids are on /admin/pool)",
                               ProblemId.UPSTREAM_KEY_UNKNOWN)
        return key

    async def _save(self, key: KeyState, secret: str | None = None,
                    removed: bool = False) -> None:
        if self.store is None:
            return
        kept = next((r for r in await self.store.rows() if r.key_id == key.id), None)
        row = KeyRow(key.id, key.project.name, key.project.tier, key.tag,
                     secret if secret is not None else kept.secret if kept else None,
                     key.held, removed, self.clock())
        if removed:
            row = replace(row, secret=None, held=False)  # a removed key's secret is forgotten
        await self.store.save(row)

    async def _audit(self, actor: str, action: str, target: str, detail: str) -> None:
        if self.audit is not None:
            await self.audit.write(AuditEntry(self.clock(), actor, action, target,
                                              detail).scrubbed())


def _works(verdict: Verdict) -> bool:
    """A key that answers, even with a 429 (its quota is spent, not the key) or a 404 for the
    probe model, is a working key."""
    return verdict.ok or verdict.problem in (ProblemId.MODEL_NOT_FOUND,
                                             ProblemId.QUOTA_EXHAUSTED) \
        or verdict.action == "cool_project"


def _hint(found: ProblemId | None, lang: str) -> str | None:
    return problem(found).hint(lang) if found else None
