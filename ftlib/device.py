"""Device, seeding and mode helpers. Used from lesson 00 on.

**`device=None` means the same everywhere in ftlib: `get_device()`**, the best device this
machine has (CUDA, then Apple's MPS, then the CPU). Every function that takes a `device`
resolves it with `resolve_device` and moves the model there, so `fit`, `evaluate`,
`predict`, `extract_features` and `lr_find` called with the defaults all run on the same
device. Pass `device="cpu"` (or any torch device) to choose.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .config import shift_seed

__all__ = ["get_device", "resolve_device", "seed_everything", "describe_device", "eval_mode", "module_device", "release_memory"]


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    `prefer="cpu"` (or any device string) overrides the choice; so does the environment
    variable `FTLIB_DEVICE` (e.g. `FTLIB_DEVICE=cpu` on a Mac whose MPS fails a lesson).
    """
    prefer = prefer if prefer is not None else (os.environ.get("FTLIB_DEVICE", "").strip() or None)
    if prefer is not None:
        try:
            return torch.device(prefer)
        except RuntimeError as err:
            raise ValueError(f"device {prefer!r} is not a torch device ({err}); use 'cpu', 'cuda', "
                             f"'cuda:1' or 'mps' (FTLIB_DEVICE, or get_device's prefer).") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """`device` as a torch.device; None means `get_device()` (the one rule, see the module doc)."""
    return torch.device(device) if device is not None else get_device()


def describe_device(device: torch.device | str | None = None) -> str:
    """One line naming the device: GPU name and memory, or CPU thread count."""
    device = resolve_device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"CUDA GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU, {torch.get_num_threads()} threads"


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch; return a `torch.Generator` seeded the same way.

    Pass the generator to a DataLoader (`DataLoader(..., generator=g)`) so that the
    shuffling order is reproducible too. `deterministic=True` also asks torch for
    deterministic kernels (slower on GPU; some ops then raise).
    """
    seed = shift_seed(seed)  # unchanged unless a claim sweep sets FTLIB_SWEEP_SEED
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of `model` in eval mode, and give each its own mode back afterwards.

    Restoring module by module (not `model.train()`) keeps a frozen stage's BatchNorm in
    eval mode when it was so before. Used by `evaluate`, `predict` and feature extraction.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def module_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; the CPU for a module with neither.

    Where a figure runs a model as it is (`ftlib.plots`), without moving it.
    """
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def release_memory() -> None:
    """Hand memory that Python and torch have freed back to the operating system.

    A run that trains several models in turn (a race, a sweep) frees each one's gradients,
    optimizer state and activations, but glibc keeps the freed pages for reuse, so the
    process's resident memory only grows. `gc.collect()` frees what cycles still hold, then
    glibc's `malloc_trim(0)` returns the free pages; elsewhere (macOS, Windows, musl) only the
    first step runs. On CUDA it also empties torch's cache of free GPU memory.
    """
    import ctypes
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

