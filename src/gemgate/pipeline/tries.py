"""What one call's attempts have learnt so far, across the relay's loop: which projects are
unusable or failed it, the answer worth passing on if no attempt succeeds, Google's last 429
(whose QuotaFailure explains a refusal), and the retry budget spent."""

from __future__ import annotations

from dataclasses import dataclass, field

from gemgate.core.answer import Answer
from gemgate.core.classify import Verdict
from gemgate.problems import ProblemId

# Google's advice for 500 INTERNAL is to retry once: a second 500 for the same body (from
# another project, where the retry goes) says the body is the cause — a request Google's
# parser chokes on would otherwise be sent five times. 503s and lost connections keep the
# whole retry budget.
MAX_INTERNAL_ERRORS = 2


def own_fault(verdict: Verdict) -> bool:
    """The key's or project's own fault: it is taken out of the running."""
    return verdict.action in ("disable_key", "disable_project")


@dataclass(slots=True)
class Tries:
    excluded: set[str] = field(default_factory=set)  # projects found unusable during the call
    tried: set[str] = field(default_factory=set)  # projects that failed it transiently
    last: Answer | None = None
    quota_error: bytes = b""
    spent: int = 0  # attempts counted against the retry budget
    internal_errors: int = 0

    def count(self, verdict: Verdict) -> None:
        """A key's own fault does not spend the retry budget: it takes the key out of the
        running, so those retries are bounded by the pool's size. Everything else does, 429s
        included, so a limit gemgate cannot learn is not retried until the deadline."""
        if not own_fault(verdict):
            self.spent += 1

    def give_up_on(self, answer: Answer) -> bool:
        """Whether this failure ends the tries at once (a second 500: the body's fault)."""
        if answer.status == 500:
            self.internal_errors += 1
        return self.internal_errors >= MAX_INTERNAL_ERRORS

    def remember(self, answer: Answer, verdict: Verdict) -> None:
        if verdict.problem == ProblemId.QUOTA_EXHAUSTED:
            self.quota_error = answer.body
        last = self.last
        if last is None or not own_fault(verdict) or last.verdict is None or \
                own_fault(last.verdict):
            self.last = answer  # Google's answer about the request explains more than our key's
