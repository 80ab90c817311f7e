"""Training: `fit` and the `History` it returns (its callbacks are in `ftlib.callbacks`).

`fit` is the plain PyTorch loop of lesson 02 (forward, loss, backward, step), with what
the lessons need around it and nothing hidden:

- per-epoch train and validation loss and accuracy, computed over samples (not averaged
  per batch, which is wrong when the last batch is short), the LR of every group and the
  time, returned as a `History`;
- schedulers stepped per batch (OneCycleLR, CyclicLR) or per epoch (the rest;
  ReduceLROnPlateau gets the monitored value);
- callbacks: `EarlyStopping`, `GradualUnfreezing` (ULMFiT), `LivePlot`;
- AMP (fp16 autocast + GradScaler) and channels_last on CUDA, and an opt-in CPU fast path
  (bf16 autocast + channels_last) on CPUs with native bf16 (`ftlib.precision`);
- each batch is checked before its loss: an empty batch, or labels that are not class indices
  0..C-1 of the model's C outputs (a wrong num_classes), raise a ValueError naming the batch;
- a loss that becomes NaN or explodes stops training with the likely cause; the notebook's
  stop button (KeyboardInterrupt) keeps the history and, with `Stopping(restore_best=True)`,
  the best weights.

`fit` never re-initialises the model: call it twice and the second call goes on training.
Used from lesson 02 on (lessons 05-07 use the schedulers and callbacks).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

from .callbacks import Callback, EarlyStopping, FitState, LivePlot, call_hook, improved, monitor_mode
from .device import resolve_device
from .metrics import label_error
from .precision import Precision, autocast, resolve_precision
from .progress import progress

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["fit", "train_step", "Stopping", "History", "TrainingDiverged", "evaluate_loss_acc", "MONITORS", "DIVERGE_FACTOR"]

MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")
# The training loss has diverged when it exceeds this many times the first batch's loss
# (at least 0.1, so that a near-perfect start does not make the rule hair-trigger).
DIVERGE_FACTOR = 1e3
CHECK_EVERY = 50        # batches between two checks of the running training loss (one sync each)
INPUT_SCAN_LIMIT = 200  # batches scanned for NaN inputs once training has diverged


# --------------------------------------------------------------------------------------------
# History, errors, when to stop
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


@dataclass(frozen=True)
class Stopping:
    """When `fit` stops, and which weights it keeps.

    monitor: the column that decides the best epoch ("val_loss", "val_acc", "train_loss",
        "train_acc"); without a validation loader, "val_x" becomes "train_x".
    patience: stop after this many epochs without improvement (`EarlyStopping`); None never.
    restore_best: put back the best epoch's weights at the end (also after an interrupt or
        a divergence).
    on_nan: "raise" raises `TrainingDiverged` (with `.history`) when the loss becomes NaN/inf
        or exceeds DIVERGE_FACTOR x the first batch's loss; "stop" says why, sets
        `history.diverged` and returns. Used in lessons 05 and 06.
    """
    monitor: str = "val_loss"
    patience: int | None = None
    restore_best: bool = False
    on_nan: str = "raise"

    def __post_init__(self) -> None:
        if self.on_nan not in ("raise", "stop"):
            raise ValueError(f"Stopping(on_nan=...) must be 'raise' or 'stop', got {self.on_nan!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"Stopping(monitor=...) must be one of {MONITORS}, got {self.monitor!r}")


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded; `.history` holds the epochs finished before."""

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


@dataclass
class _Setup:
    """How this fit runs (fixed once at the start)."""
    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    scaler: torch.amp.GradScaler | None
    step_mode: str | None
    quiet: bool
    first_loss: float | None = None


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
        if scheduler.mode != monitor_mode(monitor):
            raise ValueError(f"ReduceLROnPlateau(mode={scheduler.mode!r}) but fit monitors {monitor}: "
                             f"use mode={monitor_mode(monitor)!r}.")
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

def _to_device(batch, device: torch.device, channels_last: bool,
               where: str = "a batch") -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of a batch, on `device`; 4-d inputs in channels_last if asked.

    `where` ("batch 3 of epoch 2") names the batch in the error for an empty one."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError("each batch must be (inputs, targets), as a DataLoader over "
                        "(image, label) items gives.")
    x, y = batch[0], batch[1]
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise TypeError(f"{where} is ({type(x).__name__}, {type(y).__name__}), not two tensors: "
                        "use a DataLoader over (image tensor, label) items.")
    if not x.is_floating_point():
        raise TypeError(f"inputs are {x.dtype}, not float: add a transform that converts images to float "
                        "(e.g. transforms.v2.ToDtype(torch.float32, scale=True)).")
    if x.dim() > 0 and x.shape[0] == 0:
        raise ValueError(f"the loader gave an empty batch ({where}): check the data set (is it empty "
                         "after filtering?), the sampler, and drop_last.")
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _label_range(y: torch.Tensor, loss_fn: Callable, scan: bool) -> tuple[int, int] | None:
    """(smallest, largest) class index in integer targets `y` (N,), leaving out the loss's
    `ignore_index`; None for other targets, an empty batch, or targets off the CPU when
    `scan` is False (reading them there would wait for the GPU)."""
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool or (y.device.type != "cpu" and not scan):
        return None
    ignore = getattr(loss_fn, "ignore_index", None)
    kept = y if ignore is None else y[y != ignore]
    if kept.numel() == 0:
        return None
    low, high = torch.aminmax(kept)
    return int(low), int(high)


_CLASS_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss)


def _wants_class_indices(loss_fn: Callable) -> bool:
    """True for the losses known to take class indices (N,) as targets (cross-entropy, NLL)."""
    return isinstance(loss_fn, _CLASS_INDEX_LOSSES) or loss_fn in (nn.functional.cross_entropy,
                                                                   nn.functional.nll_loss)


def _out_of_range(out: torch.Tensor, bounds: tuple[int, int] | None) -> int | None:
    """The first offending label when the targets' `bounds` leave 0..C-1 of the logits `out`."""
    if bounds is None or out.dim() != 2:
        return None
    if bounds[1] >= out.shape[1]:
        return bounds[1]
    return bounds[0] if bounds[0] < 0 else None


def _check_labels(out: torch.Tensor, y: torch.Tensor, bounds: tuple[int, int] | None, where: str) -> None:
    """Raise ValueError when the targets cannot be class indices of the logits `out` (N, C)."""
    if out.dim() != 2 or y.dim() != 1:
        return  # soft targets (N, C), or a model and loss of another kind: the loss decides
    if y.shape[0] != out.shape[0]:
        raise ValueError(f"{where}: the model gave {out.shape[0]} outputs for {y.shape[0]} labels: "
                         "each input needs exactly one label.")
    if y.is_floating_point() or y.dtype not in (torch.long, torch.uint8):
        classes = out.shape[1]
        raise ValueError(f"labels must be class indices 0..{classes - 1} (int64) for this model's {classes} "
                         f"outputs, but {where} has {y.dtype} labels: convert them with .long() in the data "
                         "set; for soft targets give probabilities of shape (N, C).")
    bad = _out_of_range(out, bounds)
    if bad is not None:
        raise label_error(bad, out.shape[1], where)


def _checked_loss(loss_fn: Callable, y_cpu: torch.Tensor, where: str, scan: bool) -> Callable:
    """`loss_fn`, with the batch's targets checked against its logits (N, C).

    For cross-entropy and NLL the check runs before the loss. A custom loss runs first, and
    only if it fails on labels outside 0..C-1 is that explained (other losses may take other
    targets). The range comes from `y_cpu`, the loader's targets before they move, so no GPU
    sync is added; targets the loader already put on the GPU are read only when `scan`."""
    bounds = _label_range(y_cpu, loss_fn, scan)
    strict = _wants_class_indices(loss_fn)

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if strict:
            _check_labels(out, y, bounds, where)
            return loss_fn(out, y)
        try:
            return loss_fn(out, y)
        except (IndexError, RuntimeError) as error:
            bad = _out_of_range(out, bounds)
            if bad is not None:
                raise label_error(bad, out.shape[1], where) from error
            raise
    return loss


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
    are not class indices. An empty batch, or labels outside 0..C-1 of the model's C outputs,
    raise a ValueError that names the batch. The model is moved to `device` (default `get_device()`) and left
    in eval mode. Used by `fit` for validation, and in lessons 02-07.
    """
    device = resolve_device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.to(device).eval()
    totals = _Totals()
    with torch.no_grad(), autocast(device, autocast_dtype):
        for i, batch in enumerate(loader):
            where = f"batch {i} of the evaluation loader"
            x, y = _to_device(batch, device, channels_last, where)
            out = model(x)
            totals.add(_checked_loss(loss_fn, batch[1], where, scan=i == 0)(out, y), out, y)
    return totals.result()


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
               optimizer: torch.optim.Optimizer, *, autocast_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step, the body of every training loop in ftlib: forward (under autocast
    when `autocast_dtype` is set), loss, backward, step. `x` and `y` are on the model's
    device. Returns (loss, logits), both still attached. Used by `fit` and `lr_find`."""
    with autocast(x.device, autocast_dtype):
        out = model(x)
        loss = loss_fn(out, y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:  # fp16: scale the loss so small gradients do not underflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss, out


def _train_epoch(state: FitState, loader: Iterable, loss_fn: Callable, setup: _Setup,
                 callbacks: Sequence[Callback]) -> tuple[float, float]:
    """One pass over `loader`; returns (mean train loss per sample, train accuracy)."""
    state.model.train()
    totals = _Totals()
    batches = progress(loader, desc=f"epoch {state.epoch}") if not setup.quiet else loader
    for i, batch in enumerate(batches):
        where = f"batch {i} of epoch {state.epoch}"
        x, y = _to_device(batch, setup.device, setup.channels_last, where)
        loss, out = train_step(state.model, x, y, _checked_loss(loss_fn, batch[1], where, scan=i == 0),
                               state.optimizer, autocast_dtype=setup.autocast_dtype, scaler=setup.scaler)
        if setup.step_mode == "batch":
            state.scheduler.step()
        state.batch, state.loss = i, loss.detach()
        totals.add(state.loss, out.detach(), y)
        call_hook(callbacks, "on_batch_end", state)
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
        if improved(row[monitor], self.value, monitor_mode(monitor)):
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
    bar = progress(total=state.epochs, desc="fit", leave=True) if not setup.quiet else None
    try:
        call_hook(callbacks, "on_fit_begin", state)
        _check_trainable(state.model, state.optimizer)
        for epoch in range(1, state.epochs + 1):
            state.epoch = epoch
            call_hook(callbacks, "on_epoch_begin", state)
            row = _epoch_row(state, train_loader, val_loader, loss_fn, setup, callbacks)
            state.history.rows.append(row)
            best.update(state.model, row, state.monitor)
            state.history.best_epoch = best.epoch
            _scheduler_epoch_step(state, setup.step_mode, row)
            call_hook(callbacks, "on_epoch_end", state)
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
    call_hook(callbacks, "on_fit_end", state)
    state.model.eval()
    if announce and state.history.message:
        print(state.history.message)


def _make_setup(model: nn.Module, device: torch.device, optimizer: torch.optim.Optimizer, scheduler,
                scheduler_step: str, epochs: int, train_loader: Iterable, monitor: str,
                precision: str | Precision, quiet: bool) -> _Setup:
    """Check the scheduler, choose the precision, move the model (weights untouched)."""
    dtype, use_channels_last = resolve_precision(device, precision)
    try:
        steps = epochs * len(train_loader)
    except TypeError:  # an iterable without a length
        steps = None
    mode = _step_mode(scheduler, optimizer, scheduler_step, steps, monitor)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)
    return _Setup(device, dtype, use_channels_last, scaler, mode, quiet)


def _callbacks(callbacks: Sequence[Callback] | Callback, stopping: Stopping, live_plot: bool) -> list[Callback]:
    given = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    return [*given, *([EarlyStopping(stopping.patience)] if stopping.patience else []),
            *([LivePlot()] if live_plot else [])]


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None, epochs: int,
        optimizer: torch.optim.Optimizer, scheduler=None, *, scheduler_step: str = "auto",
        loss_fn: Callable | None = None, device: torch.device | str | None = None,
        callbacks: Sequence[Callback] = (), stopping: Stopping = Stopping(),
        precision: str | Precision = "auto", quiet: bool = False, live_plot: bool = False) -> History:
    """Train `model` for `epochs` epochs and return its `History` (one row per epoch).

    Loaders yield `(inputs, targets)`: float images (N, C, H, W) and int64 labels (N,);
    `loss_fn` returns the batch mean (default cross-entropy). The model moves to `device`
    (None: `get_device()`) and is never re-initialised; on return it is in eval mode.

    - `scheduler`: stepped per batch for OneCycleLR/CyclicLR, per epoch otherwise
      (ReduceLROnPlateau gets the monitored value); `scheduler_step` forces "batch"/"epoch".
    - `stopping`: the monitored column, early stopping, restoring the best weights and what
      a NaN loss does (`Stopping`; by default: monitor val_loss, no early stop, raise).
    - `precision`: "auto" (fp16 AMP + channels_last on CUDA, fp32 on a CPU), "fast" (also
      the bf16 CPU fast path where the CPU has native bf16), "fp32", or a `Precision`.
    - `quiet=True` silences fit entirely: no progress bars and no closing line (CI is
      always quiet). `live_plot=True` redraws the curves after each epoch.
    - The stop button (KeyboardInterrupt) ends training: the finished epochs are returned,
      with `history.interrupted` set.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    monitor = stopping.monitor if val_loader is not None else stopping.monitor.replace("val_", "train_")
    device = resolve_device(device)
    setup = _make_setup(model, device, optimizer, scheduler, scheduler_step, epochs, train_loader,
                        monitor, precision, quiet)
    history = History(monitor=monitor)
    state = FitState(model, optimizer, history, scheduler, epochs, monitor)
    callbacks = _callbacks(callbacks, stopping, live_plot)
    best = _Best(keep_weights=stopping.restore_best)
    try:
        _run_epochs(state, train_loader, val_loader, loss_fn or nn.CrossEntropyLoss(), setup, callbacks, best)
    except KeyboardInterrupt:
        history.interrupted = True
        history.message = f"Interrupted in epoch {state.epoch}: kept the {len(history.rows)} finished epochs."
    except TrainingDiverged as error:
        history.diverged, history.message, error.history = True, str(error), history
        if stopping.on_nan == "raise":
            _finish(state, best, callbacks, announce=False)
            raise
    _finish(state, best, callbacks, announce=not setup.quiet)
    return history
