"""One check's outcome. Subjects and details never hold a key unmasked."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from gemgate.problems import ProblemId

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(slots=True)
class Finding:
    stage: str  # environment | network | key | model | gateway
    check: str  # what was looked at: "DNS", "TCP", "TLS", "key", "generate", a variable's name…
    subject: str  # which thing: a host, a project and its masked key, the gateway's URL
    status: Status
    detail: str = ""
    problem: ProblemId | None = None  # when status is fail or warn
    ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)
