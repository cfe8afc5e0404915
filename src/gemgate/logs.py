"""Logging: one JSON line per request, and a last line of defence that masks upstream keys in
anything logged (a library's error message, an exception text)."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from gemgate.secrets import SECRET_MARKERS, SECRET_SHAPES, mask_key

log = logging.getLogger("gemgate")


class SecretScrubber(logging.Filter):
    """Replaces every configured key and client token, and anything shaped like a Google key
    or a virtual key, with its mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        known = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._known = re.compile("|".join(re.escape(s) for s in known)) if known else None

    def mask(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(lambda m: mask_key(m.group()), text)
        return SECRET_SHAPES.sub(lambda m: mask_key(m.group()), text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if record.exc_info and record.exc_info[1] is not None:
            masked += "\n" + self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if masked != message:
            record.msg, record.args = masked, None
        return True


class QuietTracebacks(logging.Filter):
    """One line, not a traceback, for what a client can trigger at will.

    aiohttp logs a full traceback for every malformed request it cannot parse or drain (a body
    that claims gzip and is not, a broken chunked encoding): a client could turn each request
    into kilobytes of log. Such records keep their message and the exception's one-line
    summary. gemgate's own unexpected failures keep their traceback the first time per place
    in the code, and are one line after that: the first tells the maintainer everything.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str, int]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if not info or info[1] is None:
            return True
        error = info[1]
        if not record.name.startswith("aiohttp"):
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            place = (type(error).__name__, tb.tb_frame.f_code.co_filename if tb else "",
                     tb.tb_lineno if tb else 0)
            if place not in self._seen and len(self._seen) < 1000:
                self._seen.add(place)
                return True
        summary = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        record.msg, record.args = f"{record.getMessage()} ({summary.strip()})", None
        record.exc_info, record.exc_text = None, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class AccessLog:
    """One JSON line per request, written in batches: the logging module costs tens of
    microseconds a record, too much for every request at thousands per second. Lines are
    buffered for at most `flush_s` (and flushed at shutdown), and masked like every log line."""

    def __init__(self, stream: Any, scrubber: SecretScrubber, flush_s: float = 0.05) -> None:
        self._stream = stream
        self._scrubber = scrubber
        self._flush_s = flush_s
        self._lines: list[bytes] = []
        self._timer: Any = None
        self._second = -1
        self._prefix = ""

    def write(self, fields: dict[str, Any]) -> None:
        stamp = time.time()
        second = int(stamp)
        if second != self._second:  # formatting a date costs more than the rest of the line
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        ts = f"{self._prefix}.{int(stamp * 1000) % 1000:03d}Z"
        self._lines.append(orjson.dumps({"ts": ts, "logger": "gemgate.access", **fields}))
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        self._timer = None
        if not self._lines:
            return
        batch = b"\n".join(self._lines).decode() + "\n"
        self._lines = []
        # Access lines are built from masked keys and names only; the mask is a second net for
        # anything key-shaped that a client put in a path or model name.
        if any(marker in batch for marker in SECRET_MARKERS):
            batch = self._scrubber.mask(batch)
        try:
            self._stream.write(batch)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or full stream must not fail a request
            pass


_access: AccessLog | None = None


def access_log() -> AccessLog | None:
    return _access


def setup_logging(level: str, secrets: Iterable[str], stream: Any = None,
                  access: bool = True) -> None:
    global _access
    stream = stream or sys.stderr
    scrubber = SecretScrubber(secrets)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(QuietTracebacks())
    handler.addFilter(scrubber)
    if _access is not None:
        _access.flush()
    _access = AccessLog(stream, scrubber) if access else None
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_gemgate", False):
            root.removeHandler(old)
    handler._gemgate = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
