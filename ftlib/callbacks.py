"""Callbacks of `fit`: what they see (`FitState`), early stopping, gradual unfreezing, live plots.

A callback overrides the hooks it needs; `fit` calls them in the order given. Used in
lessons 05-07 (`EarlyStopping` in 06, through `fit(..., stopping=Stopping(patience=...))`;
`GradualUnfreezing` in 07; `LivePlot` in 05 and 06).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import torch
from torch import nn

from .config import in_notebook, is_quiet
from .freeze import unfreeze
from .models import stages

if TYPE_CHECKING:
    from .train import History

__all__ = ["FitState", "Callback", "EarlyStopping", "GradualUnfreezing", "LivePlot", "call_hook",
           "monitor_mode", "improved"]


@dataclass
class FitState:
    """What callbacks see and may change. `epoch` is 1-based; `batch` counts from 0 within the
    epoch; `loss` is the last batch's loss as a 0-d tensor (calling `.item()` on it waits for
    the GPU, so do it only when needed). Set `stop = True` to end training after this epoch."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: "History"
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


def call_hook(callbacks: Sequence[Callback], hook: str, state: FitState) -> None:
    for callback in callbacks:
        getattr(callback, hook)(state)


def monitor_mode(monitor: str) -> str:
    """"max" for accuracies, "min" for losses."""
    return "max" if monitor.endswith("acc") else "min"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta



class EarlyStopping(Callback):
    """Stop when the monitored value has not improved by more than `min_delta` for `patience`
    epochs in a row. `monitor=None` uses fit's `monitor`. To get the best epoch's weights back,
    pass `stopping=Stopping(restore_best=True)` to `fit`; `fit(..., stopping=Stopping(patience=3))`
    adds `EarlyStopping(3)`.

    It is the plain loop of lesson 06: a new best must beat the best so far (lower for losses,
    higher for accuracies; NaN never does) and resets a counter; every other epoch adds one,
    and at `patience` training stops, so the run ends `patience` epochs after its best one
    (never "early" at the last epoch). `.best` and `.best_epoch` (1-based) record the best.
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
        if improved(value, self.best, monitor_mode(self._monitor), self.min_delta):
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
        if is_quiet() or not in_notebook():  # a script or a terminal has nowhere to draw
            return
        from IPython import display

        fig = state.history.plot()
        if self._handle is None:
            self._handle = display.display(fig, display_id=True)
        else:
            self._handle.update(fig)
