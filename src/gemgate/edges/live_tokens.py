"""`POST /{version}/auth_tokens`: gemgate mints an ephemeral Live token for the calling tenant
(live/tokens.py), in Google's AuthToken shape, so the SDK's `client.auth_tokens.create()` works
against gemgate unchanged. Google is not called: the token is gemgate's own, redeemed by the
Live edge, which then opens the upstream session with a key from the pool."""

from __future__ import annotations

import orjson
from aiohttp import web

from gemgate.edges.replies import gateway_error, json_reply, lang_of
from gemgate.edges.wire import ClientAddress, client_token
from gemgate.live.tokens import EphemeralTokens
from gemgate.pipeline.auth import Authenticator
from gemgate.problems import ProblemId, problem


class TokenEdge:
    def __init__(self, auth: Authenticator, tokens: EphemeralTokens,
                 addresses: ClientAddress) -> None:
        self.auth, self.tokens, self.addresses = auth, tokens, addresses

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        return [web.post(prefix + r"/{version:v1(?:beta|alpha)?}/auth_tokens", self.mint)]

    async def mint(self, request: web.Request) -> web.Response:
        lang = lang_of(request)
        tenant, refused = self.auth.authenticate(client_token(request),
                                                 self.addresses.of(request))
        if refused is not None or tenant is None:
            return _refuse(refused or ProblemId.TOKEN_MISSING, lang)
        try:
            asked = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return _refuse(ProblemId.LIVE_TOKEN_BAD_REQUEST, lang)
        if not isinstance(asked, dict):
            return _refuse(ProblemId.LIVE_TOKEN_BAD_REQUEST, lang)
        answer, refused = await self.tokens.mint(tenant, asked)
        if answer is None:
            return _refuse(refused or ProblemId.LIVE_TOKEN_BAD_REQUEST, lang)
        return json_reply(200, answer)


def _refuse(found: ProblemId, lang: str) -> web.Response:
    status = problem(found).status or 400
    return json_reply(status, gateway_error(status, found, lang))
