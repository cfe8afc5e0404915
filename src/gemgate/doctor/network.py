"""Step 2, the network: DNS, TCP and TLS to the upstream host — directly, or through the
proxy a project uses — each timed, stopping at the first that fails."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from urllib.parse import urlsplit

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
from python_socks.async_.asyncio import Proxy

from gemgate.config import proxy_options
from gemgate.problems import ProblemId

from .environment import mask_proxy
from .findings import Finding


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _endpoint(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if secure else 80), secure


async def proxy_answers(proxy: str, timeout: float) -> Finding:
    """Whether anything accepts connections at the proxy's address."""
    parts = urlsplit(proxy)
    host, port = parts.hostname or "", parts.port or (1080 if parts.scheme.startswith("socks")
                                                      else 8080)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return Finding("network", "proxy", mask_proxy(proxy), "fail",
                       f"{host}:{port}: {_reason(exc)}", ProblemId.PROXY_UNREACHABLE, _ms(started))
    writer.close()
    return Finding("network", "proxy", mask_proxy(proxy), "ok", f"{host}:{port} accepts",
                   ms=_ms(started))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def _tls(sock_or_streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], host: str,
               subject: str, timeout: float) -> Finding:
    _, writer = sock_or_streams
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await writer.start_tls(ssl.create_default_context(), server_hostname=host)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return Finding("network", "TLS", subject, "fail", _reason(exc), ProblemId.TLS_FAILED,
                       _ms(started))
    finally:
        writer.close()
    version = writer.get_extra_info("ssl_object")
    shown = version.version() if version is not None else "TLS"
    return Finding("network", "TLS", subject, "ok", f"handshake done ({shown})",
                   ms=_ms(started))


async def probe(url: str, timeout: float) -> list[Finding]:
    """DNS, TCP, TLS straight to the host of `url`."""
    host, port, secure = _endpoint(url)
    subject = f"{host}:{port}"
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                                 type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        return [Finding("network", "DNS", host, "fail", _reason(exc), ProblemId.DNS_FAILED,
                        _ms(started))]
    address = str(infos[0][4][0])
    found = [Finding("network", "DNS", host, "ok", f"→ {address}", ms=_ms(started))]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            streams = await asyncio.open_connection(address, port)
    except (OSError, TimeoutError) as exc:
        return [*found, Finding("network", "TCP", subject, "fail", _reason(exc),
                                ProblemId.TCP_FAILED, _ms(started))]
    found.append(Finding("network", "TCP", subject, "ok", "connected", ms=_ms(started)))
    if not secure:
        streams[1].close()
        return found
    return [*found, await _tls(streams, host, subject, timeout)]


async def probe_through(url: str, proxy: str, timeout: float) -> list[Finding]:
    """The proxy accepting, then a tunnel through it to the host of `url`, then TLS."""
    answered = await proxy_answers(proxy, timeout)
    if answered.status == "fail":
        return [answered]
    host, port, secure = _endpoint(url)
    subject = f"{host}:{port} via {mask_proxy(proxy)}"
    started = time.perf_counter()
    try:
        url, options = proxy_options(proxy)
        sock = await Proxy.from_url(url, **options).connect(host, port, timeout=timeout)
    except (ProxyConnectionError, ProxyTimeoutError) as exc:
        return [answered, Finding("network", "tunnel", subject, "fail", _reason(exc),
                                  ProblemId.PROXY_UNREACHABLE, _ms(started))]
    except (ProxyError, OSError, TimeoutError) as exc:  # the proxy could not reach the host
        return [answered, Finding("network", "tunnel", subject, "fail", _reason(exc),
                                  ProblemId.TCP_FAILED, _ms(started))]
    found = [answered, Finding("network", "tunnel", subject, "ok", "open", ms=_ms(started))]
    streams = await asyncio.open_connection(sock=sock)
    if not secure:
        with contextlib.suppress(OSError):
            streams[1].close()
        return found
    return [*found, await _tls(streams, host, subject, timeout)]
