"""Progress bars that go quiet under CI. Used by `fit`, `lr_find`, downloads and data generation."""

from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.auto import tqdm

from .config import is_quiet

__all__ = ["progress"]

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             leave: bool = False, **kwargs) -> tqdm:
    """A `tqdm.auto` bar (a widget in Jupyter, text in a terminal), disabled under CI.

    Use it as `for batch in progress(loader, desc="epoch 1")`, or with `total=` and
    `.update(n)` for byte counts (`unit="B", unit_scale=True`).
    """
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=is_quiet(),
                dynamic_ncols=True, **kwargs)
