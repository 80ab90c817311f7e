"""fit, History and the callbacks."""

from __future__ import annotations

import math
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ftlib.optim import param_groups
from ftlib.callbacks import Callback, EarlyStopping, GradualUnfreezing
from ftlib.precision import Precision, cpu_has_native_bf16
from ftlib.train import History, Stopping, TrainingDiverged, evaluate_loss_acc, fit
from tiny import loader, tiny_data, tiny_model


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


class Snapshots(Callback):
    """Records the weights and the trainable stages at the end of every epoch."""

    def __init__(self) -> None:
        self.weights, self.trainable = {}, {}

    def on_epoch_end(self, state) -> None:
        self.weights[state.epoch] = weights(state.model)
        self.trainable[state.epoch] = [name for name, m in state.model.named_children()
                                       if all(p.requires_grad for p in m.parameters())]


QUIET = dict(device="cpu", quiet=True)


# ------------------------------------------------------------------ metrics over samples

def fixed_linear() -> nn.Linear:
    """Logits = x (2 classes): predicts the class whose feature is larger."""
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(2))
        layer.bias.zero_()
    return layer


# 5 samples in batches of 2, 2, 1: right, right | wrong, wrong | right
SHORT_X = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5], [1.0, 0.0]])
SHORT_Y = torch.tensor([0, 1, 1, 0, 0])


def test_loss_and_accuracy_are_over_samples_with_a_short_last_batch():
    expected_loss = F.cross_entropy(SHORT_X, SHORT_Y).item()  # all 5 at once
    # per-sample accuracy 3/5; the per-batch average (1 + 0 + 1) / 3 would be wrong
    loss, acc = evaluate_loss_acc(fixed_linear(), loader(SHORT_X, SHORT_Y, 2), nn.CrossEntropyLoss(), "cpu")
    assert acc == pytest.approx(3 / 5)
    assert loss == pytest.approx(expected_loss, rel=1e-6)


def test_fit_train_metrics_are_over_samples_and_nothing_is_reinitialised():
    model = fixed_linear()
    before = weights(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays as it is
    history = fit(model, loader(SHORT_X, SHORT_Y, 2), loader(SHORT_X, SHORT_Y, 2), 2, optimizer, **QUIET)
    assert same(before, weights(model))
    expected_loss = F.cross_entropy(SHORT_X, SHORT_Y).item()
    for row in history.rows:
        assert row["train_acc"] == pytest.approx(0.6) and row["val_acc"] == pytest.approx(0.6)
        assert row["train_loss"] == pytest.approx(expected_loss, rel=1e-6)
        assert row["val_loss"] == pytest.approx(expected_loss, rel=1e-6)


def test_history_rows_columns_and_training_progress():
    x, y = tiny_data()
    model = tiny_model()
    optimizer = torch.optim.Adam(param_groups(model, lr=0.02))
    history = fit(model, loader(x, y), loader(x, y), 4, optimizer, **QUIET)
    assert isinstance(history, History) and len(history) == 4
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"]
    assert list(history.rows[0]) == columns
    assert history["epoch"] == [1, 2, 3, 4]
    assert history.rows[0]["lr"] == pytest.approx({"stem": 0.02 / 2.6 ** 2, "body": 0.02 / 2.6, "head": 0.02})
    assert history["train_loss"][-1] < history["train_loss"][0]  # it learns
    assert all(r["time_s"] > 0 for r in history.rows)
    assert history.best_epoch == 1 + min(range(4), key=lambda i: history["val_loss"][i])
    assert not model.training  # left in eval mode
    with pytest.raises(KeyError, match="columns"):
        history["accuracy"]


def test_without_validation_loader_monitors_train_loss():
    x, y = tiny_data()
    model = tiny_model()
    history = fit(model, loader(x, y), None, 2, torch.optim.SGD(model.parameters(), lr=0.05), **QUIET)
    assert history.monitor == "train_loss"
    assert "val_loss" not in history.rows[0]
    assert history.best_epoch == 1 + min(range(2), key=lambda i: history["train_loss"][i])


# ------------------------------------------------------------------ schedulers

def test_cosine_scheduler_changes_every_group():
    x, y = tiny_data()
    model = tiny_model()
    optimizer = torch.optim.SGD(param_groups(model, lr=0.1), momentum=0.9)
    base = [g["lr"] for g in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    history = fit(model, loader(x, y), loader(x, y), 3, optimizer, scheduler, **QUIET)
    for e, row in enumerate(history.rows):  # epoch e+1 trains with the lr after e steps
        factor = (1 + math.cos(math.pi * e / 4)) / 2
        assert list(row["lr"].values()) == pytest.approx([b * factor for b in base])
    first, last = history.rows[0]["lr"], history.rows[-1]["lr"]
    assert all(last[name] < first[name] for name in first)


def test_one_cycle_steps_per_batch():
    x, y = tiny_data()
    model = tiny_model()
    optimizer = torch.optim.SGD(param_groups(model, lr=0.1), momentum=0.9)
    train = loader(x, y)
    peaks = [g["lr"] for g in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, epochs=2, steps_per_epoch=len(train))
    fit(model, train, None, 2, optimizer, scheduler, **QUIET)
    assert scheduler.last_epoch == 2 * len(train)


def test_one_cycle_too_short_and_foreign_scheduler_are_explained():
    x, y = tiny_data()
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    short = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3)
    with pytest.raises(ValueError, match="steps_per_epoch=len"):
        fit(model, loader(x, y), None, 2, optimizer, short, **QUIET)
    other = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), 1)
    with pytest.raises(ValueError, match="another optimizer"):
        fit(model, loader(x, y), None, 2, optimizer, other, **QUIET)


def test_reduce_on_plateau_gets_the_monitored_value():
    x, y = SHORT_X, SHORT_Y
    model = fixed_linear()  # no BatchNorm, so the val loss only moves with the weights
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-12)  # far too small to improve the loss
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=1e-3)
    history = fit(model, loader(x, y), loader(x, y), 3, optimizer, scheduler, **QUIET)
    # epoch 1 sets the best val_loss; after epoch 2 (no improvement) the lr halves
    assert [r["lr"]["group0"] for r in history.rows] == pytest.approx([1e-12, 1e-12, 0.5e-12])
    wrong_mode = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min")
    with pytest.raises(ValueError, match="mode='max'"):
        fit(model, loader(x, y), loader(x, y), 1, optimizer, wrong_mode, stopping=Stopping(monitor="val_acc"), **QUIET)


# ------------------------------------------------------------------ early stopping, best weights

def test_early_stopping_and_best_weight_restore():
    x, y = tiny_data()
    wrong = (y + 1) % 3  # validation labels that contradict training: val loss gets worse
    model = tiny_model()
    snaps = Snapshots()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    history = fit(model, loader(x, y), loader(x, wrong), 20, optimizer, callbacks=[snaps],
                  stopping=Stopping(patience=2, restore_best=True), **QUIET)
    val = history["val_loss"]
    best = 1 + min(range(len(val)), key=lambda i: val[i])
    # plain re-implementation of patience 2: stop once 2 epochs in a row fail to beat the best
    wait, stop_at, best_so_far = 0, None, math.inf
    for epoch, v in enumerate(val, start=1):
        wait = 0 if v < best_so_far else wait + 1
        best_so_far = min(best_so_far, v)
        if wait >= 2:
            stop_at = epoch
            break
    assert history.stopped_early and stop_at == len(history) < 20
    assert history.best_epoch == best
    assert same(snaps.weights[best], weights(model))  # the best epoch's weights are back
    assert "Early stopping" in history.message and f"epoch {best}" in history.message


def test_early_stopping_callback_with_min_delta_monitoring_accuracy():
    x, y = tiny_data()
    model = tiny_model()
    stopper = EarlyStopping(patience=1, min_delta=10.0, monitor="val_acc")  # nothing beats +10
    history = fit(model, loader(x, y), loader(x, y), 5, torch.optim.SGD(model.parameters(), lr=0.05),
                  callbacks=[stopper], **QUIET)
    assert len(history) == 2 and history.stopped_early


# ------------------------------------------------------------------ failures

def test_a_huge_learning_rate_raises_with_the_likely_cause():
    x, y = tiny_data()
    model = tiny_model()
    optimizer = torch.optim.SGD(param_groups(model, lr=1e6), momentum=0.9)
    with pytest.raises(TrainingDiverged, match="learning rate is too high") as caught:
        fit(model, loader(x, y), loader(x, y), 3, optimizer, **QUIET)
    assert "head=1e+06" in str(caught.value)
    assert isinstance(caught.value.history, History) and caught.value.history.diverged


def test_nan_inputs_are_named_and_on_nan_stop_returns(capsys):
    x, y = tiny_data()
    x[13, 1, 2, 3] = math.nan
    model = tiny_model()
    history = fit(model, loader(x, y), None, 3, torch.optim.SGD(model.parameters(), lr=0.01),
                  stopping=Stopping(on_nan="stop"), device="cpu")  # not quiet: it says why it stopped
    assert history.diverged and len(history) == 0
    assert "inputs contain NaN" in history.message
    assert "inputs contain NaN" in capsys.readouterr().out


def test_quiet_fit_prints_nothing(capsys):
    x, y = tiny_data()
    x[13, 1, 2, 3] = math.nan
    model = tiny_model()
    history = fit(model, loader(x, y), None, 3, torch.optim.SGD(model.parameters(), lr=0.01),
                  stopping=Stopping(on_nan="stop"), **QUIET)
    assert history.diverged and "inputs contain NaN" in history.message
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_divergence_restores_best_weights_when_asked():
    x, y = tiny_data()
    model = tiny_model()
    snaps = Snapshots()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    class Explode(Callback):  # from epoch 3 on, a learning rate far too high
        def on_epoch_begin(self, state):
            if state.epoch == 3:
                state.optimizer.param_groups[0]["lr"] = 1e8

    history = fit(model, loader(x, y), loader(x, y), 5, optimizer, callbacks=[snaps, Explode()],
                  stopping=Stopping(on_nan="stop", restore_best=True), **QUIET)
    assert history.diverged and len(history) == 2
    assert same(snaps.weights[history.best_epoch], weights(model))
    assert all(torch.isfinite(v.float()).all() for v in model.state_dict().values())


class StopButton(Callback):
    """Presses the notebook's stop button at a given (epoch, batch)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_end(self, state) -> None:
        if (state.epoch, state.batch) == self.at:
            raise KeyboardInterrupt


def test_interrupt_from_a_callback_keeps_history_and_best_weights(capsys):
    x, y = tiny_data()
    model = tiny_model()
    snaps = Snapshots()
    history = fit(model, loader(x, y), loader(x, y), 5, torch.optim.SGD(model.parameters(), lr=0.05),
                  callbacks=[snaps, StopButton(3, 1)], stopping=Stopping(restore_best=True),
                  device="cpu")  # not quiet: it says where it stopped
    assert history.interrupted and len(history) == 2
    assert same(snaps.weights[history.best_epoch], weights(model))
    assert "Interrupted in epoch 3" in capsys.readouterr().out


def test_interrupt_from_the_loader():
    x, y = tiny_data()

    class StoppedLoader:
        def __init__(self):
            self.inner, self.passes = loader(x, y), 0

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            self.passes += 1
            for i, batch in enumerate(self.inner):
                if self.passes == 2 and i == 3:
                    raise KeyboardInterrupt
                yield batch

    model = tiny_model()
    history = fit(model, StoppedLoader(), None, 4, torch.optim.SGD(model.parameters(), lr=0.05), **QUIET)
    assert history.interrupted and history["epoch"] == [1]


def test_integer_images_and_frozen_models_are_explained():
    x, y = tiny_data()
    model = tiny_model()
    with pytest.raises(TypeError, match="ToDtype"):
        fit(model, loader((x * 50).to(torch.uint8), y), None, 1, torch.optim.SGD(model.parameters(), lr=0.1),
            **QUIET)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="none of the optimizer's parameters is trainable"):
        fit(model, loader(x, y), None, 1, optimizer, **QUIET)


def test_trainable_parameters_missing_from_the_optimizer_warn():
    x, y = tiny_data()
    model = tiny_model()
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)  # built before "unfreezing" the rest
    with pytest.warns(UserWarning, match="not in the optimizer"):
        fit(model, loader(x, y), None, 1, optimizer, **QUIET)


# ------------------------------------------------------------------ gradual unfreezing

def freeze_all_but_head(model: nn.Module) -> None:
    for name, child in model.named_children():
        for p in child.parameters():
            p.requires_grad_(name == "head")


def test_gradual_unfreezing_goes_from_the_head_down():
    x, y = tiny_data()
    model = tiny_model()
    freeze_all_but_head(model)
    start = weights(model)
    groups = param_groups(model, lr=0.05, include_frozen=True)
    optimizer = torch.optim.SGD(groups, momentum=0.9, weight_decay=1e-3)
    snaps, unfreeze = Snapshots(), GradualUnfreezing()
    fit(model, loader(x, y), None, 3, optimizer, callbacks=[unfreeze, snaps], **QUIET)
    assert snaps.trainable == {1: ["head"], 2: ["body", "head"], 3: ["stem", "body", "head"]}
    assert unfreeze.unfrozen == [(2, "body"), (3, "stem")]
    # frozen stages did not move while frozen (BN running statistics are buffers, so compare parameters)
    conv = "stem.0.weight"
    assert torch.equal(snaps.weights[2][conv], start[conv])
    assert not torch.equal(snaps.weights[3][conv], start[conv])
    assert not torch.equal(snaps.weights[1]["head.weight"], start["head.weight"])


def test_gradual_unfreezing_at_given_epochs_and_with_an_order():
    x, y = tiny_data()
    model = tiny_model()
    freeze_all_but_head(model)
    optimizer = torch.optim.SGD(param_groups(model, lr=0.05, include_frozen=True))
    snaps = Snapshots()
    unfreeze = GradualUnfreezing(order=["stem", "body"], at_epochs=[3])
    fit(model, loader(x, y), None, 4, optimizer, callbacks=[unfreeze, snaps], **QUIET)
    assert snaps.trainable[2] == ["head"] and snaps.trainable[4] == ["stem", "head"]


def test_gradual_unfreezing_releases_batchnorm_held_by_freeze():
    from ftlib.freeze import bn_modes, freeze, unfreeze
    x, y = tiny_data()
    model = tiny_model()
    freeze(model)                      # bn="eval": both BatchNorm layers held in eval mode
    unfreeze(model, last=1)
    assert bn_modes(model) == {"stem.1": False, "body.1": False}
    optimizer = torch.optim.SGD(param_groups(model, lr=0.05, include_frozen=True))
    fit(model, loader(x, y), None, 2, optimizer, callbacks=[GradualUnfreezing()], **QUIET)
    body_mean = model.body[1].running_mean.clone()
    stem_mean = model.stem[1].running_mean.clone()
    assert bn_modes(model) == {"stem.1": False, "body.1": True}
    model.train()
    model(x[:8])
    assert not torch.equal(model.body[1].running_mean, body_mean), "unfrozen BatchNorm must update again"
    assert torch.equal(model.stem[1].running_mean, stem_mean), "still-frozen BatchNorm must stay fixed"


def test_gradual_unfreezing_needs_the_frozen_parameters_in_the_optimizer():
    x, y = tiny_data()
    model = tiny_model()
    freeze_all_but_head(model)
    optimizer = torch.optim.SGD(param_groups(model, lr=0.05), momentum=0.9)  # frozen left out
    with pytest.raises(ValueError, match="include_frozen=True"):
        fit(model, loader(x, y), None, 2, optimizer, callbacks=[GradualUnfreezing()], **QUIET)


# ------------------------------------------------------------------ CPU fast path, plot

class RecordDtype(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.dtype)
        return x


def test_cpu_fast_path_is_bf16_only_where_detected():
    x, y = tiny_data(16)
    model = tiny_model()
    probe = RecordDtype()
    model.add_module("probe", probe)  # sees the head's output
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    fit(model, loader(x, y), None, 1, optimizer, precision="auto", **QUIET)
    assert set(probe.seen) == {torch.float32}
    probe.seen.clear()
    if cpu_has_native_bf16():
        fit(model, loader(x, y), None, 1, optimizer, precision=Precision(fast=True), **QUIET)
        assert set(probe.seen) == {torch.bfloat16}
    else:
        with pytest.warns(UserWarning, match="no native bf16"):
            fit(model, loader(x, y), None, 1, optimizer, precision=Precision(fast=True), **QUIET)
        assert set(probe.seen) == {torch.float32}
    assert isinstance(cpu_has_native_bf16(), bool)


def test_history_plot():
    pytest.importorskip("ftlib.plots")
    x, y = tiny_data(16)
    model = tiny_model()
    history = fit(model, loader(x, y), loader(x, y), 2, torch.optim.SGD(model.parameters(), lr=0.05), **QUIET)
    fig = history.plot()
    assert len(fig.axes) >= 1


# ------------------------------------------------------------------ one loader iterator per epoch

class CountingLoader:
    """A DataLoader that counts how many iterators are started on it."""

    def __init__(self, x, y, seed):
        self.loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                                 generator=torch.Generator().manual_seed(seed))
        self.iterators = 0

    def __iter__(self):
        self.iterators += 1
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)


@pytest.mark.parametrize("bars", [True, False])
def test_one_loader_iterator_per_epoch_with_bars_on_and_off(bars, monkeypatch):
    for name in ("CI", "FTLIB_QUIET"):
        monkeypatch.delenv(name, raising=False)
    if not bars:
        monkeypatch.setenv("FTLIB_QUIET", "1")
    x, y = tiny_data()
    train, val = CountingLoader(x, y, 0), CountingLoader(x, y, 1)
    model = tiny_model()
    fit(model, train, val, 3, torch.optim.SGD(model.parameters(), lr=0.05), device="cpu")
    assert train.iterators == 3 and val.iterators == 3



# ------------------------------------------------------------------ labels and batches

class ListLoader:
    """A loader that yields the given (inputs, targets) batches, as they are."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@pytest.mark.parametrize("bad, shown", [(12, "label 12"), (3, "label 3"), (-1, "label -1")])
def test_labels_outside_the_model_outputs_are_explained_before_any_step(bad, shown):
    x, y = tiny_data(16)
    y = y.clone()
    y[11] = bad  # in the second batch of 8
    model = tiny_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=rf"class indices 0\.\.2 for this model's 3 outputs; batch 0 of epoch 1 "
                                         rf"has {shown}: is num_classes right\?"):
        fit(model, loader(x[8:], y[8:]), None, 1, optimizer, **QUIET)
    # checked between the forward pass and the loss: no optimizer step was taken
    assert same(before, {name: p.detach() for name, p in model.named_parameters()})
    with pytest.raises(ValueError, match=rf"batch 1 of epoch 1 has {shown}"):
        fit(model, loader(x, y), None, 1, optimizer, **QUIET)
    with pytest.raises(ValueError, match=rf"batch 1 of the evaluation loader has {shown}"):
        evaluate_loss_acc(model, loader(x, y), device="cpu")


def test_float_and_int32_labels_with_cross_entropy_are_explained():
    x, y = tiny_data(16)
    model = tiny_model()
    for wrong in (y.float(), y.int()):
        with pytest.raises(ValueError, match=rf"class indices 0\.\.2 .* batch 0 of epoch 1 has "
                                             rf"{wrong.dtype} labels: convert them with \.long\(\)"):
            fit(model, loader(x, wrong), None, 1, torch.optim.SGD(model.parameters(), lr=0.1), **QUIET)
        with pytest.raises(ValueError, match=r"\.long\(\)"):
            evaluate_loss_acc(model, loader(x, wrong), device="cpu")


def test_soft_targets_ignore_index_and_custom_losses_still_train():
    x, y = tiny_data(16)
    model = tiny_model()
    soft = F.one_hot(y, 3).float() * 0.9 + 0.1 / 3  # (N, C) probabilities: valid for cross-entropy
    history = fit(model, loader(x, soft), loader(x, soft), 1, torch.optim.SGD(model.parameters(), lr=0.1),
                  **QUIET)
    assert math.isfinite(history["train_loss"][0]) and math.isnan(history["val_acc"][0])
    ignored = y.clone()
    ignored[:4] = -100  # cross-entropy's ignore_index
    history = fit(model, loader(x, ignored), None, 1, torch.optim.SGD(model.parameters(), lr=0.1), **QUIET)
    assert math.isfinite(history["train_loss"][0])

    def mse(out, target):  # float targets (N,) with a loss that wants them
        return F.mse_loss(out[:, 0], target)
    history = fit(model, loader(x, y.float() * 10), None, 1, torch.optim.SGD(model.parameters(), lr=1e-3),
                  loss_fn=mse, **QUIET)
    assert math.isfinite(history["train_loss"][0]) and math.isnan(history["train_acc"][0])


def test_an_empty_batch_is_named_not_blamed_on_the_learning_rate():
    x, y = tiny_data(16)
    batches = [(x[:8], y[:8]), (x[:0], y[:0]), (x[8:], y[8:])]
    model = tiny_model()
    with pytest.raises(ValueError, match=r"the loader gave an empty batch \(batch 1 of epoch 1\): .*drop_last"):
        fit(model, ListLoader(batches), None, 1, torch.optim.SGD(model.parameters(), lr=0.1), **QUIET)
    with pytest.raises(ValueError, match=r"empty batch \(batch 1 of the evaluation loader\)"):
        evaluate_loss_acc(model, ListLoader(batches), device="cpu")


def test_a_batch_with_more_labels_than_inputs_is_explained():
    x, y = tiny_data(16)
    model = tiny_model()
    with pytest.raises(ValueError, match="the model gave 8 outputs for 9 labels"):
        fit(model, ListLoader([(x[:8], y[:9])]), None, 1, torch.optim.SGD(model.parameters(), lr=0.1), **QUIET)


def test_a_custom_loss_may_take_other_integer_targets_and_its_label_errors_are_explained():
    x, y = tiny_data(16)
    model = tiny_model()
    counts = y * 7  # integer regression targets up to 14, not class indices of the 3 outputs

    def count_loss(out, target):
        return F.mse_loss(out[:, 0], target.float())
    history = fit(model, loader(x, counts), None, 1, torch.optim.SGD(model.parameters(), lr=1e-3),
                  loss_fn=count_loss, **QUIET)
    assert math.isfinite(history["train_loss"][0])

    def smoothed(out, target):
        return F.cross_entropy(out, target, label_smoothing=0.1)
    with pytest.raises(ValueError, match="batch 0 of epoch 1 has label 14: is num_classes right"):
        fit(model, loader(x, counts), None, 1, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=smoothed,
            **QUIET)
