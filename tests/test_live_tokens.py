"""Ephemeral Live tokens minted by gemgate (`client.auth_tokens.create` → the Constrained path)
and a session's rights read again while it runs, with the real google-genai SDK over TLS."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed

from gemgate.simulator import run_simulator
from tests.conftest import eventually, run_gateway
from tests.live_helpers import MODEL, PAID, admin, live_client, tls, turn

CLOSED = (errors.APIError, ConnectionClosed)
TEXT = types.LiveConnectConfig(response_modalities=["TEXT"])


async def _talk(client: Any, model: str = MODEL) -> str:
    async with client.aio.live.connect(model=model, config=TEXT) as live:
        return (await turn(live, "hello"))[0]


def _refusal(client: Any) -> str:
    try:
        asyncio.run(_talk(client))
    except CLOSED as refused:
        return str(refused)
    return "not refused"


async def _closed_while_waiting(client: Any) -> str:
    """Opens a session and waits, silent, until the gateway ends it."""
    async with client.aio.live.connect(model=MODEL, config=TEXT) as live:
        assert (await turn(live, "hello"))[0]
        try:
            async for _ in live.receive():
                pass
        except CLOSED as closed:
            return str(closed)
    return "never closed"


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    with warnings.catch_warnings():  # the SDK calls its ephemeral-token support experimental
        warnings.simplefilter("ignore")
        yield


def test_an_ephemeral_token_minted_by_gemgate_opens_a_locked_session(tmp_path: Path) -> None:
    cert, server = tls(tmp_path)
    with run_simulator() as sim, run_gateway(sim.url, PAID, server=server) as gateway:
        made = admin(gateway.url, cert, "POST", "/admin/vkeys", {"name": "browser-app"})
        secret = made.json()["secret"]
        minting = live_client(gateway.url, cert, secret, version="v1alpha")
        token = minting.auth_tokens.create(config=types.CreateAuthTokenConfig(
            uses=1, live_connect_constraints=types.LiveConnectConstraints(
                model=MODEL, config=types.LiveConnectConfig(
                    response_modalities=["TEXT"], system_instruction="Be brief."))))
        assert token.name and token.name.startswith("auth_tokens/") and token.uses == 1
        user = live_client(gateway.url, cert, token.name, version="v1alpha")
        # The client asks for another model: the token's locked setup wins.
        assert asyncio.run(_talk(user, "gemini-2.0-flash"))
        assert "LIVE_TOKEN_SPENT" in _refusal(user)  # one use only
        assert "LIVE_TOKEN_INVALID" in _refusal(live_client(
            gateway.url, cert, "auth_tokens/" + "0" * 48, version="v1alpha"))
        eventually(lambda: gateway.ledger("action = 'live' AND status = 200"), 10, "no row")
        row = gateway.ledger("action = 'live' AND status = 200")[0]
        assert row["tenant"] == "browser-app" and row["model_used"] == MODEL
        assert token.name.encode() not in Path(gateway.db_path).read_bytes()

        # Minting refused plainly, in Google's error shape.
        bad = admin(gateway.url, cert, "POST", "/v1alpha/auth_tokens", {"uses": -1}, secret)
        assert bad.status_code == 400
        assert bad.json()["error"]["hint"] and "LIVE_TOKEN_BAD_REQUEST" not in bad.text.split(
            '"message"')[0]
        far = admin(gateway.url, cert, "POST", "/v1alpha/auth_tokens",
                    {"expireTime": "2999-01-01T00:00:00Z"}, secret)
        assert far.status_code == 400
        nobody = admin(gateway.url, cert, "POST", "/v1alpha/auth_tokens", {}, "gg-nobody-0000")
        assert nobody.status_code == 401
        narrow = admin(gateway.url, cert, "POST", "/admin/vkeys",
                       {"name": "narrow", "models": ["gemini-2.0-flash"]}).json()["secret"]
        other_model = admin(gateway.url, cert, "POST", "/v1alpha/auth_tokens", {
            "bidiGenerateContentSetup": {"model": f"models/{MODEL}"}}, narrow)
        assert other_model.status_code == 403


def test_a_tokens_field_mask_locks_only_those_fields() -> None:
    from gemgate.live.tokens import Grant

    grant = Grant("tenant:team", 2e9, 2e9, 1, {
        "model": "models/locked", "generationConfig": {"temperature": 0.1},
        "systemInstruction": {"parts": [{"text": "Be brief."}]}},
        ["model", "generationConfig.temperature"])
    asked = {"model": "models/mine", "generationConfig": {"temperature": 0.9,
                                                           "responseModalities": ["TEXT"]},
             "systemInstruction": {"parts": [{"text": "mine"}]}}
    assert grant.constrain(asked) == {
        "model": "models/locked", "generationConfig": {"temperature": 0.1,
                                                       "responseModalities": ["TEXT"]},
        "systemInstruction": {"parts": [{"text": "mine"}]}}
    whole = Grant("tenant:team", 2e9, 2e9, 1, {"generationConfig": {"temperature": 0.1}}, None)
    assert whole.constrain(asked) == {"generationConfig": {"temperature": 0.1},
                                      "model": "models/mine"}


def test_rights_are_read_again_while_a_session_runs(tmp_path: Path) -> None:
    cert, server = tls(tmp_path)
    with run_simulator() as sim, run_gateway(sim.url, PAID, server=server,
                                             live={"check_every_s": 0.2}) as gateway:
        # A key revoked mid-session closes its session, and its ephemeral tokens' sessions.
        made = admin(gateway.url, cert, "POST", "/admin/vkeys", {"name": "soon-revoked"}).json()
        minting = live_client(gateway.url, cert, made["secret"], version="v1alpha")
        token = minting.auth_tokens.create(config=types.CreateAuthTokenConfig(uses=2))
        assert token.name

        async def revoked_during() -> list[str]:
            sessions = [asyncio.ensure_future(_closed_while_waiting(live_client(
                gateway.url, cert, secret, version="v1alpha")))
                for secret in (made["secret"], token.name)]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(admin, gateway.url, cert, "DELETE",
                                    f"/admin/vkeys/{made['id']}")
            return list(await asyncio.wait_for(asyncio.gather(*sessions), 15))

        assert all("KEY_REVOKED" in said for said in asyncio.run(revoked_during()))

        # A monthly budget spent by the key's other calls closes its open session.
        spender = admin(gateway.url, cert, "POST", "/admin/vkeys", {
            "name": "spender", "monthly_budget_usd": 0.0002}).json()["secret"]

        async def spent_during() -> str:
            session = asyncio.ensure_future(_closed_while_waiting(
                live_client(gateway.url, cert, spender)))
            await asyncio.sleep(1.0)
            http = live_client(gateway.url, cert, spender)
            for _ in range(40):
                if session.done():
                    break
                try:
                    await http.aio.models.generate_content(
                        model=MODEL, contents="Write a long answer about relays.")
                except errors.APIError:
                    break  # the budget refuses the HTTP calls too
            return await asyncio.wait_for(session, 15)

        assert "BUDGET_EXCEEDED" in asyncio.run(spent_during())
        eventually(lambda: len(gateway.ledger("action = 'live'")) >= 3, 10, "rows missing")
        problems = [r["problem"] for r in gateway.ledger("action = 'live'")]
        assert problems.count("KEY_REVOKED") == 2 and "BUDGET_EXCEEDED" in problems
