"""Console sessions: signing in with the admin key gives a random session id in a cookie
(HttpOnly, SameSite=Strict, Secure under TLS); the session, with its CSRF token, is a small
record with a lifetime (state/records.py: Redis when shared, so any replica knows it)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

import orjson

from gemgate.state.records import Records

COOKIE = "gemgate_console"
LIFETIME_S = 8 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str


class Sessions:
    def __init__(self, records: Records, admin_key: str | None) -> None:
        self.records, self.admin_key = records, admin_key

    def admits(self, key: str) -> bool:
        return bool(self.admin_key) and hmac.compare_digest(key.encode(),
                                                            (self.admin_key or "").encode())

    async def open(self) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        await self.records.put(self._name(session.id), orjson.dumps({"csrf": session.csrf}),
                               LIFETIME_S)
        return session

    async def find(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.records.get(self._name(session_id))
        return Session(session_id, orjson.loads(raw)["csrf"]) if raw else None

    async def close(self, session_id: str) -> None:
        await self.records.delete(self._name(session_id))

    @staticmethod
    def _name(session_id: str) -> str:
        return "console-session:" + session_id
