"""Course settings that come from the environment: world, budget and cache folders.

Every function reads the environment when it is called, never at import time, so a
notebook can change a variable and see the effect. Used by every lesson (lesson 00
explains them).

| variable         | meaning                                              | default                  |
| ---------------- | ---------------------------------------------------- | ------------------------ |
| `FTLIB_OFFLINE`  | `1` forces the offline world (stand-ins, course weights) | unset: auto          |
| `FTLIB_BUDGET`   | `quick` (small subsets, few epochs) or `full`         | `quick` on CPU, `full` on GPU |
| `FTLIB_DATA`     | folder where data sets are cached                      | `~/.cache/ftlib/data`    |
| `TORCH_HOME`     | torch's hub cache, where weight files go               | `~/.cache/torch`         |
| `CI`             | set by CI services: progress bars and live plots go quiet | unset                |
| `FTLIB_STRICT`   | `1`: a lesson's claim that a run does not show stops the notebook (tests set it) | unset |
| `FTLIB_DEVICE`   | `cpu`, `cuda`, `mps`: the device `get_device()` returns | unset: CUDA, MPS, then CPU |
| `FTLIB_SWEEP_SEED` | an integer k: every seed shifts by k (the claim sweep, `python -m ftlib.bench.claims`) | `0` |
| `FTLIB_CLAIM_LOG` | a file: every `ftlib.claim` appends one JSON line to it (the claim sweep) | unset |
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["is_offline", "budget", "is_quiet", "is_strict", "in_notebook", "data_dir", "weights_dir",
           "sweep_seed", "shift_seed", "TRUTHY"]

TRUTHY = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def is_offline() -> bool:
    """True when `FTLIB_OFFLINE` forces the offline world (CI sets it)."""
    return _flag("FTLIB_OFFLINE")


def budget() -> str:
    """The experiment budget: `"quick"` or `"full"`, from `FTLIB_BUDGET`.

    Unset means `"full"` when a CUDA GPU is present and `"quick"` otherwise.
    """
    value = os.environ.get("FTLIB_BUDGET", "").strip().lower()
    if value in ("quick", "full"):
        return value
    if value:
        raise ValueError(f"FTLIB_BUDGET={value!r}: use 'quick' or 'full'.")
    return "full" if torch.cuda.is_available() else "quick"


def sweep_seed() -> int:
    """The sweep offset k from `FTLIB_SWEEP_SEED` (0 when unset): a maintainer's knob.

    `python -m ftlib.bench.claims` runs a lesson once per k, to see whether its claims hold
    on other data and other initialisations; a student never sets it.
    """
    value = os.environ.get("FTLIB_SWEEP_SEED", "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FTLIB_SWEEP_SEED={value!r}: use an integer (0 = the lessons' own seeds).") from None


SWEEP_STRIDE = 10_007  # a prime, so shifted seeds do not land on another lesson's seeds


def shift_seed(seed: int) -> int:
    """`seed` moved by the sweep offset: `seed + 10007 * k` (unchanged when k is 0).

    `ftlib.seed_everything` and `ftlib.load_dataset` pass every seed through it.
    """
    return seed + SWEEP_STRIDE * sweep_seed()


def is_quiet() -> bool:
    """True under CI (`CI` set) or when `FTLIB_QUIET=1`: no progress bars, no live plots."""
    return _flag("CI") or _flag("FTLIB_QUIET")


def is_strict() -> bool:
    """True when `FTLIB_STRICT=1`: `ftlib.claim` raises on a claim the run does not show.

    The test suite sets it, in one place (`conftest.py` at the repository root), so that
    `make test`, nbval and CI fail on a broken claim; a student's run leaves it unset and
    the notebook goes on with an explanation.
    """
    return _flag("FTLIB_STRICT")


def in_notebook() -> bool:
    """True inside a Jupyter (IPython) kernel, where Markdown and widgets render; False in a
    terminal, a script or pytest. Used by the exercises and the explorers."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _expand(path: str | os.PathLike) -> Path:
    """`path` with `~` and environment variables (`$HOME`, `${SCRATCH}`) expanded, as a shell would."""
    return Path(os.path.expanduser(os.path.expandvars(os.fspath(path))))


def data_dir() -> Path:
    """Folder for cached data sets: `$FTLIB_DATA`, else `~/.cache/ftlib/data`.

    `~` and environment variables in `FTLIB_DATA` are expanded: `FTLIB_DATA=~/data` means
    the folder `data` in your home folder, not a folder named `~`.
    """
    value = os.environ.get("FTLIB_DATA", "").strip()
    return _expand(value) if value else Path.home() / ".cache" / "ftlib" / "data"


def weights_dir() -> Path:
    """torch's hub checkpoint folder (`$TORCH_HOME/hub/checkpoints`), where weights are cached.

    Exactly the folder torch itself uses (it expands `~` in `TORCH_HOME`, not `$VARIABLES`),
    so a file found here is the one torchvision loads.
    """
    return Path(torch.hub.get_dir()) / "checkpoints"
