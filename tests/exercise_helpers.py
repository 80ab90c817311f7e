"""What the tests of the lessons' exercises share: an answer that must fail with a named mistake,
and an exercise's shown solution, run."""

from __future__ import annotations

import pytest

from ftlib.exercises import Incorrect


def fails(exercise, *answer, match: str) -> None:
    """`exercise.verify(*answer)` raises Incorrect, with a message that matches `match`."""
    with pytest.raises(Incorrect, match=match):
        exercise.verify(*answer)


def solved(exercises, key: str, name: str, **scope):
    """What the shown solution of `exercises.<key>` defines as `name`, run in `scope`."""
    exec(getattr(exercises, key).solution_code, scope)
    return scope[name]
