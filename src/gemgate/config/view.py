"""The effective configuration as the console's Settings page and `/admin/config` show it:
every value the gateway runs with, defaults included, and every secret masked — upstream and
provider keys, tenant tokens, the admin key, the metrics token, passwords in URLs, webhook
URLs (whose path is often the credential)."""

from __future__ import annotations

from typing import Any

from gemgate.config.settings import Settings
from gemgate.secrets import mask_key, mask_url

_SECRET_FIELDS = frozenset({"keys", "token", "admin_key", "api_key", "secret", "password",
                            "control_token"})
_URL_FIELDS = frozenset({"dsn", "url", "redis_url", "proxy", "endpoint"})


def effective(settings: Settings) -> dict[str, Any]:
    shown = _masked(settings.model_dump(mode="json"))
    assert isinstance(shown, dict)
    return shown


def _masked(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, name) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if name in _SECRET_FIELDS:
        return mask_key(value)
    if name == "webhook_url":
        scheme, _, rest = value.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/…"
    if name in _URL_FIELDS or "://" in value:
        return mask_url(value)
    return value
