"""Reading fields of a client's JSON body without trusting their types.

Bodies are checked by Google, not by gemgate; but the stages that peek into a body first (the
quota estimate, `model: auto`, a provider's translation, resource ownership) must not fail on a
shape Google would refuse with a 400. Each reads through these helpers.
"""

from __future__ import annotations

from typing import Any


def items(value: Any) -> list[Any]:
    """A list field, or nothing when the client sent something else."""
    return value if isinstance(value, list) else []


def mapping(value: Any) -> dict[str, Any]:
    """An object field, or an empty one when the client sent something else."""
    return value if isinstance(value, dict) else {}
