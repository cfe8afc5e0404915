"""A request as an edge hands it to the pipeline: no web framework's types past the edge.

The edge knows its wire (where the token is, which address is the client's behind a proxy,
how to read the body with its limits); the pipeline knows what to do with a request. Internal
callers (the prober now; a batch runner or a cache's embedding call later) build one too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from gemgate.problems import ProblemId

_NO_BODY = b""


class BodyProblem(Exception):
    """Raised by an Inbound's body reader: the body cannot be taken (too large, unreadable,
    too slow to arrive)."""

    def __init__(self, problem: ProblemId) -> None:
        super().__init__(problem)
        self.problem = problem


async def _empty() -> bytes:
    return _NO_BODY


@dataclass(slots=True)
class Inbound:
    method: str
    version: str  # v1beta | v1 | v1alpha | "" for routes outside a version (uploads)
    path: str  # after the version, as the client encoded it
    query: str = ""  # as the client encoded it, without its `key`
    headers: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None  # the gemgate token, wherever the wire carried it
    client_ip: str | None = None
    lang: str = "en"
    # Reads the body (the edge's limits apply), or raises BodyProblem. Called by the pipeline's
    # `read` stage, after auth: an unauthenticated caller's body is never read.
    read_body: Callable[[], Awaitable[bytes]] = _empty
