"""Tests of lesson 04's count (q3) and frozen-BatchNorm (q2) checkers with right answers
written several ways and the typical wrong ones. resnet18(num_classes=2): layer4 holds
8,393,728 parameters and the 2-class head 512 * 2 + 2 = 1,026 (11,177,538 in all)."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from ftlib import exercises as E
from ftlib.exercises import Incorrect

ex = E.lesson04
TRAINABLE = 8_393_728 + 1_026
FROZEN = 11_177_538 - TRAINABLE


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    m = resnet18(num_classes=2)
    for name, p in m.named_parameters():
        p.requires_grad = name.startswith(("layer4", "fc"))
    return m


def frozen_batchnorms(model):
    return [m for name, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d) and not name.startswith("layer4")]


def fails(exercise, *args, fragment):
    with pytest.raises(Incorrect) as info:
        exercise.verify(*args)
    assert fragment in str(info.value), str(info.value)
    return str(info.value)


# --- q3: the trainable count ---------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
                                  lambda m: np.int64(TRAINABLE), lambda m: float(TRAINABLE),
                                  lambda m: torch.tensor(TRAINABLE),
                                  lambda m: np.sum([p.numel() for p in m.parameters() if p.requires_grad])])
def test_q3_right_counts_in_any_integer_type(model, make):
    assert "8,394,754 trainable parameters" in ex.q3.verify(make(model), model)


@pytest.mark.parametrize("answer, fragment", [
    (FROZEN, "frozen count, not the trainable count"),
    (11_177_538, "every parameter of the model"),
    (8_393_728, "count of layer4 alone"),
    (len(list(resnet18().layer4.parameters())) + 2, "number of parameter tensors"),
    (TRAINABLE + 0.5, "whole number"),
    (True, "a bool"),
    (TRAINABLE + 1, "is not the number of parameters in layer4, head"),
])
def test_q3_typical_wrong_counts(model, answer, fragment):
    fails(ex.q3, answer, model, fragment=fragment)


# --- q2: frozen BatchNorm keeps its statistics and uses them -----------------------------

def stay_in_eval(module, inputs):
    module.eval()


def test_q2_pre_hook_passes(model):
    for bn in frozen_batchnorms(model):
        bn.register_forward_pre_hook(stay_in_eval)
    assert "keep their statistics in train mode" in ex.q2.verify(model)


def test_q2_train_override_passes(model):
    # Another right answer: a train() that puts the frozen BatchNorm layers back in eval mode.
    bns, plain_train = frozen_batchnorms(model), model.train

    def train(mode=True):
        plain_train(mode)
        for bn in bns:
            bn.eval()
        return model
    model.train = train
    assert "keep their statistics in train mode" in ex.q2.verify(model)


def test_q2_nothing_done_fails(model):
    fails(ex.q2, model, fragment="running_mean changed in train mode")


def test_q2_momentum_zero_normalises_with_batch_statistics(model):
    for bn in frozen_batchnorms(model):
        bn.momentum = 0.0
    fails(ex.q2, model, fragment="does not use them in train mode")


def test_q2_track_running_stats_off(model):
    for bn in frozen_batchnorms(model):
        bn.track_running_stats = False
    fails(ex.q2, model, fragment="track_running_stats=False")


def test_q2_running_stats_removed(model):
    for bn in frozen_batchnorms(model):
        bn.track_running_stats, bn.running_mean, bn.running_var = False, None, None
    fails(ex.q2, model, fragment="track_running_stats=False")


def test_q2_batchnorm_replaced_by_identity(model):
    model.bn1 = nn.Identity()
    for block in (model.layer1, model.layer2, model.layer3):
        for b in block:
            b.bn1 = b.bn2 = nn.Identity()
    fails(ex.q2, model, fragment="nn.Identity")


def test_q2_one_batchnorm_replaced_by_another_type(model):
    model.layer2[0].bn1 = nn.GroupNorm(1, 128)
    for p in model.layer2[0].bn1.parameters():
        p.requires_grad = False
    for bn in frozen_batchnorms(model):
        bn.register_forward_pre_hook(stay_in_eval)
    fails(ex.q2, model, fragment="layer2 has")


def test_q2_is_reproducible_and_leaves_the_model_alone(model):
    for bn in frozen_batchnorms(model):
        bn.momentum = 0.0
    before = [b.clone() for b in model.buffers()]
    assert fails(ex.q2, model, fragment="eval mode") == fails(ex.q2, model, fragment="eval mode")
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))
    assert all(m.training for m in model.modules())
