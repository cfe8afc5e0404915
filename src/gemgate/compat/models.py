"""The model list in OpenAI's shape: Google's models, plus the names gemgate adds (aliases and
providers' models), only those the caller's key may use."""

from __future__ import annotations

from typing import Any


def entry(model_id: str, owner: str, google_style: bool) -> dict[str, Any]:
    """Google's own endpoint names models `models/…`; plain OpenAI clients expect bare ids."""
    shown = f"models/{model_id}" if google_style and owner == "google" else model_id
    return {"id": shown, "object": "model", "created": 0, "owned_by": owner}


def listing(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": entries}


def google_ids(response: dict[str, Any]) -> list[str]:
    """The ids in a Gemini models.list answer."""
    return [str(m["name"]).removeprefix("models/") for m in response.get("models") or ()
            if isinstance(m, dict) and isinstance(m.get("name"), str)]
