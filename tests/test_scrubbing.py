"""No upstream key reaches a client: every byte and header that comes from upstream is
scrubbed, on every path — whole bodies, a stream's first read (where an error event may sit
behind a good chunk), later chunks, a key cut in two by the network, and response headers.

The upstream here is a small stand-in for a misbehaving Google that spells the key out
everywhere it can (Google does in some error messages)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest
import requests
from aiohttp import web

from gemgate.secrets import StreamScrubber, mask_key
from gemgate.serving import BackgroundServer
from tests.conftest import TOKEN, RunningGateway, run_gateway

KEY = "AIza" + "Sy" + "Test" * 8 + "1"  # shaped like a Google key (39 characters)
assert len(KEY) == 39
CHUNK = orjson.dumps({"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}]})


def _error(key: str) -> bytes:
    return orjson.dumps({"error": {"code": 500, "status": "INTERNAL",
                                   "message": f"internal error for key {key}"}})


def _leaky_google() -> web.Application:
    async def generate(request: web.Request) -> web.StreamResponse:
        key = request.headers["x-goog-api-key"]
        echo = {"x-echo-key": f"called with {key}"}
        target = request.match_info["target"]
        if target.endswith(":generateContent"):
            return web.Response(body=orjson.dumps({"candidates": [], "note": key}),
                                content_type="application/json", headers=echo)
        response = web.StreamResponse(headers={**echo, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        if request.query.get("alt") == "sse":
            if "split" in request.headers.get("x-test", ""):
                first = b"data: " + CHUNK + b"\r\n\r\ndata: " + _error(key)
                cut = first.index(key.encode()) + 10
                await response.write(first[:cut])  # the key is cut in two by the network
                await asyncio.sleep(0.05)
                await response.write(first[cut:] + b"\r\n\r\n")
            else:  # a good chunk and the error event in the very first read
                await response.write(b"data: " + CHUNK + b"\r\n\r\ndata: " + _error(key)
                                     + b"\r\n\r\n")
        else:
            await response.write(b"[" + CHUNK + b"\r\n," + _error(key) + b"]")
        await response.write_eof()
        return response

    app = web.Application()
    app.add_routes([web.post("/v1beta/models/{target}", generate)])
    return app


@pytest.fixture(scope="module", params=[KEY, "plain-upstream-secret-0001"])
def leaky(request: pytest.FixtureRequest) -> Iterator[tuple[RunningGateway, str]]:
    with BackgroundServer(_leaky_google) as google, run_gateway(
            google.url, [{"name": "leaky", "keys": [request.param]}],
            retry={"attempts": 1}) as gateway:
        yield gateway, request.param


def _call(gateway: RunningGateway, action: str, query: str = "",
          test: str = "") -> requests.Response:
    return requests.post(f"{gateway.url}/v1beta/models/gemini-2.5-flash:{action}{query}",
                         json={"contents": [{"parts": [{"text": "hi"}]}]},
                         headers={"x-goog-api-key": TOKEN, "x-test": test}, timeout=10)


def _clean(answer: requests.Response, key: str) -> None:
    seen = answer.content.decode() + repr(dict(answer.headers))
    assert key not in seen
    assert key[:-4] not in seen  # not even most of it


def test_whole_bodies_and_headers_are_scrubbed(leaky: tuple[RunningGateway, str]) -> None:
    gateway, key = leaky
    answer = _call(gateway, "generateContent")
    assert answer.status_code == 200
    _clean(answer, key)
    assert mask_key(key).replace("…", "...") in answer.headers["x-echo-key"]


@pytest.mark.parametrize(("query", "test"), [("?alt=sse", ""), ("?alt=sse", "split"), ("", "")])
def test_stream_error_events_in_the_first_read_are_scrubbed(
        leaky: tuple[RunningGateway, str], query: str, test: str) -> None:
    gateway, key = leaky
    answer = _call(gateway, "streamGenerateContent", query, test)
    _clean(answer, key)
    assert b"internal error for key" in answer.content  # relayed, masked


def test_the_stream_scrubber_holds_back_only_what_could_start_a_key() -> None:
    scrubber = StreamScrubber("plain-upstream-secret-0001")
    whole = b"data: {}\r\n\r\ndata: plain-upstream-secret-0001 and " + KEY.encode() + b" end"
    out = b""
    for n in range(0, len(whole), 7):  # every cut a network could make
        out += scrubber.feed(whole[n:n + 7])
    out += scrubber.flush()
    assert b"plain-upstream-secret-0001" not in out and KEY.encode() not in out
    assert out.endswith(b" end")
    plain = StreamScrubber("s3cret-key-00001")
    assert plain.feed(b"data: {}\r\n\r\n") == b"data: {}\r\n\r\n"  # nothing held at an end
