"""The guardrails stage: the policy in force for the call (its virtual key's, else its tenant's,
else the default), its rules over the prompt as the client wrote it, then its detectors over
every text part — masking what must not leave, refusing what must not be sent. On the way
back, an answer's placeholders are replaced by the originals where the policy says `restore`.

Runs after `owners` and before idempotency and the cache, so that a replay or a cache entry
holds the masked request and answer, and each call restores its own values. The ledger gets
counts per detector and rule (`guarded`), the metrics likewise; kept prompts get the body with
every value found masked, even those the policy only logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from gemgate.config import GuardPolicyConfig, GuardrailsConfig
from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.core.refusal import Refusal, refusal
from gemgate.guardrails.detectors import BUILTIN, NAMES, Detectors
from gemgate.guardrails.redaction import Redaction, redact_body, strings
from gemgate.guardrails.restore import ByteRestorer, SseRestorer, restore_body
from gemgate.guardrails.rules import RuleHit, Rules
from gemgate.problems import ProblemId
from gemgate.scheduling.estimate import estimate_tokens

log = logging.getLogger("gemgate.guardrails")
OFF = "off"


@dataclass(slots=True)
class Guarded:
    """What the stage found in one call and did about it."""

    policy: str
    redaction: Redaction
    hits: list[RuleHit] = field(default_factory=list)
    safe_body: bytes | None = None  # every value found masked (kept prompts), when it differs

    @property
    def originals(self) -> dict[str, str]:
        return self.redaction.originals

    def summary(self) -> str | None:
        """For the ledger: kinds and rules with counts and actions, never a value."""
        said = [f"{kind} {count} {self.redaction.actions.get(kind, 'log')}"
                for kind, count in sorted(self.redaction.found.items())]
        said += [f"{hit.rule} {hit.action}" for hit in self.hits]
        return "; ".join(said) or None


class _Policy:
    def __init__(self, name: str, config: GuardPolicyConfig) -> None:
        self.name = name
        self.actions: dict[str, str] = {str(k): str(v) for k, v in config.detectors.items()}
        self.actions.update({c.name: c.action for c in config.custom})
        self.detectors = Detectors([k for k in BUILTIN if k in config.detectors],
                                   {c.name: c.pattern for c in config.custom})
        self.rules = Rules(config)
        self.routes = frozenset(config.actions)

    def applies(self, call: Call) -> bool:
        return not self.routes or call.action in self.routes


class Guardrails:
    def __init__(self, config: GuardrailsConfig) -> None:
        self.policies = {name: _Policy(name, p) for name, p in config.policies.items()}
        self.default = config.default
        self._warned: set[str] = set()

    def _policy_for(self, call: Call) -> _Policy | None:
        tenant = call.tenant
        name = (tenant.key.spec.guardrails if tenant and tenant.key else None) or \
            (tenant.guardrails if tenant else None) or self.default
        if name is None or name == OFF:
            return None
        policy = self.policies.get(name)
        if policy is None:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("a key names the guardrails policy %r, which is not configured: "
                            "the default policy applies to it", name)
            policy = self.policies.get(self.default or "")
        return policy

    def check(self, call: Call) -> Refusal | None:
        policy = self._policy_for(call)
        if policy is None or not policy.applies(call):
            return None
        body = _json_body(call)
        if body is None:
            return None
        tokens = call.estimated_tokens
        if tokens is None:
            tokens = estimate_tokens(body)
            if body is call.parsed:  # a model call: the scheduler would estimate it anyway
                call.estimated_tokens = tokens
        hits = policy.rules.check(body, [text for _, _, text in strings(body)], tokens)
        redaction = Redaction(policy.actions)
        changed = redact_body(body, policy.detectors, redaction)
        guarded = call.guarded = Guarded(policy.name, redaction, hits)
        if changed:
            call.body = orjson.dumps(body)
        if any(redaction.actions.get(kind) == "log" for kind in redaction.found):
            guarded.safe_body = _all_masked(body, policy)
        if redaction.blocked:
            kinds = ", ".join(NAMES.get(k, k.lower().replace("_", " "))
                              for k in sorted(redaction.blocked))
            return refusal(ProblemId.GUARD_BLOCKED, f"The prompt contains sensitive data that "
                                                    f"may not be sent: {kinds}.")
        blocking = next((hit for hit in hits if hit.action == "block"), None)
        if blocking is not None:
            return refusal(blocking.problem, blocking.message)
        return None


def _json_body(call: Call) -> dict[str, Any] | None:
    """The body the model will read: a model call's parsed body, or — for what else carries
    prompts to Google (a context cache's contents, a Batch API job's inline requests, an
    interaction) — a JSON object body parsed here. Uploads' bytes are not scanned."""
    if isinstance(call.parsed, dict):
        return call.parsed
    if call.method not in ("POST", "PATCH") or call.body[:64].lstrip()[:1] != b"{":
        return None
    try:
        found = orjson.loads(call.body)
    except orjson.JSONDecodeError:
        return None  # the upstream's own 400 answers it
    return found if isinstance(found, dict) else None


def restored(call: Call, answer: Answer) -> Answer:
    """A whole answer with the call's originals back in (the same Answer otherwise)."""
    guarded: Guarded | None = call.guarded
    if guarded is None or not guarded.originals or answer.stream is not None or \
            not answer.body:
        return answer
    answer.body = restore_body(answer.body, guarded.originals)
    return answer


def stream_restorer(call: Call) -> SseRestorer | ByteRestorer | None:
    guarded: Guarded | None = call.guarded
    if guarded is None or not guarded.originals:
        return None
    return SseRestorer(guarded.originals) if call.sse else ByteRestorer(guarded.originals)


def _all_masked(body: Any, policy: _Policy) -> bytes:
    """The body with every value found masked, those the policy only logs included."""
    copy = orjson.loads(orjson.dumps(body))
    redact_body(copy, policy.detectors, Redaction({k: "redact" for k in policy.actions}))
    return orjson.dumps(copy)
