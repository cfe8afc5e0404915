"""Quotas as Google enforces them: per project and model, shared by the project's keys."""

from __future__ import annotations

import time

import pytest
from google.genai import errors

from gemgate.google_errors import find_detail, parse_duration
from gemgate.simulator import QuotaLimits, SimConfig, SimProject, run_simulator
from tests.conftest import sim_sdk

MINUTE = 2.0  # a shortened quota minute keeps the test fast; the logic is the same


def _config(**limits: int) -> SimConfig:
    return SimConfig(minute_seconds=MINUTE, projects=[
        SimProject(name="alpha", keys=["alpha-1", "alpha-2"],
                   quotas={"gemini-2.5-flash": QuotaLimits(**limits)}),
        SimProject(name="beta", keys=["beta-1"], tier="tier1"),
    ])


def _ask(client: object, text: str = "hi") -> object:
    return client.models.generate_content(model="gemini-2.5-flash", contents=text)  # type: ignore[attr-defined]


def test_rpm_one_429_with_true_retry_info_then_success() -> None:
    with run_simulator(_config(rpm=5)) as sim:
        client = sim_sdk(sim, "alpha-1")
        results = []
        for _ in range(6):
            try:
                _ask(client)
                results.append(200)
            except errors.ClientError as exc:
                results.append(exc.code)
                failure, failed_at = exc, time.monotonic()
        assert results == [200] * 5 + [429]
        error = failure.details["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED"
        violation = find_detail(error, "QuotaFailure")["violations"][0]
        assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        assert violation["quotaValue"] == "5"
        assert violation["quotaDimensions"]["model"] == "gemini-2.5-flash"
        delay = parse_duration(find_detail(error, "RetryInfo")["retryDelay"])
        assert delay is not None and 0 < delay <= MINUTE
        time.sleep(max(0.0, failed_at + delay - time.monotonic()))
        assert _ask(client).text  # waiting exactly the advertised delay is enough


def test_two_keys_of_one_project_share_its_quota() -> None:
    with run_simulator(_config(rpm=4)) as sim:
        first, second = sim_sdk(sim, "alpha-1"), sim_sdk(sim, "alpha-2")
        for client in (first, second, first, second):
            _ask(client)
        with pytest.raises(errors.ClientError) as caught:
            _ask(second)
        assert caught.value.code == 429
        assert _ask(sim_sdk(sim, "beta-1")).text  # another project is untouched
        other_model = second.models.generate_content(model="gemini-2.0-flash", contents="x")
        assert other_model.text  # quotas are per model too


def test_tpm_counts_input_tokens() -> None:
    with run_simulator(_config(tpm=1000)) as sim:
        client = sim_sdk(sim, "alpha-1")
        _ask(client, "x" * 3000)  # 750 tokens
        with pytest.raises(errors.ClientError) as caught:
            _ask(client, "y" * 1200)  # 300 more would pass 1000
        violation = find_detail(caught.value.details["error"], "QuotaFailure")["violations"][0]
        assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
        assert violation["quotaMetric"].endswith("generate_content_free_tier_input_token_count")
        assert _ask(client, "small").text  # a smaller request still fits


def test_rpd_until_the_day_ends() -> None:
    config = _config(rpd=2)
    config.day_seconds = 3.0
    with run_simulator(config) as sim:
        client = sim_sdk(sim, "alpha-1")
        _ask(client)
        _ask(client)
        with pytest.raises(errors.ClientError) as caught:
            _ask(client)
        error = caught.value.details["error"]
        assert "PerDay" in find_detail(error, "QuotaFailure")["violations"][0]["quotaId"]
        assert parse_duration(find_detail(error, "RetryInfo")["retryDelay"]) <= 3


def test_rpd_resets_at_midnight_pacific_by_default() -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    with run_simulator(_config(rpd=1)) as sim:
        client = sim_sdk(sim, "alpha-1")
        _ask(client)
        with pytest.raises(errors.ClientError) as caught:
            _ask(client)
        delay = parse_duration(find_detail(caught.value.details["error"],
                                           "RetryInfo")["retryDelay"])
        now = datetime.now(ZoneInfo("America/Los_Angeles"))
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        assert delay is not None
        assert abs(delay - (midnight - now).total_seconds()) < 5


def test_rejected_requests_do_not_spend_quota() -> None:
    with run_simulator(_config(rpm=2)) as sim:
        client = sim_sdk(sim, "alpha-1")
        _ask(client)
        _ask(client)
        for _ in range(3):
            with pytest.raises(errors.ClientError):
                _ask(client)
        time.sleep(MINUTE + 0.1)
        _ask(client)
        _ask(client)  # both fit again: the three refusals were not counted
