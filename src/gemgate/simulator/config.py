"""What a simulated Google looks like: projects with keys and quotas, models, latency, faults.

Loaded from YAML (`gemgate simulate --config sim.yaml`), from flags, or built in Python by tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

Tier = Literal["free", "tier1", "tier2", "tier3"]
# The barred states: the API switched off in the project, the consumer suspended, the caller's
# region, a free tier not offered in the caller's country, and the key's own restrictions
# (which Google sets per key; here every key of the project carries them).
ProjectState = Literal["active", "api_disabled", "suspended", "region_blocked",
                       "free_tier_unavailable", "ip_restricted", "referrer_restricted",
                       "api_restricted"]
FaultKind = Literal["429", "500", "503", "504", "reset", "midstream", "latency"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuotaLimits(_Strict):
    """Per project and model. None means unlimited."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)


class SimProject(_Strict):
    name: str
    number: int | None = None
    keys: list[str] = Field(min_length=1)
    tier: Tier = "free"
    state: ProjectState = "active"
    # Keyed by model id ("gemini-2.5-flash") or "*" for every model without its own entry.
    quotas: dict[str, QuotaLimits] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _keys_are_clean(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not key or key != key.strip():
                raise ValueError("keys must be non-empty and have no surrounding spaces")
        return keys

    def project_number(self) -> int:
        """Google shows projects by number in its errors; derive a stable one when unset."""
        if self.number is not None:
            return self.number
        spread = sum(ord(c) * 7919**i for i, c in enumerate(self.name)) % 899_999_999_999
        return int(100_000_000_000 + spread)


class SimModel(_Strict):
    name: str
    display_name: str = ""
    version: str = "001"
    input_token_limit: int = 1_048_576
    output_token_limit: int = 65_536
    thinking: bool = False
    thinking_required: bool = False  # True for models that reject thinkingBudget 0 (2.5 Pro)
    embedding: bool = False
    embedding_dim: int = 768


class FaultRule(_Strict):
    """One way the simulator misbehaves. A request matching several rules gets the first that fires.

    `probability` is drawn from the simulator's seeded RNG; `every` fires on every Nth matching
    request; `count` limits how many times the rule fires before it retires itself.
    """

    kind: FaultKind
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    every: int | None = Field(default=None, ge=1)
    count: int | None = Field(default=None, ge=1)
    model: str | None = None  # fnmatch pattern on the model id
    key: str | None = None
    project: str | None = None
    stream_only: bool = False
    delay_ms: float = Field(default=0.0, ge=0)  # "latency": added before answering
    after_chunks: int = Field(default=1, ge=0)  # "midstream": chunks sent before the error event
    error_code: int = Field(default=503)  # "midstream": which error the event carries
    retry_after_s: float = Field(default=30.0, ge=0)  # "429": the RetryInfo it carries


def _default_models() -> list[SimModel]:
    return [
        SimModel(name="gemini-2.5-pro", display_name="Gemini 2.5 Pro", thinking=True,
                 thinking_required=True),
        SimModel(name="gemini-2.5-flash", display_name="Gemini 2.5 Flash", thinking=True),
        SimModel(name="gemini-2.5-flash-lite", display_name="Gemini 2.5 Flash-Lite"),
        SimModel(name="gemini-2.0-flash", display_name="Gemini 2.0 Flash", output_token_limit=8192),
        SimModel(name="gemini-3.1-pro-preview", display_name="Gemini 3.1 Pro Preview",
                 thinking=True, thinking_required=True),
        SimModel(name="gemini-3.5-flash", display_name="Gemini 3.5 Flash", thinking=True),
        SimModel(name="gemini-embedding-001", display_name="Gemini Embedding 001",
                 input_token_limit=2048, output_token_limit=1, embedding=True, embedding_dim=3072),
        SimModel(name="text-embedding-004", display_name="Text Embedding 004",
                 input_token_limit=2048, output_token_limit=1, embedding=True),
    ]


def _default_projects() -> list[SimProject]:
    return [
        SimProject(name="sim-free", keys=["sim-free-key-1", "sim-free-key-2"], tier="free"),
        SimProject(name="sim-paid", keys=["sim-paid-key-1"], tier="tier1"),
    ]


class SimConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 8788
    seed: int | None = 0
    # Accept any non-empty key as a key of the first project (handy for demos).
    any_key: bool = False
    # Length of a quota "minute" and "day" in seconds. Tests shorten them; None for the day
    # means Google's real rule: requests per day reset at midnight Pacific time.
    minute_seconds: float = Field(default=60.0, gt=0)
    day_seconds: float | None = Field(default=None, gt=0)
    latency_ms: float = Field(default=0.0, ge=0)  # added to every non-streamed answer
    # A batch job is PENDING for the first half of this, RUNNING for the second, then done;
    # one still unfinished after batch_expire_seconds is EXPIRED (Google: 48 hours).
    batch_seconds: float = Field(default=1.0, ge=0)
    batch_expire_seconds: float = Field(default=48 * 3600.0, gt=0)
    # A Live session is told to go away (goAway) after this long (Google: about 10 minutes).
    live_goaway_seconds: float = Field(default=600.0, gt=0)
    ttfb_ms: float = Field(default=0.0, ge=0)  # before a stream's first chunk
    chunk_delay_ms: float = Field(default=0.0, ge=0)  # between stream chunks
    projects: list[SimProject] = Field(default_factory=_default_projects)
    models: list[SimModel] = Field(default_factory=_default_models)
    faults: list[FaultRule] = Field(default_factory=list)
    control_token: str | None = None  # when set, /_sim/* needs `x-sim-control-token`

    @field_validator("projects")
    @classmethod
    def _keys_are_unique(cls, projects: list[SimProject]) -> list[SimProject]:
        seen: set[str] = set()
        for project in projects:
            for key in project.keys:
                if key in seen:
                    raise ValueError("a key belongs to exactly one project")
                seen.add(key)
        return projects

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimConfig:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)
