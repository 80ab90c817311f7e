"""Progress bars that go quiet under CI. Used by `fit`, `lr_find`, downloads and data generation.

The bar is tqdm's notebook widget inside Jupyter and its text bar elsewhere, chosen here
rather than by `tqdm.auto`: that wrapper also supports async iteration, and to do so it
calls `iter()` on the iterable when the bar is made, before the loop calls it again. On a
DataLoader that starts, and throws away, one extra iterator per epoch: a worker pool, and
one draw from the loader's seeded generator, so a seed would give other batches with
bars than without. Here the loop's own `iter()` is the only one.
"""

from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.std import tqdm as text_tqdm

from .config import in_notebook, is_quiet

__all__ = ["progress"]

T = TypeVar("T")


def _bar_class() -> type[text_tqdm]:
    if in_notebook():
        try:
            from tqdm.notebook import tqdm as notebook_tqdm  # needs ipywidgets
            return notebook_tqdm
        except ImportError:
            pass
    return text_tqdm


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             leave: bool = False, **kwargs) -> text_tqdm:
    """A progress bar (a widget in Jupyter, text in a terminal), disabled under CI.

    Use it as `for batch in progress(loader, desc="epoch 1")`, or with `total=` and
    `.update(n)` for byte counts (`unit="B", unit_scale=True`). Iterating the bar iterates
    `iterable` exactly once.
    """
    quiet = is_quiet()
    bar = text_tqdm if quiet else _bar_class()
    return bar(iterable, desc=desc, total=total, leave=leave, disable=quiet, dynamic_ncols=True, **kwargs)
