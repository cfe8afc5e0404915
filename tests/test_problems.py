"""One catalogue of problems: every id has its record, and every mapping reads it."""

from __future__ import annotations

import pytest

from gemgate.compat.errors import openai_error
from gemgate.edges.replies import gateway_error
from gemgate.google_errors import STATUS_BY_CODE
from gemgate.problems import PROBLEMS, ProblemId, hint, may_fall_back, problem


def test_every_problem_has_a_whole_record() -> None:
    assert set(PROBLEMS) == set(ProblemId)
    for pid in ProblemId:
        record = problem(pid)
        assert record.en and record.zh, pid
        assert record.status == 0 or record.status in STATUS_BY_CODE, pid
        assert record.code


def test_the_wire_forms_come_from_the_record() -> None:
    google = gateway_error(429, ProblemId.NO_QUOTA_ROOM, "zh")
    assert google["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert google["error"]["message"] == problem(ProblemId.NO_QUOTA_ROOM).message
    assert google["error"]["hint"] == hint(ProblemId.NO_QUOTA_ROOM, "zh")
    assert openai_error(429, "x", ProblemId.BUDGET_EXCEEDED)["error"]["code"] == \
        "insufficient_quota"
    assert openai_error(400, "x", ProblemId.PATH_INVALID)["error"]["code"] == "path_invalid"
    assert may_fall_back(ProblemId.MODEL_OVERLOADED) and not may_fall_back(
        ProblemId.INVALID_REQUEST) and not may_fall_back(None)


def test_an_unknown_id_is_an_error_not_an_empty_hint() -> None:
    with pytest.raises(ValueError):
        ProblemId("NO_SUCH_PROBLEM")
    with pytest.raises(KeyError):
        hint("NO_SUCH_PROBLEM", "en")  # type: ignore[arg-type]
