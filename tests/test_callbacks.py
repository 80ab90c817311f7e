"""The callbacks of `fit` on their own: `improved`, `EarlyStopping`, `GradualUnfreezing`'s schedule.

They run on hand-written histories (no training), so each rule is checked exactly.
`tests/test_train.py` checks them inside `fit`.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ftlib.callbacks import EarlyStopping, FitState, GradualUnfreezing, improved, monitor_mode
from ftlib.train import History

from tiny import tiny_model


def run_stopper(stopper: EarlyStopping, values: list[float], monitor: str = "val_loss") -> FitState:
    """Feed `values` (one per epoch) to `stopper` as fit would; returns the state after the last call."""
    state = FitState(model=nn.Linear(1, 1), optimizer=None, history=History(), epochs=len(values),
                     monitor=monitor)
    stopper.on_fit_begin(state)
    for epoch, value in enumerate(values, start=1):
        state.epoch = epoch
        state.history.rows.append({"epoch": epoch, monitor: value})
        stopper.on_epoch_end(state)
        if state.stop:
            break
    return state


def test_monitor_mode_minimises_losses_and_maximises_accuracies():
    assert monitor_mode("val_loss") == "min" and monitor_mode("train_loss") == "min"
    assert monitor_mode("val_acc") == "max" and monitor_mode("train_acc") == "max"


def test_improved_is_strict_and_never_for_nan():
    assert improved(1.0, None, "min")
    assert improved(0.9, 1.0, "min") and not improved(1.0, 1.0, "min")
    assert improved(0.6, 0.5, "max") and not improved(0.5, 0.5, "max")
    assert not improved(0.95, 1.0, "min", min_delta=0.1) and improved(0.85, 1.0, "min", min_delta=0.1)
    assert not improved(math.nan, None, "min") and not improved(math.nan, 1.0, "max")


def test_early_stopping_stops_patience_epochs_after_the_best():
    stopper = EarlyStopping(patience=3)
    state = run_stopper(stopper, [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.6, 0.65])
    assert stopper.best_epoch == 3 and state.epoch == 6 and state.stop
    assert "epoch 6" in state.history.message and "epoch 3" in state.history.message


def test_a_new_best_resets_the_counter():
    stopper = EarlyStopping(patience=2)
    state = run_stopper(stopper, [1.0, 1.1, 0.9, 1.0, 0.95, 0.99, 0.5])
    assert stopper.best_epoch == 3 and state.epoch == 5


def test_early_stopping_never_stops_on_the_last_epoch():
    """The run ends there anyway: stopped_early would be a lie."""
    state = run_stopper(EarlyStopping(patience=2), [1.0, 1.1, 1.2])
    assert not state.stop and state.epoch == 3


def test_accuracy_is_maximised_and_nan_never_counts_as_best():
    stopper = EarlyStopping(patience=2, monitor="val_acc")
    state = run_stopper(stopper, [0.5, 0.7, math.nan, 0.6, 0.9], monitor="val_acc")
    assert stopper.best_epoch == 2 and state.epoch == 4 and state.stop


def test_early_stopping_names_a_missing_column_and_a_bad_patience():
    with pytest.raises(ValueError, match="val_acc"):
        run_stopper(EarlyStopping(monitor="val_acc"), [1.0])
    with pytest.raises(ValueError, match="at least 1"):
        EarlyStopping(patience=0)


@pytest.mark.parametrize("options, due", [
    (dict(), [2, 3, 4, 5]),
    (dict(every=2), [3, 5]),
    (dict(at_epochs=[2, 5]), [2, 5]),
])
def test_gradual_unfreezing_schedule(options, due):
    assert [e for e in range(1, 6) if GradualUnfreezing(**options)._due(e)] == due


def test_gradual_unfreezing_rejects_unknown_stages_and_frozen_stages_outside_the_optimizer():
    model = tiny_model()
    for p in model.parameters():
        p.requires_grad = False
    head = list(model.head.parameters())
    for p in head:
        p.requires_grad = True
    state = FitState(model=model, optimizer=torch.optim.SGD(head, lr=0.1), history=History(), epochs=3)
    with pytest.raises(ValueError, match="unknown stages"):
        GradualUnfreezing(order=["nope"]).on_fit_begin(state)
    with pytest.raises(ValueError, match="include_frozen=True"):
        GradualUnfreezing().on_fit_begin(state)
