"""A Live session's seats: one in its tenant's scope (`live.max_sessions_per_tenant`) and one in
its project's (Google limits a project's concurrent Live sessions — `projects[].live_sessions`,
else the tier's). Both are slots in the shared state, so every replica's sessions count against
the same limits, as quota windows do; a session renews its seats while it lives, and a replica
that dies frees its seats when their leases run out."""

from __future__ import annotations

from collections.abc import Callable

from gemgate.state.slots import Slots


def tenant_scope(tenant_id: str) -> str:
    return f"live:tenant:{tenant_id}"


def project_scope(project: str) -> str:
    return f"live:project:{project}"


class LiveSeats:
    def __init__(self, slots: Slots, per_tenant: int,
                 per_project: Callable[[str, str], int]) -> None:
        """`per_project(name, tier)`: how many sessions Google lets that project hold."""
        self.slots, self.per_tenant, self.per_project = slots, per_tenant, per_project

    async def take_tenant(self, tenant_id: str, holder: str) -> bool:
        return await self.slots.take(tenant_scope(tenant_id), holder, self.per_tenant)

    async def take_project(self, name: str, tier: str, holder: str) -> bool:
        return await self.slots.take(project_scope(name), holder, self.per_project(name, tier))

    async def renew(self, scopes: list[str], holder: str) -> None:
        for scope in scopes:
            await self.slots.renew(scope, holder)

    async def free(self, scopes: list[str], holder: str) -> None:
        for scope in scopes:
            await self.slots.give(scope, holder)

    async def in_use(self, projects: list[tuple[str, str]]) -> dict[
            tuple[str, str, str], tuple[int, int]]:
        """(project, "live", "sessions") → (open, limit) for each (name, tier): a quota row
        like the others (console bars, /admin/upstream, gemgate_quota_used)."""
        return {(name, "live", "sessions"): (await self.slots.count(project_scope(name)),
                                             self.per_project(name, tier))
                for name, tier in projects}
