"""Lesson 05's exercises: learning rates.

q1 builds discriminative learning rates, one group per stage; q2 keeps their ratios under a
OneCycleLR schedule. Both are judged by `check_lrs`: q1 on the groups' lr, q2 on their max_lr and
on the LRs the schedule really reaches when stepped through (`schedule_peaks`).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from .checks import check_lrs, expect_family
from .core import Exercise, ExerciseSet, Incorrect

__all__ = ["schedule_peaks", "lesson05"]


# --- the exercises ------------------------------------------------------------------------

def _l05_groups(groups: Any, model: nn.Module) -> str:
    return check_lrs(groups, expect_family(model, "resnet"), lr=1e-3, factor=2.6)


def schedule_peaks(scheduler: torch.optim.lr_scheduler.OneCycleLR, points: int = 200) -> list[float]:
    """Every optimizer group's LR at the step where the schedule peaks, computed from the
    schedule itself (its get_lr at up to `points` steps and around the end of warm-up) on a
    shallow copy, so neither the scheduler nor the optimizer changes. One-cycle moves all
    groups in step, so this is where each group is highest; when warm-up ends between two
    steps, the peak can sit a little under max_lr. Lesson 05."""
    total = int(scheduler.total_steps)
    steps = set(range(0, total, max(1, total // points))) | {total - 1}
    for phase in scheduler._schedule_phases:
        end = float(phase["end_step"])
        steps |= {max(0, min(total - 1, s)) for s in (math.floor(end), math.ceil(end))}
    probe = copy.copy(scheduler)
    best: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # get_lr outside step() warns
        for step in sorted(steps):
            probe.last_epoch = step
            lrs = [float(v) for v in probe.get_lr()]
            if not best or sum(lrs) > sum(best):
                best = lrs
    return best


def _l05_onecycle(scheduler: Any, model: nn.Module) -> str:
    if not isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        raise Incorrect(f"expected a torch.optim.lr_scheduler.OneCycleLR, got {type(scheduler).__name__}.")
    model = expect_family(model, "resnet")
    check_lrs(scheduler.optimizer, model, lr=1e-3, factor=2.6, key="max_lr")
    peaks = schedule_peaks(scheduler)
    groups = [{**g, "lr": peak} for g, peak in zip(scheduler.optimizer.param_groups, peaks)]
    head = max(peaks)
    if not 0.9e-3 <= head <= 1.0001e-3:
        raise Incorrect(f"stepped through its {scheduler.total_steps} steps, your schedule peaks at {head:.3g} "
                        f"at the head, not at 1e-3: check total_steps, pct_start and max_lr.")
    try:
        table = check_lrs(groups, model, lr=head, factor=2.6)
    except Incorrect as why:
        raise Incorrect(f"the LRs your schedule reaches, stepped through its {scheduler.total_steps} steps, "
                        f"do not keep the ratios: {why}") from None
    stages_part, values = table.split(", input to output, lr: ", 1)
    return f"{stages_part}; peak LR, stepped through the schedule (each group's max_lr): {values}"


lesson05 = ExerciseSet(
    "05",
    q1=Exercise(
        title="Lesson 05, exercise 1: discriminative learning rates",
        task="Build the optimizer groups of a fully trainable resnet18: one group per stage, each with "
             "a 'name' (the stage name) and an 'lr'. The head gets 1e-3 and each stage going down "
             "gets 2.6 times less (the ULMFiT factor). An optimizer built from the groups can be checked too.",
        usage="ex.q1.check(groups, model)",
        checker=_l05_groups,
        hints=("`stages(model)` lists the stages input to output; the head is the last one, 0 steps "
               "from the top, layer4 1 step, ... stem 5 steps.",
               "Stage i of n gets lr / 2.6 ** (n - 1 - i). Each group is a dict "
               "{'params': list(stage.parameters()), 'lr': ..., 'name': ...}."),
        solution_code="""
import torch
from ftlib.models import stages

parts = stages(model)
n = len(parts)
groups = [{"params": list(stage.parameters()), "lr": 1e-3 / 2.6 ** (n - 1 - i), "name": name}
          for i, (name, stage) in enumerate(parts.items())]
optimizer = torch.optim.AdamW(groups)
""",
    ),
    q2=Exercise(
        title="Lesson 05, exercise 2: one-cycle with discriminative LRs",
        task="Put your groups from exercise 1 under a OneCycleLR schedule whose peak LR (max_lr) keeps "
             "the ratios between groups: the head peaks at 1e-3, each stage below 2.6 times lower.",
        usage="ex.q2.check(scheduler, model)",
        checker=_l05_onecycle,
        hints=("OneCycleLR's max_lr takes one number or a list with one number per group.",
               "A single max_lr overwrites every group's LR; pass "
               "max_lr=[g['lr'] for g in optimizer.param_groups]."),
        solution_code="""
import torch

optimizer = torch.optim.AdamW(groups)            # the groups of exercise 1
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=100)
""",
    ),
)
