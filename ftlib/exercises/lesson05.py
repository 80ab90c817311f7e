"""Lesson 05's exercises: learning rates.

q1 builds discriminative learning rates, one group per stage; q2 keeps their ratios under a
OneCycleLR schedule. Both are judged by `check_lrs`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .checks import check_lrs, expect_family
from .core import Exercise, ExerciseSet, Incorrect

__all__ = ["lesson05"]


# --- the exercises ------------------------------------------------------------------------

def _l05_groups(groups: Any, model: nn.Module) -> str:
    return check_lrs(groups, expect_family(model, "resnet"), lr=1e-3, factor=2.6)


def _l05_onecycle(scheduler: Any, model: nn.Module) -> str:
    if not isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        raise Incorrect(f"expected a torch.optim.lr_scheduler.OneCycleLR, got {type(scheduler).__name__}.")
    return check_lrs(scheduler.optimizer, expect_family(model, "resnet"), lr=1e-3, factor=2.6, key="max_lr")


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
