"""Logging: one JSON line per request, and a last line of defence that masks upstream keys in
anything logged (a library's error message, an exception text)."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from gemgate.secrets import mask_key

access_log = logging.getLogger("gemgate.access")
log = logging.getLogger("gemgate")


class SecretScrubber(logging.Filter):
    """Replaces every configured key, and anything shaped like a Google key, with its mask."""

    _GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        known = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._known = re.compile("|".join(re.escape(s) for s in known)) if known else None

    def mask(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(lambda m: mask_key(m.group()), text)
        return self._GOOGLE_KEY.sub(lambda m: mask_key(m.group()), text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if record.exc_info and record.exc_info[1] is not None:
            masked += "\n" + self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if masked != message:
            record.msg, record.args = masked, None
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


def setup_logging(level: str, secrets: Iterable[str], stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretScrubber(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_gemgate", False):
            root.removeHandler(old)
    handler._gemgate = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
