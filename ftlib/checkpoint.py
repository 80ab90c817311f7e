"""Checkpoints: save and load a model's weights (and optimizer state) safely.

- The write is atomic: the checkpoint goes to a temporary file `.<name>.tmp-<pid>-<random>`
  in the same folder, which then replaces the target in one step (`os.replace`). A crash or
  a full disk mid-save leaves the previous checkpoint intact, never half a file; a temporary
  file left by a killed save is removed by the next save or load of the same checkpoint.
- The load uses `torch.load(weights_only=True)`: only tensors and plain Python values are
  read back, so opening a checkpoint from someone else cannot run their code.
- The load checks first, then copies: when the weights or the optimizer state do not fit
  (another architecture, another number of classes), it raises before anything is changed.

Extras (`**extra`) are therefore limited to plain types: None, bool, int, float, str,
tensors, and lists, tuples and dicts (with str or int keys) of those; for example
`epoch=5, class_names=[...], history=history.rows`. Convert NumPy numbers with `float()`.
Used in lesson 08 (saving, loading, inference).
"""

from __future__ import annotations

import glob
import os
import pickle
import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT", "STALE_AFTER_S"]

CHECKPOINT_FORMAT = "ftlib-checkpoint-v1"
# Exact types: subclasses such as numpy.float64 (a float) or a namedtuple (a tuple) are refused
# by weights_only loading.
_PLAIN = (type(None), bool, int, float, str)
# A temporary file older than this (seconds), or whose process is gone, was left by a killed save.
STALE_AFTER_S = 30 * 60
_TMP_PID = re.compile(r"\.tmp-(\d+)-[0-9a-f]+$")
_SHOWN = 5  # mismatched tensors named in an error
# Optimizer state tensors that have the shape of their parameter (SGD, Adam, AdamW, RMSprop...).
_PER_PARAM_STATE = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg",
                    "acc_delta", "sum", "grad_avg", "exp_inf", "ax")


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


# ------------------------------------------------------------------ temporary files

def _process_alive(pid: int) -> bool:
    """True when process `pid` runs. Only POSIX can ask safely; elsewhere this says True and
    only the age of a temporary file decides."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)  # signal 0 sends nothing: it only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of `path` left by killed saves: those whose process is gone,
    and any older than STALE_AFTER_S (also the `.<name>.<random>.tmp` of older ftlib versions).
    A temporary file of a save still running elsewhere is kept."""
    try:
        candidates = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*")
                      if _TMP_PID.search(p.name) or p.name.endswith(".tmp")]
    except OSError:
        return
    for tmp in candidates:
        match = _TMP_PID.search(tmp.name)
        try:
            old = time.time() - tmp.stat().st_mtime > STALE_AFTER_S
            if old or (match is not None and not _process_alive(int(match.group(1)))):
                tmp.unlink()
        except OSError:  # removed meanwhile, or not ours to remove: leave it
            continue


def _cannot_write(path: Path, error: OSError) -> OSError:
    """The same kind of error, saying which file could not be written and what to do."""
    if isinstance(error, PermissionError):
        advice = (f"the folder {path.parent} is not writable by you: save to a folder you can "
                  "write (e.g. under your home folder) or change its permissions")
    else:
        advice = "check the disk space and the folder"
    return type(error)(f"could not write the checkpoint {path} ({error.strerror or error}): {advice}. "
                       "An earlier checkpoint at that path, if any, is untouched.")


def _write_atomically(path: Path, payload: dict) -> None:
    """torch.save `payload` to a temporary file beside `path`, then rename it onto `path`."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    **extra) -> Path:
    """Write `model`'s state dict, `optimizer`'s state (if given) and the plain-typed `extra`
    values to `path`, atomically; returns the path. The folder is created if needed.

    A folder you cannot write, or a full disk, raises an OSError that names the file; the
    previous checkpoint at `path` is then left as it was.

    >>> save_checkpoint("runs/best.pt", model, optimizer, epoch=5, class_names=names)
    """
    path = Path(path).expanduser()
    _check_plain(extra, "extra")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a file name, e.g. {path / 'model.pt'}")
    payload = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(),
               "optimizer": optimizer.state_dict() if optimizer is not None else None, "extra": extra}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cannot_write(path, error) from None
    _remove_stale_temporaries(path)
    _write_atomically(path, payload)
    return path


# ------------------------------------------------------------------ reading and checking

def _read(path: Path, map_location) -> dict:
    """The checkpoint's payload, or a clear error for a missing, unsafe, broken or foreign file."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint: give the .pt file inside it.")
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
    except PermissionError as error:
        raise PermissionError(f"cannot read the checkpoint {path} ({error.strerror}): "
                              "check the file's permissions.") from None
    except Exception as error:  # truncated zip, empty file, text...: torch raises many kinds
        raise ValueError(f"{path} is truncated or not a torch checkpoint ({type(error).__name__}: "
                         f"{str(error)[:120]}). Save it again with save_checkpoint.") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT \
            or not isinstance(payload.get("model"), dict) or not isinstance(payload.get("extra"), dict):
        raise ValueError(f"{path} was not written by ftlib.save_checkpoint. For a bare state dict use "
                         "model.load_state_dict(torch.load(path, weights_only=True)).")
    return payload


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if torch.is_tensor(value) else type(value).__name__


def _model_mismatches(expected: dict, found: dict) -> list[str]:
    """One line per tensor of the model's state dict that the checkpoint lacks or has in
    another shape or kind (float vs integer), then its tensors the model does not have."""
    lines = []
    for key, want in expected.items():
        if key not in found:
            lines.append(f"{key}: model {_shape(want)}, missing from the checkpoint")
        elif not torch.is_tensor(found[key]) or found[key].shape != want.shape:
            lines.append(f"{key}: model {_shape(want)}, checkpoint {_shape(found[key])}")
        elif found[key].is_floating_point() != want.is_floating_point():
            lines.append(f"{key}: model {want.dtype}, checkpoint {found[key].dtype}")
    lines += [f"{key}: not in this model (checkpoint {_shape(found[key])})" for key in found if key not in expected]
    return lines


def _check_model_fits(path: Path, model: nn.Module, state: dict) -> None:
    """Raise RuntimeError, before anything is copied, when `state` does not fit `model`."""
    lines = _model_mismatches(model.state_dict(), state)
    if not lines:
        return
    shown = "\n  ".join(lines[:_SHOWN]) + (f"\n  ... and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else "")
    raise RuntimeError(f"the checkpoint {path} does not fit this model ({len(lines)} tensors differ):\n  {shown}\n"
                       "Build the same architecture with the same number of classes as the one saved "
                       "(e.g. load_model(arch, num_classes=...)), then load again. The model was not changed.")


def _optimizer_mismatch(saved: object, optimizer: torch.optim.Optimizer) -> str | None:
    """What does not match between a saved optimizer state and `optimizer`, or None."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        return "the saved optimizer state is not an optimizer's state_dict"
    groups, mine = saved["param_groups"], optimizer.param_groups
    if len(groups) != len(mine):
        return f"the saved one has {len(groups)} parameter group(s), this one {len(mine)}"
    for i, (group, own) in enumerate(zip(groups, mine)):
        if len(group.get("params", [])) != len(own["params"]):
            return f"group {i} holds {len(group.get('params', []))} parameters in the saved one, {len(own['params'])} here"
        for index, param in zip(group["params"], own["params"]):
            for name, value in saved["state"].get(index, {}).items():
                if name in _PER_PARAM_STATE and torch.is_tensor(value) and value.shape != param.shape:
                    return (f"group {i}: its {name} has shape {tuple(value.shape)}, "
                            f"the parameter {tuple(param.shape)}")
    return None


def _check_optimizer_fits(path: Path, optimizer: torch.optim.Optimizer, saved: object) -> None:
    """Raise ValueError, before anything is copied, when `saved` does not fit `optimizer`."""
    if saved is None:
        raise ValueError(f"{path} has no optimizer state (it was saved without an optimizer): "
                         "load it without the optimizer, which then starts afresh. Nothing was changed.")
    problem = _optimizer_mismatch(saved, optimizer)
    if problem is not None:
        raise ValueError(f"the optimizer state in {path} does not fit this optimizer: {problem}. Build the "
                         "optimizer as when saving (same parameter groups, same frozen layers), or load "
                         "without the optimizer. Neither the model nor the optimizer was changed.")


def _check_map_location(map_location) -> None:
    """A clear error for a device this machine does not have (torch's would blame the file)."""
    if isinstance(map_location, (str, torch.device)):
        device = torch.device(map_location)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"map_location={str(map_location)!r} but this machine has no CUDA GPU: "
                             "use map_location='cpu' (the default), then move the model.")


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` into `model` (and `optimizer`, if given);
    returns the extras as a dict.

    Tensors are read onto `map_location` first, then copied into the model's own device.
    Everything is checked before anything is copied: on any error the model and the
    optimizer are exactly as they were. Raises FileNotFoundError for a missing file,
    ValueError for a truncated or foreign file, one with unsafe contents, or an optimizer
    state that does not fit, and RuntimeError (naming the tensors) when the weights do not
    fit the model.
    """
    path = Path(path).expanduser()
    _check_map_location(map_location)
    _remove_stale_temporaries(path)
    payload = _read(path, map_location)
    _check_model_fits(path, model, payload["model"])
    if optimizer is not None:
        _check_optimizer_fits(path, optimizer, payload.get("optimizer"))
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return dict(payload["extra"])
