"""Tests of lesson 05's exercises (ftlib.exercises.lesson05): discriminative LRs (q1) and a
OneCycleLR that keeps them (q2). Right answers written several ways pass; the typical wrong
ones fail with their message. By hand: the head gets 1e-3 and stage i of the 6 stages of a
resnet18 (stem, layer1..layer4, head) gets 1e-3 / 2.6 ** (5 - i)."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from ftlib.exercises import Incorrect, lesson05
from ftlib.exercises.lesson05 import schedule_peaks

ex = lesson05
STAGES = {"stem": ("conv1", "bn1"), "layer1": ("layer1",), "layer2": ("layer2",), "layer3": ("layer3",),
          "layer4": ("layer4",), "head": ("fc",)}
RIGHT = [1e-3 / 2.6 ** (5 - i) for i in range(6)]


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=2)


def by_hand(model, lrs=RIGHT, names=True):
    """One group per stage, collected by attribute name (not through ftlib.models)."""
    groups = []
    for (stage, attrs), lr in zip(STAGES.items(), lrs):
        params = [p for a in attrs for p in getattr(model, a).parameters()]
        groups.append({"params": params, "lr": lr, **({"name": stage} if names else {})})
    return groups


def by_prefix(model):
    """The same groups from named_parameters, with numpy floats for the LRs."""
    prefixes = {stage: tuple(a + "." for a in attrs) for stage, attrs in STAGES.items()}
    return [{"name": stage, "lr": np.float64(1e-3) / np.float64(2.6) ** (5 - i),
             "params": [p for n, p in model.named_parameters() if n.startswith(prefixes[stage])]}
            for i, stage in enumerate(STAGES)]


def fails(exercise, *answer, fragment: str) -> str:
    with pytest.raises(Incorrect) as info:
        exercise.verify(*answer)
    assert fragment in str(info.value), str(info.value)
    return str(info.value)


# --- q1 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    by_hand,
    by_prefix,
    lambda m: torch.optim.AdamW(by_hand(m), weight_decay=0.01),
    lambda m: torch.optim.SGD(by_prefix(m), lr=0.1, momentum=0.9),  # the groups' own lr wins
    lambda m: __import__("ftlib").param_groups(m, 1e-3, factor=2.6),
])
def test_q1_right_answers_pass(model, build):
    assert "6 stages" in ex.q1.verify(build(model), model)


def test_q1_solution_passes(model):
    scope = {"model": model}
    exec(ex.q1.solution_code, scope)
    assert "6 stages" in ex.q1.verify(scope["groups"], model)
    assert "6 stages" in ex.q1.verify(scope["optimizer"], model)


@pytest.mark.parametrize("build, fragment", [
    (lambda m: torch.optim.SGD(m.parameters(), lr=1e-3), "holds stem and layer1 and layer2 and layer3 and layer4 "
                                                         "and head: give each stage its own group"),
    (lambda m: by_hand(m, [1e-3] * 6), "all 6 groups have lr=0.001: that is one LR for the whole model"),
    (lambda m: by_hand(m, [1e-3 * 2.6 ** (5 - i) for i in range(6)]), "grow toward the input"),  # multiplied
    (lambda m: by_hand(m, RIGHT[::-1]), "grow toward the input"),
    (lambda m: by_hand(m, [1e-3 / 2.6 ** (6 - i) for i in range(6)]), "head's lr is 0.000385; the task asks for 0.001"),
    (lambda m: by_hand(m, [1e-3 / 2 ** (5 - i) for i in range(6)]), "a ratio of 2, where dividing by 2.6"),
    (lambda m: by_hand(m, [1e-3 / 2.6 ** (5 - i) * 100 for i in range(6)]), "head's lr is 0.1"),
    (lambda m: by_hand(m, names=False), "give every group a 'name' key with its stage name"),
    (lambda m: by_hand(m)[1:], "trainable parameters of stem are in no group"),
    (lambda m: by_hand(resnet18(num_classes=2)), "not in this model"),
])
def test_q1_typical_mistakes(model, build, fragment):
    fails(ex.q1, build(model), model, fragment=fragment)


def test_q1_generator_params_and_not_an_optimizer(model):
    groups = by_hand(model)
    groups[2]["params"] = model.layer2.parameters()
    fails(ex.q1, groups, model, fragment="can be read only once; wrap it in list")
    with pytest.raises(TypeError, match="optimizer or a list of param-group dicts"):
        ex.q1.verify(1e-3, model)


# --- q2 ------------------------------------------------------------------------------------

def one_cycle(model, max_lr=None, groups=None, **kwargs):
    optimizer = torch.optim.SGD(groups if groups is not None else by_hand(model), momentum=0.9)
    max_lr = [g["lr"] for g in optimizer.param_groups] if max_lr is None else max_lr
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, **({"total_steps": 50} | kwargs))


@pytest.mark.parametrize("build", [
    lambda m: one_cycle(m),
    lambda m: one_cycle(m, max_lr=RIGHT, total_steps=None, epochs=3, steps_per_epoch=7),
    lambda m: one_cycle(m, max_lr=[np.float64(v) for v in RIGHT], pct_start=0.1, anneal_strategy="linear"),
    lambda m: one_cycle(m, max_lr=tuple(RIGHT), three_phase=True, total_steps=1000),
])
def test_q2_right_answers_pass(model, build):
    assert "peak LR, stepped through the schedule" in ex.q2.verify(build(model), model)


def test_q2_solution_passes(model):
    scope = {"model": model, "groups": by_hand(model)}
    exec(ex.q2.solution_code, scope)
    assert "6 stages" in ex.q2.verify(scope["scheduler"], model)


def test_q2_peaks_are_read_from_the_schedule_not_from_max_lr(model):
    scheduler = one_cycle(model)
    assert np.allclose(schedule_peaks(scheduler), RIGHT)
    lrs = [g["lr"] for g in scheduler.optimizer.param_groups]
    schedule_peaks(scheduler)
    assert lrs == [g["lr"] for g in scheduler.optimizer.param_groups]  # nothing stepped


@pytest.mark.parametrize("build, fragment", [
    (lambda m: one_cycle(m, max_lr=1e-3), "OneCycleLR was given a single max_lr"),
    (lambda m: one_cycle(m, max_lr=RIGHT[::-1]), "max_lrs grow toward the input"),
    (lambda m: one_cycle(m, max_lr=[10 * v for v in RIGHT]), "head's max_lr is 0.01"),
    (lambda m: one_cycle(m, max_lr=[1e-3 / 2 ** (5 - i) for i in range(6)]), "a ratio of 2, where dividing by 2.6"),
    (lambda m: torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD(m.parameters(), lr=1e-3), max_lr=1e-3,
                                                   total_steps=10), "give each stage its own group"),
    (lambda m: torch.optim.lr_scheduler.StepLR(torch.optim.SGD(by_hand(m)), step_size=1),
     "expected a torch.optim.lr_scheduler.OneCycleLR, got StepLR"),
])
def test_q2_typical_mistakes(model, build, fragment):
    fails(ex.q2, build(model), model, fragment=fragment)

