"""gemgate's own "no": a stage refuses a call with a problem, its status and words."""

from __future__ import annotations

from dataclasses import dataclass

from gemgate.problems import ProblemId, problem


@dataclass(frozen=True, slots=True)
class Refusal:
    problem: ProblemId
    status: int
    message: str  # empty: the problem's own message
    retry_after_s: float | None = None  # when the caller may try again (429s)
    param: str | None = None  # the request field at fault (OpenAI's errors name it)


def refusal(problem_id: ProblemId, message: str = "", param: str | None = None) -> Refusal:
    """A refusal with the problem's usual status."""
    return Refusal(problem_id, problem(problem_id).status, message, param=param)
