"""The simulator's Interactions API basics through the real google-genai SDK."""

from __future__ import annotations

import pytest

from gemgate.simulator import RunningSimulator
from tests.conftest import sim_sdk


def test_create_get_continue_cancel_delete(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    first = client.interactions.create(model="gemini-2.5-flash", input="Hello there")
    assert first.status == "completed" and first.output_text
    assert first.steps[0].type == "model_output"
    assert first.usage.total_tokens == first.usage.total_input_tokens + \
        first.usage.total_output_tokens + first.usage.total_thought_tokens
    again = client.interactions.create(model="gemini-2.5-flash", input="Hello there")
    assert again.output_text == first.output_text  # deterministic
    background = client.interactions.create(model="gemini-2.5-flash", input="later",
                                            background=True, previous_interaction_id=first.id)
    assert background.status == "in_progress"
    assert client.interactions.get(id=background.id).status == "completed"
    waiting = client.interactions.create(model="gemini-2.5-flash", input="x", background=True)
    client.interactions.cancel(id=waiting.id)
    assert client.interactions.get(id=waiting.id).status == "cancelled"
    client.interactions.delete(id=first.id)
    stranger = sim_sdk(gemini_simulator, "sim-paid-key-1")
    for attempt in (lambda: client.interactions.get(id=first.id),
                    lambda: stranger.interactions.get(id=background.id)):
        with pytest.raises(Exception) as refused:
            attempt()
        assert "404" in str(refused.value) or "NOT_FOUND" in str(refused.value)
