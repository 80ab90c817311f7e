"""The machinery of the exercises: the errors a checker raises, the one display function,
and the plain data a lesson declares (`Exercise`, `ExerciseSet`).

An exercise is checked in one of two ways:

- `ex.q1.verify(answer)`, the pure check (tests, grading): returns the checker's one-line
  summary, or raises `Incorrect` saying what is wrong.
- `ex.q1.check(answer)`, in the notebook: shows the outcome (correct, not yet, or not
  answered yet) and returns None. A wrong answer, a call with the wrong
  arguments or an error in the student's own code is shown, never raised, so no lesson
  needs a try/except around it (learntools' split between a problem and its view).

Nothing here reads notebook globals or keeps state between calls. Used by lessons 01-08.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..config import in_notebook

__all__ = ["Incorrect", "NotAnswered", "CodeRaised", "is_placeholder", "call_student", "show", "record",
           "solutions_off", "Exercise", "ExerciseSet", "GRADE_LOG", "SOLUTIONS"]

SOLUTIONS = "FTLIB_SOLUTIONS"
"""`FTLIB_SOLUTIONS=off` (an exam): `solution()` and the last hint say solutions are off in this class."""

GRADE_LOG = "FTLIB_GRADE_LOG"
"""With this variable set to a file path, every `check()` appends its outcome there (`ftlib.grade`)."""


# --- what a checker raises ----------------------------------------------------------------

class Incorrect(AssertionError):
    """A wrong answer. The message says what is wrong and what to try instead."""


class NotAnswered(Incorrect):
    """The answer is still the notebook's placeholder (None or ...). `advice` says what to put there."""

    def __init__(self, advice: str) -> None:
        super().__init__(f"no answer yet: {advice}")
        self.advice = advice


class CodeRaised(Incorrect):
    """The student's own code raised while a checker called it.

    call: the call the checker made, e.g. `"accuracy(model, loader)"`; error: what it raised.
    """

    def __init__(self, call: str, error: Exception) -> None:
        super().__init__(f"your code raised {_describe(error)} while the checker called {call}.")
        self.call, self.error = call, error


def _describe(error: BaseException) -> str:
    """`"TypeName: first line of the message"`."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def is_placeholder(answer: Any) -> bool:
    """True for the placeholders a notebook leaves for the student's answer: None and `...`."""
    return answer is None or answer is Ellipsis


def call_student(call: str, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` for a function the student wrote; what it raises comes back as `CodeRaised`.

    call: the call as the student would write it, e.g. `"unfreeze(model, 2)"`.
    KeyboardInterrupt is not an Exception, so it still stops the cell.
    """
    try:
        return fn(*args)
    except Exception as error:
        raise CodeRaised(call, error) from error


# --- display ------------------------------------------------------------------------------

def show(markdown: str) -> None:
    """Display `markdown`: rendered in Jupyter, printed as plain text anywhere else."""
    if in_notebook():
        from IPython.display import Markdown, display
        display(Markdown(markdown))
    else:
        print(markdown)


_FTLIB = Path(__file__).resolve().parents[1]


def _raised_by_ftlib(error: BaseException) -> bool:
    """True when the innermost frame of the error's traceback is ftlib's own code: a checker
    (or ftlib.models) turning down the answer's type or value, not the student's code failing."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_FTLIB)


def solutions_off() -> bool:
    """True when the class setting `FTLIB_SOLUTIONS=off` (or 0, no, false) hides solutions."""
    return os.environ.get(SOLUTIONS, "").strip().lower() in {"off", "0", "no", "false"}


_OFF = "Solutions are off in this class (FTLIB_SOLUTIONS=off): ask your instructor."


def _status(error: Exception) -> str:
    """The grade of an error `verify` raised: "not attempted", "error" or "wrong"."""
    if isinstance(error, NotAnswered):
        return "not attempted"
    if isinstance(error, CodeRaised) or not (isinstance(error, Incorrect) or _raised_by_ftlib(error)):
        return "error"
    return "wrong"


def record(lesson: str, exercise: str, status: str, message: str) -> None:
    """Append one outcome as a JSON line to the file `$FTLIB_GRADE_LOG` names; nothing when unset.

    This is how results leave the student's kernel for `python -m ftlib.grade`: the grader
    reads this file, never what the notebook prints.
    """
    path = os.environ.get(GRADE_LOG)
    if not path:
        return
    line = json.dumps({"lesson": lesson, "exercise": exercise, "status": status, "message": message})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _feedback(error: Exception, usage: str) -> str:
    """The Markdown `check` shows for an error `verify` raised."""
    if isinstance(error, NotAnswered):
        return f"**Not answered yet.** {error.advice}"
    if isinstance(error, CodeRaised):
        return f"**Your code raised** `{_describe(error.error)}` while the checker called it (`{error.call}`)."
    if isinstance(error, Incorrect) or _raised_by_ftlib(error):
        return f"**Not yet.** {error}"
    return f"**Your code raised** `{_describe(error)}` while the checker ran `{usage}`."


# --- exercises and exercise sets (plain data) ---------------------------------------------

@dataclass(frozen=True)
class Exercise:
    """One exercise: a task, a checker, hints revealed one at a time, and a solution.

    checker: a pure function of the student's answer(s); returns a one-line summary when
        right, raises `Incorrect` when wrong.
    usage: how to call `check`, e.g. `"ex.q1.check(model)"`.
    solution_code: Python source of one right answer, shown by `solution()`.
    none_is_an_answer: True where None can be the right answer, so only `...` counts as
        the placeholder (lesson 02's "or None if scratch never gets there").
    """
    title: str
    task: str
    usage: str
    checker: Callable[..., str]
    hints: tuple[str, ...]
    solution_code: str
    none_is_an_answer: bool = False
    lesson: str = ""  # set by ExerciseSet: the lesson number and the key ("q1") name it in grades
    key: str = ""

    def verify(self, *answer: Any, **options: Any) -> str:
        """The pure check: the checker's one-line summary, or `Incorrect` saying what is wrong.

        Raises TypeError naming the usage when the arguments do not fit the checker, and
        `NotAnswered` (an `Incorrect`) when an answer is still a placeholder.
        """
        try:
            inspect.signature(self.checker).bind(*answer, **options)
        except TypeError as err:
            raise TypeError(f"{self.title}: call it as `{self.usage}` ({err}).") from None
        if any(is_placeholder(a) and not (a is None and self.none_is_an_answer) for a in answer):
            raise NotAnswered(f"replace the placeholder ({'...' if self.none_is_an_answer else 'None or ...'}) "
                              f"with your answer, as in `{self.usage}`.")
        return self.checker(*answer, **options)

    def check(self, *answer: Any, **options: Any) -> None:
        """Check the answer and show the outcome; nothing is raised for a wrong answer.

        Shows "**Correct.** ...", or what is wrong (a wrong answer, a call that does not fit
        `usage`, or the error the student's code raised), or "**Not answered yet.**" while the
        answer is still the placeholder. Returns None, so a cell that ends with it shows only
        the message; `verify` is the check that returns or raises.
        """
        try:
            summary = self.verify(*answer, **options)
        except Exception as error:
            feedback = _feedback(error, self.usage)
            record(self.lesson, self.key, _status(error), feedback)
            show(feedback)
            return
        record(self.lesson, self.key, "passed", summary)
        show(f"**Correct.** {summary}")

    def hint_text(self, n: int = 1) -> str:
        """The Markdown of hint `n` (1-based)."""
        if not 1 <= n <= len(self.hints):
            raise ValueError(f"{self.title} has {len(self.hints)} hints: use n = 1 to {len(self.hints)}.")
        last = _OFF if solutions_off() else "Still stuck? `solution()` shows one answer."
        follow = f"Next: `hint({n + 1})`." if n < len(self.hints) else last
        return f"**Hint {n} of {len(self.hints)}:** {self.hints[n - 1]}\n\n{follow}"

    def hint(self, n: int = 1) -> None:
        """Show hint `n` (1 by default; call `hint(2)` for the next one)."""
        show(self.hint_text(n))

    def solution_text(self) -> str:
        """The Markdown of the solution: the code of one right answer (unless solutions are off)."""
        if solutions_off():
            return f"**{self.title}:** {_OFF}"
        return f"**Solution to {self.title}:**\n\n```python\n{self.solution_code.strip()}\n```"

    def solution(self) -> None:
        """Show the solution."""
        show(self.solution_text())

    def _repr_markdown_(self) -> str:
        return (f"**{self.title}**\n\n{self.task}\n\nCheck with `{self.usage}`; "
                f"`hint()` and `solution()` help.")

    def __repr__(self) -> str:
        return f"Exercise({self.title!r}; check with {self.usage})"


class ExerciseSet:
    """The exercises of one lesson, reachable as attributes: `ex.q1`, `ex.q2`, ...

    `ex.Incorrect` is the error `verify` raises for a wrong answer, reachable without a
    second import.
    """

    Incorrect = Incorrect

    def __init__(self, lesson: str, **exercises: Exercise) -> None:
        self.lesson = lesson
        self.exercises = {key: replace(ex, lesson=lesson, key=key) for key, ex in exercises.items()}

    def __getattr__(self, name: str) -> Exercise:
        exercises = self.__dict__.get("exercises", {})
        if name in exercises:
            return exercises[name]
        raise AttributeError(f"lesson {self.__dict__.get('lesson')} has the exercises "
                             f"{', '.join(exercises)}; there is no {name!r}.")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.exercises))

    def _repr_markdown_(self) -> str:
        lines = [f"- `{key}`: {ex.title}" for key, ex in self.exercises.items()]
        return f"**Exercises of lesson {self.lesson}**\n\n" + "\n".join(lines)

    def __repr__(self) -> str:
        return f"ExerciseSet(lesson {self.lesson}: {', '.join(self.exercises)})"
