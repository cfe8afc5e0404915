"""Budgets: a key with 0.01 USD a day is stopped at the right request, the alert fires at 80%
(log line and webhook), the stop survives a restart, and the next day the key works again."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from google.genai import errors

from gemgate.serving import BackgroundServer
from gemgate.simulator import RunningSimulator
from tests.conftest import RunningGateway, run_gateway, sdk

PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
FLASH_IN, FLASH_OUT = 0.30, 2.50  # USD per 1M tokens
BUDGET = 0.01


class Webhook:
    """A loopback HTTP server that keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

        async def receive(request: web.Request) -> web.Response:
            self.events.append(await request.json())
            return web.Response(status=204)

        def make() -> web.Application:
            app = web.Application()
            app.router.add_post("/hook", receive)
            return app

        self.server = BackgroundServer(make)
        self.url = self.server.url + "/hook"

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 5
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.stop()


class Clock:
    """The gateway's wall clock, which the test can move to tomorrow."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def cost_of(response: Any) -> float:
    usage = response.usage_metadata
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return (usage.prompt_token_count * FLASH_IN + output * FLASH_OUT) / 1e6


def spend_until_stopped(gateway: RunningGateway, secret: str,
                        webhook: Webhook) -> tuple[list[float], errors.ClientError, int]:
    """Calls until refused; returns each request's cost, the refusal, and the number of
    the request after which the 80% alert had arrived."""
    client = sdk(gateway.url, secret)
    costs: list[float] = []
    alerted_after = -1
    for _ in range(200):
        try:
            response = client.models.generate_content(
                model="gemini-2.5-flash", contents="Write eighty words about budgets")
        except errors.ClientError as refused:
            return costs, refused, alerted_after
        costs.append(cost_of(response))
        if alerted_after >= 0:
            continue
        if sum(costs) >= BUDGET * 0.8:
            assert webhook.wait_for(1), "the alert comes with the request that crosses 80%"
            alerted_after = len(costs)
        else:
            assert not webhook.events, "no alert before 80% is spent"
    raise AssertionError("the budget never stopped the key")


def test_daily_budget_alerts_at_80_percent_and_stops_at_100(
        sim: RunningSimulator, webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.WARNING, logger="gemgate.budgets")
    with run_gateway(sim.url, PAID, clock=clock,
                     budgets={"webhook_url": webhook.url}) as gateway:
        secret, view = gateway.new_key(name="intern", owner="intern@example.com",
                                       daily_budget_usd=BUDGET)
        costs, refused, alerted_after = spend_until_stopped(gateway, secret, webhook)

        # stopped at the right request: the first one after the spend reached the budget
        assert sum(costs[:-1]) < BUDGET <= sum(costs)
        assert refused.code == 429
        message = refused.details["error"]["message"]
        assert "daily budget" in message and "resets at" in message
        assert refused.details["error"]["hint"]
        # the ledger agrees with the client's own sums, to the billionth of a dollar
        rows = gateway.ledger("vkey_id = ?", (view["id"],))
        assert [r["status"] for r in rows] == [200] * len(costs) + [429]
        assert sum(r["cost_usd"] for r in rows) == pytest.approx(sum(costs), abs=1e-9)
        assert rows[-1]["problem"] == "BUDGET_EXCEEDED" and rows[-1]["cost_usd"] == 0

        # the alert: once, at the request that crossed 80%, in the log and at the webhook
        crossing = next(n for n in range(1, len(costs) + 1) if sum(costs[:n]) >= BUDGET * .8)
        assert alerted_after == crossing
        events = webhook.wait_for(2)
        assert [e["event"] for e in events] == ["budget_alert", "budget_exhausted"]
        assert events[0]["key_id"] == view["id"] and events[0]["period"] == "daily"
        assert events[0]["spent_usd"] == pytest.approx(sum(costs[:crossing]), abs=1e-9)
        assert events[0]["budget_usd"] == BUDGET and events[0]["owner"] == "intern@example.com"
        assert any("budget_alert" in r.getMessage() and "intern" in r.getMessage()
                   for r in caplog.records)
        spent = gateway.admin("GET", f"/admin/vkeys/{view['id']}").json()["spent_usd"]
        assert spent["daily"] == pytest.approx(sum(costs), abs=1e-9)

    # a restart does not forget what the day has cost
    with run_gateway(sim.url, PAID, clock=clock, ledger={"path": gateway.db_path}) as again:
        client = sdk(again.url, secret)
        with pytest.raises(errors.ClientError) as still:
            client.models.generate_content(model="gemini-2.5-flash", contents="again?")
        assert still.value.code == 429

        clock.offset += 86400  # tomorrow
        assert client.models.generate_content(model="gemini-2.5-flash", contents="new day").text
    assert len(webhook.events) == 2  # no alert repeated by the restart


def test_monthly_budget_and_a_budget_added_later(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, PAID) as gateway:
        secret, view = gateway.new_key(name="later")
        client = sdk(gateway.url, secret)
        spent = sum(cost_of(client.models.generate_content(model="gemini-2.5-flash",
                                                           contents="spend a little"))
                    for _ in range(3))
        # a budget set below what the month has already cost stops the key at once
        gateway.admin("PATCH", f"/admin/vkeys/{view['id']}", {"monthly_budget_usd": spent / 2})
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="more")
        assert caught.value.code == 429 and "monthly budget" in caught.value.details[
            "error"]["message"]
        gateway.admin("PATCH", f"/admin/vkeys/{view['id']}", {"monthly_budget_usd": 1.0})
        assert client.models.generate_content(model="gemini-2.5-flash", contents="ok").text
