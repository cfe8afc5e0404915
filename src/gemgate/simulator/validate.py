"""Request checks that Google performs, with its wording, so bad input fails the same way here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from gemgate.simulator.config import SimModel


class Invalid(Exception):
    """A 400 INVALID_ARGUMENT with Google's message and the field it concerns."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@lru_cache(maxsize=1024)
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


_REQUEST_FIELDS = {
    "model", "contents", "systemInstruction", "tools", "toolConfig", "safetySettings",
    "generationConfig", "cachedContent", "serviceTier", "store", "labels",
}
_FLOAT, _INT, _BOOL, _STR, _LIST, _OBJ = "TYPE_FLOAT", "TYPE_INT32", "TYPE_BOOL", "TYPE_STRING", \
    "list", "object"
_GENERATION_FIELDS: dict[str, str] = {
    "temperature": _FLOAT, "topP": _FLOAT, "presencePenalty": _FLOAT, "frequencyPenalty": _FLOAT,
    "topK": _INT, "candidateCount": _INT, "maxOutputTokens": _INT, "seed": _INT, "logprobs": _INT,
    "responseLogprobs": _BOOL, "enableEnhancedCivicAnswers": _BOOL, "audioTimestamp": _BOOL,
    "enableAffectiveDialog": _BOOL,
    "responseMimeType": _STR, "mediaResolution": "enum",
    "stopSequences": _LIST, "responseModalities": _LIST,
    "responseSchema": _OBJ, "responseJsonSchema": _OBJ, "_responseJsonSchema": _OBJ,
    "thinkingConfig": _OBJ, "speechConfig": _OBJ, "imageConfig": _OBJ, "routingConfig": _OBJ,
    "modelSelectionConfig": _OBJ, "audioTranscriptionConfig": _OBJ,
}
_PART_DATA = {
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult", "thought", "thoughtSignature", "videoMetadata", "partMetadata",
    "mediaResolution", "toolCall", "toolResponse",
}


def _lenient(raw: bytes) -> Any:
    """Google's JSON reader is lenient: its own REST docs send `{'file': {'display_name':
    'TEXT'}}` with single quotes, and it answers 200. YAML's flow style reads that form (and
    unquoted keys) the same way; anything it cannot read stays invalid."""
    import yaml

    text = raw.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        body = _lenient(raw)
        if not isinstance(body, dict):
            fragment = raw[: max(0, exc.pos) + 1].decode("utf-8", "replace")[-40:]
            raise Invalid(f"Invalid JSON payload received. Unexpected token.\n{fragment}\n^",
                          "") from None
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received. Expected an object.", "")
    return body


def _type_ok(kind: str, value: Any) -> bool:
    if kind in (_FLOAT, _INT):
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            return kind == _FLOAT or float(value).is_integer()
        if isinstance(value, str):  # proto3 JSON also takes numbers as strings
            try:
                number = float(value)
            except ValueError:
                return False
            return kind == _FLOAT or number.is_integer()
        return False
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _LIST:
        return isinstance(value, list)
    if kind == _OBJ:
        return isinstance(value, dict)
    return isinstance(value, str | int)  # enums: by name or, from the legacy SDK, by number


def _shown(value: Any) -> str:
    return orjson.dumps(value).decode()


def _unknown(name: str, at: str | None = None) -> Invalid:
    where = f" at '{at}'" if at else ""
    return Invalid(f'Invalid JSON payload received. Unknown name "{name}"{where}: '
                   "Cannot find field.",
                   at or "")


def _check_contents(contents: Any, path: str) -> None:
    if contents is None or contents == []:
        raise Invalid(f"* {path}: contents is not specified\n", "contents")
    if not isinstance(contents, list):
        raise Invalid('Invalid JSON payload received. Unknown name "contents": '
                      "Proto field is not repeating, cannot start list.", "contents")
    for i, content in enumerate(contents):
        _check_content(content, f"contents[{i}]", path)


def _check_content(content: Any, where: str, path: str = "GenerateContentRequest") -> None:
    if not isinstance(content, dict):
        raise Invalid(
            f"Invalid value at '{where}' (type.googleapis.com/google.ai.generativelanguage."
            f"v1beta.Content), {_shown(content)}", where)
    role = content.get("role")
    if role not in (None, "", "user", "model", "function", "tool", "system"):
        raise Invalid("Please use a valid role: user, model.", f"{where}.role")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* {path}.{where}.parts: contents.parts must not be empty.\n",
                      f"{where}.parts")
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not any(camel(k) in _PART_DATA for k in part):
            raise Invalid(f"* {path}.{where}.parts[{j}].data: required oneof field 'data' must "
                          "have one initialized field\n", f"{where}.parts[{j}].data")
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            raise Invalid(f"Invalid value at '{where}.parts[{j}].text' (TYPE_STRING), "
                          f"{_shown(text)}", f"{where}.parts[{j}].text")


def _check_generation_config(config: Any, model: SimModel) -> None:
    if not isinstance(config, dict):
        raise Invalid("Invalid value at 'generation_config' (type.googleapis.com/google.ai."
                      f"generativelanguage.v1beta.GenerationConfig), {_shown(config)}",
                      "generation_config")
    for name, value in config.items():
        kind = _GENERATION_FIELDS.get(camel(name))
        if kind is None:
            raise _unknown(name, "generation_config")
        if value is not None and not _type_ok(kind, value):
            field = f"generation_config.{snake(camel(name))}"
            raise Invalid(f"Invalid value at '{field}' ({kind}), {_shown(value)}", field)
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    if budget == 0 and model.thinking_required:
        raise Invalid("Budget 0 is invalid. This model only works in thinking mode.")
    if budget is not None and (thinking.get("thinkingLevel") or thinking.get("thinking_level")):
        raise Invalid("You can only set thinking_budget or thinking_level, not both.")


def check_generate(body: dict[str, Any], model: SimModel) -> None:
    for name in body:
        if camel(name) not in _REQUEST_FIELDS:
            raise _unknown(name)
    _check_contents(body.get("contents"), "GenerateContentRequest.contents")
    system = body.get("systemInstruction", body.get("system_instruction"))
    if system is not None:
        _check_content(system, "system_instruction")
    config = body.get("generationConfig", body.get("generation_config"))
    if config is not None:
        _check_generation_config(config, model)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise Invalid('Invalid JSON payload received. Unknown name "tools": Proto field is not '
                      "repeating, cannot start list.", "tools")


def count_tokens_request(body: dict[str, Any], model: SimModel) -> dict[str, Any]:
    """countTokens takes `contents` or a whole `generateContentRequest`; returns the latter form."""
    inner = body.get("generateContentRequest") or body.get("generate_content_request")
    if isinstance(inner, dict):
        check_generate({k: v for k, v in inner.items() if k != "model"}, model)
        return inner
    for name in body:
        if camel(name) not in ("contents", "generateContentRequest"):
            raise _unknown(name)
    _check_contents(body.get("contents"), "CountTokensRequest.contents")
    return {"contents": body["contents"]}


def embed_request(body: dict[str, Any], where: str = "") -> tuple[str, int | None]:
    """The text to embed and the requested dimensionality of one EmbedContentRequest."""
    content = body.get("content")
    if not isinstance(content, dict):
        raise Invalid(f"* EmbedContentRequest{where}.content: content is not specified\n",
                      "content")
    _check_content(content, f"{where.lstrip('.') or ''}content".lstrip("."), "EmbedContentRequest")
    dims = body.get("outputDimensionality", body.get("output_dimensionality"))
    if dims is not None and (not _type_ok(_INT, dims) or int(dims) <= 0):
        raise Invalid(f"Invalid value at 'output_dimensionality' (TYPE_INT32), {_shown(dims)}",
                      "output_dimensionality")
    texts = [p.get("text", "") for p in content["parts"] if isinstance(p.get("text"), str)]
    return " ".join(texts), (int(dims) if dims is not None else None)
