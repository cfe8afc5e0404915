"""Virtual keys: the `gk-…` tokens a team lead hands out, each with its own rights.

The secret is shown once, when created or rotated; only its SHA-256 digest is stored. Secrets are
32 random URL-safe characters (192 bits), so a fast hash is enough: there is nothing to guess.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gemgate.secrets import mask_key

PREFIX = "gk-"
Priority = Literal["high", "normal", "low", "batch"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(24)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mask_of(secret: str) -> str:
    return mask_key(secret)


class KeySpec(BaseModel):
    """A key's rights: everything an admin sets, validated the same way for the API and CLI."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\s/]+$")
    owner: str | None = Field(default=None, max_length=200)
    models: list[str] = Field(default_factory=list)  # glob patterns; empty: every model
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    daily_budget_usd: float | None = Field(default=None, ge=0)
    monthly_budget_usd: float | None = Field(default=None, ge=0)
    priority: Priority = "normal"
    ip_allow: list[str] = Field(default_factory=list)  # CIDRs; empty: any address
    expires_at: datetime | None = None
    enabled: bool = True
    guardrails: str | None = Field(default=None, max_length=60)  # a policy's name; "off": none
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ip_allow")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        cleaned = []
        for cidr in cidrs:
            try:
                cleaned.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR range") from None
        return cleaned

    @field_validator("models")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        cleaned = [p.strip().removeprefix("models/") for p in patterns if p.strip()]
        for pattern in cleaned:
            if any(c.isspace() for c in pattern):
                raise ValueError(f"model pattern {pattern!r} contains spaces")
        return cleaned

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, when: datetime | None) -> datetime | None:
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
        return when


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str
    spec: KeySpec
    digest: str
    mask: str
    created_at: float
    updated_at: float
    revoked_at: float | None = None
    networks: tuple[Network, ...] = field(default=(), compare=False)

    @classmethod
    def build(cls, id: str, spec: KeySpec, digest: str, mask: str, created_at: float,
              updated_at: float, revoked_at: float | None = None) -> VirtualKey:
        networks = tuple(ipaddress.ip_network(c) for c in spec.ip_allow)
        return cls(id, spec, digest, mask, created_at, updated_at, revoked_at, networks)

    @property
    def name(self) -> str:
        return self.spec.name

    def expired(self, now: float) -> bool:
        expires = self.spec.expires_at
        return expires is not None and now >= expires.timestamp()

    def allows_ip(self, address: str | None) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def allows_model(self, model: str) -> bool:
        patterns = self.spec.models
        return not patterns or any(fnmatch.fnmatchcase(model, p) for p in patterns)

    def view(self) -> dict[str, Any]:
        """The key as the admin API and CLI show it: never the secret, only its mask."""
        return {"id": self.id, "key": self.mask, **self.spec.model_dump(mode="json"),
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
                "revoked_at": _iso(self.revoked_at) if self.revoked_at else None,
                "status": self.status(datetime.now(UTC).timestamp())}

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expired(now):
            return "expired"
        return "active" if self.spec.enabled else "disabled"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
