"""Tests of lesson 07 q1 (`check_gradual_unfreezing`): the right schedule written several
ways, and the typical wrong ones, each named. The checker runs epochs 0 .. 7 on a fresh
resnet18 (6 stages: stem, layer1..layer4, head)."""

import pytest
from torch import nn

from ftlib import exercises as E
from ftlib.exercises import Incorrect
from ftlib.models import stages

check = E.check_gradual_unfreezing


def last_k(k_of_epoch):
    """An unfreeze(model, epoch) that trains the last k_of_epoch(epoch) stages."""
    def unfreeze(model, epoch):
        parts = list(stages(model).values())
        k = k_of_epoch(epoch)
        for i, stage in enumerate(parts):
            for p in stage.parameters():
                p.requires_grad = i >= len(parts) - k
    return unfreeze


def by_attribute(model, epoch):  # right, written with plain attribute names
    order = [["fc"], ["layer4"], ["layer3"], ["layer2"], ["layer1"], ["conv1", "bn1"]]
    on = {a for group in order[:epoch + 1] for a in group}
    for name, p in model.named_parameters():
        p.requires_grad = name.split(".")[0] in on


def incremental(model, epoch):  # right: freeze once, then unfreeze one more stage per call
    parts = list(stages(model).values())
    if epoch == 0:
        for p in model.parameters():
            p.requires_grad = False
    if epoch < len(parts):
        for p in parts[len(parts) - 1 - epoch].parameters():
            p.requires_grad = True


@pytest.mark.parametrize("unfreeze", [last_k(lambda e: e + 1), by_attribute, incremental])
def test_right_schedules_pass(unfreeze):
    assert "by epoch 5 everything trains" in check(unfreeze)


def fails(unfreeze, *fragments):
    with pytest.raises(Incorrect) as info:
        check(unfreeze)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_epochs_counted_from_one():
    fails(last_k(lambda e: e), "counted from 1", "unfreeze(model, 0) first")


def test_one_stage_ahead():
    fails(last_k(lambda e: e + 2), "one stage ahead", "off-by-one")


def test_from_the_input_side():
    def from_input(model, epoch):
        parts = list(stages(model).values())
        for i, stage in enumerate(parts):
            for p in stage.parameters():
                p.requires_grad = i <= epoch
    fails(from_input, "from the input side", "output down")


def test_nothing_frozen_at_epoch_0():
    def nothing(model, epoch):
        for p in model.parameters():
            p.requires_grad = True
    fails(nothing, "at epoch 0, 6 stages train")


def test_wraps_around_past_the_last_stage():
    # parts[len - 1 - epoch:] with a negative start keeps only the last stages once epoch > 5.
    def wraps(model, epoch):
        parts = list(stages(model).values())
        for p in model.parameters():
            p.requires_grad = False
        for stage in parts[len(parts) - 1 - epoch:]:
            for p in stage.parameters():
                p.requires_grad = True
    fails(wraps, "stem trained at epoch 5 but is frozen again at epoch 6")


def test_raises_past_the_last_stage():
    def too_few_names(model, epoch):
        names = ["head", "layer4", "layer3", "layer2", "layer1", "stem"]
        last_k(lambda e: e + 1)(model, epoch)
        names[epoch]  # noqa: B018  IndexError at epoch 6
    with pytest.raises(Exception, match=r"unfreeze\(model, 6\)"):
        check(too_few_names)


def test_a_small_sequential_model():
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    assert "by epoch 2 everything trains" in check(last_k(lambda e: e + 1), m)


# --- q2: discriminative LRs for what is unfrozen ---------------------------------------------

import torch  # noqa: E402
from torchvision.models import resnet18  # noqa: E402

TOP = {"layer3": 1e-3 / 2.6 ** 2, "layer4": 1e-3 / 2.6, "head": 1e-3}


def model_q2():
    """As in the notebook: a resnet18 frozen up to layer2 (ftlib.freeze)."""
    import ftlib
    torch.manual_seed(0)
    model = resnet18(num_classes=10)
    ftlib.freeze(model, upto="layer2")
    return model


def groups_of(model, lrs=TOP, names=True):
    parts = stages(model)
    return [{"params": list(parts[n].parameters()), "lr": lr, **({"name": n} if names else {})}
            for n, lr in lrs.items()]


def trainable_only(model):  # written differently: skip frozen stages while enumerating all six
    parts = list(stages(model).items())
    return [{"params": list(s.parameters()), "lr": 1e-3 / 2.6 ** (len(parts) - 1 - i), "name": n}
            for i, (n, s) in enumerate(parts) if any(p.requires_grad for p in s.parameters())]


@pytest.mark.parametrize("build", [
    groups_of,
    trainable_only,
    lambda m: torch.optim.AdamW(groups_of(m)),
    lambda m: __import__("ftlib").param_groups(m, 1e-3, factor=2.6),
])
def test_q2_right_answers_pass(build):
    model = model_q2()
    assert "3 stages" in E.lesson07.q2.verify(build(model), model)


def test_q2_solution_passes():
    model = model_q2()
    scope = {"model": model}
    exec(E.lesson07.q2.solution_code, scope)
    assert "3 stages" in E.lesson07.q2.verify(scope["groups"], model)


def q2_fails(build, fragment, model=None):
    model = model if model is not None else model_q2()
    with pytest.raises(Incorrect) as info:
        E.lesson07.q2.verify(build(model), model)
    assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("build, fragment", [
    (lambda m: groups_of(m, {"layer2": 1e-3 / 2.6 ** 3, **TOP}), "group 'layer2' holds only frozen parameters"),
    (lambda m: [{"params": [p for p in m.parameters() if p.requires_grad], "lr": 1e-3, "name": "trainable"}],
     "holds layer3 and layer4 and head: give each stage its own group"),
    (lambda m: groups_of(m, dict.fromkeys(TOP, 1e-3)), "that is one LR for the whole model"),
    (lambda m: groups_of(m, {"layer3": 1e-3, "layer4": 1e-3 / 2.6, "head": 1e-3 / 2.6 ** 2}), "grow toward the input"),
    (lambda m: groups_of(m, {n: 10 * v for n, v in TOP.items()}), "head's lr is 0.01; the task asks for 0.001"),
    (lambda m: groups_of(m, {"layer3": 1e-3 / 2.6 ** 2, "layer4": 1e-3 / 2.6 ** 2, "head": 1e-3}), "layer4's lr"),
    (lambda m: groups_of(m, names=False), "give every group a 'name' key"),
    (lambda m: groups_of(m, {"layer4": 1e-3 / 2.6, "head": 1e-3}), "trainable parameters of layer3 are in no group"),
])
def test_q2_typical_mistakes(build, fragment):
    q2_fails(build, fragment)


def test_q2_the_model_must_be_frozen_as_the_task_says():
    model = model_q2()
    for p in model.parameters():
        p.requires_grad = True  # unfrozen everything before building the groups
    q2_fails(lambda m: groups_of(m), "nothing is frozen", model)
