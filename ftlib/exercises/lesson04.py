"""Lesson 04's exercises: freezing layers.

q1 freezes all but layer4 and the head, q2 keeps the frozen BatchNorm layers in eval mode
through `model.train()`, q3 counts the trainable parameters.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Collection, Iterator

import torch
from torch import nn

from ..device import eval_mode
from ..freeze import BATCHNORM_TYPES, count_parameters, stage_status
from ..models import stages
from .checks import check_gradients, check_trainable, commas, example_input, expect_family, expect_module, whole_number
from .core import Exercise, ExerciseSet, Incorrect

__all__ = ["check_parameter_count", "check_frozen_batchnorm", "lesson04"]


# --- counting parameters ------------------------------------------------------------------

def check_parameter_count(answer: int, model: nn.Module, trainable: Collection[str]) -> str:
    """`answer` equals the number of parameters (elements, not tensors) in the stages named
    in `trainable`, counted from the model's own modules. Lesson 04."""
    parts = stages(expect_module(model))
    answer = whole_number(answer, "a number of parameters")
    per_stage = {n: count_parameters(s) for n, s in parts.items()}
    expected = sum(per_stage[n] for n in trainable)
    n_tensors = sum(len(list(parts[n].parameters())) for n in trainable)
    if answer == expected:
        return f"{commas(expected)} trainable parameters, {100 * expected / count_parameters(model):.1f} % of the model."
    if answer == count_parameters(model):
        raise Incorrect(f"{commas(answer)} is every parameter of the model: count only those with "
                        f"requires_grad=True.")
    frozen = count_parameters(model) - expected
    if answer == frozen:
        raise Incorrect(f"{commas(answer)} is the frozen count, not the trainable count: count the parameters "
                        f"with requires_grad=True.")
    if answer in (n_tensors, len(list(model.parameters()))):
        raise Incorrect(f"{answer} is a number of parameter tensors: add up p.numel() (the numbers in "
                        f"each tensor), not 1 per tensor.")
    for name in trainable:
        if answer == per_stage[name] and len(trainable) > 1:
            others = [n for n in trainable if n != name]
            raise Incorrect(f"{commas(answer)} is the count of {name} alone: {', '.join(others)} train too.")
    raise Incorrect(f"{commas(answer)} is not the number of parameters in {', '.join(trainable)}: "
                    f"sum p.numel() over the parameters with requires_grad=True.")


# --- BatchNorm in frozen stages -----------------------------------------------------------

@contextmanager
def _restored(model: nn.Module) -> Iterator[nn.Module]:
    """Run a probe on `model`, then put back its buffers, its train/eval flags and the RNG.

    `eval_mode` gives every module its own flag back on exit, whatever the probe switched."""
    buffers = [b.detach().clone() for b in model.buffers()]
    with torch.random.fork_rng(devices=[]), eval_mode(model):
        try:
            yield model
        finally:
            with torch.no_grad():
                for b, saved in zip(model.buffers(), buffers):
                    b.copy_(saved)


def _batchnorms(model: nn.Module, stage_names: list[str]) -> list[tuple[str, str, nn.Module]]:
    """(stage, qualified name, module) of every BatchNorm with running stats in those stages."""
    names = {id(m): n for n, m in model.named_modules()}
    parts = stages(model)
    return [(s, names[id(m)], m) for s in stage_names for m in parts[s].modules()
            if isinstance(m, BATCHNORM_TYPES) and m.track_running_stats]


def _bn_outputs(model: nn.Module, bns: list, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every BatchNorm in `bns` during one forward pass of `model` on `x`."""
    outs: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda m, i, o: outs.append(o.detach().clone())) for _, _, b in bns]
    try:
        model(x)
    except Exception as err:
        hooks = " (a forward pre-hook must return None, or it replaces the input)" if any(
            b._forward_pre_hooks for _, _, b in bns) else ""
        mode = "train" if model.training else "eval"
        raise Incorrect(f"a forward pass in {mode} mode fails ({type(err).__name__}: {err}){hooks}.") from None
    finally:
        for h in handles:
            h.remove()
    return outs


def _disabled_batchnorm(model: nn.Module, frozen: list[str]) -> None:
    """Raise for a BatchNorm in a frozen stage that no longer uses its running statistics."""
    names = {id(m): n for n, m in model.named_modules()}
    for s in frozen:
        for m in stages(model)[s].modules():
            if isinstance(m, BATCHNORM_TYPES) and (not m.track_running_stats or m.running_mean is None):
                raise Incorrect(f"{s}'s BatchNorm {names[id(m)]} has track_running_stats=False: it now "
                                f"normalises with each batch's statistics, in eval mode too, and the "
                                f"pretrained running statistics are unused. Keep the layer as it was and "
                                f"keep it in eval mode.")


def _drift_problem(moved: list, was_eval: bool) -> str:
    stage, name, what = moved[0]
    tip = " (model.eval() alone does not last: every training epoch calls model.train())" if was_eval else ""
    return (f"{stage}'s BatchNorm {what} changed in train mode ({name}, and {len(moved) - 1} more BatchNorm "
            f"layers in frozen stages): requires_grad=False does not stop BatchNorm from updating its running "
            f"statistics. Keep these layers in eval mode in a way that survives model.train(){tip}.")


def check_frozen_batchnorm(model: nn.Module, example: torch.Tensor | None = None) -> str:
    """BatchNorm layers in frozen stages keep their running statistics in train mode, and
    normalise with them: their output in train mode equals their output in eval mode.

    Judges behaviour, not flags: runs `example` (default: a seeded (2, 3, 32, 32) batch) once
    in eval mode and once after model.train(), and compares every frozen BatchNorm's output and
    its running_mean and running_var. The model's buffers, train/eval flags and the RNG are
    restored afterwards. Lesson 04.
    """
    status = stage_status(expect_module(model))
    frozen = [n for n, s in status.items() if s == "frozen"]
    if not frozen:
        raise Incorrect("no stage is frozen, so there is no frozen BatchNorm to keep: freeze the backbone first.")
    _disabled_batchnorm(model, frozen)
    bns = _batchnorms(model, frozen)
    if not bns:
        return f"the frozen stages ({', '.join(frozen)}) hold no BatchNorm layer: nothing can drift."
    x = example if example is not None else example_input(model)
    before = [(b.running_mean.clone(), b.running_var.clone()) for _, _, b in bns]
    was_eval = not model.training
    with _restored(model), torch.no_grad():
        reference = _bn_outputs(model.eval(), bns, x)
        trained = _bn_outputs(model.train(), bns, x)
        moved = [(s, n, "running_mean" if not torch.equal(b.running_mean, mean) else "running_var")
                 for (s, n, b), (mean, var) in zip(bns, before)
                 if not (torch.equal(b.running_mean, mean) and torch.equal(b.running_var, var))]
    if moved:
        raise Incorrect(_drift_problem(moved, was_eval))
    for (s, n, b), ref, out in zip(bns, reference, trained):
        if ref.shape != out.shape or not torch.allclose(ref, out, atol=1e-5):
            raise Incorrect(f"{s}'s BatchNorm {n} keeps its running statistics but does not use them in "
                            f"train mode: its output differs from eval mode (momentum=0 still normalises "
                            f"with each batch's statistics). Put the frozen BatchNorm layers in eval mode "
                            f"in a way that survives model.train().")
    return f"the {len(bns)} BatchNorm layers in {', '.join(frozen)} keep their statistics in train mode."


def _missing_resnet_batchnorm(model: nn.Module) -> None:
    """In a torchvision ResNet every convolution is followed by its own BatchNorm2d; raise if
    one of the frozen stages has fewer (a BatchNorm removed, or replaced by nn.Identity)."""
    status = stage_status(model)
    for name, stage in stages(model).items():
        if name == "head" or status[name] != "frozen":
            continue
        convs = sum(isinstance(m, nn.Conv2d) for m in stage.modules())
        bns = sum(type(m) is nn.BatchNorm2d for m in stage.modules())
        if bns != convs:
            raise Incorrect(f"{name} has {convs} convolutions but {bns} nn.BatchNorm2d layers: a ResNet has "
                            f"one after every convolution. Removing or replacing them (e.g. with nn.Identity) "
                            f"changes what the pretrained model computes; keep them and keep them in eval mode.")


# --- the exercises ------------------------------------------------------------------------

def _l04_freeze(model: nn.Module) -> str:
    summary = check_trainable(expect_family(model, "resnet"), ["layer4", "head"])
    check_gradients(model, ["layer4", "head"])
    return summary


def _l04_batchnorm(model: nn.Module) -> str:
    _missing_resnet_batchnorm(expect_family(model, "resnet"))
    return check_frozen_batchnorm(model)


def _l04_count(n_trainable: int, model: nn.Module) -> str:
    return check_parameter_count(n_trainable, expect_family(model, "resnet"), ["layer4", "head"])


lesson04 = ExerciseSet(
    "04",
    q1=Exercise(
        title="Lesson 04, exercise 1: freeze all but layer4 and the head",
        task="Freeze the stem and layer1 to layer3 of a resnet18; layer4 and the head keep training.",
        usage="ex.q1.check(model)",
        checker=_l04_freeze,
        hints=("`ftlib.models.stages(model)` gives the stages by name, input to output.",
               "Loop over the stages; for each one that is not layer4 or head, set "
               "`p.requires_grad = False` on all its parameters."),
        solution_code="""
from ftlib.models import stages

for name, stage in stages(model).items():
    for p in stage.parameters():
        p.requires_grad = name in ("layer4", "head")
""",
    ),
    q2=Exercise(
        title="Lesson 04, exercise 2: keep frozen BatchNorm in eval mode",
        task="After exercise 1, make the BatchNorm layers of the frozen stages keep their running "
             "statistics, even when the training loop calls `model.train()`. The checker runs one "
             "batch in train mode and compares the statistics.",
        usage="ex.q2.check(model)",
        checker=_l04_batchnorm,
        hints=("requires_grad=False freezes the BatchNorm weights, not its running mean and variance: "
               "those update in every forward pass in train mode.",
               "`model.eval()` is undone by the next `model.train()`. A forward pre-hook on each frozen "
               "BatchNorm that calls `module.eval()` holds (ftlib's freeze with bn=\"eval\" does this)."),
        solution_code="""
from torch import nn
from ftlib.models import stages

def stay_in_eval(module, inputs):
    module.eval()                                    # runs before every forward pass

for name in ["stem", "layer1", "layer2", "layer3"]:
    for m in stages(model)[name].modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_pre_hook(stay_in_eval)
""",
    ),
    q3=Exercise(
        title="Lesson 04, exercise 3: count the trainable parameters",
        task="With layer4 and the head trainable (exercise 1), how many parameters will the optimizer "
             "update? Compute the number from the model.",
        usage="ex.q3.check(n_trainable, model)",
        checker=_l04_count,
        hints=("Every parameter tensor has `.requires_grad` and `.numel()` (its number of elements).",
               "Add up p.numel() over the parameters whose requires_grad is True."),
        solution_code="""
n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
""",
    ),
)
