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


# --- q1: freeze all but layer4 and the head ---------------------------------------------------

def fresh(num_classes=2):
    torch.manual_seed(0)
    return resnet18(num_classes=num_classes)


def q1_by_prefix(m):
    for name, p in m.named_parameters():
        p.requires_grad = name.startswith(("layer4.", "fc."))
    return m


def q1_by_modules(m):
    for module in (m.conv1, m.bn1, m.layer1, m.layer2, m.layer3):
        module.requires_grad_(False)
    return m


def q1_by_ftlib(m):
    import ftlib
    ftlib.freeze(m, upto="layer3")
    return m


def q1_solution(m):
    scope = {"model": m}
    exec(ex.q1.solution_code, scope)
    return m


@pytest.mark.parametrize("answer", [q1_by_prefix, q1_by_modules, q1_by_ftlib, q1_solution])
@pytest.mark.parametrize("num_classes", [2, 10])  # the notebook's model has 10 classes
def test_q1_right_answers_written_differently_pass(answer, num_classes):
    assert "stem, layer1, layer2, layer3 frozen; layer4, head train" in ex.q1.verify(answer(fresh(num_classes)))


def q1_forgot_the_stem(m):
    for module in (m.layer1, m.layer2, m.layer3):
        module.requires_grad_(False)
    return m


def q1_layer4_too(m):
    for name, p in m.named_parameters():
        p.requires_grad = name.startswith("fc.")
    return m


def q1_only_conv_weights(m):
    for name, p in m.named_parameters():
        if not name.startswith(("layer4.", "fc.")) and "conv" in name:
            p.requires_grad = False
    return m


def q1_eval_instead(m):
    return m.eval()  # eval() changes BatchNorm and dropout, not what trains


def q1_head_frozen(m):
    q1_by_prefix(m)
    m.fc.requires_grad_(False)
    return m


def q1_detached_layer4(m):
    q1_by_prefix(m)
    m.layer3.register_forward_hook(lambda module, args, out: out.detach())  # fine: layer3 is frozen
    m.layer4.register_forward_hook(lambda module, args, out: out.detach())  # cuts layer4 off
    return m


@pytest.mark.parametrize("answer, fragment", [
    (q1_forgot_the_stem, "stem still trains (9,536 parameters with requires_grad=True) (on a ResNet the stem is "
                         "model.conv1 and model.bn1"),
    (q1_layer4_too, "layer4 is frozen but should train"),
    (q1_only_conv_weights, "stem is only partly frozen (bn1.weight still has requires_grad=True)"),
    (q1_eval_instead, "nothing is frozen: all 11,177,538 parameters"),
    (q1_head_frozen, "your head has requires_grad=False"),
    (q1_detached_layer4, "layer4 should train, but a backward pass gives 15 of its 15 parameter tensors no gradient"),
])
def test_q1_typical_mistakes(answer, fragment):
    fails(ex.q1, answer(fresh()), fragment=fragment)


def test_q1_wrong_family_and_placeholder():
    fails(ex.q1, nn.Sequential(nn.Linear(2, 2)), fragment="uses a torchvision resnet model")
    fails(ex.q1, ..., fragment="no answer yet")
