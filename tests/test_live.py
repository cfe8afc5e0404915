"""The Live API through gemgate over TLS, with the real google-genai SDK
(`client.aio.live.connect`): a text session of two turns, audio in and out, resumption handles
and goAway passed through, an invalid token refused, a session closed when its key's budget
runs out, and the ledger's row for each session."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import requests
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from gemgate.simulator import run_simulator
from gemgate.tls import self_signed
from tests.conftest import ADMIN, eventually, run_gateway
from tests.live_helpers import MODEL, PAID, live_client, turn


def test_a_live_session_through_the_gateway(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with run_simulator(live_goaway_seconds=0.5) as sim, run_gateway(
            sim.url, PAID, server={"tls_cert": str(cert), "tls_key": str(key)}) as gateway:
        client = live_client(gateway.url, cert)

        async def session() -> tuple[str, str, bool, bool, bytes]:
            config = types.LiveConnectConfig(response_modalities=["TEXT"],
                                             session_resumption=types.SessionResumptionConfig())
            async with client.aio.live.connect(model=MODEL, config=config) as live:
                first, seen = await turn(live, "Hello, who are you?")
                await live.send_realtime_input(video=types.Blob(  # billed with the next turn
                    data=b"\xff\xd8 a frame \xff\xd9", mime_type="image/jpeg"))
                second, more = await turn(live, "And what do you do?")
                resumed = any(m.session_resumption_update for m in seen + more)
                audio = base64.b64encode(b"\x01\x02" * 4000)
                await live.send_realtime_input(audio=types.Blob(
                    data=base64.b64decode(audio), mime_type="audio/pcm;rate=16000"))
                echoed = b""
                went_away = False
                async for message in live.receive():
                    if message.data:
                        echoed += message.data
                    went_away = went_away or message.go_away is not None
                    if message.server_content and message.server_content.turn_complete:
                        break

                async def go_away() -> bool:  # the simulator's, after 0.5 s, passed through
                    async for message in live.receive():
                        if message.go_away is not None:
                            return True
                    return False

                went_away = went_away or await asyncio.wait_for(go_away(), 10)
                return first, second, resumed, went_away, echoed

        first, second, resumed, went_away, echoed = asyncio.run(session())
        assert first and second and first != second
        assert resumed and went_away
        assert echoed == b"\x01\x02" * 4000
        eventually(lambda: gateway.ledger("action = 'live'"), 10, "no ledger row for the session")
        rows = gateway.ledger("action = 'live'")
        assert len(rows) == 1 and rows[0]["tenant"] == "team"
        assert rows[0]["prompt_tokens"] > 0 and rows[0]["total_tokens"] > 0
        assert rows[0]["cost_usd"] > 0 and rows[0]["project"] == "sim-paid"
        # Tokens by modality: text turns, the video frame, the audio in and out.
        said = rows[0]["modalities"]
        assert "VIDEO 258" in said and "AUDIO" in said.split("; out")[1], said


def test_a_project_that_refuses_the_setup_is_passed_over(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    projects = [{"name": "dead", "keys": ["not-a-real-key-9"]}, *PAID]
    with run_simulator() as sim, run_gateway(
            sim.url, projects, server={"tls_cert": str(cert), "tls_key": str(key)}) as gateway:
        async def talk() -> str:
            async with live_client(gateway.url, cert).aio.live.connect(
                    model=MODEL, config=types.LiveConnectConfig(
                        response_modalities=["TEXT"])) as live:
                return (await turn(live, "hello"))[0]

        for _ in range(2):  # whichever project the pool offers first
            assert asyncio.run(talk())
        eventually(lambda: len(gateway.ledger("action = 'live'")) == 2, 10, "no ledger rows")
        assert all(r["project"] == "sim-paid" for r in gateway.ledger("action = 'live'"))
        if any(r["attempts"] == 2 for r in gateway.ledger("action = 'live'")):  # it was tried
            assert gateway.pool.project("dead").keys[0].disabled_reason is not None


def test_a_bad_token_and_a_spent_budget_close_the_session(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with run_simulator() as sim, run_gateway(
            sim.url, PAID, server={"tls_cert": str(cert), "tls_key": str(key)}) as gateway:
        async def connect(token: str) -> None:
            async with live_client(gateway.url, cert, token).aio.live.connect(
                    model=MODEL, config=types.LiveConnectConfig(
                        response_modalities=["TEXT"])) as live:
                for _ in range(50):
                    await turn(live, "Write a long answer about gateways and relays.")

        # The SDK raises its APIError or the socket's own close, depending on when it reads.
        closed = (errors.APIError, ConnectionClosedError)
        with pytest.raises(closed) as refused:
            asyncio.run(connect("gg-not-a-token-000"))
        assert "1008" in str(refused.value) and "TOKEN_INVALID" in str(refused.value)
        made = requests.post(gateway.url + "/admin/vkeys", json={
            "name": "small", "daily_budget_usd": 0.0005}, verify=str(cert), timeout=10,
            headers={"Authorization": f"Bearer {ADMIN}"})
        secret = made.json()["secret"]
        with pytest.raises(closed) as spent:
            asyncio.run(connect(secret))
        assert "1008" in str(spent.value) and "BUDGET_EXCEEDED" in str(spent.value)
        eventually(lambda: gateway.ledger("action = 'live'"), 10, "no ledger row for the session")
        rows = gateway.ledger("action = 'live'")
        assert rows[-1]["problem"] == "BUDGET_EXCEEDED" and rows[-1]["cost_usd"] >= 0.0005


def test_sessions_per_tenant_idle_and_duration_are_bounded(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    live = {"max_sessions_per_tenant": 1, "idle_timeout_s": 0.4, "max_duration_s": 1.5}
    with run_simulator() as sim, run_gateway(
            sim.url, PAID, live=live,
            server={"tls_cert": str(cert), "tls_key": str(key)}) as gateway:
        client = live_client(gateway.url, cert)
        config = types.LiveConnectConfig(response_modalities=["TEXT"])

        async def two_at_once() -> str:
            async with client.aio.live.connect(model=MODEL, config=config) as first:
                assert (await turn(first, "hello"))[0]
                try:
                    async with client.aio.live.connect(model=MODEL, config=config) as second:
                        await turn(second, "me too")
                except (errors.APIError, ConnectionClosed) as refused:
                    return str(refused)
            return "not refused"

        assert "LIVE_TOO_MANY_SESSIONS" in asyncio.run(two_at_once())

        async def silent() -> str:
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                try:
                    async for _ in session.receive():
                        pass
                except (errors.APIError, ConnectionClosed) as closed:
                    return str(closed)
                return "closed without a reason"

        assert "LIVE_IDLE" in asyncio.run(silent())

        async def chatty() -> str:
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                try:
                    for _ in range(100):  # a turn every 0.2 s: never idle, but too long
                        await turn(session, "again")
                        await asyncio.sleep(0.2)
                except (errors.APIError, ConnectionClosed) as closed:
                    return str(closed)
                return "never closed"

        assert "LIVE_TOO_LONG" in asyncio.run(chatty())
        eventually(lambda: len(gateway.ledger("action = 'live'")) >= 3, 10, "rows missing")
        problems = {r["problem"] for r in gateway.ledger("action = 'live'")}
        assert {"LIVE_IDLE", "LIVE_TOO_LONG"} <= problems


def test_googles_own_refusals_reach_the_client_as_they_are(tmp_path: Path) -> None:
    """A setup Google refuses (an unknown model) and a session Google closes mid-way (a message
    it cannot read): the client gets Google's close code and reason, and no project is blamed."""
    import ssl

    import aiohttp

    cert, key = self_signed(tmp_path)
    service = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    with run_simulator() as sim, run_gateway(
            sim.url, PAID, server={"tls_cert": str(cert), "tls_key": str(key)}) as gateway:
        async def closed_by_google(model: str, then: dict[str, object]) -> tuple[int, str]:
            context = ssl.create_default_context(cafile=str(cert))
            async with aiohttp.ClientSession() as http, http.ws_connect(
                    gateway.url.replace("https", "wss") + service, ssl=context,
                    headers={"x-goog-api-key": "gg-test-token-0001"}) as ws:
                await ws.send_json({"setup": {"model": f"models/{model}"}})
                frame = await ws.receive()
                if frame.type == aiohttp.WSMsgType.BINARY:  # setupComplete
                    await ws.send_json(then)
                    frame = await ws.receive()
                assert frame.type == aiohttp.WSMsgType.CLOSE, frame
                return int(frame.data), str(frame.extra)

        code, reason = asyncio.run(closed_by_google("gemini-9-imaginary", {}))
        assert code == 1008 and "models/gemini-9-imaginary is not found" in reason
        code, reason = asyncio.run(closed_by_google(MODEL, {"bogus": {}}))
        assert code == 1007 and "unknown message (bogus)" in reason
        assert gateway.pool.project("sim-paid").keys[0].disabled_reason is None
        eventually(lambda: len(gateway.ledger("action = 'live'")) == 2, 10, "rows missing")
        first = gateway.ledger("action = 'live'")[0]
        assert first["problem"] == "INVALID_REQUEST" and first["attempts"] == 1
