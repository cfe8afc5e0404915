"""The HTTP client towards Google: one long-lived aiohttp session per outbound route (direct, or
each configured proxy), with connection pooling; nothing is created per request."""

from __future__ import annotations

import aiohttp
from aiohttp_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
from yarl import URL

from gemgate.config import Settings, proxy_options
from gemgate.core.call import Call
from gemgate.upstream.pool import Lease

# What a failed connection raises, directly or through a proxy: the network failed, not the key.
NETWORK_ERRORS = (aiohttp.ClientError, OSError, ProxyError, ProxyConnectionError,
                  ProxyTimeoutError)

# Request headers that describe the client's own connection or credentials, never forwarded.
_NOT_FORWARDED = frozenset({
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-connection", "te", "trailer", "authorization",
    "x-goog-api-key", "accept-encoding", "cookie", "x-server-timeout", "expect",
    "idempotency-key",  # gemgate's own (pipeline/idempotency.py)
})


def forwardable(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_FORWARDED and not lowered.startswith("x-gemgate-")


class UpstreamClient:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.upstream_url
        self._settings = settings
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}
        # The deadline itself is enforced by the relay; these bound connecting and idle reads.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout_s,
                                              sock_read=settings.stream_idle_timeout_s)

    def session_for(self, proxy: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(proxy)
        if session is None or session.closed:
            connector: aiohttp.BaseConnector
            if proxy:
                from aiohttp_socks import ProxyConnector

                url, options = proxy_options(proxy)
                connector = ProxyConnector.from_url(url, limit=0, ttl_dns_cache=300, **options)
            else:
                connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300,
                                                 keepalive_timeout=30)
            # auto_decompress off and identity asked: bytes pass through exactly as sent.
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                            skip_auto_headers=("User-Agent",))
            self._sessions[proxy] = session
        return session

    def url_for(self, call: Call) -> URL:
        prefix = f"/{call.version}/" if call.version else "/"
        query = f"?{call.query}" if call.query else ""
        return URL(self.base_url + prefix + call.path + query, encoded=True)

    async def send(self, call: Call, lease: Lease,
                   url: URL | None = None) -> aiohttp.ClientResponse:
        """Starts one attempt and returns once the response headers are in."""
        headers = dict(call.headers)
        headers["x-goog-api-key"] = lease.key.secret
        headers["Accept-Encoding"] = "identity"
        remaining = max(1, int(call.remaining() + 0.999))
        headers["X-Server-Timeout"] = str(remaining)
        return await self.session_for(lease.project.proxy).request(
            call.method, url or self.url_for(call), data=call.body or None, headers=headers,
            timeout=self._timeout, allow_redirects=False)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
