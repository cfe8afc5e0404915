"""Ephemeral tokens for the Live API, minted by gemgate (`POST /v1alpha/auth_tokens`, the SDK's
`client.auth_tokens.create`) so that a browser or phone can open a Live session without holding
a long-lived gemgate key — as Google's own ephemeral tokens spare clients its API keys.

A token is a bearer credential worth exactly its tenant: a session opened with it is that
tenant's (rights, budget, ledger), and it stops working the moment the tenant's own key would
be refused (revoked, expired, disabled). Google's semantics are kept:
- `uses` sessions may start with it (default 1; 0: any number) before `newSessionExpireTime`
  (default a minute from now); a session started with it ends at `expireTime` (default 30 min);
- `bidiGenerateContentSetup` locks the session's setup: all of it, or — with `fieldMask` — only
  the listed fields, the rest being the client's.

Only the token's SHA-256 is kept (in the shared records, until it expires); its uses are
counted there too, so a token is spent once however many replicas serve it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gemgate.core.call import Tenant
from gemgate.problems import ProblemId
from gemgate.state.records import Records

PREFIX = "auth_tokens/"
_DEFAULT_LIFE_S = 30 * 60.0
_DEFAULT_NEW_SESSIONS_S = 60.0


@dataclass(frozen=True, slots=True)
class Grant:
    """What one minted token allows."""

    tenant_id: str
    expires_at: float  # unix seconds: sessions opened with it end then
    new_sessions_until: float
    uses: int  # 0: no limit
    setup: dict[str, Any] | None  # the locked setup, if any
    field_mask: list[str] | None  # lock only these fields of `setup`

    def constrain(self, asked: dict[str, Any]) -> dict[str, Any]:
        """The setup the session runs with: the client's, with the locked fields the token's."""
        if self.setup is None:
            return asked
        if not self.field_mask:
            locked = dict(self.setup)
            for kept in ("model", "sessionResumption"):  # unlocked when the token is silent
                if kept not in locked and kept in asked:
                    locked[kept] = asked[kept]
            return locked
        result: dict[str, Any] = orjson.loads(orjson.dumps(asked))
        for path in self.field_mask:
            _copy_field(self.setup, result, path.strip().split("."))
        return result


class EphemeralTokens:
    def __init__(self, records: Records, max_lifetime_s: float,
                 wall: Callable[[], float] = time.time) -> None:
        self.records, self.max_lifetime_s, self.wall = records, max_lifetime_s, wall

    async def mint(self, tenant: Tenant, asked: dict[str, Any]) -> tuple[dict[str, Any] | None,
                                                                        ProblemId | None]:
        """Google's AuthToken answer for a new token, or the problem with the request."""
        now = self.wall()
        try:
            grant = self._grant(tenant, asked, now)
        except ValueError:
            return None, ProblemId.LIVE_TOKEN_BAD_REQUEST
        model = str((grant.setup or {}).get("model") or "").removeprefix("models/")
        if model and not tenant.allows_model(model):
            return None, ProblemId.MODEL_NOT_ALLOWED
        token = PREFIX + os.urandom(24).hex()
        await self.records.put(_digest(token), orjson.dumps(_fields(grant)),
                               grant.expires_at - now)
        answer: dict[str, Any] = {"name": token, "expireTime": _rfc3339(grant.expires_at),
                                  "newSessionExpireTime": _rfc3339(grant.new_sessions_until),
                                  "uses": grant.uses}
        if grant.setup is not None:
            answer["bidiGenerateContentSetup"] = grant.setup
        return answer, None

    async def redeem(self, token: str) -> tuple[Grant | None, ProblemId | None]:
        """The token's grant for a new session (one use taken), or why it cannot start one."""
        digest = _digest(token)
        found = await self.records.get(digest)
        now = self.wall()
        if found is None:
            return None, ProblemId.LIVE_TOKEN_INVALID
        grant = Grant(**orjson.loads(found))
        if now >= grant.expires_at:
            return None, ProblemId.LIVE_TOKEN_INVALID
        if now >= grant.new_sessions_until:
            return None, ProblemId.LIVE_TOKEN_SPENT
        if grant.uses and await self.records.incr(digest + ":uses",
                                                  grant.expires_at - now) > grant.uses:
            return None, ProblemId.LIVE_TOKEN_SPENT
        return grant, None

    def _grant(self, tenant: Tenant, asked: dict[str, Any], now: float) -> Grant:
        uses = asked.get("uses", 1)
        if not isinstance(uses, int) or isinstance(uses, bool) or uses < 0:
            raise ValueError("uses")
        expires = _time(asked.get("expireTime"), now + _DEFAULT_LIFE_S)
        new_until = _time(asked.get("newSessionExpireTime"),
                          min(now + _DEFAULT_NEW_SESSIONS_S, expires))
        if not now < expires <= now + self.max_lifetime_s or not now < new_until <= expires:
            raise ValueError("times")
        setup = asked.get("bidiGenerateContentSetup")
        if setup is not None and not isinstance(setup, dict):
            raise ValueError("setup")
        if isinstance(setup, dict) and isinstance(setup.get("setup"), dict):
            setup = setup["setup"]  # the message form, `{"setup": {…}}`, taken too
        mask = asked.get("fieldMask")
        if mask is not None and not isinstance(mask, str):
            raise ValueError("fieldMask")
        fields = [f for f in (mask or "").split(",") if f.strip()] or None
        return Grant(tenant.id, expires, new_until, uses, setup, fields)


def _copy_field(source: dict[str, Any], target: dict[str, Any], path: list[str]) -> None:
    """target[path] = source[path] (dotted, camelCase), or removed when source has none."""
    *parents, last = path
    for name in parents:
        inner = source.get(name)
        source = inner if isinstance(inner, dict) else {}
        if not isinstance(target.get(name), dict):
            target[name] = {}
        target = target[name]
    if last in source:
        target[last] = source[last]
    else:
        target.pop(last, None)


def _fields(grant: Grant) -> dict[str, Any]:
    return {"tenant_id": grant.tenant_id, "expires_at": grant.expires_at,
            "new_sessions_until": grant.new_sessions_until, "uses": grant.uses,
            "setup": grant.setup, "field_mask": grant.field_mask}


def _digest(token: str) -> str:
    return "live-token:" + hashlib.sha256(token.encode()).hexdigest()


def _time(value: Any, default: float) -> float:
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValueError("time")
    moment = datetime.fromisoformat(value)  # RFC 3339, "Z" included (Python ≥ 3.11)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
