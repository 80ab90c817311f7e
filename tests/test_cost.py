"""What training costs: the one FLOP counter, `throughput` (lessons 00 and 04, the benchmark) and
`TrainTimer` (lesson 03).

The explorer-facing cost functions (`training_flops`, `calibrate_seconds`, `freeze_table`, ...)
are tested with the freeze explorer in test_widgets.py.
"""

import time
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ftlib.cost import TrainTimer, throughput, training_flops, training_step_flops
from ftlib.freeze import apply_freeze_depth
from ftlib.device import get_device
from ftlib.train import fit


def small_cnn() -> nn.Sequential:
    """Three named stages, BatchNorm in the stem."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        body=nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))))


def counted_on_real_tensors(model: nn.Module, shape: tuple) -> int:
    """The reference: a real training step with cross-entropy, counted by torch."""
    x, y = torch.randn(*shape), torch.arange(shape[0]) % 5
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_training_step_flops_match_a_real_training_step(depth):
    model = small_cnn()
    apply_freeze_depth(model, depth)
    assert training_step_flops(model, (4, 3, 8, 8)) == counted_on_real_tensors(model, (4, 3, 8, 8))


def test_training_step_flops_leave_the_model_alone():
    model = small_cnn().train()
    stats = model.stem[1].running_mean.clone()
    training_step_flops(model, (4, 3, 8, 8))
    assert model.training and torch.equal(model.stem[1].running_mean, stats)
    assert all(p.grad is None and p.device.type == "cpu" for p in model.parameters())


def test_a_frozen_model_costs_its_forward_pass():
    model = small_cnn()
    for p in model.parameters():
        p.requires_grad_(False)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(2, 3, 8, 8))
    assert training_step_flops(model, (2, 3, 8, 8)) == counter.get_total_flops()


def test_training_flops_are_training_step_flops_per_image_at_each_depth():
    model = small_cnn()
    expected = []
    for k in range(3):
        probe = small_cnn()
        apply_freeze_depth(probe, k)
        expected.append(training_step_flops(probe, (6, 3, 8, 8)) / 6)
    assert training_flops(model, image_size=8) == expected
    assert expected[0] > expected[1] > expected[2] > 0


def test_throughput_defaults_to_get_device_and_restores_the_model():
    model = small_cnn().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rate = throughput(model, image_size=8, batch_size=4, steps=1)
    assert rate > 0
    assert next(model.parameters()).device.type == get_device().type
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value.cpu(), before[key]), key
    assert all(p.grad is None for p in model.parameters()), "the timing steps left gradients behind"


def test_throughput_on_a_throwaway_copy_skips_the_restore():
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert throughput(model, image_size=8, batch_size=4, steps=1, device="cpu", restore=False) > 0
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items()), "SGD steps change the copy"


# --- TrainTimer: the training pass of a real fit, validation left out (lesson 03) ---------

class SlowLoader:
    """Yields the batches of `batches` after sleeping `delay` seconds once per pass."""

    def __init__(self, batches, delay: float):
        self.batches, self.delay = batches, delay

    def __iter__(self):
        time.sleep(self.delay)
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def tiny_batches(n: int = 3) -> list:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, 8, 8, generator=g), torch.arange(4) % 5) for _ in range(n)]


def test_train_timer_times_each_training_pass_and_leaves_validation_out():
    model, timer = small_cnn(), TrainTimer()
    history = fit(model, tiny_batches(), SlowLoader(tiny_batches(1), 0.3), 3,
                  torch.optim.SGD(model.parameters(), lr=0.01), callbacks=[timer], quiet=True, device="cpu")
    assert len(timer.seconds) == len(history) == 3
    for timed, whole in zip(timer.seconds, history["time_s"]):
        assert 0 < timed < whole
        assert whole - timed >= 0.3          # the slow validation pass is in time_s only


def test_train_timer_counts_a_slow_training_loader():
    model, timer = small_cnn(), TrainTimer()
    fit(model, SlowLoader(tiny_batches(), 0.2), None, 2, torch.optim.SGD(model.parameters(), lr=0.01),
        callbacks=[timer], quiet=True, device="cpu")
    assert all(t >= 0.2 for t in timer.seconds)   # loading is part of the training pass


def test_train_timer_typical_is_the_median_and_needs_an_epoch():
    timer = TrainTimer()
    with pytest.raises(ValueError, match="no epoch"):
        timer.typical()
    timer.seconds = [9.0, 1.0, 2.0, 3.0, 2.5]     # a slow first epoch does not move the median much
    assert timer.typical() == 2.5


def test_train_timer_changes_nothing_in_training():
    runs = []
    for callbacks in ([], [TrainTimer()]):
        model = small_cnn()
        fit(model, tiny_batches(), None, 2, torch.optim.SGD(model.parameters(), lr=0.01),
            callbacks=callbacks, quiet=True, device="cpu")
        runs.append(model.state_dict())
    for key, value in runs[0].items():
        assert torch.equal(value, runs[1][key]), key
