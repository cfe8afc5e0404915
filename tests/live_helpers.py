"""What the Live tests share: an SDK client that trusts the test's own certificate, one
text turn, and the gateway's TLS settings."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import requests
from google import genai
from google.genai import types

from gemgate.tls import self_signed
from tests.conftest import ADMIN, TOKEN

MODEL = "gemini-2.5-flash"
PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]


def tls(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A certificate for localhost, and the gateway's `server` settings that serve it."""
    cert, key = self_signed(tmp_path)
    return cert, {"tls_cert": str(cert), "tls_key": str(key)}


def live_client(url: str, cert: Path, token: str = TOKEN,
                version: str | None = None) -> genai.Client:
    context = ssl.create_default_context(cafile=str(cert))
    return genai.Client(api_key=token, http_options=types.HttpOptions(
        base_url=url, api_version=version, client_args={"verify": str(cert)},
        async_client_args={"ssl": context}))


def admin(url: str, cert: Path, method: str, path: str, body: Any = None,
          token: str = ADMIN) -> requests.Response:
    return requests.request(method, url + path, json=body, verify=str(cert), timeout=10,
                            headers={"Authorization": f"Bearer {token}"})


async def turn(session: Any, text: str) -> tuple[str, list[Any]]:
    """One text turn: what the model said, and every message of the turn."""
    await session.send_client_content(turns=types.Content(role="user",
                                                          parts=[types.Part(text=text)]))
    said, seen = "", []
    async for message in session.receive():
        seen.append(message)
        if message.text:
            said += message.text
        if message.server_content and message.server_content.turn_complete:
            break
    return said, seen
