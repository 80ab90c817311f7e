"""Checkpoints: save and load a model's weights (and optimizer state) safely.

- The write is atomic: the checkpoint goes to a temporary file in the same folder, which
  then replaces the target in one step (`os.replace`). A crash or a full disk mid-save
  leaves the previous checkpoint intact, never half a file.
- The load uses `torch.load(weights_only=True)`: only tensors and plain Python values are
  read back, so opening a checkpoint from someone else cannot run their code.

Extras (`**extra`) are therefore limited to plain types: None, bool, int, float, str,
tensors, and lists, tuples and dicts (with str or int keys) of those; for example
`epoch=5, class_names=[...], history=history.rows`. Convert NumPy numbers with `float()`.
Used in lesson 08 (saving, loading, inference).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "ftlib-checkpoint-v1"
# Exact types: subclasses such as numpy.float64 (a float) or a namedtuple (a tuple) are refused
# by weights_only loading.
_PLAIN = (type(None), bool, int, float, str)


def _check_plain(value: object, where: str) -> None:
    """Raise TypeError naming the first value that `torch.load(weights_only=True)` would refuse."""
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint extra {where} has a key of type {type(key).__name__}: "
                                "use str or int keys.")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"checkpoint extra {where} is a {type(value).__name__}: extras must be plain values "
                    "(None, bool, int, float, str, tensors, lists/tuples/dicts of them); "
                    "convert it first (e.g. float(x), x.tolist(), history.rows).")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    **extra) -> Path:
    """Write `model`'s state dict, `optimizer`'s state (if given) and the plain-typed `extra`
    values to `path`, atomically; returns the path. The folder is created if needed.

    >>> save_checkpoint("runs/best.pt", model, optimizer, epoch=5, class_names=names)
    """
    path = Path(path)
    _check_plain(extra, "extra")
    payload = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(),
               "optimizer": optimizer.state_dict() if optimizer is not None else None, "extra": extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp would leave 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path, map_location) -> dict:
    """The checkpoint's payload, or a clear error for a missing, unsafe, broken or foreign file."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: check the path (save_checkpoint writes it).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "unsupported global" in str(error).lower():  # a class or function: code could run
            raise ValueError(f"{path} holds Python objects other than tensors and plain values, which "
                             "weights_only loading refuses (they could run code). Only load it without "
                             "weights_only if you trust where it came from.") from None
        raise ValueError(f"{path} is not a torch checkpoint (it cannot be read as one). "
                         "Save it again with save_checkpoint.") from None
    except Exception as error:  # truncated zip, empty file, text...: torch raises many kinds
        raise ValueError(f"{path} is truncated or not a torch checkpoint ({type(error).__name__}: "
                         f"{str(error)[:120]}). Save it again with save_checkpoint.") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} was not written by ftlib.save_checkpoint. For a bare state dict use "
                         "model.load_state_dict(torch.load(path, weights_only=True)).")
    return payload


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` into `model` (and `optimizer`, if given);
    returns the extras as a dict.

    Tensors are read onto `map_location` first, then copied into the model's own device.
    Raises FileNotFoundError for a missing file, ValueError for a truncated or foreign file
    or one with unsafe contents, and RuntimeError when the weights do not fit the model.
    """
    path = Path(path)
    payload = _read(path, map_location)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise RuntimeError(f"the checkpoint {path} does not fit this model; build the same architecture "
                           f"with the same number of classes first.\n{error}") from None
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise ValueError(f"{path} has no optimizer state (it was saved without an optimizer).")
        optimizer.load_state_dict(payload["optimizer"])
    return dict(payload["extra"])
