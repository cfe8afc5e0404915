"""A list of a tenant's resources (GET files, cachedContents, batches, …), whole and stable.

Google lists per project, and a tenant's resources may sit in several projects; one relayed
list would show whichever project the key came from (an alternating `[]` and the file). So the
list is gathered from every project that holds one of the caller's resources, page after
page, and filtered to what the caller owns. The answer is one page: a client's pageToken
cannot be honoured across projects, so it is dropped, and none is returned.
"""

from __future__ import annotations

from typing import Any

import orjson

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.pipeline.relay import Relay
from gemgate.upstream.affinity import ResourceOwners

_MAX_PAGES = 50  # per project: a runaway pageToken cannot loop for ever
# Where each list's items are; Google's batches list is a list of long-running operations.
_FIELD = {"batches": "operations"}
_JSON = [("content-type", "application/json; charset=UTF-8")]


def _query(query: str, token: str | None) -> str:
    kept = [p for p in query.split("&") if p and not p.startswith("pageToken=")]
    if token is not None:
        kept.append(f"pageToken={token}")
    return "&".join(kept)


def _items(data: Any, kind: str) -> tuple[list[Any], str | None]:
    if not isinstance(data, dict):
        return [], None
    found = data.get(_FIELD.get(kind, kind))
    token = data.get("nextPageToken")
    return (found if isinstance(found, list) else []), (token if isinstance(token, str)
                                                         and token else None)


async def listing(relay: Relay, owners: ResourceOwners, call: Call, kind: str) -> Answer:
    tenant = call.tenant.id if call.tenant is not None else ""
    asked, mine = call.query, []
    await owners.sync()
    for project in owners.projects_of(tenant, kind):
        token: str | None = None
        for _ in range(_MAX_PAGES):
            call.affinity, call.query = project, _query(asked, token)
            answer = await relay.forward(call)
            if not 200 <= answer.status < 300:
                return answer
            try:
                data = orjson.loads(answer.body)
            except orjson.JSONDecodeError:
                return answer
            found, token = _items(data, kind)
            mine += [item for item in found if isinstance(item, dict)
                     and owners.owns(tenant, str(item.get("name")))]
            if token is None:
                break
    call.query = asked
    body = orjson.dumps({_FIELD.get(kind, kind): mine} if mine else {})
    return Answer(200, list(_JSON), body)
