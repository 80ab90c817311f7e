"""`claim`: the one way a lesson checks what its text says.

Every lesson backs its statements with a run and checks them with

    >>> ftlib.claim(acc_pretrained > acc_scratch,
    ...             "the pretrained backbone beats scratch at 10 labels per class",
    ...             measured=f"pretrained {acc_pretrained:.3f}, scratch {acc_scratch:.3f}",
    ...             causes="another seed or data set; the quick budget's few steps")

In a strict run (`FTLIB_STRICT=1`: the test suite, nbval, CI; see `ftlib.config.is_strict`)
a claim the run does not show raises `ClaimNotShown`, an AssertionError, so the test fails as
an `assert` would. In a student's run it shows what was measured, says plainly that this run
did not show the claim and what can cause that, and the notebook goes on. It returns None,
so a cell that ends with a claim shows nothing more.
"""

from __future__ import annotations

import json
import os

from .config import in_notebook, is_strict

__all__ = ["claim", "ClaimNotShown", "LOG_ENV"]

LOG_ENV = "FTLIB_CLAIM_LOG"  # set by the claim sweep (python -m ftlib.bench.claims)


class ClaimNotShown(AssertionError):
    """A lesson's claim that this run did not show (raised in strict runs only)."""


def _explain(message: str, measured: str | None, causes: str | None) -> str:
    lines = [f"This run did not show the claim: {message}."]
    if measured:
        lines.append(f"Measured: {measured}.")
    lines.append(f"What can cause this: {causes}." if causes else
                 "What can cause this: another seed, data set or machine, or a budget too small "
                 "to show the effect steadily.")
    lines.append("The notebook goes on; the text above describes what the course's own runs show.")
    return "\n".join(lines)


def _show(text: str) -> None:
    if in_notebook():
        from IPython.display import Markdown, display

        first, *rest = text.splitlines()
        display(Markdown(f"**Not shown in this run.** {first}\n\n" + "\n\n".join(rest)))
    else:
        print(text)


def _record(message: str, held: bool, measured: str | None) -> None:
    """With `FTLIB_CLAIM_LOG` set, append the claim and its outcome to that file, one JSON line."""
    log = os.environ.get(LOG_ENV, "").strip()
    if not log:
        return
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps({"message": message, "held": held, "measured": measured}) + "\n")


def claim(condition: object, message: str, *, measured: str | None = None,
          causes: str | None = None) -> None:
    """Check a lesson's claim: nothing happens when `condition` holds.

    message: the claim, stated positively ("freezing costs more skill on the far data set").
    measured: the numbers behind it, shown when the run does not show the claim.
    causes: what can make a run not show it (seeds, budget, the real data instead of the
    stand-ins), in words a student understands.

    Strict runs (`FTLIB_STRICT=1`) raise `ClaimNotShown`; other runs display the
    explanation and go on. Used in every lesson.
    """
    held = bool(condition)
    _record(message, held, measured)
    if held:
        return
    text = _explain(message, measured, causes)
    if is_strict():
        raise ClaimNotShown("claim broken: " + text)
    _show(text)
