"""The gateway's quota windows against Google's: whatever the gateway admits, Google's sliding
window (as the simulator models it) accepts, even when requests arrive a little later there."""

from __future__ import annotations

import random

import pytest

from gemgate.simulator.quota import _Window as GooglesWindow
from gemgate.state.windows import SlidingWindow


@pytest.mark.parametrize("seed", range(5))
def test_admitted_requests_always_fit_googles_window(seed: int) -> None:
    rng = random.Random(seed)
    length, margin, limit = 10.0, 0.3, 25
    ours, googles = SlidingWindow(length, margin), GooglesWindow(length)
    now, admitted = 0.0, 0
    for _ in range(5000):
        now += rng.expovariate(6.0)  # about 60 requests a window: far over the limit
        tokens = rng.randint(1, 4)
        if ours.wait(now, tokens, limit) > 0:
            continue
        ours.add(now, tokens)
        arrives = now + rng.uniform(0, margin * 0.9)  # the trip to Google takes a moment
        assert googles.room_after(arrives, tokens, limit) == 0, "Google would refuse"
        googles.add(arrives, tokens)
        admitted += 1
    assert admitted > 5000 * 0.9 * limit / 2.5 / 60  # and the limit is still well used


def test_memory_does_not_grow_with_traffic() -> None:
    window = SlidingWindow(60.0, 0.5)
    for step in range(200_000):
        window.add(step * 0.01, 1)  # 100 requests a second for half an hour
    assert len(window._buckets) <= 63  # a minute and its margin, in one-second buckets


def test_wait_says_when_room_comes_and_corrections_count() -> None:
    window = SlidingWindow(60.0, 0.0)
    first = window.add(0.0, 5)
    window.add(30.0, 5)
    assert window.wait(31.0, 1, 10) == pytest.approx(60.0 + 1.0 - 31.0)
    window.adjust(first, 5, 2)  # Google counted 2 tokens, not the 5 estimated
    assert window.wait(31.0, 3, 10) == 0.0
    window.remove(first, 2)
    assert window.total == 5
