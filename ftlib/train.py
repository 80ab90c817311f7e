"""Training: `fit`, the `History` it returns, and its callbacks.

`fit` is the plain PyTorch loop of lesson 02 (forward, loss, backward, step), with what
the lessons need around it and nothing hidden:

- per-epoch train and validation loss and accuracy, computed over samples (not averaged
  per batch, which is wrong when the last batch is short), the LR of every group and the
  time, returned as a `History`;
- schedulers stepped per batch (OneCycleLR, CyclicLR) or per epoch (the rest;
  ReduceLROnPlateau gets the monitored value);
- callbacks: `EarlyStopping`, `GradualUnfreezing` (ULMFiT), `LivePlot`;
- AMP (fp16 autocast + GradScaler) and channels_last on CUDA, and an opt-in CPU fast path
  (bf16 autocast + channels_last) on CPUs with native bf16;
- a loss that becomes NaN or explodes stops training with the likely cause; the notebook's
  stop button (KeyboardInterrupt) keeps the history and, with `restore_best`, the best weights.

`fit` never re-initialises the model: call it twice and the second call goes on training.
Used from lesson 02 on (lessons 05-07 use the schedulers and callbacks).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

from .config import is_quiet
from .device import get_device
from .freeze import unfreeze
from .models import stages
from .progress import progress

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["fit", "History", "TrainingDiverged", "evaluate_loss_acc", "Callback", "FitState",
           "EarlyStopping", "GradualUnfreezing", "LivePlot", "cpu_has_native_bf16",
           "MONITORS", "DIVERGE_FACTOR"]

MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")
# The training loss has diverged when it exceeds this many times the first batch's loss
# (at least 0.1, so that a near-perfect start does not make the rule hair-trigger).
DIVERGE_FACTOR = 1e3
CHECK_EVERY = 50        # batches between two checks of the running training loss (one sync each)
INPUT_SCAN_LIMIT = 200  # batches scanned for NaN inputs once training has diverged


# --------------------------------------------------------------------------------------------
# History, errors, callback state
# --------------------------------------------------------------------------------------------

@dataclass(repr=False)
class History:
    """What `fit` returns: one row per finished epoch, and how training ended.

    Each row is a dict: `epoch` (1-based), `train_loss`, `train_acc`, `val_loss`, `val_acc`
    (no val keys without a validation loader), `lr` ({group name: lr at the end of the
    epoch, before a per-epoch scheduler steps, i.e. the one the epoch trained with}) and
    `time_s` (seconds, training plus validation). Losses are means over samples,
    accuracies fractions in [0, 1] (NaN when the targets are not class indices).
    `history["val_acc"]` is that column as a list; `plot()` draws the curves. Used from lesson 02 on.
    """
    rows: list[dict] = field(default_factory=list)
    monitor: str = "val_loss"
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    diverged: bool = False
    message: str = ""

    def __getitem__(self, column: str) -> list:
        known = list(self.rows[0]) if self.rows else ["epoch", *MONITORS, "lr", "time_s"]
        if column not in known:
            raise KeyError(f"no column {column!r} in this history; columns: {known}")
        return [row[column] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        ended = [flag for flag in ("stopped_early", "interrupted", "diverged") if getattr(self, flag)]
        best = f", best epoch {self.best_epoch}" if self.best_epoch is not None else ""
        flags = "".join(f", {flag}" for flag in ended)
        return f"History({len(self.rows)} epochs{best}, monitor={self.monitor}{flags})"

    def best_row(self) -> dict | None:
        """The row of `best_epoch` (None before any epoch has finished)."""
        return next((row for row in self.rows if row["epoch"] == self.best_epoch), None)

    def plot(self) -> Figure:
        """Loss and accuracy curves (`ftlib.plots.plot_history`); returns the Figure."""
        from .plots import plot_history

        return plot_history(self)


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded; `.history` holds the epochs finished before."""

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


@dataclass
class FitState:
    """What callbacks see and may change. `epoch` is 1-based; `batch` counts from 0 within the
    epoch; `loss` is the last batch's loss as a 0-d tensor (calling `.item()` on it waits for
    the GPU, so do it only when needed). Set `stop = True` to end training after this epoch."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    scheduler: object = None
    epochs: int = 0
    monitor: str = "val_loss"
    epoch: int = 0
    batch: int = 0
    loss: torch.Tensor | None = None
    stop: bool = False


class Callback:
    """Base class: override the hooks you need; each receives the `FitState`."""

    def on_fit_begin(self, state: FitState) -> None: ...

    def on_epoch_begin(self, state: FitState) -> None: ...

    def on_batch_end(self, state: FitState) -> None: ...

    def on_epoch_end(self, state: FitState) -> None: ...

    def on_fit_end(self, state: FitState) -> None: ...


def _call(callbacks: Sequence[Callback], hook: str, state: FitState) -> None:
    for callback in callbacks:
        getattr(callback, hook)(state)


def _mode(monitor: str) -> str:
    """"max" for accuracies, "min" for losses."""
    return "max" if monitor.endswith("acc") else "min"


def _improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stop when the monitored value has not improved by more than `min_delta` for `patience`
    epochs in a row. `monitor=None` uses fit's `monitor`. To get the best epoch's weights back,
    pass `restore_best=True` to `fit`. `fit(..., early_stopping=3)` adds `EarlyStopping(3)`.
    Used in lesson 06.
    """

    def __init__(self, patience: int = 3, min_delta: float = 0.0, monitor: str | None = None) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1 epoch, got {patience}")
        self.patience, self.min_delta, self.monitor = patience, min_delta, monitor

    def on_fit_begin(self, state: FitState) -> None:
        self._monitor = self.monitor or state.monitor
        self.best, self.best_epoch, self.wait = None, None, 0

    def on_epoch_end(self, state: FitState) -> None:
        row = state.history.rows[-1]
        if self._monitor not in row:
            raise ValueError(f"EarlyStopping monitors {self._monitor!r}, which the history lacks "
                             f"(columns: {list(row)}).")
        value = row[self._monitor]
        if _improved(value, self.best, _mode(self._monitor), self.min_delta):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            return
        self.wait += 1
        if self.wait >= self.patience and state.epoch < state.epochs:
            state.stop = True
            state.history.message = (f"Early stopping after epoch {state.epoch}: {self._monitor} has not "
                                     f"improved for {self.wait} epochs (best {self.best:.4g} at epoch "
                                     f"{self.best_epoch}).")


class GradualUnfreezing(Callback):
    """ULMFiT-style gradual unfreezing: start from whatever is trainable, and unfreeze one more
    stage, from the head downwards, every `every` epochs (at the start of epochs 1+every,
    1+2*every, ...) or at the start of each epoch in `at_epochs` (1-based).

    `order` lists the stages in the order to unfreeze them (default: the stages of
    `ftlib.models.stages(model)` from the head down); stages already fully trainable are
    skipped. Unfreezing is `ftlib.freeze.unfreeze(model, only=stage)`: `requires_grad` goes
    back on and BatchNorm layers held in eval mode by `freeze` follow the model's mode again.
    The optimizer must already hold the frozen
    parameters: build it with `param_groups(model, lr, include_frozen=True)`; fit checks this.
    `.unfrozen` records `(epoch, stage)` pairs. Used in lesson 07.
    """

    def __init__(self, order: Sequence[str] | None = None, every: int = 1,
                 at_epochs: Iterable[int] | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1 epoch, got {every}")
        self.order = list(order) if order is not None else None
        self.every = every
        self.at_epochs = set(at_epochs) if at_epochs is not None else None
        self.unfrozen: list[tuple[int, str]] = []

    def on_fit_begin(self, state: FitState) -> None:
        self._stages = stages(state.model)
        order = self.order if self.order is not None else list(reversed(self._stages))
        unknown = [name for name in order if name not in self._stages]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; the model's stages are {list(self._stages)}")
        self._pending = [n for n in order if any(not p.requires_grad for p in self._stages[n].parameters())]
        in_optimizer = {id(p) for group in state.optimizer.param_groups for p in group["params"]}
        missing = [n for n in self._pending
                   if any(id(p) not in in_optimizer for p in self._stages[n].parameters())]
        if missing:
            raise ValueError(f"stages {missing} are frozen and not in the optimizer, so unfreezing them "
                             "would not train them. Build the optimizer with "
                             "param_groups(model, lr, include_frozen=True).")
        self.unfrozen = []

    def _due(self, epoch: int) -> bool:
        if self.at_epochs is not None:
            return epoch in self.at_epochs
        return epoch > 1 and (epoch - 1) % self.every == 0

    def on_epoch_begin(self, state: FitState) -> None:
        if self._pending and self._due(state.epoch):
            name = self._pending.pop(0)
            unfreeze(state.model, only=name)  # also releases BatchNorm held in eval by freeze()
            self.unfrozen.append((state.epoch, name))


class LivePlot(Callback):
    """Redraws the history plot in the notebook after each epoch (quiet under CI).
    `fit(..., live_plot=True)` adds it. Used in lessons 05 and 06."""

    def on_fit_begin(self, state: FitState) -> None:
        self._handle = None

    def on_epoch_end(self, state: FitState) -> None:
        if is_quiet():
            return
        from IPython import display

        fig = state.history.plot()
        if self._handle is None:
            self._handle = display.display(fig, display_id=True)
        else:
            self._handle.update(fig)


# --------------------------------------------------------------------------------------------
# Precision: AMP, channels_last, the CPU fast path
# --------------------------------------------------------------------------------------------

def cpu_has_native_bf16() -> bool:
    """True when the CPU computes in bfloat16 natively (x86 flags `avx512_bf16` or `amx_bf16`
    in /proc/cpuinfo). Detected, never assumed: False on other systems, where bf16 would be
    emulated and slower than fp32. Used by `fit(fast=...)` and lesson 00."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpu_fast_path(fast: bool | str) -> bool:
    if fast is False:
        return False
    native = cpu_has_native_bf16()
    if fast is True and not native:
        warnings.warn("fast=True: this CPU has no native bf16 (avx512_bf16 / amx_bf16), "
                      "so training stays in fp32.", stacklevel=5)
    return native


def _precision(device: torch.device, amp: bool | str, channels_last: bool | str,
               fast: bool | str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, channels_last) for this device and these settings."""
    for name, value in (("amp", amp), ("channels_last", channels_last), ("fast", fast)):
        if value not in ("auto", True, False):
            raise ValueError(f"{name} must be 'auto', True or False, got {value!r}")
    if device.type == "cuda":
        return (torch.float16 if amp in ("auto", True) else None), channels_last in ("auto", True)
    if device.type != "cpu":
        return None, channels_last is True
    use_fast = _cpu_fast_path(fast)
    dtype = torch.bfloat16 if (amp is True or (use_fast and amp == "auto")) else None
    return dtype, channels_last is True or (channels_last == "auto" and use_fast)


@dataclass
class _Setup:
    """How this fit runs (fixed once at the start)."""
    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    scaler: torch.amp.GradScaler | None
    step_mode: str | None
    progress: bool
    first_loss: float | None = None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------------------------
# Schedulers
# --------------------------------------------------------------------------------------------

def _step_mode(scheduler, optimizer: torch.optim.Optimizer, scheduler_step: str, steps: int | None,
               monitor: str) -> str | None:
    """"batch", "epoch" or None (no scheduler); checks the scheduler fits this run."""
    if scheduler is None:
        return None
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError("the scheduler was built for another optimizer: "
                         "build it on the one you pass to fit.")
    if scheduler_step not in ("auto", "batch", "epoch"):
        raise ValueError(f"scheduler_step must be 'auto', 'batch' or 'epoch', got {scheduler_step!r}")
    per_batch = isinstance(scheduler, (OneCycleLR, CyclicLR))
    mode = ("batch" if per_batch else "epoch") if scheduler_step == "auto" else scheduler_step
    if isinstance(scheduler, ReduceLROnPlateau):
        if mode == "batch":
            raise ValueError("ReduceLROnPlateau steps once per epoch, with the monitored value.")
        if scheduler.mode != _mode(monitor):
            raise ValueError(f"ReduceLROnPlateau(mode={scheduler.mode!r}) but fit monitors {monitor}: "
                             f"use mode={_mode(monitor)!r}.")
    if isinstance(scheduler, OneCycleLR) and mode == "batch" and steps is not None \
            and scheduler.last_epoch + steps > scheduler.total_steps:
        raise ValueError(f"OneCycleLR has {scheduler.total_steps - scheduler.last_epoch} steps left but "
                         f"this fit takes {steps}: build it with epochs=<epochs>, "
                         "steps_per_epoch=len(train_loader).")
    return mode


def _current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """{group name: lr}; unnamed groups are called group0, group1, ..."""
    return {g.get("name", f"group{i}"): float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}


def _scheduler_epoch_step(state: FitState, mode: str | None, row: dict) -> None:
    if mode != "epoch":
        return
    if isinstance(state.scheduler, ReduceLROnPlateau):
        state.scheduler.step(row[state.monitor])
    else:
        state.scheduler.step()


# --------------------------------------------------------------------------------------------
# One batch, one epoch, evaluation
# --------------------------------------------------------------------------------------------

def _to_device(batch, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of a batch, on `device`; 4-d inputs in channels_last if asked."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError("each batch must be (inputs, targets), as a DataLoader over "
                        "(image, label) items gives.")
    x, y = batch[0], batch[1]
    if not x.is_floating_point():
        raise TypeError(f"inputs are {x.dtype}, not float: add a transform that converts images to float "
                        "(e.g. transforms.v2.ToDtype(torch.float32, scale=True)).")
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


class _Totals:
    """Per-batch losses and hits, kept as tensors on the device: no GPU sync until asked.

    Appending to lists costs less per batch than adding into running sums (fewer tensor ops).
    """

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.hits: list[torch.Tensor] = []
        self.has_acc = True

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """`loss`: the batch mean, detached (torch's default reduction); `out`: (N, C) logits,
        detached; `y`: (N,) class indices."""
        self.losses.append(loss)
        self.sizes.append(y.shape[0])
        self.has_acc = self.has_acc and out.dim() == 2 and y.dim() == 1 and not y.is_floating_point()
        if self.has_acc:
            self.hits.append(out.argmax(1) == y)

    def mean_loss(self) -> float:
        """Sum of per-sample losses / number of samples (one sync)."""
        if not self.sizes:
            raise ValueError("the loader gave no batches.")
        losses = torch.stack(self.losses).float()
        sizes = torch.tensor(self.sizes, dtype=losses.dtype, device=losses.device)
        return (losses * sizes).sum().item() / sum(self.sizes)

    def result(self) -> tuple[float, float]:
        """(mean loss per sample, accuracy in [0, 1], or NaN when targets are not class indices)."""
        loss = self.mean_loss()
        acc = torch.cat(self.hits).sum().item() / sum(self.sizes) if self.has_acc else float("nan")
        return loss, acc


def evaluate_loss_acc(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None,
                      device: torch.device | str | None = None, *, autocast_dtype: torch.dtype | None = None,
                      channels_last: bool = False) -> tuple[float, float]:
    """(mean loss per sample, accuracy in [0, 1]) of `model` on `loader`, in eval mode, without
    gradients. The mean is over samples, so a short last batch counts for what it holds.

    `loss_fn` returns the batch mean (default cross-entropy); accuracy is NaN when the targets
    are not class indices. The model is moved to `device` (default `get_device()`) and left
    in eval mode. Used by `fit` for validation, and in lessons 02-07.
    """
    device = torch.device(device) if device is not None else get_device()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.to(device).eval()
    totals = _Totals()
    with torch.no_grad(), _autocast(device, autocast_dtype):
        for batch in loader:
            x, y = _to_device(batch, device, channels_last)
            out = model(x)
            totals.add(loss_fn(out, y), out, y)
    return totals.result()


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
                optimizer: torch.optim.Optimizer, setup: _Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward, optimizer step; returns (loss, logits)."""
    with _autocast(setup.device, setup.autocast_dtype):
        out = model(x)
        loss = loss_fn(out, y)
    optimizer.zero_grad(set_to_none=True)
    if setup.scaler is None:
        loss.backward()
        optimizer.step()
    else:  # fp16: scale the loss so small gradients do not underflow
        setup.scaler.scale(loss).backward()
        setup.scaler.step(optimizer)
        setup.scaler.update()
    return loss, out


def _train_epoch(state: FitState, loader: Iterable, loss_fn: Callable, setup: _Setup,
                 callbacks: Sequence[Callback]) -> tuple[float, float]:
    """One pass over `loader`; returns (mean train loss per sample, train accuracy)."""
    state.model.train()
    totals = _Totals()
    batches = progress(loader, desc=f"epoch {state.epoch}") if setup.progress else loader
    for i, batch in enumerate(batches):
        x, y = _to_device(batch, setup.device, setup.channels_last)
        loss, out = _train_step(state.model, x, y, loss_fn, state.optimizer, setup)
        if setup.step_mode == "batch":
            state.scheduler.step()
        state.batch, state.loss = i, loss.detach()
        totals.add(state.loss, out.detach(), y)
        _call(callbacks, "on_batch_end", state)
        if setup.first_loss is None:
            setup.first_loss = state.loss.item()  # the reference for divergence: one sync per fit
        if (i + 1) % CHECK_EVERY == 0:
            _check_loss(totals.mean_loss(), "training", state, setup, loader)
    result = totals.result()
    _check_loss(result[0], "training", state, setup, loader)
    return result


# --------------------------------------------------------------------------------------------
# Divergence
# --------------------------------------------------------------------------------------------

def _inputs_nonfinite(loader: Iterable, limit: int = INPUT_SCAN_LIMIT) -> bool:
    """True when one of the first `limit` batches of `loader` has a NaN or infinite input."""
    for i, batch in enumerate(loader):
        x = batch[0]
        if i >= limit:
            return False
        if torch.is_tensor(x) and x.is_floating_point() and not torch.isfinite(x).all():
            return True
    return False


def _likely_cause(state: FitState, setup: _Setup, loader: Iterable) -> str:
    lrs = ", ".join(f"{name}={lr:.3g}" for name, lr in _current_lrs(state.optimizer).items())
    if _inputs_nonfinite(loader):
        return ("the inputs contain NaN or inf values: check the data and its normalisation "
                "(a standard deviation of 0 divides by zero).")
    if setup.autocast_dtype == torch.float16:
        return (f"fp16 overflow under AMP: try amp=False, or a lower learning rate (now {lrs}).")
    return f"the learning rate is too high (now {lrs}): lower it about 10x, or run lr_find."


def _check_loss(value: float, where: str, state: FitState, setup: _Setup, loader: Iterable) -> None:
    """Raise TrainingDiverged if `value` (a mean loss) is NaN/inf or has exploded."""
    first = setup.first_loss if setup.first_loss is not None and math.isfinite(setup.first_loss) else 0.0
    limit = DIVERGE_FACTOR * max(first, 0.1)
    if math.isfinite(value) and (where != "training" or value <= limit):
        return
    why = "not a finite number" if not math.isfinite(value) else \
        f"over {DIVERGE_FACTOR:g}x the first batch's loss ({first:.3g})"
    raise TrainingDiverged(f"Training diverged in epoch {state.epoch}: the {where} loss is {value:.4g}, "
                           f"{why}. Likely cause: {_likely_cause(state, setup, loader)}")


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------

@dataclass
class _Best:
    """The best epoch so far, and its weights when `restore_best` asks to keep them."""
    keep_weights: bool
    value: float | None = None
    epoch: int | None = None
    weights: dict | None = None

    def update(self, model: nn.Module, row: dict, monitor: str) -> None:
        if _improved(row[monitor], self.value, _mode(monitor)):
            self.value, self.epoch = row[monitor], row["epoch"]
            if self.keep_weights:
                self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module, history: History) -> None:
        last = history.rows[-1]["epoch"] if history.rows else None
        if self.weights is None or (self.epoch == last and not (history.diverged or history.interrupted)):
            return
        model.load_state_dict(self.weights)
        note = f"Restored the weights of epoch {self.epoch} ({history.monitor} {self.value:.4g})."
        history.message = f"{history.message} {note}".strip()


def _check_trainable(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Fail when nothing would train; warn when trainable parameters are not in the optimizer."""
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not any(p.requires_grad for group in optimizer.param_groups for p in group["params"]):
        raise ValueError("none of the optimizer's parameters is trainable: unfreeze at least the head, "
                         "then build the optimizer.")
    outside = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in in_optimizer)
    if outside:
        warnings.warn(f"{outside:,} trainable parameters are not in the optimizer and will never change: "
                      "build the optimizer after changing the model (e.g. after replacing the head).",
                      stacklevel=4)


def _epoch_row(state: FitState, train_loader: Iterable, val_loader: Iterable | None, loss_fn: Callable,
               setup: _Setup, callbacks: Sequence[Callback]) -> dict:
    """Train one epoch, validate, and return the history row."""
    start = time.perf_counter()
    train_loss, train_acc = _train_epoch(state, train_loader, loss_fn, setup, callbacks)
    row = {"epoch": state.epoch, "train_loss": train_loss, "train_acc": train_acc}
    if val_loader is not None:
        row["val_loss"], row["val_acc"] = evaluate_loss_acc(state.model, val_loader, loss_fn, setup.device,
                                                            autocast_dtype=setup.autocast_dtype,
                                                            channels_last=setup.channels_last)
        _check_loss(row["val_loss"], "validation", state, setup, val_loader)
    row["lr"] = _current_lrs(state.optimizer)
    row["time_s"] = time.perf_counter() - start
    return row


def _run_epochs(state: FitState, train_loader: Iterable, val_loader: Iterable | None, loss_fn: Callable,
                setup: _Setup, callbacks: Sequence[Callback], best: _Best) -> None:
    bar = progress(total=state.epochs, desc="fit", leave=True) if setup.progress else None
    try:
        _call(callbacks, "on_fit_begin", state)
        _check_trainable(state.model, state.optimizer)
        for epoch in range(1, state.epochs + 1):
            state.epoch = epoch
            _call(callbacks, "on_epoch_begin", state)
            row = _epoch_row(state, train_loader, val_loader, loss_fn, setup, callbacks)
            state.history.rows.append(row)
            best.update(state.model, row, state.monitor)
            state.history.best_epoch = best.epoch
            _scheduler_epoch_step(state, setup.step_mode, row)
            _call(callbacks, "on_epoch_end", state)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{row[k]:.4g}" for k in MONITORS if k in row})
            if state.stop:
                state.history.stopped_early = epoch < state.epochs
                break
    finally:
        if bar is not None:
            bar.close()


def _finish(state: FitState, best: _Best, callbacks: Sequence[Callback], announce: bool) -> None:
    """Restore the best weights if kept, run on_fit_end, print how training ended."""
    best.restore(state.model, state.history)
    _call(callbacks, "on_fit_end", state)
    state.model.eval()
    if announce and state.history.message:
        print(state.history.message)


def _make_setup(model: nn.Module, device: torch.device, optimizer: torch.optim.Optimizer, scheduler,
                scheduler_step: str, epochs: int, train_loader: Iterable, monitor: str,
                amp: bool | str, channels_last: bool | str, fast: bool | str, show_progress: bool) -> _Setup:
    """Check the scheduler, choose the precision, move the model (weights untouched)."""
    dtype, use_channels_last = _precision(device, amp, channels_last, fast)
    try:
        steps = epochs * len(train_loader)
    except TypeError:  # an iterable without a length
        steps = None
    mode = _step_mode(scheduler, optimizer, scheduler_step, steps, monitor)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)
    return _Setup(device, dtype, use_channels_last, scaler, mode, show_progress)


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None, epochs: int,
        optimizer: torch.optim.Optimizer, scheduler=None, *, loss_fn: Callable | None = None,
        device: torch.device | str | None = None, callbacks: Sequence[Callback] = (),
        scheduler_step: str = "auto", early_stopping: int | None = None, restore_best: bool = False,
        monitor: str = "val_loss", amp: bool | str = "auto", channels_last: bool | str = "auto",
        fast: bool | str = False, on_nan: str = "raise", progress: bool = True,
        live_plot: bool = False) -> History:
    """Train `model` for `epochs` epochs and return its `History` (one row per epoch).

    Loaders yield `(inputs, targets)`: float images (N, C, H, W) and int64 labels (N,);
    `loss_fn` returns the batch mean (default cross-entropy). The model moves to `device`
    (default `get_device()`) and is never re-initialised; on return it is in eval mode.

    - `scheduler`: stepped per batch for OneCycleLR/CyclicLR, per epoch otherwise
      (ReduceLROnPlateau gets the monitored value); `scheduler_step` forces "batch"/"epoch".
    - `monitor`: the column that decides the best epoch ("val_loss", "val_acc", "train_loss",
      "train_acc"); without `val_loader`, "val_x" becomes "train_x".
    - `early_stopping=k` stops after k epochs without improvement; `restore_best=True` puts
      back the best epoch's weights at the end (also after an interrupt or a divergence).
    - `amp`, `channels_last`: "auto" means fp16 autocast + GradScaler and channels_last on
      CUDA only. `fast=True` (or "auto") turns on the CPU fast path, bf16 autocast +
      channels_last, where `cpu_has_native_bf16()`; it is off by default.
    - `on_nan="raise"` raises `TrainingDiverged` (with `.history`) when the loss becomes
      NaN/inf or exceeds DIVERGE_FACTOR x the first batch's loss; `"stop"` prints the
      message, sets `history.diverged` and returns.
    - The stop button (KeyboardInterrupt) ends training: the finished epochs are returned,
      with `history.interrupted` set.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if on_nan not in ("raise", "stop"):
        raise ValueError(f"on_nan must be 'raise' or 'stop', got {on_nan!r}")
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {MONITORS}, got {monitor!r}")
    if val_loader is None:
        monitor = monitor.replace("val_", "train_")
    device = torch.device(device) if device is not None else get_device()
    setup = _make_setup(model, device, optimizer, scheduler, scheduler_step, epochs, train_loader,
                        monitor, amp, channels_last, fast, progress)
    history = History(monitor=monitor)
    state = FitState(model, optimizer, history, scheduler, epochs, monitor)
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    callbacks = [*callbacks, *([EarlyStopping(early_stopping)] if early_stopping else []),
                 *([LivePlot()] if live_plot else [])]
    best = _Best(keep_weights=restore_best)
    try:
        _run_epochs(state, train_loader, val_loader, loss_fn or nn.CrossEntropyLoss(), setup, callbacks, best)
    except KeyboardInterrupt:
        history.interrupted = True
        history.message = f"Interrupted in epoch {state.epoch}: kept the {len(history.rows)} finished epochs."
    except TrainingDiverged as error:
        history.diverged, history.message, error.history = True, str(error), history
        if on_nan == "raise":
            _finish(state, best, callbacks, announce=False)
            raise
    _finish(state, best, callbacks, announce=True)
    return history
