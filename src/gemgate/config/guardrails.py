"""The guardrails' settings (`guardrails:`): named policies of detectors, rules and actions,
checked when the configuration is read (a pattern that does not compile is a configuration
error, not a failed request). Applied by pipeline/guardrails.py."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


GuardAction = Literal["redact", "restore", "block", "log"]
RuleAction = Literal["block", "log"]
BuiltinDetector = Literal["EMAIL", "PHONE", "CN_ID", "BANK_CARD", "IP", "API_KEY"]


class CustomDetectorConfig(_Strict):
    """An operator-defined detector: its placeholders read `[NAME_1]`."""

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,30}$")
    pattern: str = Field(min_length=1)
    action: GuardAction = "redact"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        if "(?P<" in pattern:
            raise ValueError("named groups are not allowed in a detector's pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


class DenyRuleConfig(_Strict):
    name: str = Field(min_length=1, max_length=60)
    keywords: list[str] = Field(default_factory=list)  # matched case-insensitively
    regex: str | None = None
    action: RuleAction = "block"

    @model_validator(mode="after")
    def _something(self) -> DenyRuleConfig:
        if not self.keywords and not self.regex:
            raise ValueError("a deny rule needs keywords or a regex")
        if self.regex:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return self


class InjectionConfig(_Strict):
    enabled: bool = False
    action: RuleAction = "block"
    check: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")  # module:function


class GuardPolicyConfig(_Strict):
    """One guardrails policy (guardrails/): what is masked, what is refused."""

    detectors: dict[BuiltinDetector, GuardAction] = Field(default_factory=dict)
    custom: list[CustomDetectorConfig] = Field(default_factory=list)
    deny: list[DenyRuleConfig] = Field(default_factory=list)
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    allowed_tools: list[str] | None = None  # function names and built-in tools; None: any
    allowed_modalities: list[Literal["image", "audio", "video", "document"]] | None = None
    limits_action: RuleAction = "block"  # for max_prompt_tokens, allowed_tools and _modalities
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    actions: list[str] = Field(default_factory=list)  # routes it applies to; empty: every one


class GuardrailsConfig(_Strict):
    """Named policies; a virtual key's `guardrails`, else its tenant's, else `default`, names
    the one in force ("off": none)."""

    policies: dict[str, GuardPolicyConfig] = Field(default_factory=dict)
    default: str | None = None
