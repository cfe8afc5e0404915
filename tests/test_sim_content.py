"""Realistic content: limits, thinking, function calls, JSON, languages."""

from __future__ import annotations

import json

from google.genai import types

from gemgate.simulator import RunningSimulator
from tests.conftest import sim_sdk


def _gen(sim: RunningSimulator, model: str, contents: object,
         **config: object) -> types.GenerateContentResponse:
    client = sim_sdk(sim)
    return client.models.generate_content(model=model, contents=contents,
                                          config=types.GenerateContentConfig(**config))


def test_max_output_tokens_cuts_the_answer(gemini_simulator: RunningSimulator) -> None:
    reply = _gen(gemini_simulator, "gemini-2.0-flash", "Write 200 words about tea.",
                 max_output_tokens=20)
    assert reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert 0 < reply.usage_metadata.candidates_token_count <= 20


def test_thinking_tokens_and_budget(gemini_simulator: RunningSimulator) -> None:
    thinking = _gen(gemini_simulator, "gemini-2.5-flash", "Why is the sky blue?")
    usage = thinking.usage_metadata
    assert usage.thoughts_token_count > 0
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + usage.thoughts_token_count)
    off = _gen(gemini_simulator, "gemini-2.5-flash", "Why is the sky blue?",
               thinking_config=types.ThinkingConfig(thinking_budget=0))
    assert not off.usage_metadata.thoughts_token_count
    capped = _gen(gemini_simulator, "gemini-2.5-flash", "Why is the sky blue?",
                  thinking_config=types.ThinkingConfig(thinking_budget=30))
    assert 0 < capped.usage_metadata.thoughts_token_count <= 30
    plain = _gen(gemini_simulator, "gemini-2.0-flash", "Why is the sky blue?")
    assert not plain.usage_metadata.thoughts_token_count


def test_include_thoughts_adds_a_thought_part(gemini_simulator: RunningSimulator) -> None:
    reply = _gen(gemini_simulator, "gemini-2.5-pro", "Plan a trip.",
                 thinking_config=types.ThinkingConfig(include_thoughts=True))
    parts = reply.candidates[0].content.parts
    assert parts[0].thought is True
    assert not parts[-1].thought and parts[-1].text


def test_function_call_then_answer_from_its_result(gemini_simulator: RunningSimulator) -> None:
    weather = types.FunctionDeclaration(
        name="get_weather", description="Current weather in a city",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")},
                                required=["city"]))
    tools = [types.Tool(function_declarations=[weather])]
    question = "What is the weather in Oslo?"
    reply = _gen(gemini_simulator, "gemini-2.5-flash", question, tools=tools)
    call = reply.function_calls[0]
    assert call.name == "get_weather"
    assert call.args == {"city": "Oslo"}
    history = [
        types.Content(role="user", parts=[types.Part(text=question)]),
        reply.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(
            name="get_weather", response={"temp_c": 3})]),
    ]
    answer = _gen(gemini_simulator, "gemini-2.5-flash", history, tools=tools)
    assert not answer.function_calls
    assert '"temp_c":3' in answer.text
    unrelated = _gen(gemini_simulator, "gemini-2.5-flash", "Tell me a joke.", tools=tools)
    assert not unrelated.function_calls


def test_json_output_follows_the_schema(gemini_simulator: RunningSimulator) -> None:
    schema = types.Schema(type="OBJECT", properties={
        "name": types.Schema(type="STRING"), "age": types.Schema(type="INTEGER"),
        "tags": types.Schema(type="ARRAY", items=types.Schema(type="STRING"))})
    reply = _gen(gemini_simulator, "gemini-2.5-flash", "Invent a person aged 42.",
                 response_mime_type="application/json", response_schema=schema)
    data = json.loads(reply.text)
    assert set(data) == {"name", "age", "tags"}
    assert data["age"] == 42 and isinstance(data["tags"], list)
    free = _gen(gemini_simulator, "gemini-2.5-flash", "Anything.",
                response_mime_type="application/json")
    assert isinstance(json.loads(free.text), dict)


def test_chinese_prompt_gets_a_chinese_answer(gemini_simulator: RunningSimulator) -> None:
    reply = _gen(gemini_simulator, "gemini-2.0-flash", "请介绍一下这个网关的功能和用途")
    assert any("\u4e00" <= c <= "\u9fff" for c in reply.text)
    assert reply.usage_metadata.prompt_token_count == 15


def test_stop_sequences_and_candidate_count(gemini_simulator: RunningSimulator) -> None:
    reply = _gen(gemini_simulator, "gemini-2.0-flash", "Write 50 words.", candidate_count=2)
    assert len(reply.candidates) == 2
    word = reply.candidates[0].content.parts[0].text.split()[3]
    stopped = _gen(gemini_simulator, "gemini-2.0-flash", "Write 50 words.",
                   stop_sequences=[word])
    assert word not in stopped.text
