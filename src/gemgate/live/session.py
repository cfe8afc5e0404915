"""One Live session's own state — its call, its token, its seats, its usage — and what it may
still do while it runs (edges/live.py relays its frames): its token read again (a key revoked,
expired or disabled since), its usage added up by modality, its key's daily and monthly budgets
against what the key's other calls spent plus the session so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gemgate.access.service import KeyService
from gemgate.core.call import Call
from gemgate.live.tokens import Grant
from gemgate.pipeline.auth import Authenticator
from gemgate.prices import PriceBook, Tokens
from gemgate.problems import ProblemId
from gemgate.usage import add_usage


@dataclass(slots=True)
class Session:
    """One Live session's own state, from handshake to ledger row."""

    call: Call
    token: str | None
    grant: Grant | None = None
    seats: list[str] = field(default_factory=list)  # scopes held (live/seats.py)
    project: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    ended: ProblemId | None = None
    frames: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # up, down, bytes up, down


class SessionRights:
    def __init__(self, auth: Authenticator, keys: KeyService | None,
                 prices: PriceBook) -> None:
        self.auth, self.keys, self.prices = auth, keys, prices

    async def still_allowed(self, live: Session) -> ProblemId | None:
        """Rights read again mid-session: the tenant's token (or the one that minted the
        ephemeral token) still valid, and its budgets not spent by its other calls."""
        call = live.call
        if live.grant is not None:
            tenant, refused = self.auth.tenant_by_id(live.grant.tenant_id, call.client_ip)
        else:
            tenant, refused = self.auth.authenticate(live.token, call.client_ip)
        if refused is not None or tenant is None:
            return refused or ProblemId.TOKEN_INVALID
        return ProblemId.BUDGET_EXCEEDED if self.over_budget(live) else None

    def spent(self, live: Session, data: bytes) -> bool:
        """Adds a usageMetadata message to the session's usage; True once the session would
        pass its key's budget."""
        message = json_or_none(data)
        found = message.get("usageMetadata") if isinstance(message, dict) else None
        if not isinstance(found, dict):
            return False
        add_usage(live.usage, found)
        return self.over_budget(live)

    def over_budget(self, live: Session) -> bool:
        """What the key spent before (its other calls, on any replica) plus this session's
        usage so far, against its daily and monthly budgets."""
        call = live.call
        key = call.tenant.key if call.tenant is not None else None
        if key is None or self.keys is None:
            return False
        budgets = (("daily", key.spec.daily_budget_usd), ("monthly", key.spec.monthly_budget_usd))
        if all(limit is None for _, limit in budgets):
            return False
        session = self.prices.cost(call.model, Tokens.of(live.usage))
        spent = self.keys.spent(key)
        return any(limit is not None and spent[period] + session >= limit
                   for period, limit in budgets)


def json_or_none(data: Any) -> Any:
    """A frame's JSON, or None for a frame that is not (or not a JSON text at all)."""
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return None
