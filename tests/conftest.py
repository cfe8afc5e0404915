"""Shared helpers. The `gemini_simulator` fixture comes from gemgate's own pytest plugin."""

from __future__ import annotations

from typing import Any

import requests
from google import genai
from google.genai import types

from gemgate.simulator import RunningSimulator


def sdk(base_url: str, key: str = "sim-free-key-1", **http: Any) -> genai.Client:
    """The real google-genai client, pointed at `base_url` — the only change users make."""
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url, **http))


def sim_sdk(sim: RunningSimulator, key: str = "sim-free-key-1") -> genai.Client:
    return sdk(sim.url, key)


def post(url: str, body: Any = None, *, key: str | None = "sim-free-key-1",
         content: bytes | None = None, headers: dict[str, str] | None = None,
         params: dict[str, str] | None = None) -> requests.Response:
    sent = dict(headers or {})
    if key is not None:
        sent["x-goog-api-key"] = key
    return requests.post(url, json=body if content is None else None, data=content,
                         headers=sent, params=params, timeout=30)
