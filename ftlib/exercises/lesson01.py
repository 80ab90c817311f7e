"""Lesson 01's exercises: what a pretrained model knows.

q1 names the resnet18 stage with 256 output channels, q2 counts conv1's parameters, q3 picks
the smallest model above 75 % top-1 from the model-zoo table.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..freeze import count_parameters
from ..models import ARCHS, stages
from .checks import commas, expect_module, require_answer, whole_number
from .core import Exercise, ExerciseSet, Incorrect

__all__ = ["resnet18_stage_shapes", "check_stage_with_channels", "check_conv1_parameters",
           "smallest_above", "check_smallest_model", "lesson01"]

_ZOO = (*ARCHS, "inception_v3")
"""The models of lesson 01's zoo table: `ftlib.models.ARCHS` and inception_v3."""


def resnet18_stage_shapes(size: int = 64) -> dict[str, tuple[int, int, int]]:
    """Output shape (C, H, W) of every resnet18 stage but the head, for one RGB image of
    `size` x `size` px. Shapes do not depend on the weights, so a random model is used (the
    global RNG is left alone). Lesson 01."""
    from torchvision.models import resnet18
    with torch.random.fork_rng(devices=[]):
        model = resnet18().eval()
    x, shapes = torch.zeros(1, 3, size, size), {}
    with torch.no_grad():
        for name, stage in list(stages(model).items())[:-1]:
            x = stage(x)
            shapes[name] = tuple(x.shape[1:])
    return shapes


_NOT_A_STAGE = {"conv1": "stem", "bn1": "stem", "relu": "stem", "maxpool": "stem", "avgpool": "head", "fc": "head"}
"""torchvision's names of resnet18's layers that `ftlib.stages` groups into the stem and the head."""


def _one_name(answer: Any, what: str, example: str) -> str:
    """`answer` as a plain str (numpy's str_ included); `Incorrect` naming what was given instead."""
    if isinstance(answer, str):
        return str(answer)
    if isinstance(answer, nn.Module):
        raise Incorrect(f"you passed a module ({type(answer).__name__}), not its name: give {what} as a "
                        f"string, e.g. {example}.")
    if isinstance(answer, (list, tuple, set)):
        raise Incorrect(f"give one name, not a {type(answer).__name__} of {len(answer)}: {what} as a string, "
                        f"e.g. {example}.")
    raise Incorrect(f"give {what} as a string, e.g. {example}, not {type(answer).__name__} {answer!r}.")


def _misspelt(answer: str, names: list[str]) -> str | None:
    """The name in `names` that `answer` spells differently (case, spaces, '-' for '_'), if any."""
    folded = answer.strip().lower().replace("-", "_")
    return next((n for n in names if n.lower() == folded and n != answer), None)


def check_stage_with_channels(answer: str, channels: int = 256) -> str:
    """`answer` names a resnet18 stage whose output has `channels` feature maps. Lesson 01.

    The shapes are measured by running a resnet18 (`resnet18_stage_shapes`), not read from
    a table. Typical wrong answers it names: a neighbouring stage (by its channel count), the
    head, a layer or block inside a stage (torchvision's "conv1", "fc", "layer3.1"), the
    module itself or a number instead of the name, a name spelt another way.
    """
    require_answer(answer, '"layer1"')
    shapes = resnet18_stage_shapes()
    names = list(shapes) + ["head"]
    answer = _one_name(answer, "the stage's name", '"layer1"')
    if answer not in names:
        spelt, stage = _misspelt(answer, names), answer.split(".")[0]
        if spelt:
            raise Incorrect(f"spell the stage as ftlib.stages(model) does: {spelt!r}, not {answer!r}.")
        if answer in _NOT_A_STAGE:
            part = _NOT_A_STAGE[answer]
            raise Incorrect(f"{answer} is torchvision's name of a layer inside the {part}, not a stage: "
                            f"ftlib.stages(model) groups the model into {names}.")
        if stage in shapes:
            raise Incorrect(f"{answer} is one block inside the stage {stage}: answer with the whole stage's name.")
        raise Incorrect(f"resnet18 has no stage {answer!r}: its stages are {names} (see ftlib.stages(model)).")
    if answer == "head":
        raise Incorrect("the head outputs class scores (one number per class), not feature maps: "
                        "look at the stages before it.")
    c, h, w = shapes[answer]
    if c != channels:
        raise Incorrect(f"{answer} outputs {c} channels ({c}x{h}x{w} for a 64 px image), not {channels}: "
                        f"the channels double at each of layer2, layer3 and layer4.")
    return f"{answer} outputs {c} channels of {h}x{w} for a 64 px image ({h * 4}x{w * 4} at 256 px)."


def _first_conv(model: nn.Module | None) -> nn.Conv2d:
    """The first nn.Conv2d of `model` (default: a random torchvision resnet18; the global RNG is left alone)."""
    if model is None:
        from torchvision.models import resnet18
        with torch.random.fork_rng(devices=[]):
            model = resnet18()
    conv = next((m for m in expect_module(model).modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("this model has no nn.Conv2d layer: pass a convolutional network.")
    return conv


def check_conv1_parameters(answer: int, model: nn.Module | None = None) -> str:
    """`answer` is the number of parameters (weights and bias, if any) of the first
    convolution of `model` (default: a torchvision resnet18). Lesson 01."""
    require_answer(answer, "64 * 3 * 7 * 7")
    conv = _first_conv(model)
    answer, (out_c, in_c, kh, kw) = whole_number(answer), conv.weight.shape
    expected = count_parameters(conv)
    if answer == expected:
        bias = f" + {out_c} biases" if conv.bias is not None else " (no bias)"
        return f"{out_c} filters x {in_c} input channels x {kh}x{kw} = {commas(out_c * in_c * kh * kw)} weights{bias}."
    wrong = {out_c: f"{out_c} is the number of filters; each filter has its own {in_c}x{kh}x{kw} weights.",
             in_c * kh * kw: f"{answer} is the size of one filter ({in_c}x{kh}x{kw}); there are {out_c} of them.",
             out_c * kh * kw: f"{commas(answer)} leaves out the {in_c} input channels: each filter spans all "
                              f"of them (RGB), so it is {in_c}x{kh}x{kw}.",
             len(list(conv.parameters())): f"{answer} is a number of parameter tensors: count the numbers "
                                           f"inside them (p.numel())."}
    if conv.bias is None:
        wrong[expected + out_c] = (f"{commas(answer)} adds a bias per filter, but this conv1 has none "
                                   f"(bias=False: the BatchNorm after it adds its own shift).")
    if answer in wrong:
        raise Incorrect(wrong[answer])
    raise Incorrect(f"{commas(answer)} is not the number of parameters of the first convolution "
                    f"(weight shape {tuple(conv.weight.shape)}): multiply out its shape.")


def smallest_above(rows: list[dict[str, Any]], min_acc1: float) -> dict[str, Any] | None:
    """The row with the fewest parameters among `rows` whose "acc1" is at least `min_acc1` %;
    None when no row reaches it. rows: `ftlib.model_zoo_table` rows. Lesson 01, exercise 3."""
    fit = [r for r in rows if r["acc1"] >= min_acc1]
    return min(fit, key=lambda r: r["params"]) if fit else None


def _smallest_problem(answer: str, rows: dict[str, dict], min_acc1: float) -> str:
    """The message for an architecture `answer` that is not the smallest one reaching `min_acc1` %."""
    mine, fit = rows[answer], [r for r in rows.values() if r["acc1"] >= min_acc1]
    if mine["acc1"] < min_acc1:
        smallest = min(rows.values(), key=lambda r: r["params"])["arch"]
        why = " It is the smallest of all, but the top-1 threshold comes first." if answer == smallest else ""
        return f"{answer} reaches {mine['acc1']:.2f} % top-1, below the {min_acc1:g} % asked for.{why}"
    if answer == max(fit, key=lambda r: r["acc1"])["arch"]:
        why = "it is the most accurate of them, but the question asks for the fewest parameters."
    elif answer == min(fit, key=lambda r: r["gflops"])["arch"]:
        why = "it is the cheapest in GFLOPs, but the question asks for parameters."
    elif answer == min(fit, key=lambda r: r["file_mb"])["arch"]:
        why = "it has the smallest file, but the question asks for parameters."
    else:
        why = "sort the qualifying rows by 'params'."
    return (f"{answer} has {mine['params'] / 1e6:.2f} M parameters; another model at {min_acc1:g} % top-1 "
            f"or more has fewer: {why}")


def check_smallest_model(answer: str, min_acc1: float = 75.0, archs: tuple[str, ...] = _ZOO) -> str:
    """`answer` is the architecture with the fewest parameters among `archs` whose ImageNet
    top-1 (torchvision metadata of its DEFAULT weights) is at least `min_acc1` %. Lesson 01.

    The reference is computed from the metadata (`smallest_above`), so it follows the
    threshold and the list. Typical wrong answers it names: a model below the threshold
    (the smallest of all), the most accurate, the cheapest in GFLOPs or in file size, a row
    or the weights' name instead of the architecture, a name spelt another way.
    """
    from ..pretrained import model_zoo_table
    require_answer(answer, '"resnet18"')
    rows = {r["arch"]: r for r in model_zoo_table(archs)}
    if isinstance(answer, dict) and "arch" in answer:
        raise Incorrect(f"you passed a whole row of the table; answer with its architecture, "
                        f"row['arch'] (here {answer['arch']!r}).")
    answer = _one_name(answer, "the architecture's name", '"resnet18"')
    if answer not in rows:
        spelt = _misspelt(answer, list(rows))
        by_weights = next((r["arch"] for r in rows.values() if answer.split(".")[0] == r["weights"].split(".")[0]), None)
        if spelt:
            raise Incorrect(f"spell the architecture as the table's 'arch' column does: {spelt!r}, not {answer!r}.")
        if by_weights:
            raise Incorrect(f"{answer!r} names the weights; answer with the architecture, the table's "
                            f"'arch' column ({by_weights!r} for these).")
        raise Incorrect(f"answer with one architecture name from the table: {', '.join(rows)}; got {answer!r}.")
    best = smallest_above(list(rows.values()), min_acc1)
    if best is None:
        raise ValueError(f"no model in {list(rows)} reaches {min_acc1:g} % top-1: lower min_acc1.")
    if answer != best["arch"]:
        raise Incorrect(_smallest_problem(answer, rows, min_acc1))
    mine = rows[answer]
    return (f"{answer}: {mine['params'] / 1e6:.2f} M parameters, {mine['acc1']:.2f} % top-1, "
            f"{mine['gflops']:.2f} GFLOPs per 224 px image.")


# --- the exercises ------------------------------------------------------------------------

lesson01 = ExerciseSet(
    "01",
    q1=Exercise(
        title="Lesson 01, exercise 1: where do 256 channels come out?",
        task="Which stage of a resnet18 outputs 256 feature maps (channels)? Answer with the stage "
             "name as `ftlib.stages(model)` spells it, e.g. `\"layer1\"`.",
        usage='ex.q1.check("layer1")',
        checker=check_stage_with_channels,
        hints=("Run one image through the stages one after the other and print `x.shape` after each.",
               "The stem and layer1 give 64 channels; every later layer doubles the number."),
        solution_code="""
import torch, torchvision, ftlib

x = torch.zeros(1, 3, 64, 64)
for name, stage in list(ftlib.stages(torchvision.models.resnet18().eval()).items())[:-1]:
    x = stage(x)
    print(name, tuple(x.shape))        # layer3 -> (1, 256, 4, 4)
answer = "layer3"
""",
    ),
    q2=Exercise(
        title="Lesson 01, exercise 2: count conv1's parameters",
        task="How many parameters (numbers, not tensors) does the first convolution of a resnet18 "
             "(`model.conv1`) hold? Work it out from its shape, then check by counting.",
        usage="ex.q2.check(9999)",
        checker=check_conv1_parameters,
        hints=("`model.conv1` shows the layer: in_channels, out_channels, kernel_size and whether it has a bias.",
               "Each of the out_channels filters has in_channels x kernel height x kernel width weights."),
        solution_code="""
import torchvision

conv1 = torchvision.models.resnet18().conv1
answer = 64 * 3 * 7 * 7                     # no bias: bias=False
assert answer == sum(p.numel() for p in conv1.parameters())
""",
    ),
    q3=Exercise(
        title="Lesson 01, exercise 3: the smallest model above 75 %",
        task="From the lesson's model-zoo table (`ftlib.model_zoo_table([...])` over `ftlib.models.ARCHS` "
             "and `\"inception_v3\"`), pick the model with the fewest parameters whose ImageNet top-1 is "
             "at least 75 %.",
        usage='ex.q3.check("resnet18")',
        checker=check_smallest_model,
        hints=("Keep only the rows with `row['acc1'] >= 75`.",
               "Of those, take the row with the smallest `row['params']` (not the smallest GFLOPs)."),
        solution_code="""
import ftlib

rows = ftlib.model_zoo_table([*ftlib.models.ARCHS, "inception_v3"])
answer = min((r for r in rows if r["acc1"] >= 75), key=lambda r: r["params"])["arch"]
""",
    ),
)
