"""The Live API (BidiGenerateContent over WebSocket), as Google serves it to the SDKs: the key in
`x-goog-api-key` or `?key=`; a first `setup` frame answered by `setupComplete`; each
`clientContent` turn answered with the simulator's deterministic text in `serverContent`, then
`turnComplete` and `usageMetadata`; `realtimeInput` audio echoed back as 24 kHz PCM, video
frames billed (258 tokens each, VIDEO) with the next answer; every usageMetadata split by
modality; a
`sessionResumptionUpdate` handle after each turn when the setup asked for resumption; `goAway`
after `live_goaway_seconds`. A bad key or an unknown model closes with 1008 and Google's words;
a frame that is not JSON, or names no known message, closes with 1007."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from gemgate.simulator.core import Simulator

Answerer = Callable[[str, Any], tuple[int, dict[str, Any]]]
_PATH = (r"/{lead:/*}ws/{service:google\.ai\.generativelanguage\.v1(?:beta|alpha)?\."
         r"GenerativeService\.BidiGenerateContent(?:Constrained)?}")


def _field(message: dict[str, Any], camel: str, snake: str) -> Any:
    return message.get(camel, message.get(snake))


def _text_of(turns: Any) -> str:
    texts: list[str] = []
    for turn in turns if isinstance(turns, list) else [turns]:
        if isinstance(turn, dict):
            for part in turn.get("parts") or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
    return " ".join(texts)


class LiveSurface:
    def __init__(self, sim: Simulator, answer: Answerer) -> None:
        self.sim, self.answer = sim, answer
        self.sessions = 0  # open now (a test can watch them come and go)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(_PATH, self.session)]

    async def session(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        caller, denial = self.sim.identify(key)
        if denial is not None or caller is None:
            await ws.close(code=1008, message=b"API key not valid. Please pass a valid API key.")
            return ws
        self.sessions += 1
        try:
            await self._serve(ws, caller.project.name)
        finally:
            self.sessions -= 1
        return ws

    async def _serve(self, ws: web.WebSocketResponse, project: str) -> None:
        setup = await self._next(ws)
        if setup is None or "setup" not in setup:
            await ws.close(code=1007, message=b"the first message must be setup")
            return
        model = str(setup["setup"].get("model") or "").removeprefix("models/")
        if model not in self.sim.models:
            await ws.close(code=1008, message=f"models/{model} is not found for API version "
                                              "v1beta, or is not supported for "
                                              "bidiGenerateContent.".encode())
            return
        resumable = _field(setup["setup"], "sessionResumption", "session_resumption") is not None
        await ws.send_bytes(orjson.dumps({"setupComplete": {}}))
        goaway = asyncio.get_running_loop().call_later(
            self.sim.config.live_goaway_seconds,
            lambda: asyncio.ensure_future(ws.send_bytes(orjson.dumps(
                {"goAway": {"timeLeft": "5s"}}))))
        seen = _Seen()
        try:
            while (message := await self._next(ws)) is not None:
                # Google reads proto JSON: camelCase or snake_case (the Python SDK's).
                content = _field(message, "clientContent", "client_content")
                realtime = _field(message, "realtimeInput", "realtime_input")
                if isinstance(content, dict):
                    await self._turn(ws, model, _text_of(content.get("turns")), seen)
                elif isinstance(realtime, dict) and isinstance(realtime.get("video"), dict):
                    seen.video_tokens += _VIDEO_FRAME_TOKENS  # counted with the next turn
                    continue
                elif isinstance(realtime, dict):
                    await self._echo(ws, realtime, seen)
                elif _field(message, "toolResponse", "tool_response") is not None:
                    continue
                else:
                    names = ", ".join(sorted(message))[:60]
                    await ws.close(code=1007, message=f"Invalid JSON payload: unknown message "
                                                      f"({names})".encode())
                    return
                if resumable:
                    handle = base64.urlsafe_b64encode(os.urandom(12)).decode()
                    await ws.send_bytes(orjson.dumps({"sessionResumptionUpdate": {
                        "newHandle": f"{project}:{handle}", "resumable": True}}))
        finally:
            goaway.cancel()

    async def _next(self, ws: web.WebSocketResponse) -> dict[str, Any] | None:
        frame = await ws.receive()
        if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        try:
            message = orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            with contextlib.suppress(ConnectionError):
                await ws.close(code=1007, message=b"Invalid JSON payload")
            return None
        return message if isinstance(message, dict) else None

    async def _turn(self, ws: web.WebSocketResponse, model: str, text: str,
                    seen: _Seen) -> None:
        status, answer = self.answer(model, {"contents": [{"role": "user",
                                                           "parts": [{"text": text or "?"}]}]})
        if status != 200:
            await ws.close(code=1007, message=str(answer.get("message", "")).encode()[:120])
            return
        usage = answer["usageMetadata"]
        parts = answer["candidates"][0]["content"]["parts"]
        await ws.send_bytes(orjson.dumps({"serverContent": {"modelTurn": {"parts": parts}}}))
        await ws.send_bytes(orjson.dumps({"serverContent": {"generationComplete": True}}))
        await ws.send_bytes(orjson.dumps({"serverContent": {"turnComplete": True}}))
        await _usage(ws, {"TEXT": usage["promptTokenCount"]}, seen,
                     {"TEXT": usage["candidatesTokenCount"]})

    async def _echo(self, ws: web.WebSocketResponse, given: dict[str, Any],
                    seen: _Seen) -> None:
        chunk = given.get("audio") or next(iter(_field(given, "mediaChunks", "media_chunks")
                                                 or []), None)
        if not isinstance(chunk, dict) or not chunk.get("data"):
            return
        data = str(chunk["data"])
        audio_tokens = max(1, len(base64.b64decode(data)) // 1000)  # ~32 tokens/s at 16 kHz
        await ws.send_bytes(orjson.dumps({"serverContent": {"modelTurn": {"parts": [
            {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}]}}}))
        await ws.send_bytes(orjson.dumps({"serverContent": {"turnComplete": True}}))
        await _usage(ws, {"AUDIO": audio_tokens}, seen, {"AUDIO": audio_tokens})


class _Seen:
    """What a session has been sent that is billed with the next answer (video frames)."""

    video_tokens = 0


_VIDEO_FRAME_TOKENS = 258  # Google bills a video frame (one per second) at 258 tokens


async def _usage(ws: web.WebSocketResponse, prompt: dict[str, int], seen: _Seen,
                 response: dict[str, int]) -> None:
    """One usageMetadata, split by modality as Google's Live answers are."""
    if seen.video_tokens:
        prompt = {**prompt, "VIDEO": seen.video_tokens}
        seen.video_tokens = 0
    prompt_total, response_total = sum(prompt.values()), sum(response.values())
    await ws.send_bytes(orjson.dumps({"usageMetadata": {
        "promptTokenCount": prompt_total, "responseTokenCount": response_total,
        "totalTokenCount": prompt_total + response_total,
        "promptTokensDetails": [{"modality": m, "tokenCount": n} for m, n in prompt.items()],
        "responseTokensDetails": [{"modality": m, "tokenCount": n}
                                  for m, n in response.items()]}}))
