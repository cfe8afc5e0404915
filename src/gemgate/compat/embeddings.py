"""OpenAI's /embeddings as Gemini's batchEmbedContents, and the answer back.

The openai SDKs ask for `encoding_format: "base64"` unless told otherwise (and decode it
themselves): little-endian float32, as OpenAI sends it.
"""

from __future__ import annotations

import base64
from array import array
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .chat_request import RequestInvalid, model_id


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        inputs = [self.input] if isinstance(self.input, str) else list(self.input)
        if not inputs:
            raise RequestInvalid("input must not be empty", "input")
        if not all(isinstance(item, str) for item in inputs):
            raise RequestInvalid("token arrays are not supported by Gemini; send text", "input")
        if len(inputs) > 100:
            raise RequestInvalid("Gemini embeds at most 100 inputs per request", "input")
        return [str(item) for item in inputs]


def to_gemini(request: EmbeddingRequest) -> dict[str, Any]:
    model = f"models/{model_id(request.model)}"
    requests = []
    for text in request.texts():
        one: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        requests.append(one)
    return {"requests": requests}


def _encoded(values: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return values
    packed = array("f", values)
    if packed.itemsize != 4 or array("H", [1]).tobytes() != b"\x01\x00":
        raise RuntimeError("base64 embeddings need a little-endian float32 platform")
    return base64.b64encode(packed.tobytes()).decode()


def from_gemini(response: dict[str, Any], request: EmbeddingRequest, model: str,
                prompt_tokens: int) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i,
             "embedding": _encoded(list(e.get("values") or []), request.encoding_format)}
            for i, e in enumerate(response.get("embeddings") or ())]
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
