"""The operator's rules over a prompt, besides sensitive data: deny rules (keywords, regular
expressions), the longest prompt, the tools and the kinds of media a key may send, and a screen
for prompt injection. Each rule that matches says what to do (`block`: refuse; `log`: count)
and which problem the client is told, never the words that matched."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gemgate.config import GuardPolicyConfig
from gemgate.problems import ProblemId

# Phrasings that try to talk the model out of its instructions (en and zh): OWASP's LLM01
# examples and the jailbreak corpora's commonest openings. A screen, not a proof: it catches
# the blunt attempts and counts them; `injection.check` plugs in a classifier for the rest.
# Each screen is looked for only where one of its anchor words is in the (lowercased) text —
# a substring search in C — so prose that never says "ignore" or "mode" costs ~0.1 ms per
# 44 KB instead of the regexes' ~3 ms (bench/guardrails.py).
_INJECTION = [(anchors, re.compile(pattern)) for anchors, pattern in (
    (("ignore", "disregard", "forget", "override"),
     r"(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|"
     r"your|system)\b.{0,20}\b(?:instructions?|prompts?|rules|guidelines|directions)\b"),
    (("system prompt", "instructions", "initial prompt", "hidden prompt"),
     r"(?:reveal|show|print|repeat|output|leak)\b.{0,30}\b(?:system prompt|hidden "
     r"(?:instructions|prompt)|initial (?:instructions|prompt)|your instructions)\b"),
    (("you are now",),
     r"you are now\b.{0,40}\b(?:dan|unrestricted|unfiltered|jailbroken|developer mode)\b"),
    ((" mode",), r"(?:developer|god|dan|jailbreak) mode\b"),
    (("pretend",), r"pretend\b.{0,40}\bno (?:rules|restrictions|guidelines|filters)\b"),
    (("忽略", "无视", "忘记", "忘掉"),
     r"(?:忽略|无视|忘记|忘掉).{0,12}(?:之前|以上|前面|先前|所有|系统).{0,8}(?:指令|指示|提示|规则|要求)"),
    (("系统提示", "系统指令", "初始指令", "隐藏指令"),
     r"(?:泄露|显示|输出|告诉我|重复).{0,10}(?:系统提示|系统指令|初始指令|隐藏指令)"),
    (("模式",), r"(?:开发者|越狱|上帝)模式"),
)]

MEDIA = {"image": "image/", "audio": "audio/", "video": "video/", "document": "application/"}
_BUILTIN_TOOLS = ("googleSearch", "google_search", "googleSearchRetrieval", "codeExecution",
                  "code_execution", "urlContext", "url_context", "googleMaps", "fileSearch")


@dataclass(frozen=True, slots=True)
class RuleHit:
    rule: str  # deny:NAME, max_prompt_tokens, tool:NAME, modality:KIND, injection
    action: str  # block or log
    problem: ProblemId
    message: str


def looks_like_injection(texts: list[str]) -> bool:
    for text in (t.lower() for t in texts):
        for anchors, pattern in _INJECTION:
            if any(anchor in text for anchor in anchors) and pattern.search(text):
                return True
    return False


def load_check(path: str) -> Callable[[list[str]], bool]:
    """The operator's own injection check, `package.module:function(texts) -> bool`."""
    module, _, name = path.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not callable(found):
        raise TypeError(f"{path} is not callable")
    return found  # type: ignore[no-any-return]


class Rules:
    def __init__(self, policy: GuardPolicyConfig) -> None:
        self.policy = policy
        # Keywords are substring searches on the lowercased text (C speed); a rule's regex
        # runs as written, case-insensitively.
        self.deny = [(rule.name, rule.action, tuple(k.lower() for k in rule.keywords),
                      re.compile(rule.regex, re.IGNORECASE) if rule.regex else None)
                     for rule in policy.deny]
        injection = policy.injection
        self.injection: Callable[[list[str]], bool] | None = None
        if injection.enabled:
            self.injection = load_check(injection.check) if injection.check \
                else looks_like_injection

    def check(self, body: Any, texts: list[str], tokens: int) -> list[RuleHit]:
        hits: list[RuleHit] = []
        lowered = [text.lower() for text in texts] if self.deny else []
        for name, action, keywords, pattern in self.deny:
            if any(k in text for text in lowered for k in keywords) or (
                    pattern is not None and any(pattern.search(text) for text in texts)):
                hits.append(RuleHit(f"deny:{name}", action, ProblemId.GUARD_DENIED,
                                    f"The prompt matches the deny rule {name!r}."))
        limit = self.policy.max_prompt_tokens
        if limit is not None and tokens > limit:
            hits.append(RuleHit("max_prompt_tokens", self.policy.limits_action,
                                ProblemId.GUARD_PROMPT_TOO_LONG,
                                f"The prompt is about {tokens} tokens; this key allows "
                                f"{limit}."))
        hits += self._tools(body) + self._media(body)
        if self.injection is not None and self.injection(texts):
            hits.append(RuleHit("injection", self.policy.injection.action,
                                ProblemId.GUARD_INJECTION,
                                "The prompt looks like an attempt to override the model's "
                                "instructions."))
        return hits

    def _tools(self, body: Any) -> list[RuleHit]:
        allowed = self.policy.allowed_tools
        if allowed is None or not isinstance(body, dict):
            return []
        used: list[str] = []
        for tool in body.get("tools") or ():
            if not isinstance(tool, dict):
                continue
            for declaration in tool.get("functionDeclarations") or \
                    tool.get("function_declarations") or ():
                if isinstance(declaration, dict):
                    used.append(str(declaration.get("name")))
            used += [name for name in _BUILTIN_TOOLS if name in tool]
        return [RuleHit(f"tool:{name}", self.policy.limits_action,
                        ProblemId.GUARD_TOOL_NOT_ALLOWED,
                        f"The tool {name[:60]!r} is not allowed for this key.")
                for name in dict.fromkeys(used) if name not in allowed]

    def _media(self, body: Any) -> list[RuleHit]:
        allowed = self.policy.allowed_modalities
        if allowed is None or not isinstance(body, dict):
            return []
        kinds = set()
        for content in body.get("contents") or ():
            for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
                if not isinstance(part, dict):
                    continue
                blob = part.get("inlineData") or part.get("inline_data") or \
                    part.get("fileData") or part.get("file_data")
                if isinstance(blob, dict):
                    mime = str(blob.get("mimeType") or blob.get("mime_type") or "")
                    kinds.add(next((k for k, p in MEDIA.items() if mime.startswith(p)),
                                   "document"))
        return [RuleHit(f"modality:{kind}", self.policy.limits_action,
                        ProblemId.GUARD_MODALITY_NOT_ALLOWED,
                        f"{kind.capitalize()} input is not allowed for this key.")
                for kind in sorted(kinds) if kind not in allowed]
