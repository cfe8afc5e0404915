"""Deterministic, realistic answers (text, thoughts, function calls, JSON) derived from the prompt.

The same request gives the same answer (unless temperature > 0 without a seed), so tests can assert
on it; sizes and finish reasons follow Gemini's rules, including that thinking tokens count
against `maxOutputTokens`.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from gemgate.simulator.config import SimModel
from gemgate.simulator.tokens import count_request, count_text

_LATIN_WORDS = (
    "the gateway answers every request with care and the model considers context before it "
    "replies while keys rotate quietly across projects so quotas last longer and streams arrive "
    "in order with usage counted exactly as the ledger expects from a dependable service that "
    "teams rely on when deadlines matter most and errors explain themselves clearly"
).split()
_CJK_PHRASES = (
    "网关", "认真", "回答", "每个", "请求", "模型", "会先", "理解", "上下文", "密钥", "轮换",
    "配额", "更持久", "流式", "输出", "按序", "到达", "用量", "精确", "记录", "团队", "信赖",
    "错误", "清楚", "说明",
)
_ECHO = "Repeat after me:"  # the answer is the rest of the prompt, verbatim
_WORD_COUNT = re.compile(r"\b(\d{1,5})\s+words?\b", re.IGNORECASE)
_STOPWORDS = {"get", "set", "list", "the", "a", "an", "of", "for", "to", "and", "or", "by"}


@dataclass
class Reply:
    """One candidate's answer, before it is framed as a response or a stream."""

    parts: list[dict[str, Any]]
    finish_reason: str
    candidate_tokens: int
    thought_parts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Generation:
    candidates: list[Reply]
    prompt_tokens: int
    thoughts_tokens: int


def _config(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    return config if isinstance(config, dict) else {}


def _get(mapping: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    value = mapping.get(camel, mapping.get(snake, default))
    return default if value is None else value


def last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if not isinstance(content, dict):
            continue
        texts = [p["text"] for p in content.get("parts") or () if isinstance(p, dict)
                 and isinstance(p.get("text"), str)]
        if texts:
            return "\n".join(texts)
    return ""


def _last_function_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    contents = body.get("contents") or []
    if not contents or not isinstance(contents[-1], dict):
        return []
    found = []
    for part in contents[-1].get("parts") or ():
        if isinstance(part, dict):
            response = part.get("functionResponse") or part.get("function_response")
            if isinstance(response, dict):
                found.append(response)
    return found


def _rng(body: dict[str, Any], salt: str) -> random.Random:
    config = _config(body)
    seed = _get(config, "seed", "seed")
    temperature = _get(config, "temperature", "temperature")
    if seed is None and isinstance(temperature, int | float) and temperature > 0:
        return random.Random()  # sampling for real: no two answers alike
    digest = hashlib.sha256(orjson.dumps(body.get("contents"), option=orjson.OPT_SORT_KEYS))
    digest.update(f"{seed}|{salt}".encode())
    return random.Random(digest.digest())


def _prose(rng: random.Random, prompt: str, words: int) -> str:
    cjk = sum(1 for c in prompt if "\u4e00" <= c <= "\u9fff")
    if cjk * 2 > max(1, len(prompt.strip())):
        return "".join(rng.choice(_CJK_PHRASES) for _ in range(words)) + "。"
    chosen = [rng.choice(_LATIN_WORDS) for _ in range(words)]
    sentences, start = [], 0
    while start < len(chosen):
        end = min(len(chosen), start + rng.randint(6, 14))
        sentence = " ".join(chosen[start:end])
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        start = end
    return " ".join(sentences)


def _answer_words(prompt: str, rng: random.Random) -> int:
    asked = _WORD_COUNT.search(prompt)
    if asked:
        return max(1, min(int(asked.group(1)), 20_000))
    return rng.randint(12, 48)


def _function_declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            found = tool.get("functionDeclarations") or tool.get("function_declarations") or []
            declarations += [d for d in found if isinstance(d, dict) and d.get("name")]
    return declarations


def _calling_mode(body: dict[str, Any]) -> tuple[str, list[str]]:
    tool_config = body.get("toolConfig") or body.get("tool_config") or {}
    calling = _get(tool_config, "functionCallingConfig", "function_calling_config", {})
    mode = str(_get(calling, "mode", "mode", "AUTO")).upper()
    allowed = list(_get(calling, "allowedFunctionNames", "allowed_function_names", []))
    return mode, allowed


def _wants(declaration: dict[str, Any], prompt: str) -> bool:
    words = {w for w in re.split(r"[_\W]+", str(declaration["name"]).lower()) if w}
    words -= _STOPWORDS
    lowered = prompt.lower()
    return str(declaration["name"]).lower() in lowered or any(w in lowered for w in words)


def _pick_function(body: dict[str, Any], prompt: str) -> dict[str, Any] | None:
    declarations = _function_declarations(body)
    if not declarations or _last_function_responses(body):
        return None
    mode, allowed = _calling_mode(body)
    if mode == "NONE":
        return None
    if allowed:
        declarations = [d for d in declarations if d["name"] in allowed] or declarations
    wanted = [d for d in declarations if _wants(d, prompt)]
    if wanted:
        return wanted[0]
    return declarations[0] if mode in ("ANY", "VALIDATED") else None


def _schema_of(declaration: dict[str, Any]) -> dict[str, Any]:
    for key in ("parameters", "parametersJsonSchema", "parameters_json_schema"):
        if isinstance(declaration.get(key), dict):
            return declaration[key]  # type: ignore[no-any-return]
    return {}


def _value_for(schema: dict[str, Any], prompt: str, rng: random.Random, depth: int = 0) -> Any:
    """A value that satisfies `schema`, taken from the prompt where it plausibly can be."""
    if not isinstance(schema, dict) or depth > 6:
        return None
    for union in ("anyOf", "any_of", "oneOf"):
        if isinstance(schema.get(union), list) and schema[union]:
            return _value_for(schema[union][0], prompt, rng, depth + 1)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object") if not isinstance(schema.get("type"), list)
               else schema["type"][0]).lower()
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _value_for(sub, prompt, rng, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        item = schema.get("items") or {"type": "string"}
        return [_value_for(item, prompt, rng, depth + 1) for _ in range(2)]
    if kind in ("integer", "number"):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", prompt)
        if numbers:
            value = float(numbers[0])
            return int(value) if kind == "integer" else value
        return rng.randint(1, 100) if kind == "integer" else round(rng.random() * 100, 2)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    capitalised = re.findall(r"\b[A-Z][a-zA-Z]+\b", prompt)
    named = [w for w in capitalised if w.lower() not in ("what", "how", "please", "the", "is")]
    return named[-1] if named else rng.choice(_LATIN_WORDS)


def _function_call_part(declaration: dict[str, Any], prompt: str, rng: random.Random,
                        model: SimModel) -> dict[str, Any]:
    args = _value_for(_schema_of(declaration), prompt, rng)
    part: dict[str, Any] = {"functionCall": {"name": declaration["name"], "args": args or {}}}
    if model.thinking:
        signature = hashlib.sha256(orjson.dumps(part)).digest()[:16]
        part["thoughtSignature"] = base64.b64encode(signature).decode()
    return part


def _json_text(body: dict[str, Any], prompt: str, rng: random.Random, words: int) -> str:
    config = _config(body)
    schema = (_get(config, "responseJsonSchema", "response_json_schema")
              or _get(config, "responseSchema", "response_schema"))
    if isinstance(schema, dict) and schema:
        return orjson.dumps(_value_for(schema, prompt, rng)).decode()
    return orjson.dumps({"answer": _prose(rng, prompt, min(words, 24))}).decode()


def _thinking_tokens(body: dict[str, Any], model: SimModel, rng: random.Random) -> int:
    if not model.thinking:
        return 0
    thinking = _get(_config(body), "thinkingConfig", "thinking_config", {})
    budget = _get(thinking, "thinkingBudget", "thinking_budget")
    level = str(_get(thinking, "thinkingLevel", "thinking_level", "")).upper()
    natural = rng.randint(40, 200) * (2 if level == "HIGH" else 1) // (4 if level in
                                                                     ("LOW", "MINIMAL") else 1)
    if budget is None or budget < 0:
        return natural
    return min(natural, int(budget))


def _truncate(text: str, limit: int) -> str:
    """The longest prefix of whole words that fits in `limit` tokens."""
    if count_text(text) <= limit:
        return text
    words = text.split(" ")
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if count_text(" ".join(words[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    if low == 0 and len(words) == 1:  # a single long CJK run: cut characters instead
        return text[:limit]
    return " ".join(words[:low])


def _apply_stops(text: str, body: dict[str, Any]) -> tuple[str, bool]:
    for stop in _get(_config(body), "stopSequences", "stop_sequences", []) or []:
        if isinstance(stop, str) and stop and stop in text:
            return text[: text.index(stop)], True
    return text, False


def _one_candidate(body: dict[str, Any], model: SimModel, index: int, thoughts: int) -> Reply:
    rng = _rng(body, f"candidate-{index}")
    prompt = last_user_text(body)
    config = _config(body)
    declaration = _pick_function(body, prompt)
    if declaration is not None:
        part = _function_call_part(declaration, prompt, rng, model)
        return Reply([part], "STOP", count_text(orjson.dumps(part["functionCall"]).decode()))
    words = _answer_words(prompt, rng)
    mime = str(_get(config, "responseMimeType", "response_mime_type", "text/plain"))
    responses = _last_function_responses(body)
    if prompt.startswith(_ECHO):
        text = prompt[len(_ECHO):].strip(" ")
    elif mime == "application/json":
        text = _json_text(body, prompt, rng, words)
    elif responses:
        summary = orjson.dumps(responses[0].get("response", {})).decode()
        tool = responses[0].get("name", "the tool")
        text = f"Based on {tool}: {summary}. " + _prose(rng, prompt, 8)
    else:
        text = _prose(rng, prompt, words)
    text, stopped = _apply_stops(text, body)
    limit = _get(config, "maxOutputTokens", "max_output_tokens")
    finish = "STOP"
    if isinstance(limit, int) and count_text(text) + thoughts > limit:
        text, finish = _truncate(text, max(0, limit - thoughts)), "MAX_TOKENS"
    parts = [{"text": text}] if text else []
    return Reply(parts, finish if not stopped else "STOP", count_text(text))


def _thought_summary(body: dict[str, Any], model: SimModel, thoughts: int) -> list[dict[str, Any]]:
    thinking = _get(_config(body), "thinkingConfig", "thinking_config", {})
    if not thoughts or not _get(thinking, "includeThoughts", "include_thoughts", False):
        return []
    topic = " ".join(last_user_text(body).split()[:8]) or "the request"
    return [{"text": f"**Considering the request**\n\nI am weighing {topic} step by step.",
             "thought": True}]


def generate(body: dict[str, Any], model: SimModel) -> Generation:
    thoughts = _thinking_tokens(body, model, _rng(body, "thinking"))
    count = _get(_config(body), "candidateCount", "candidate_count", 1)
    count = count if isinstance(count, int) and 1 <= count <= 8 else 1
    candidates = [_one_candidate(body, model, i, thoughts) for i in range(count)]
    candidates[0].thought_parts = _thought_summary(body, model, thoughts)
    return Generation(candidates, count_request(body), thoughts)


def stream_pieces(reply: Reply, pieces_hint: int = 4) -> list[list[dict[str, Any]]]:
    """The new parts of each stream chunk: thoughts first, then text in a few growing pieces."""
    chunks: list[list[dict[str, Any]]] = []
    if reply.thought_parts:
        chunks.append(list(reply.thought_parts))
    for part in reply.parts:
        text = part.get("text")
        if not isinstance(text, str) or len(text) < 40:
            chunks.append([part])
            continue
        words = text.split(" ")
        if len(words) == 1:  # CJK text has no spaces: split between characters
            size = max(1, len(text) // pieces_hint)
            chunks += [[{"text": text[i : i + size]}] for i in range(0, len(text), size)]
            continue
        size = max(1, len(words) // pieces_hint)
        for start in range(0, len(words), size):
            piece = " ".join(words[start : start + size])
            chunks.append([{"text": piece if start == 0 else " " + piece}])
    return chunks or [[]]
