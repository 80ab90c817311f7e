"""Lesson 07's exercises: gradual unfreezing.

q1 writes `unfreeze(model, epoch)` in ULMFiT order (the head first, then one stage more per
epoch, from the output down); q2 builds discriminative LRs for the stages that are unfrozen.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..freeze import stage_status
from .checks import check_lrs, check_trainable, expect_family, expect_module
from .core import Exercise, ExerciseSet, Incorrect, call_student

__all__ = ["check_gradual_unfreezing", "lesson07"]


# --- the order of unfreezing --------------------------------------------------------------

def _epoch_problem(epoch: int, before: dict[str, str], now: dict[str, str], want: list[str]) -> str:
    """Why the stages training at `epoch` are not the `want`ed ones."""
    order, head = list(now), list(now)[-1]
    training = [n for n in order if now[n] == "trainable"]
    if now[head] != "trainable":
        return f"at epoch {epoch} your head has requires_grad=False: the new classifier must train at every epoch."
    partly = [n for n in order if now[n] == "partly"]
    if partly:
        return f"at epoch {epoch}, {partly[0]} is only partly unfrozen: unfreeze a stage as a whole."
    refrozen = [n for n in order if before.get(n) == "trainable" and now[n] == "frozen"]
    if refrozen:
        return (f"{refrozen[0]} trained at epoch {epoch - 1} but is frozen again at epoch {epoch}: "
                f"once unfrozen, a stage stays trainable.")
    if epoch == 0 and len(training) > 1:
        return (f"at epoch 0, {len(training)} stages train ({', '.join(training)}): start with the head alone, "
                f"everything else frozen.")
    from_the_top = training == order[len(order) - len(training):]
    if from_the_top and len(training) > len(want):
        return (f"at epoch {epoch}, {len(training)} stages train ({', '.join(training)}): unfreeze one "
                f"more stage per epoch ({', '.join(want)} at this epoch).")
    new = [n for n in training if before.get(n) != "trainable" and n not in want]
    if new and not from_the_top:
        return (f"at epoch {epoch} you unfroze {new[0]}: unfreeze from the output down ({want[0]} comes next), "
                f"because the early stages hold the most generic features.")
    return (f"at epoch {epoch} these stages train: {', '.join(training)}; expected one more stage than "
            f"before: {', '.join(want)}.")


def _trace(unfreeze: Callable[[nn.Module, int], Any], model: nn.Module, epochs: int) -> list[dict[str, str]]:
    """The status of every stage with parameters after unfreeze(model, e) for e = 0 .. epochs - 1."""
    out = []
    for epoch in range(epochs):
        call_student(f"unfreeze(model, {epoch})", unfreeze, model, epoch)
        out.append({n: s for n, s in stage_status(model).items() if s != "no parameters"})
    return out


def _named_mistake(trace: list[dict[str, str]], order: list[str]) -> str | None:
    """The typical mistake whose schedule `trace` follows exactly, if any."""
    n = len(order)
    training = [[s for s in order if now[s] == "trainable"] for now in trace]
    if training == [order[max(0, n - e):] for e in range(len(trace))]:
        return ("at epoch 0 nothing trains, and each epoch e trains the last e stages: epochs are counted "
                "from 1 here, but the loop calls unfreeze(model, 0) first. Count from 0: epoch e trains the "
                "last e + 1 stages, so the head trains at epoch 0.")
    if training == [order[max(0, n - 2 - e):] for e in range(len(trace))]:
        return (f"at epoch 0, {' and '.join(order[-2:])} train: one stage ahead at every epoch (an off-by-one). "
                f"Epoch e trains the last e + 1 stages, so epoch 0 trains the head alone.")
    if training == [order[:e + 1] for e in range(len(trace))]:
        return (f"at epoch 0 only {order[0]} trains and each epoch adds the next stage toward the output: "
                f"that unfreezes from the input side. The head trains first, and each epoch unfreezes the "
                f"next stage from the output down, because the early stages hold the most generic features "
                f"(at epoch 0 your head has requires_grad=False).")
    return None


def check_gradual_unfreezing(unfreeze: Callable[[nn.Module, int], Any], model: nn.Module | None = None) -> str:
    """`unfreeze(model, epoch)`, called at the start of epochs 0, 1, 2, ... on one model,
    leaves the last `epoch + 1` stages trainable and the rest frozen (ULMFiT order: the
    head alone first, then one more stage per epoch, from the output down). Epochs run two
    past the one where everything trains, so nothing may freeze again or fail there.

    model: default a fresh torchvision resnet18(num_classes=2); a model passed in is made
    fully trainable first and changed in place. Lesson 07.

    Typical wrong answers it names: epochs counted from 1; one stage ahead; unfreezing from
    the input side; nothing frozen at epoch 0; stages frozen again; several stages per epoch.
    """
    from torchvision.models import resnet18
    model = resnet18(num_classes=2) if model is None else expect_module(model)
    for p in model.parameters():
        p.requires_grad_(True)
    order = [n for n, s in stage_status(model).items() if s != "no parameters"]
    trace = _trace(unfreeze, model, len(order) + 2)
    before: dict[str, str] = {}
    for epoch, now in enumerate(trace):
        want = order[max(0, len(order) - 1 - epoch):]
        if [n for n in order if now[n] == "trainable"] != want or any(now[n] == "partly" for n in order):
            raise Incorrect(_named_mistake(trace, order) or _epoch_problem(epoch, before, now, want))
        before = now
    return (f"epoch 0 trains {order[-1]} only; each epoch adds the next stage down; "
            f"by epoch {len(order) - 1} everything trains, and it stays so at epochs "
            f"{len(order)} and {len(order) + 1}.")


# --- the exercises ------------------------------------------------------------------------

def _l07_groups(groups: Any, model: nn.Module) -> str:
    check_trainable(expect_family(model, "resnet"), ["layer3", "layer4", "head"])
    return check_lrs(groups, model, lr=1e-3, factor=2.6)


lesson07 = ExerciseSet(
    "07",
    q1=Exercise(
        title="Lesson 07, exercise 1: the order of gradual unfreezing",
        task="Write `unfreeze(model, epoch)`, called at the start of every epoch: at epoch 0 only the "
             "head trains; each epoch unfreezes one more stage, from the output down; stages never "
             "freeze again. The checker calls it on a fresh resnet18 for epochs 0, 1, 2, ...",
        usage="ex.q1.check(unfreeze)",
        checker=check_gradual_unfreezing,
        hints=("With the stage names in order, input to output, the trainable ones at epoch e are the "
               "last e + 1.",
               "Set requires_grad for every stage on every call: `names.index(name) >= len(names) - 1 - epoch`."),
        solution_code="""
from ftlib.models import stages

def unfreeze(model, epoch):
    names = list(stages(model))
    for i, (name, stage) in enumerate(stages(model).items()):
        for p in stage.parameters():
            p.requires_grad = i >= len(names) - 1 - epoch
""",
    ),
    q2=Exercise(
        title="Lesson 07, exercise 2: discriminative LRs for what is unfrozen",
        task="At the epoch where layer3, layer4 and the head train (the rest frozen), build optimizer "
             "groups for the trainable stages only: the head at 1e-3, each stage below 2.6 times less.",
        usage="ex.q2.check(groups, model)",
        checker=_l07_groups,
        hints=("Skip stages whose parameters all have requires_grad=False: the optimizer would never "
               "move them.",
               "Keep the stage's distance from the head in the exponent: layer3 gets 1e-3 / 2.6 ** 2."),
        solution_code="""
from ftlib.models import stages

parts = stages(model)
n = len(parts)
groups = [{"params": list(stage.parameters()), "lr": 1e-3 / 2.6 ** (n - 1 - i), "name": name}
          for i, (name, stage) in enumerate(parts.items())
          if any(p.requires_grad for p in stage.parameters())]
""",
    ),
)
