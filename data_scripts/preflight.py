"""Before `make install` puts PyTorch into a fresh .venv: is there room on the disk for it?

    python data_scripts/preflight.py .venv 6.5      # what `make install` runs (MIN_FREE_GB)

The pinned PyTorch for Linux comes with its CUDA libraries: a full .venv measured 6.0 GB
(`du -sh .venv`), and pip needs room for temporary files on top. Without this check a full
disk shows up as pip's `OSError: [Errno 28] No space left on device` half-way through,
leaving a broken .venv. Standard library only: it runs before anything is installed.
Skipped when torch is already in the environment (nothing big left to install) or when the
required size is 0 (`make install MIN_FREE_GB=0`).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path


def check(folder: Path, need_gb: float) -> str | None:
    """None when `folder`'s disk has `need_gb` GiB free (or torch is already installed), else a message."""
    if need_gb <= 0 or importlib.util.find_spec("torch") is not None:
        return None
    free_gb = shutil.disk_usage(folder).free / 2**30
    if free_gb >= need_gb:
        return None
    return (f"Only {free_gb:.1f} GB free on the disk of {folder.resolve()}, and installing PyTorch with its "
            f"libraries needs about {need_gb:g} GB (a full .venv is about 6 GB). Free some space (old clones, "
            "caches such as ~/.cache/pip) and run the command again, or put the repository on a larger disk. "
            "To install anyway: make install MIN_FREE_GB=0")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python data_scripts/preflight.py FOLDER GIGABYTES", file=sys.stderr)
        return 2
    message = check(Path(args[0]), float(args[1]))
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
