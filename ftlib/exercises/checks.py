"""Checkers that several lessons share, and the small helpers every checker uses.

Each checker is a pure function of the real objects a student built (a model, an optimizer,
a list of param groups): it returns a one-line summary when the answer is right and raises
`Incorrect` saying what is wrong when it is not. It never prints, so it is tested without a
display. A stage's state ("trainable", "frozen", "partly", "no parameters") is read from
`ftlib.freeze.stage_status`, parameters are counted by `ftlib.freeze.count_parameters`.

- `check_trainable`: exactly the named stages train (lessons 03, 04 and 07).
- `check_gradients`: a backward pass reaches exactly those stages (lessons 03 and 04).
- `check_lrs`: discriminative learning rates, one group per stage (lessons 05 and 07).
"""

from __future__ import annotations

import math
from typing import Any, Collection

import torch
from torch import nn

from ..device import eval_mode, module_device
from ..freeze import count_parameters, stage_status
from ..models import family, stages
from .core import Incorrect, NotAnswered, is_placeholder

__all__ = ["measure_geometry", "require_answer", "expect_module", "expect_family", "commas", "as_number", "whole_number",
           "example_input", "transform_parts", "check_trainable", "check_gradients", "check_lrs"]


# --- reading an answer --------------------------------------------------------------------

def require_answer(answer: Any, example: str) -> None:
    """Raise `NotAnswered` for the notebook's placeholders (None or ...)."""
    if is_placeholder(answer):
        raise NotAnswered(f"replace the placeholder with yours, e.g. {example}.")


def expect_module(model: Any, usage: str = "check(model)") -> nn.Module:
    """`model` itself when it is a torch module; `NotAnswered` for a placeholder, TypeError otherwise."""
    require_answer(model, usage)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected your model (a torch.nn.Module), got {type(model).__name__}: "
                        f"pass the model itself, as in {usage}.")
    return model


def expect_family(model: Any, kind: str) -> nn.Module:
    """`model` when it is a torchvision model of family `kind` (see `ftlib.models.family`)."""
    expect_module(model)
    if family(model) != kind:
        raise Incorrect(f"this exercise uses a torchvision {kind} model (e.g. resnet18), "
                        f"got a {type(model).__name__}.")
    return model


def commas(n: int) -> str:
    """11177538 -> '11,177,538'."""
    return f"{n:,}"


def as_number(value: Any, what: str) -> float:
    """A Python float from a number, a one-element tensor or a numpy scalar; `Incorrect` otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:  # numpy scalars
        return float(value.item())
    except (AttributeError, TypeError, ValueError):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}.") from None


def whole_number(answer: Any, what: str = "a count") -> int:
    """A count given as a Python or numpy integer, a one-element integer tensor or a float that
    is exactly whole (9408.0); `Incorrect` for bools, fractions, strings and anything else."""
    if isinstance(answer, torch.Tensor):
        if answer.numel() != 1 or answer.dtype == torch.bool:
            raise Incorrect(f"{what} is one whole number, got a tensor of shape {tuple(answer.shape)} "
                            f"and dtype {answer.dtype}.")
        answer = answer.item()
    elif not isinstance(answer, (bool, int, float, str)) and callable(getattr(answer, "item", None)):
        answer = answer.item()  # numpy scalars and 0-d arrays
    if isinstance(answer, bool) or type(answer).__name__ == "bool_":
        raise Incorrect(f"{what} is a whole number, got {answer!r} (a bool).")
    if isinstance(answer, int):
        return int(answer)
    if isinstance(answer, float):
        if not math.isfinite(answer) or answer != int(answer):
            raise Incorrect(f"{what} is a whole number, got {answer!r}: count, do not truncate or average.")
        return int(answer)
    raise Incorrect(f"{what} should be a whole number, got {type(answer).__name__} {answer!r}.")


def example_input(model: nn.Module) -> torch.Tensor:
    """A seeded (2, 3, 32, 32) float batch on the model's device; it leaves the global RNG alone."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 32, 32, generator=g).to(module_device(model))


def transform_parts(t: Any) -> list[Any]:
    """The individual transforms inside Compose / nn.Sequential / RandomApply containers, in order."""
    inner = getattr(t, "transforms", None)
    if isinstance(inner, (list, tuple)):
        return [part for x in inner for part in transform_parts(x)]
    if isinstance(t, nn.Sequential):
        return [part for x in t for part in transform_parts(x)]
    return [t]


# --- which stages train -------------------------------------------------------------------

def _trainable_names(model: nn.Module, stage: nn.Module) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for p in stage.parameters() if p.requires_grad]


def check_trainable(model: nn.Module, trainable: Collection[str]) -> str:
    """Exactly the stages named in `trainable` train (every parameter requires_grad=True);
    every other stage is fully frozen. Lessons 03, 04 and 07.

    Typical wrong answers it names: nothing frozen; the head frozen with the backbone;
    a stage frozen that should train, or the other way round; a stage frozen only in part.
    """
    parts, status = stages(expect_module(model)), stage_status(model)
    unknown = sorted(set(trainable) - set(parts))
    if unknown:
        raise ValueError(f"unknown stage names {unknown}: this model has {list(parts)}.")
    head, want = list(parts)[-1], [n for n in parts if n in trainable]
    frozen_wanted = [n for n in parts if n not in trainable and status[n] != "no parameters"]
    if frozen_wanted and all(status[n] in ("trainable", "no parameters") for n in parts):
        raise Incorrect(f"nothing is frozen: all {commas(count_parameters(model))} parameters still have "
                        f"requires_grad=True. Freeze {', '.join(frozen_wanted)}: set p.requires_grad = False "
                        f"for their parameters.")
    if head in trainable and status[head] != "trainable":
        raise Incorrect("your head has requires_grad=False: the new classifier must train. Freeze the "
                        "backbone first and replace the head afterwards (a new layer starts trainable), "
                        "or set requires_grad=True on the head's parameters.")
    for name in parts:
        if status[name] == "partly":
            example = _trainable_names(model, parts[name])[0]
            raise Incorrect(f"{name} is only partly frozen ({example} still has requires_grad=True): "
                            f"freeze or unfreeze a stage as a whole, with a loop over all its parameters.")
    for name in want:
        if status[name] == "frozen":
            raise Incorrect(f"{name} is frozen but should train: the trainable stages are {', '.join(want)}.")
    for name in frozen_wanted:
        if status[name] == "trainable":
            where = (" (on a ResNet the stem is model.conv1 and model.bn1, outside layer1..layer4)"
                     if name == "stem" and hasattr(model, "conv1") and hasattr(model, "bn1") else "")
            raise Incorrect(f"{name} still trains ({commas(count_parameters(parts[name]))} parameters with "
                            f"requires_grad=True){where}: freeze every stage except {', '.join(want)}.")
    verb = "train" if len(want) > 1 else "trains"
    return (f"{', '.join(frozen_wanted) or 'nothing'} frozen; {', '.join(want)} {verb}: "
            f"{commas(count_parameters(model, trainable=True))} trainable parameters of "
            f"{commas(count_parameters(model))}.")


def check_gradients(model: nn.Module, trainable: Collection[str], example: torch.Tensor | None = None) -> str:
    """A backward pass from the model's output reaches every parameter of the stages named in
    `trainable` and no parameter of the others: the freeze judged by what an optimizer would
    see, not by flags alone (a forward pass that detaches a stage's output, or runs it under
    torch.no_grad(), leaves it without gradients). The forward pass runs in eval mode on
    `example` (default: a seeded (2, 3, 32, 32) batch); the parameters' .grad, the buffers and
    the train/eval flags are given back afterwards. Lessons 03 and 04.
    """
    parts, params = stages(expect_module(model)), list(model.parameters())
    saved = [p.grad for p in params]
    buffers = [b.detach().clone() for b in model.buffers()]
    x = example if example is not None else example_input(model)
    try:
        for p in params:
            p.grad = None
        with eval_mode(model), torch.enable_grad():
            try:
                out = model(x)
            except Exception as err:
                raise Incorrect(f"a forward pass through your model fails ({type(err).__name__}: {err}).") from None
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                raise Incorrect("your model's output carries no gradient: nothing would train. Freeze with "
                                "requires_grad=False, not with torch.no_grad() around the whole model.")
            out.float().sum().backward()
        reached = {n: [p.grad is not None for p in s.parameters()] for n, s in parts.items()}
    finally:
        for p, g in zip(params, saved):
            p.grad = g
        with torch.no_grad():
            for b, old in zip(model.buffers(), buffers):
                b.copy_(old)
    for name, flags in reached.items():
        if name in trainable and flags and not all(flags):
            raise Incorrect(f"{name} should train, but a backward pass gives {flags.count(False)} of its "
                            f"{len(flags)} parameter tensors no gradient: its output is detached (or computed "
                            f"under torch.no_grad()) somewhere in your forward pass.")
        if name not in trainable and any(flags):
            raise Incorrect(f"{name} should be frozen, but a backward pass gives its parameters gradients: "
                            f"set requires_grad=False on them.")
    return f"a backward pass reaches {', '.join(n for n in parts if n in trainable)} and nothing else."


# --- learning rates of optimizer groups ---------------------------------------------------

_ONE_LR_TIP = {
    "lr": "that is one LR for the whole model. Discriminative fine-tuning gives the head the largest "
          "LR and divides it by the factor for each stage going down.",
    "max_lr": "OneCycleLR was given a single max_lr, so every group peaks at the same LR and the "
              "discriminative ratios are lost. Pass one value per group: "
              "max_lr=[g['lr'] for g in optimizer.param_groups].",
}


def _groups_of(answer: Any) -> list[dict]:
    if isinstance(answer, torch.optim.Optimizer):
        return answer.param_groups
    if isinstance(answer, (list, tuple)) and all(isinstance(g, dict) for g in answer):
        return list(answer)
    raise TypeError(f"expected an optimizer or a list of param-group dicts, got {type(answer).__name__}.")


def _group_params(group: dict, label: str) -> list[torch.Tensor]:
    params = group.get("params")
    if isinstance(params, torch.Tensor):
        return [params]
    if not isinstance(params, (list, tuple)):
        raise Incorrect(f"group {label}'s 'params' is a {type(params).__name__}, not a list: a generator "
                        f"such as model.layer1.parameters() can be read only once; wrap it in list(...).")
    return list(params)


def _group_stage(group: dict, i: int, owner: dict[int, str], order: list[str], allow_frozen: bool) -> str:
    """The one stage whose parameters group `i` holds; raises for mixed, foreign or frozen groups.

    The group's name is the stage name, or starts with it and a dot (ftlib.optim's
    "layer1.no_decay" groups)."""
    label = repr(group.get("name", f"#{i}"))
    params = _group_params(group, label)
    if any(id(p) not in owner for p in params):
        raise Incorrect(f"group {label} holds parameters that are not in this model: build the groups "
                        f"from the same model you pass to check().")
    found = sorted({owner[id(p)] for p in params}, key=order.index)
    if len(found) != 1:
        raise Incorrect(f"group {label} holds {'no parameters' if not found else ' and '.join(found)}: "
                        f"give each stage its own group, so each stage can get its own LR.")
    if not allow_frozen and not any(p.requires_grad for p in params):
        raise Incorrect(f"group {label} holds only frozen parameters ({found[0]}): the optimizer never moves "
                        f"them. Leave frozen stages out of the groups.")
    name = group.get("name")
    if not isinstance(name, str) or not (name == found[0] or name.startswith(found[0] + ".")):
        raise Incorrect(f"group {label} holds the parameters of {found[0]}: give every group a 'name' key "
                        f"with its stage name, here name={found[0]!r}.")
    return found[0]


def _check_lr_values(lrs: dict[str, float], order: list[str], lr: float, factor: float, key: str) -> str:
    """lrs: {stage: value} for the stages with a group; the head must get `lr`, and each
    stage below it `lr / factor**distance`."""
    head, present = order[-1], [n for n in order if n in lrs]
    values = [lrs[n] for n in present]
    if head not in lrs:
        raise Incorrect(f"no group holds the head ({head}): the new classifier must train.")
    if len(values) > 1 and all(math.isclose(v, values[0], rel_tol=1e-6) for v in values):
        raise Incorrect(f"all {len(values)} groups have {key}={values[0]:g}: {_ONE_LR_TIP[key]}")
    if values[0] > values[-1]:
        raise Incorrect(f"the {key}s grow toward the input ({present[0]} {values[0]:.3g}, {head} {values[-1]:.3g}): "
                        f"the new head needs the largest {key} and the early, generic stages the smallest.")
    if not math.isclose(lrs[head], lr, rel_tol=1e-3):
        raise Incorrect(f"the head's {key} is {lrs[head]:.3g}; the task asks for {lr:g} at the head.")
    for lower, upper in reversed(list(zip(present, present[1:]))):  # from the head down
        steps = order.index(upper) - order.index(lower)
        want = lrs[upper] / factor ** steps
        if not math.isclose(lrs[lower], want, rel_tol=1e-3):
            raise Incorrect(f"{lower}'s {key} is {lrs[lower]:.3g} and {upper}'s is {lrs[upper]:.3g}: a ratio of "
                            f"{lrs[upper] / lrs[lower]:.3g}, where dividing by {factor:g} per stage gives "
                            f"{factor ** steps:.3g} ({lower} should get {want:.3g}).")
    return ", ".join(f"{n} {lrs[n]:.2e}" for n in present)


def check_lrs(answer: Any, model: nn.Module, lr: float, factor: float = 2.6, key: str = "lr",
              allow_frozen: bool = False) -> str:
    """Discriminative learning rates: one group per trainable stage, named after it; the
    head gets `lr` and each stage below it `factor` times less (`lr / factor**distance`).

    answer: an optimizer or a list of param-group dicts. key: the group entry to read,
    "lr", or "max_lr" for a OneCycleLR schedule. Every trainable parameter must be in
    a group. A stage may be split over several groups (e.g. weight decay / no decay)
    if they share its LR. Groups of frozen parameters are an error unless `allow_frozen`
    (gradual unfreezing with one optimizer). Lessons 05 and 07.
    """
    groups, parts = _groups_of(answer), stages(expect_module(model))
    order = list(parts)
    owner = {id(p): name for name, stage in parts.items() for p in stage.parameters()}
    lrs: dict[str, float] = {}
    for i, group in enumerate(groups):
        stage = _group_stage(group, i, owner, order, allow_frozen)
        if key not in group:
            raise Incorrect(f"group {group['name']!r} has no {key!r}: every group carries its own {key}.")
        if stage in lrs and not math.isclose(lrs[stage], float(group[key]), rel_tol=1e-6):
            raise Incorrect(f"two groups of {stage} have different {key}s ({lrs[stage]:.3g} and "
                            f"{float(group[key]):.3g}): each stage gets one {key}.")
        lrs[stage] = float(group[key])
    grouped = {id(p) for g in groups for p in _group_params(g, "")}
    missing = [n for n, s in parts.items() if any(p.requires_grad and id(p) not in grouped for p in s.parameters())]
    if missing:
        raise Incorrect(f"the trainable parameters of {', '.join(missing)} are in no group: "
                        f"the optimizer would never update them.")
    table = _check_lr_values(lrs, order, lr, factor, key)
    return f"{len(lrs)} stages, input to output, {key}: {table} (÷{factor:g} per stage)."


GEOMETRY_SIZE = 64  # side of the coordinate image (lesson 06's augmentation check)

# --- geometry measured on a test image of known orientation -------------------------------
#
# The test image encodes each pixel's own position: channel 0 its column, channel 1 its row,
# channel 2 a radial check value. After a geometric transform, every output pixel still says
# where in the input it came from, so the affine map is fitted from the pixels themselves. A
# colour transform breaks the code (the check value no longer agrees), and is left out.

_LOW, _SPAN = 16.0, 224.0


def _radial(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The check value at source position (x, y), both 0..1: the squared distance from an
    off-centre point (0.3, 0.4), scaled to 0..1 over the image. Off-centre, so that an inverted
    image (which reads like a point reflection) does not agree with it."""
    return ((x - 0.3) ** 2 + (y - 0.4) ** 2) / (0.7 ** 2 + 0.6 ** 2)


def _coordinate_image() -> torch.Tensor:
    """uint8 (3, 64, 64): column, row and the check value `_radial`, all in 16..240 (0 is the fill)."""
    r = torch.arange(GEOMETRY_SIZE, dtype=torch.float64)
    y, x = torch.meshgrid(r, r, indexing="ij")
    return (_LOW + _SPAN * torch.stack([x / 63, y / 63, _radial(x / 63, y / 63)])).round().to(torch.uint8)


def measure_geometry(out: Any) -> dict[str, float] | None:
    """The geometry of one output of a transform applied to `_coordinate_image()`, or None when
    the output cannot be decoded (a colour transform, a non-affine warp, too little left).

    Returns degrees of rotation (after undoing a horizontal mirror, which keeps a product's
    label; a vertical flip reads as 180), degrees of shear, the zoom (square root of the area
    factor), whether it mirrors, and the fraction of the central input region [0.25, 0.75]^2
    that lands inside the output frame. Lesson 06.
    """
    if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != 3 or min(out.shape[1:]) < 8:
        return None
    v = out.detach().double().cpu()
    v = v * 255 if out.is_floating_point() and float(v.max()) <= 1.0 + 1e-6 else v
    h, w = v.shape[1:]
    sx, sy = (v[0] - _LOW) / _SPAN, (v[1] - _LOW) / _SPAN           # source position, 0..1
    check = _LOW + _SPAN * _radial(sx, sy)
    valid = (v.min(0).values > 10) & ((v[2] - check).abs() < 8) & (sx > -0.02) & (sx < 1.02) & (sy > -0.02) & (sy < 1.02)
    if valid.float().mean() < 0.1:
        return None
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64) / max(h - 1, 1),
                                torch.arange(w, dtype=torch.float64) / max(w - 1, 1), indexing="ij")
    design = torch.stack([cols[valid], rows[valid], torch.ones_like(cols[valid])], 1)
    target = torch.stack([sx[valid], sy[valid]], 1)
    coef = torch.linalg.lstsq(design, target).solution               # source = [u, v, 1] @ coef
    if (design @ coef - target).pow(2).sum(1).mean().sqrt() > 0.03:  # not affine: over 2 px off
        return None
    a, b = coef[:2].T, coef[2]                                       # source = a @ dest + b
    if abs(float(torch.det(a))) < 1e-6:
        return None
    mirrored = float(torch.det(a)) < 0
    forward = torch.linalg.inv(a @ torch.diag(torch.tensor([-1.0, 1.0], dtype=torch.float64)) if mirrored else a)
    ax = math.atan2(float(forward[1, 0]), float(forward[0, 0]))
    ay = math.atan2(-float(forward[0, 1]), float(forward[1, 1]))
    mean = math.degrees(math.atan2(math.sin(ax) + math.sin(ay), math.cos(ax) + math.cos(ay)))
    apart = math.degrees(math.atan2(math.sin(ay - ax), math.cos(ay - ax)))
    rotation = max(0.0, abs(mean) - abs(apart) / 2)  # both axes turn; a shear turns one of them
    ex, ey = forward[:, 0], forward[:, 1]
    between = math.degrees(math.acos(max(-1.0, min(1.0, float(ex @ ey / (ex.norm() * ey.norm()))))))
    grid = torch.linspace(0.25, 0.75, 41, dtype=torch.float64)
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    dest = (torch.stack([gx.flatten(), gy.flatten()], 1) - b) @ torch.linalg.inv(a).T
    inside = ((dest >= -0.01) & (dest <= 1.01)).all(1).double().mean()
    return {"rotation": rotation, "shear": abs(90 - between), "zoom": math.sqrt(abs(float(torch.det(forward)))),
            "mirrored": float(mirrored), "visible": float(inside)}
