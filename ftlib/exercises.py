"""Exercises that check themselves: `check()`, `hint()` and `solution()` for each lesson.

A lesson notebook imports its set and passes the answer explicitly:

    >>> from ftlib.exercises import lesson04 as ex
    >>> ex.q1                      # shows the task
    >>> ex.q1.check(model)         # raises `Incorrect` with a specific message, or says "Correct"
    >>> ex.q1.hint()               # hint 1; ex.q1.hint(2) shows the next one
    >>> ex.q1.solution()           # the code of one right answer

The file reads top to bottom in four parts:

1. `Incorrect` and `show`: the error a wrong answer raises, and the only function that
   displays anything (Markdown in Jupyter, plain text elsewhere).
2. `Exercise` and `ExerciseSet`: plain data (task, checker, hints, solution).
3. Checkers: pure functions that inspect the real objects a student built (a model, an
   optimizer, a transform pipeline, a metric function). Each returns a one-line summary
   when the answer is right and raises `Incorrect` saying what is wrong when it is not.
   They never print, so they are tested without a display.
4. The question sets of lessons 03, 04, 05, 07 and 08; then lessons 01, 02 and 06, each
   with the checkers only it uses.

Nothing here reads notebook globals or keeps state between calls.
"""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import WeightsEnum

from .config import in_notebook
from .models import family, stages

__all__ = [
    "Incorrect", "show", "Exercise", "ExerciseSet",
    "stage_status", "check_head", "check_trainable", "check_parameter_count",
    "check_frozen_batchnorm", "check_lrs", "check_transforms", "check_accuracy_fn",
    "check_precision_recall_fn", "check_confusion_matrix_fn", "check_gradual_unfreezing",
    "lesson03", "lesson04", "lesson05", "lesson07", "lesson08",
]


# ======================================================================================
# 1. The error a wrong answer raises, and display
# ======================================================================================

class Incorrect(AssertionError):
    """A wrong answer. The message says what is wrong and what to try instead."""


def show(markdown: str) -> None:
    """Display `markdown`: rendered in Jupyter, printed as plain text anywhere else."""
    if in_notebook():
        from IPython.display import Markdown, display
        display(Markdown(markdown))
    else:
        print(markdown)


# ======================================================================================
# 2. Exercises and exercise sets (plain data)
# ======================================================================================

@dataclass(frozen=True)
class Exercise:
    """One exercise: a task, a checker, hints revealed one at a time, and a solution.

    checker: a pure function of the student's answer(s); returns a one-line summary when
        right, raises `Incorrect` when wrong.
    usage: how to call `check`, e.g. `"ex.q1.check(model)"`.
    solution_code: Python source of one right answer, shown by `solution()`.
    """
    title: str
    task: str
    usage: str
    checker: Callable[..., str]
    hints: tuple[str, ...]
    solution_code: str

    def check(self, *answer: Any, **options: Any) -> None:
        """Check the answer: prints a short "Correct" message, or raises `Incorrect`."""
        try:
            inspect.signature(self.checker).bind(*answer, **options)
        except TypeError as err:
            raise TypeError(f"{self.title}: call it as `{self.usage}` ({err}).") from None
        show(f"**Correct.** {self.checker(*answer, **options)}")

    def hint_text(self, n: int = 1) -> str:
        """The Markdown of hint `n` (1-based)."""
        if not 1 <= n <= len(self.hints):
            raise ValueError(f"{self.title} has {len(self.hints)} hints: use n = 1 to {len(self.hints)}.")
        follow = f"Next: `hint({n + 1})`." if n < len(self.hints) else "Still stuck? `solution()` shows one answer."
        return f"**Hint {n} of {len(self.hints)}:** {self.hints[n - 1]}\n\n{follow}"

    def hint(self, n: int = 1) -> None:
        """Show hint `n` (1 by default; call `hint(2)` for the next one)."""
        show(self.hint_text(n))

    def solution_text(self) -> str:
        """The Markdown of the solution: the code of one right answer."""
        return f"**Solution to {self.title}:**\n\n```python\n{self.solution_code.strip()}\n```"

    def solution(self) -> None:
        """Show the solution."""
        show(self.solution_text())

    def _repr_markdown_(self) -> str:
        return (f"**{self.title}**\n\n{self.task}\n\nCheck with `{self.usage}`; "
                f"`hint()` and `solution()` help.")

    def __repr__(self) -> str:
        return f"Exercise({self.title!r}; check with {self.usage})"


class ExerciseSet:
    """The exercises of one lesson, reachable as attributes: `ex.q1`, `ex.q2`, ...

    `ex.Incorrect` is the error a wrong answer raises, so a notebook can catch it
    without a second import.
    """

    Incorrect = Incorrect

    def __init__(self, lesson: str, **exercises: Exercise) -> None:
        self.lesson = lesson
        self.exercises = dict(exercises)

    def __getattr__(self, name: str) -> Exercise:
        exercises = self.__dict__.get("exercises", {})
        if name in exercises:
            return exercises[name]
        raise AttributeError(f"lesson {self.__dict__.get('lesson')} has the exercises "
                             f"{', '.join(exercises)}; there is no {name!r}.")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.exercises))

    def _repr_markdown_(self) -> str:
        lines = [f"- `{key}`: {ex.title}" for key, ex in self.exercises.items()]
        return f"**Exercises of lesson {self.lesson}**\n\n" + "\n".join(lines)

    def __repr__(self) -> str:
        return f"ExerciseSet(lesson {self.lesson}: {', '.join(self.exercises)})"


# ======================================================================================
# 3. Checkers: pure functions of real objects
# ======================================================================================

# --- small shared helpers -------------------------------------------------------------

_HEAD_ATTRIBUTE = {"resnet": "model.fc", "mobilenet": "model.classifier[-1]",
                   "efficientnet": "model.classifier[-1]", "convnext": "model.classifier[-1]",
                   "vgg": "model.classifier[-1]", "sequential": "the last layer"}


def _answered(answer: Any, example: str) -> None:
    """Raise `Incorrect` for the notebook's placeholders (None or ...)."""
    if answer is None or answer is Ellipsis:
        raise Incorrect(f"no answer yet: replace the placeholder with yours, e.g. {example}.")


def _expect_module(model: Any, usage: str = "check(model)") -> nn.Module:
    _answered(model, usage)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected your model (a torch.nn.Module), got {type(model).__name__}: "
                        f"pass the model itself, as in {usage}.")
    return model


def _expect_family(model: Any, kind: str) -> nn.Module:
    _expect_module(model)
    if family(model) != kind:
        raise Incorrect(f"this exercise uses a torchvision {kind} model (e.g. resnet18), "
                        f"got a {type(model).__name__}.")
    return model


def _fmt(n: int) -> str:
    return f"{n:,}"


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _example_input(model: nn.Module) -> torch.Tensor:
    """A seeded (2, 3, 32, 32) float batch on the model's device; it leaves the global RNG alone."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 32, 32, generator=g).to(device)


@contextmanager
def _restored(model: nn.Module) -> Iterator[nn.Module]:
    """Run a probe on `model`, then put back its buffers, train/eval flags and the RNG."""
    buffers = [b.detach().clone() for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    with torch.random.fork_rng(devices=[]):
        try:
            yield model
        finally:
            with torch.no_grad():
                for b, saved in zip(model.buffers(), buffers):
                    b.copy_(saved)
            for m, was_training in modes:
                m.training = was_training


def stage_status(model: nn.Module) -> dict[str, str]:
    """For each stage (input to output, see `ftlib.models.stages`): `"trainable"` (every
    parameter has requires_grad=True), `"frozen"` (none has), `"partial"`, or `"empty"`
    (a stage without parameters). Used by the lesson 04 and 07 checkers."""
    status = {}
    for name, stage in stages(_expect_module(model)).items():
        flags = [p.requires_grad for p in stage.parameters()]
        status[name] = ("empty" if not flags else "trainable" if all(flags)
                        else "frozen" if not any(flags) else "partial")
    return status


# --- the model's head -----------------------------------------------------------------

def check_head(model: nn.Module, num_classes: int, in_features: int | None = None) -> str:
    """The head (last stage) ends in an `nn.Linear(in_features, num_classes)` and the model
    maps a (2, 3, 32, 32) batch to (2, num_classes) logits. Lesson 03."""
    kind = family(_expect_module(model))
    where = _HEAD_ATTRIBUTE[kind]
    linears = [m for m in list(stages(model).values())[-1].modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise Incorrect(f"the head ({where}) holds no nn.Linear layer: replace it with "
                        f"nn.Linear(number of features, {num_classes}).")
    fc = linears[-1]
    if fc.out_features != num_classes:
        tip = (f" 1000 is ImageNet's classifier, still in place: assign the new layer to {where}."
               if fc.out_features == 1000 else "")
        raise Incorrect(f"your head outputs {fc.out_features} classes but the data set has {num_classes}: "
                        f"replace {where} with nn.Linear({fc.in_features}, {num_classes}).{tip}")
    if in_features is not None and fc.in_features != in_features:
        raise Incorrect(f"your head takes {fc.in_features} features, but the backbone gives {in_features}: "
                        f"read the number from the old layer ({where}.in_features) before replacing it.")
    with _restored(model), torch.no_grad():
        try:
            out = model.eval()(_example_input(model))
        except RuntimeError as err:
            raise Incorrect(f"a forward pass through your model fails ({err}): the head's in_features "
                            f"must equal the number of features the backbone gives.") from None
    if tuple(out.shape) != (2, num_classes):
        raise Incorrect(f"a batch of 2 images gives logits of shape {tuple(out.shape)}, expected (2, {num_classes}).")
    return f"the head is nn.Linear({fc.in_features}, {fc.out_features}) and the logits have shape (N, {num_classes})."


# --- which stages train ---------------------------------------------------------------

def _trainable_names(model: nn.Module, stage: nn.Module) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for p in stage.parameters() if p.requires_grad]


def check_trainable(model: nn.Module, trainable: Collection[str]) -> str:
    """Exactly the stages named in `trainable` train (every parameter requires_grad=True);
    every other stage is fully frozen. Lessons 03, 04 and 07.

    Typical wrong answers it names: nothing frozen; the head frozen with the backbone;
    a stage frozen that should train, or the other way round; a stage frozen only in part.
    """
    parts, status = stages(_expect_module(model)), stage_status(model)
    unknown = sorted(set(trainable) - set(parts))
    if unknown:
        raise ValueError(f"unknown stage names {unknown}: this model has {list(parts)}.")
    head, want = list(parts)[-1], [n for n in parts if n in trainable]
    frozen_wanted = [n for n in parts if n not in trainable and status[n] != "empty"]
    if frozen_wanted and all(status[n] in ("trainable", "empty") for n in parts):
        raise Incorrect(f"nothing is frozen: all {_fmt(_count(model))} parameters still have requires_grad=True. "
                        f"Freeze {', '.join(frozen_wanted)}: set p.requires_grad = False for their parameters.")
    if head in trainable and status[head] != "trainable":
        raise Incorrect(f"your head has requires_grad=False: the new classifier must train. Freeze the "
                        f"backbone first and replace the head afterwards (a new layer starts trainable), "
                        f"or set requires_grad=True on the head's parameters.")
    for name in parts:
        if status[name] == "partial":
            example = _trainable_names(model, parts[name])[0]
            raise Incorrect(f"{name} is only partly frozen ({example} still has requires_grad=True): "
                            f"freeze or unfreeze a stage as a whole, with a loop over all its parameters.")
    for name in want:
        if status[name] == "frozen":
            raise Incorrect(f"{name} is frozen but should train: the trainable stages are {', '.join(want)}.")
    for name in frozen_wanted:
        if status[name] == "trainable":
            raise Incorrect(f"{name} still trains ({_fmt(_count(parts[name]))} parameters with requires_grad=True): "
                            f"freeze every stage except {', '.join(want)}.")
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    verb = "train" if len(want) > 1 else "trains"
    return (f"{', '.join(frozen_wanted) or 'nothing'} frozen; {', '.join(want)} {verb}: "
            f"{_fmt(n_train)} trainable parameters of {_fmt(_count(model))}.")


def check_parameter_count(answer: int, model: nn.Module, trainable: Collection[str]) -> str:
    """`answer` equals the number of parameters (elements, not tensors) in the stages named
    in `trainable`, counted from the model's own modules. Lesson 04."""
    parts = stages(_expect_module(model))
    if isinstance(answer, torch.Tensor):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer != int(answer):
        raise Incorrect(f"expected a whole number of parameters, got {answer!r}.")
    answer = int(answer)
    per_stage = {n: _count(s) for n, s in parts.items()}
    expected = sum(per_stage[n] for n in trainable)
    n_tensors = sum(len(list(parts[n].parameters())) for n in trainable)
    if answer == expected:
        return f"{_fmt(expected)} trainable parameters, {100 * expected / _count(model):.1f} % of the model."
    if answer == _count(model):
        raise Incorrect(f"{_fmt(answer)} is every parameter of the model: count only those with "
                        f"requires_grad=True.")
    if answer in (n_tensors, len(list(model.parameters()))):
        raise Incorrect(f"{answer} is a number of parameter tensors: add up p.numel() (the numbers in "
                        f"each tensor), not 1 per tensor.")
    for name in trainable:
        if answer == per_stage[name] and len(trainable) > 1:
            others = [n for n in trainable if n != name]
            raise Incorrect(f"{_fmt(answer)} is the count of {name} alone: {', '.join(others)} train too.")
    raise Incorrect(f"{_fmt(answer)} is not the number of parameters in {', '.join(trainable)}: "
                    f"sum p.numel() over the parameters with requires_grad=True.")


# --- BatchNorm in frozen stages -------------------------------------------------------

def _batchnorms(model: nn.Module, stage_names: list[str]) -> list[tuple[str, str, nn.Module]]:
    """(stage, qualified name, module) of every BatchNorm with running stats in those stages."""
    names = {id(m): n for n, m in model.named_modules()}
    parts = stages(model)
    return [(s, names[id(m)], m) for s in stage_names for m in parts[s].modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def check_frozen_batchnorm(model: nn.Module, example: torch.Tensor | None = None) -> str:
    """BatchNorm layers in frozen stages keep their running statistics in train mode.

    Judges behaviour, not flags: puts the model in train mode, runs one forward pass on
    `example` (default: a seeded (2, 3, 32, 32) batch) and compares the running_mean
    and running_var of every BatchNorm in a frozen stage. The model's
    buffers, train/eval flags and the RNG are restored afterwards. Lesson 04.
    """
    status = stage_status(_expect_module(model))
    frozen = [n for n, s in status.items() if s == "frozen"]
    if not frozen:
        raise Incorrect("no stage is frozen, so there is no frozen BatchNorm to keep: freeze the backbone first.")
    bns = _batchnorms(model, frozen)
    if not bns:
        return f"the frozen stages ({', '.join(frozen)}) hold no BatchNorm layer: nothing can drift."
    before = [(b.running_mean.clone(), b.running_var.clone()) for _, _, b in bns]
    was_eval = not model.training
    with _restored(model), torch.no_grad():
        try:
            model.train()(example if example is not None else _example_input(model))
        except Exception as err:
            hooks = " (a forward pre-hook must return None, or it replaces the input)" if any(
                b._forward_pre_hooks for _, _, b in bns) else ""
            raise Incorrect(f"a forward pass in train mode fails ({type(err).__name__}: {err}){hooks}.") from None
        moved = [(s, n, "running_mean" if not torch.equal(b.running_mean, mean) else "running_var")
                 for (s, n, b), (mean, var) in zip(bns, before)
                 if not (torch.equal(b.running_mean, mean) and torch.equal(b.running_var, var))]
    if moved:
        stage, name, what = moved[0]
        tip = (" (model.eval() alone does not last: every training epoch calls model.train())"
               if was_eval else "")
        raise Incorrect(f"{stage}'s BatchNorm {what} changed in train mode ({name}, and "
                        f"{len(moved) - 1} more BatchNorm layers in frozen stages): requires_grad=False "
                        f"does not stop BatchNorm from updating its running statistics. Keep these layers "
                        f"in eval mode in a way that survives model.train(){tip}.")
    return f"the {len(bns)} BatchNorm layers in {', '.join(frozen)} keep their statistics in train mode."


# --- learning rates of optimizer groups -----------------------------------------------

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
    groups, parts = _groups_of(answer), stages(_expect_module(model))
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


# --- preprocessing that matches the weights -------------------------------------------

def _test_image() -> torch.Tensor:
    """A smooth, asymmetric uint8 (3, 300, 400) image: gradients and a wave pattern."""
    y = torch.linspace(0, 1, 300)[:, None].expand(300, 400)
    x = torch.linspace(0, 1, 400)[None, :].expand(300, 400)
    wave = (torch.sin(12 * x) * torch.cos(9 * y) + 1) / 2
    return (torch.stack([x, y, wave]) * 255).round().to(torch.uint8)


def _reference(weights: Any) -> Callable:
    """The weights' own preprocessing: `weights.transforms()`, or `weights` if it is a transform."""
    if isinstance(weights, WeightsEnum) or callable(getattr(weights, "transforms", None)):
        return weights.transforms()
    if callable(weights):
        return weights
    raise TypeError(f"expected torchvision weights (e.g. ResNet18_Weights.IMAGENET1K_V1) or their "
                    f"transform, got {type(weights).__name__}.")


def _run_both(pipeline: Callable, reference: Callable) -> tuple[Any, torch.Tensor]:
    """Run both on the test image: as a uint8 tensor, or as a PIL image if the pipeline needs one."""
    from PIL import Image
    image = _test_image()
    try:
        return pipeline(image), reference(image)
    except Exception as tensor_error:  # e.g. a v1 ToTensor, which takes PIL images only
        pil = Image.fromarray(image.permute(1, 2, 0).numpy())
        try:
            return pipeline(pil), reference(pil)
        except Exception:
            raise Incorrect(f"your pipeline fails on an image "
                            f"({type(tensor_error).__name__}: {tensor_error}).") from None


def _transform_parts(t: Any) -> list[Any]:
    """The individual transforms inside Compose / nn.Sequential containers, in order."""
    inner = getattr(t, "transforms", None)
    if isinstance(inner, (list, tuple)):
        return [part for x in inner for part in _transform_parts(x)]
    if isinstance(t, nn.Sequential):
        return [part for x in t for part in _transform_parts(x)]
    return [t]


def _close(a: list[float] | None, b: list[float] | None) -> bool:
    return (a is not None and b is not None and len(a) == len(b)
            and all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(a, b)))


def _normalize_of(t: Any) -> tuple[list[float], list[float]] | None:
    """(mean, std) of the last Normalize-like step of a pipeline, or None if it has none."""
    norms = [p for p in _transform_parts(t) if hasattr(p, "mean") and hasattr(p, "std")]
    return (list(norms[-1].mean), list(norms[-1].std)) if norms else None


def _pixel_problem(pipeline: Callable, reference: Callable, got: torch.Tensor) -> str:
    """Why the output differs from the reference when the shapes agree."""
    mean, std = _normalize_of(reference) or (None, None)
    want = (f"mean={[round(m, 3) for m in mean]}, std={[round(s, 3) for s in std]}" if mean
            else "the weights' mean and std")
    if got.max() > 20:
        return ("values reach {:.0f}: the image was never scaled to [0, 1]. Convert with "
                "v2.ToDtype(torch.float32, scale=True) (scale=True divides by 255) before Normalize.".format(got.max()))
    if _normalize_of(pipeline) is None:
        return f"your pipeline has no Normalize: these weights expect inputs standardised with {want}."
    n_mean, n_std = _normalize_of(pipeline)
    if _close(n_mean, std) and _close(n_std, mean):
        return f"Normalize has mean and std swapped: use {want}."
    if mean and not (_close(n_mean, mean) and _close(n_std, std)):
        return (f"your Normalize uses mean={n_mean}, std={n_std}; these weights were trained with {want} "
                f"(weights.transforms() shows them).")
    squash = [p for p in _transform_parts(pipeline) if "Resize" in type(p).__name__
              and isinstance(getattr(p, "size", None), (list, tuple)) and len(p.size) == 2]
    if squash:
        return (f"Resize({list(squash[0].size)}) squashes the image to a square; the weights resize the short side, "
                f"then center-crop.")
    return ("the size and normalisation agree but the pixels differ: resize the short side and center-crop "
            "as the weights do, with bilinear interpolation.")


def check_transforms(pipeline: Callable, weights: Any) -> str:
    """`pipeline` prepares images as the weights expect: same output shape, a float dtype and
    the same values (mean absolute difference <= 0.01, largest <= 0.1) as
    `weights.transforms()` on a uint8 (3, 300, 400) test image (a PIL image if the pipeline
    only takes those). Diagnoses: no float conversion, no scaling to [0, 1], Normalize
    missing, swapped or with other values, a squashing Resize, a wrong crop size.

    weights: a torchvision weights enum member, an object with a `.transforms()` method,
    or the reference transform itself. Lessons 01 and 03.
    """
    if not callable(pipeline):
        raise TypeError(f"expected a transform (e.g. a v2.Compose), got {type(pipeline).__name__}.")
    reference = _reference(weights)
    got, expected = _run_both(pipeline, reference)
    if not isinstance(got, torch.Tensor):
        raise Incorrect(f"your pipeline returns a {type(got).__name__}, not a tensor: convert the image "
                        f"(v2.ToImage(), then v2.ToDtype(torch.float32, scale=True)) and Normalize it.")
    if not got.is_floating_point():
        raise Incorrect(f"your pipeline returns {got.dtype} values; the model needs floats in the weights' "
                        f"scale: add v2.ToDtype(torch.float32, scale=True) and then v2.Normalize(...).")
    if got.shape != expected.shape:
        sizes = (f": resize the short side to {reference.resize_size[0]}, then center-crop "
                 f"{reference.crop_size[0]}" if hasattr(reference, "crop_size") else "")
        raise Incorrect(f"your pipeline gives shape {tuple(got.shape)}, the weights' own gives "
                        f"{tuple(expected.shape)}{sizes}.")
    diff = (got.float() - expected.float()).abs()
    if diff.mean() > 0.01 or diff.max() > 0.1:
        raise Incorrect(_pixel_problem(pipeline, reference, got))
    return f"your pipeline gives the same {tuple(got.shape)} float tensor as the weights' own transforms."


# --- metrics computed by hand ---------------------------------------------------------

def _as_number(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:  # numpy scalars
        return float(value.item())
    except (AttributeError, TypeError, ValueError):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}.") from None


def _accuracy_probe() -> tuple[nn.Module, DataLoader, torch.Tensor, torch.Tensor]:
    """A model whose logits equal its input, and 10 samples in batches of 4, 4 and 2.

    Predictions are right 2, 3 and 1 times in the three batches, so the accuracy over
    samples (6 / 10) differs from the mean of the per-batch accuracies (0.583).
    """
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    preds = torch.tensor([0, 1, 0, 1, 1, 2, 0, 0, 2, 1])
    logits = nn.functional.one_hot(preds, 3).float() * 3 - 1
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    loader = DataLoader(TensorDataset(logits, labels), batch_size=4, shuffle=False)
    return model, loader, logits, labels


def check_accuracy_fn(accuracy: Callable[[nn.Module, DataLoader], float]) -> str:
    """`accuracy(model, loader)` returns the fraction of samples classified right, in [0, 1].

    Runs it on a check set whose last batch is short, so the typical mistake (the mean
    of per-batch accuracies) gives a different number. Lessons 03 and 08.
    """
    model, loader, logits, labels = _accuracy_probe()
    got = _as_number(accuracy(model, loader), "accuracy(model, loader)")
    hits = logits.argmax(1) == labels
    right = hits.float().mean().item()
    per_batch = sum(hits[i:i + 4].float().mean().item() for i in range(0, 10, 4)) / 3
    if math.isclose(got, right, abs_tol=1e-6):
        return f"accuracy over the {len(labels)} samples of the check set: {got:.3f}."
    if math.isclose(got, per_batch, abs_tol=1e-4):
        raise Incorrect(f"you returned {got:.3f}, the mean of the per-batch accuracies. The last batch holds only "
                        f"2 samples but counts as much as a full batch: add up the correct predictions over all "
                        f"batches and divide by the number of samples.")
    if math.isclose(got, 100 * right, abs_tol=1e-4):
        raise Incorrect(f"you returned {got:g}, a percentage: return a fraction in [0, 1].")
    if got > 1:
        raise Incorrect(f"you returned {got:.3f}, more than 1: divide the number of correct predictions by the "
                        f"number of samples (len(loader.dataset)), not by the number of batches.")
    if math.isclose(got, 1 - right, abs_tol=1e-6):
        raise Incorrect(f"you returned {got:.3f}, the error rate: count the predictions that equal the label.")
    raise Incorrect(f"you returned {got:.3f} on a check set of 10 samples in batches of 4, 4 and 2: count the "
                    f"samples whose argmax over the logits equals the label, and divide by the number of samples.")


def _binary_probe() -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and targets with TP=2, FP=1, FN=3, TN=4 for class 1 (positive)."""
    targets = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    preds = torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    return preds, targets


def _near(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b))


def check_precision_recall_fn(precision_recall: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]) -> str:
    """`precision_recall(preds, targets)` returns (precision, recall) of the positive class 1.

    preds, targets: (N,) int64 class indices (0 or 1). Wrong answers it names: the two
    swapped (or the arguments passed the other way round), the scores of class 0, accuracy.
    Lesson 08.
    """
    preds, targets = _binary_probe()
    answer = precision_recall(preds.clone(), targets.clone())
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Incorrect(f"return a pair (precision, recall), got {type(answer).__name__}.")
    got = tuple(_as_number(v, "precision and recall") for v in answer)
    tp = int(((preds == 1) & (targets == 1)).sum())
    fp, fn = int(((preds == 1) & (targets == 0)).sum()), int(((preds == 0) & (targets == 1)).sum())
    tn = len(targets) - tp - fp - fn
    right, negative = (tp / (tp + fp), tp / (tp + fn)), (tn / (tn + fn), tn / (tn + fp))
    if _near(got, right):
        return f"precision {got[0]:.3f}, recall {got[1]:.3f} on the check set (TP={tp}, FP={fp}, FN={fn})."
    if _near(got, right[::-1]):
        raise Incorrect("precision and recall are swapped: precision = TP / (TP + FP), the share of predicted "
                        "positives that are right; recall = TP / (TP + FN), the share of true positives found. "
                        "(Or the arguments went in the other order: preds first, then targets.)")
    if _near(got, negative):
        raise Incorrect("those are the precision and recall of class 0: the positive class is 1.")
    if any(math.isclose(v, (tp + tn) / len(targets), abs_tol=1e-4) for v in got):
        raise Incorrect("one of your numbers is the accuracy: precision divides by the predicted positives "
                        "(TP + FP), recall by the actual positives (TP + FN).")
    raise Incorrect(f"you returned ({got[0]:.3f}, {got[1]:.3f}): count TP, FP and FN for class 1, then "
                    f"precision = TP / (TP + FP) and recall = TP / (TP + FN).")


def check_confusion_matrix_fn(confusion: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> str:
    """`confusion(preds, targets, num_classes)` returns the (C, C) count matrix whose entry
    [i, j] counts samples of true class i predicted as class j (scikit-learn's layout).
    Lesson 08."""
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    preds = torch.tensor([0, 1, 2, 1, 1, 2, 0, 2, 1, 1])
    expected = torch.zeros(3, 3, dtype=torch.int64)
    for t, p in zip(targets.tolist(), preds.tolist()):
        expected[t, p] += 1
    got = torch.as_tensor(confusion(preds.clone(), targets.clone(), 3))
    if tuple(got.shape) != (3, 3):
        raise Incorrect(f"for 3 classes the matrix has shape (3, 3), got {tuple(got.shape)}.")
    if torch.equal(got.long(), expected):
        return "rows are the true classes, columns the predictions; the counts are right."
    if torch.equal(got.long(), expected.T):
        raise Incorrect("your matrix is transposed: row i should be the true class, column j the prediction.")
    if math.isclose(float(got.sum()), 1.0, abs_tol=1e-4) or torch.allclose(got.float().sum(1), torch.ones(3)):
        raise Incorrect("your matrix is normalised: return the raw counts.")
    raise Incorrect(f"entry [i, j] should count samples of true class i predicted as j; your matrix sums to "
                    f"{float(got.sum()):g} for 10 samples.")


# --- gradual unfreezing ---------------------------------------------------------------

def _epoch_problem(epoch: int, before: dict[str, str], now: dict[str, str], want: list[str]) -> str:
    """Why the stages training at `epoch` are not the `want`ed ones."""
    order, head = list(now), list(now)[-1]
    training = [n for n in order if now[n] == "trainable"]
    if now[head] != "trainable":
        return f"at epoch {epoch} your head has requires_grad=False: the new classifier must train at every epoch."
    partial = [n for n in order if now[n] == "partial"]
    if partial:
        return f"at epoch {epoch}, {partial[0]} is only partly unfrozen: unfreeze a stage as a whole."
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


def check_gradual_unfreezing(unfreeze: Callable[[nn.Module, int], Any], model: nn.Module | None = None) -> str:
    """`unfreeze(model, epoch)`, called at the start of epochs 0, 1, 2, ... on one model,
    leaves the last `epoch + 1` stages trainable and the rest frozen (ULMFiT order: the
    head alone first, then one more stage per epoch, from the output down).

    model: default a fresh torchvision resnet18(num_classes=2); a model passed in is made
    fully trainable first and changed in place. Lesson 07.
    """
    from torchvision.models import resnet18
    model = resnet18(num_classes=2) if model is None else _expect_module(model)
    for p in model.parameters():
        p.requires_grad_(True)
    order = [n for n, s in stage_status(model).items() if s != "empty"]
    before: dict[str, str] = {}
    for epoch in range(len(order) + 1):
        unfreeze(model, epoch)
        now = {n: s for n, s in stage_status(model).items() if s != "empty"}
        want = order[max(0, len(order) - 1 - epoch):]
        if [n for n in order if now[n] == "trainable"] != want or any(now[n] == "partial" for n in order):
            raise Incorrect(_epoch_problem(epoch, before, now, want))
        before = now
    return (f"epoch 0 trains {order[-1]} only; each epoch adds the next stage down; "
            f"by epoch {len(order) - 1} everything trains.")


# ======================================================================================
# 4. The question sets of the lessons
# ======================================================================================

# --- lesson 03: feature extraction ----------------------------------------------------

def _l03_head(model: nn.Module) -> str:
    _expect_family(model, "resnet")
    return check_head(model, num_classes=2, in_features=512) + " " + check_trainable(model, ["head"])


def _l03_transforms(pipeline: Callable, weights: Any = None) -> str:
    from torchvision.models import ResNet18_Weights
    return check_transforms(pipeline, ResNet18_Weights.IMAGENET1K_V1 if weights is None else weights)


lesson03 = ExerciseSet(
    "03",
    q1=Exercise(
        title="Lesson 03, exercise 1: a feature extractor with a new head",
        task="Take a resnet18, freeze its whole backbone and give it a new head for our 2 classes: "
             "a linear layer on the 512 pooled features. Only the head may train.",
        usage="ex.q1.check(model)",
        checker=_l03_head,
        hints=("Freeze first: a loop `for p in model.parameters(): p.requires_grad = False`. "
               "A layer created afterwards starts with requires_grad=True.",
               "On a ResNet the head is `model.fc`; `model.fc.in_features` tells you the 512."),
        solution_code="""
from torch import nn

# model: a resnet18 (pretrained)
for p in model.parameters():
    p.requires_grad = False                             # freeze everything ...
model.fc = nn.Linear(model.fc.in_features, 2)          # ... then add the new head (trainable)
""",
    ),
    q2=Exercise(
        title="Lesson 03, exercise 2: accuracy over samples",
        task="Write `accuracy(model, loader)` that returns the fraction of samples (in [0, 1]) whose "
             "predicted class (argmax of the logits) equals the label. Beware the last batch, which "
             "can be shorter than the others.",
        usage="ex.q2.check(accuracy)",
        checker=check_accuracy_fn,
        hints=("Keep two running totals over the loop: the number of correct predictions and the "
               "number of samples seen.",
               "The mean of per-batch accuracies over-weights a short last batch: divide the total "
               "correct by the total number of samples, once, after the loop."),
        solution_code="""
import torch

def accuracy(model, loader):
    device = next(model.parameters()).device
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        for x, y in loader:
            preds = model(x.to(device)).argmax(dim=1).cpu()
            correct += (preds == y).sum().item()
            seen += len(y)
    return correct / seen
""",
    ),
    q3=Exercise(
        title="Lesson 03, exercise 3: preprocessing that matches the weights",
        task="Build with torchvision.transforms.v2 the pipeline that prepares a uint8 image tensor "
             "the way resnet18's ImageNet weights expect (compare `weights.transforms()`): resize, crop, "
             "scale to floats, normalise. Pass your weights as the second argument if you use others.",
        usage="ex.q3.check(my_transform)",
        checker=_l03_transforms,
        hints=("Print `ResNet18_Weights.IMAGENET1K_V1.transforms()`: it lists the resize size, the crop "
               "size, the mean and the std.",
               "v2.Resize(256) resizes the short side (Resize((224, 224)) would squash the image); "
               "v2.ToDtype(torch.float32, scale=True) divides by 255."),
        solution_code="""
import torch
from torchvision.transforms import v2

my_transform = v2.Compose([
    v2.Resize(256),                                  # short side to 256
    v2.CenterCrop(224),
    v2.ToDtype(torch.float32, scale=True),           # uint8 0..255 -> float 0..1
    v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
""",
    ),
)


# --- lesson 04: freezing layers -------------------------------------------------------

def _l04_freeze(model: nn.Module) -> str:
    return check_trainable(_expect_family(model, "resnet"), ["layer4", "head"])


def _l04_batchnorm(model: nn.Module) -> str:
    return check_frozen_batchnorm(_expect_family(model, "resnet"))


def _l04_count(n_trainable: int, model: nn.Module) -> str:
    return check_parameter_count(n_trainable, _expect_family(model, "resnet"), ["layer4", "head"])


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


# --- lesson 05: learning rates --------------------------------------------------------

def _l05_groups(groups: Any, model: nn.Module) -> str:
    return check_lrs(groups, _expect_family(model, "resnet"), lr=1e-3, factor=2.6)


def _l05_onecycle(scheduler: Any, model: nn.Module) -> str:
    if not isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        raise Incorrect(f"expected a torch.optim.lr_scheduler.OneCycleLR, got {type(scheduler).__name__}.")
    return check_lrs(scheduler.optimizer, _expect_family(model, "resnet"), lr=1e-3, factor=2.6, key="max_lr")


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


# --- lesson 07: gradual unfreezing ----------------------------------------------------

def _l07_groups(groups: Any, model: nn.Module) -> str:
    check_trainable(_expect_family(model, "resnet"), ["layer3", "layer4", "head"])
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


# --- lesson 08: evaluation ------------------------------------------------------------

lesson08 = ExerciseSet(
    "08",
    q1=Exercise(
        title="Lesson 08, exercise 1: precision and recall",
        task="Write `precision_recall(preds, targets)` for a 2-class problem (1 = positive): it "
             "returns (precision, recall) of class 1. preds and targets are int64 tensors of shape (N,).",
        usage="ex.q1.check(precision_recall)",
        checker=check_precision_recall_fn,
        hints=("Count TP (predicted 1, truly 1), FP (predicted 1, truly 0) and FN (predicted 0, truly 1).",
               "Precision asks 'of what I flagged, how much was right?': TP / (TP + FP). Recall asks "
               "'of what was there, how much did I find?': TP / (TP + FN)."),
        solution_code="""
def precision_recall(preds, targets):
    tp = ((preds == 1) & (targets == 1)).sum().item()
    fp = ((preds == 1) & (targets == 0)).sum().item()
    fn = ((preds == 0) & (targets == 1)).sum().item()
    return tp / (tp + fp), tp / (tp + fn)
""",
    ),
    q2=Exercise(
        title="Lesson 08, exercise 2: a confusion matrix",
        task="Write `confusion(preds, targets, num_classes)` returning the (C, C) matrix of counts "
             "whose entry [i, j] is the number of samples of true class i predicted as class j.",
        usage="ex.q2.check(confusion)",
        checker=check_confusion_matrix_fn,
        hints=("Start from torch.zeros(num_classes, num_classes, dtype=torch.int64).",
               "Loop over pairs (t, p) of target and prediction and add 1 at [t, p]: rows are the truth."),
        solution_code="""
import torch

def confusion(preds, targets, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p in zip(targets.tolist(), preds.tolist()):
        matrix[t, p] += 1
    return matrix
""",
    ),
)


# --- lesson01 (added by the lesson01 notebook) ---
# --- lesson 01: what a pretrained model knows -----------------------------------------

_L01_ZOO = ("resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
            "efficientnet_b0", "convnext_tiny", "vgg16", "inception_v3")
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


def check_stage_with_channels(answer: str, channels: int = 256) -> str:
    """`answer` names the resnet18 stage whose output has `channels` feature maps. Lesson 01."""
    _answered(answer, '"layer1"')
    shapes = resnet18_stage_shapes()
    names = list(shapes) + ["head"]
    if not isinstance(answer, str):
        raise Incorrect(f"give the stage's name as a string, one of {names}, not {answer!r}.")
    if answer not in names:
        raise Incorrect(f"resnet18 has no stage {answer!r}: its stages are {names} (see ftlib.stages(model)).")
    if answer == "head":
        raise Incorrect("the head outputs class scores (one number per class), not feature maps: "
                        "look at the stages before it.")
    c, h, w = shapes[answer]
    if c != channels:
        raise Incorrect(f"{answer} outputs {c} channels ({c}x{h}x{w} for a 64 px image), not {channels}: "
                        f"the channels double at each of layer2, layer3 and layer4.")
    return f"{answer} outputs {c} channels of {h}x{w} for a 64 px image ({h * 4}x{w * 4} at 256 px)."


def check_conv1_parameters(answer: int, model: nn.Module | None = None) -> str:
    """`answer` is the number of parameters (weights and bias, if any) of the first
    convolution of `model` (default: a torchvision resnet18). Lesson 01."""
    _answered(answer, "64 * 3 * 7 * 7")
    if model is None:
        from torchvision.models import resnet18
        with torch.random.fork_rng(devices=[]):
            model = resnet18()
    conv = next((m for m in _expect_module(model).modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("this model has no nn.Conv2d layer: pass a convolutional network.")
    if isinstance(answer, torch.Tensor):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer != int(answer):
        raise Incorrect(f"expected a whole number of parameters, got {answer!r}.")
    answer, (out_c, in_c, kh, kw) = int(answer), conv.weight.shape
    expected = _count(conv)
    if answer == expected:
        bias = f" + {out_c} biases" if conv.bias is not None else " (no bias)"
        return f"{out_c} filters x {in_c} input channels x {kh}x{kw} = {_fmt(out_c * in_c * kh * kw)} weights{bias}."
    wrong = {out_c: f"{out_c} is the number of filters; each filter has its own {in_c}x{kh}x{kw} weights.",
             in_c * kh * kw: f"{answer} is the size of one filter ({in_c}x{kh}x{kw}); there are {out_c} of them.",
             out_c * kh * kw: f"{_fmt(answer)} leaves out the {in_c} input channels: each filter spans all "
                              f"of them (RGB), so it is {in_c}x{kh}x{kw}.",
             len(list(conv.parameters())): f"{answer} is a number of parameter tensors: count the numbers "
                                           f"inside them (p.numel())."}
    if conv.bias is None:
        wrong[expected + out_c] = (f"{_fmt(answer)} adds a bias per filter, but this conv1 has none "
                                   f"(bias=False: the BatchNorm after it adds its own shift).")
    if answer in wrong:
        raise Incorrect(wrong[answer])
    raise Incorrect(f"{_fmt(answer)} is not the number of parameters of the first convolution "
                    f"(weight shape {tuple(conv.weight.shape)}): multiply out its shape.")


def check_smallest_model(answer: str, min_acc1: float = 75.0, archs: tuple[str, ...] = _L01_ZOO) -> str:
    """`answer` is the architecture with the fewest parameters among `archs` whose ImageNet
    top-1 (torchvision metadata of its DEFAULT weights) is at least `min_acc1` %. Lesson 01."""
    from .pretrained import model_zoo_table
    _answered(answer, '"resnet18"')
    rows = {r["arch"]: r for r in model_zoo_table(archs)}
    if not isinstance(answer, str) or answer not in rows:
        raise Incorrect(f"answer with one architecture name from the table: {', '.join(rows)}; got {answer!r}.")
    fit = [r for r in rows.values() if r["acc1"] >= min_acc1]
    best, mine = min(fit, key=lambda r: r["params"]), rows[answer]
    if mine["acc1"] < min_acc1:
        raise Incorrect(f"{answer} reaches {mine['acc1']:.2f} % top-1, below the {min_acc1:g} % asked for.")
    if answer != best["arch"]:
        cheapest = min(fit, key=lambda r: r["gflops"])["arch"]
        why = " It is the cheapest in GFLOPs, but the question asks for parameters." if answer == cheapest else ""
        raise Incorrect(f"{answer} has {mine['params'] / 1e6:.2f} M parameters; another model above "
                        f"{min_acc1:g} % has fewer.{why} Sort the qualifying rows by 'params'.")
    return (f"{answer}: {mine['params'] / 1e6:.2f} M parameters, {mine['acc1']:.2f} % top-1, "
            f"{mine['gflops']:.2f} GFLOPs per 224 px image.")


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

__all__ += ["resnet18_stage_shapes", "check_stage_with_channels", "check_conv1_parameters",
            "check_smallest_model", "lesson01"]
# --- end lesson01 ---


# --- lesson02 (added by the lesson02 notebook) ---
# --- lesson 02: scratch vs pretrained -------------------------------------------------

def _images_and_labels(subset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, H, W) uint8, labels (N,) int64) of a TensorImageDataset or a torch Subset of one."""
    if subset is None or subset is Ellipsis:
        raise Incorrect("replace the placeholder with your subset: a data set of images and labels "
                        "taken from data.train.")
    if isinstance(subset, torch.utils.data.Subset) and hasattr(subset.dataset, "images"):
        idx = torch.as_tensor(list(subset.indices), dtype=torch.int64)
        return subset.dataset.images[idx], subset.dataset.labels[idx]
    if hasattr(subset, "images") and hasattr(subset, "labels"):
        return subset.images, torch.as_tensor(subset.labels).long()
    raise TypeError(f"expected a data set with `.images` and `.labels` (a TensorImageDataset, as "
                    f"data.train is) or a torch.utils.data.Subset of one, got {type(subset).__name__}.")


def _fingerprints(images: torch.Tensor) -> list[int]:
    """One hash per image (its raw bytes), to find an image of one data set in another."""
    return [hash(row.numpy().tobytes()) for row in images.reshape(len(images), -1)]


def _balance_problem(counts: list[int], per_class: int) -> str | None:
    """Why per-class counts are wrong, or None when every class has `per_class` images."""
    if all(c == per_class for c in counts):
        return None
    if sum(counts) == per_class:
        return (f"your subset has {per_class} images in total (per class: {counts}); the task asks for "
                f"{per_class} images of *each* class.")
    if len(set(counts)) > 1:
        return (f"the classes are unbalanced: {counts} images per class. Taking the first N images of a "
                f"data set gives whatever classes happen to come first; pick the images class by class.")
    return f"every class has {counts[0]} images; the task asks for {per_class} per class."


def check_balanced_subset(subset: Any, source: Any, per_class: int = 10) -> str:
    """`subset` holds exactly `per_class` images of each class, each one an image of `source` with its label, none twice.

    subset, source: TensorImageDataset (uint8 images (N, C, H, W), int64 labels (N,)) or a
    torch Subset of one. Catches the typical mistakes: N images in total instead of N per
    class, the first N images (unbalanced), images from another split, images and labels
    shuffled separately, an image taken twice. Lesson 02.
    """
    images, labels = _images_and_labels(subset)
    src_images, src_labels = _images_and_labels(source)
    num_classes = int(src_labels.max()) + 1
    problem = _balance_problem(torch.bincount(labels, minlength=num_classes).tolist(), per_class)
    if problem:
        raise Incorrect(problem)
    owner = dict(zip(_fingerprints(src_images), src_labels.tolist()))
    prints = _fingerprints(images)
    for i, (fp, label) in enumerate(zip(prints, labels.tolist())):
        if fp not in owner:
            raise Incorrect(f"image {i} of your subset is not in the source data set: take the images from "
                            f"data.train itself (not the test split, and before any transform).")
        if owner[fp] != label:
            raise Incorrect(f"image {i} is labelled {label}, but in the source it has label {owner[fp]}: keep "
                            f"each image with its own label (index images and labels with the same indices).")
    if len(set(prints)) < len(prints):
        raise Incorrect("an image appears more than once: draw without replacement (torch.randperm), "
                        "not with torch.randint.")
    return f"{len(prints)} distinct images, {per_class} of each of the {num_classes} classes, each with its own label."


def _by_count(values: Any, labels: list[int], what: str) -> dict[int, float]:
    """Accuracies keyed by label count, from a dict {count: acc} or a list aligned with `labels`."""
    if isinstance(values, dict):
        missing = [n for n in labels if n not in values]
        if missing:
            raise ValueError(f"{what} has no accuracy for the label counts {missing}.")
        return {n: float(values[n]) for n in labels}
    values = list(values)
    if len(values) != len(labels):
        raise ValueError(f"{what} has {len(values)} accuracies for {len(labels)} label counts.")
    return dict(zip(labels, map(float, values)))


def labels_to_match(labels: list[int], scratch: Any, pretrained: Any, reference: int = 10) -> int | None:
    """The smallest label count at which scratch's accuracy reaches pretrained's at `reference`; None if none.

    scratch, pretrained: mean accuracies, as {labels per class: accuracy} or lists aligned with
    `labels` (ascending). Lesson 02 (the curve of scratch vs pretrained).
    """
    labels = sorted(labels)
    if reference not in labels:
        raise ValueError(f"reference={reference} is not one of the measured label counts {labels}.")
    s, p = _by_count(scratch, labels, "scratch"), _by_count(pretrained, labels, "pretrained")
    return next((n for n in labels if s[n] >= p[reference]), None)


def _matching_problem(answer: Any, labels: list[int], s: dict[int, float], target: float,
                      expected: int | None, reference: int) -> str:
    """The message for a wrong answer to lesson 02's question 2."""
    if answer is Ellipsis:
        return "replace ... with your answer: a label count from the list you measured, or None."
    if isinstance(answer, float) and not float(answer).is_integer():
        return f"{answer} looks like an accuracy; the question asks for a number of labels per class."
    if expected is None:
        return (f"scratch never reaches {100 * target:.1f} % (pretrained at {reference} labels/class): its best is "
                f"{100 * max(s.values()):.1f} %. The answer is None: more than {labels[-1]} labels per class.")
    if answer is None:
        return f"scratch does reach {100 * target:.1f} % within the measured counts: find the first count where it does."
    if answer not in labels:
        return f"answer one of the measured label counts {labels} (or None)."
    if answer == reference:
        return (f"{reference} is where the pretrained model is; the question is where the *scratch* curve gets "
                f"as high ({100 * target:.1f} %).")
    if s[answer] < target:
        return f"at {answer} labels/class scratch is at {100 * s[answer]:.1f} %, still below {100 * target:.1f} %."
    return f"scratch already reaches {100 * target:.1f} % at a smaller count: give the smallest one."


def check_labels_to_match(answer: Any, labels: list[int], scratch: Any, pretrained: Any, reference: int = 10) -> str:
    """`answer` is `labels_to_match(labels, scratch, pretrained, reference)`: a label count, or None.

    The accuracies are the notebook's own measurements, passed in explicitly. Lesson 02.
    """
    labels = sorted(labels)
    expected = labels_to_match(labels, scratch, pretrained, reference)
    s = _by_count(scratch, labels, "scratch")
    target = _by_count(pretrained, labels, "pretrained")[reference]
    if answer is None and expected is None or (answer is not None and answer is not Ellipsis
                                               and not isinstance(answer, bool) and answer == expected):
        if expected is None:
            return (f"scratch stays below pretrained-at-{reference} ({100 * target:.1f} %) up to {labels[-1]} labels "
                    f"per class: the pretrained start is worth more than {labels[-1] // reference}x the labels here.")
        return (f"scratch needs {expected} labels per class to match pretrained at {reference}: "
                f"{expected / reference:g}x the labels.")
    raise Incorrect(_matching_problem(answer, labels, s, target, expected, reference))


lesson02 = ExerciseSet(
    "02",
    q1=Exercise(
        title="Lesson 02, exercise 1: a class-balanced subset",
        task="Build a data set with exactly 10 images of each class, taken from `data.train` (each image "
             "with its own label, none twice). Do it by hand with torch: for each class, find its indices, "
             "shuffle them with a seeded generator, keep 10. Then compare with `data.train.subset(10)`.",
        usage="ex.q1.check(my_subset, data.train)",
        checker=check_balanced_subset,
        hints=("`(data.train.labels == c).nonzero().flatten()` gives the indices of class c; "
               "`torch.randperm(len(idx), generator=g)` shuffles them.",
               "Concatenate the 10 kept indices of every class, then build "
               "`TensorImageDataset(data.train.images[keep], data.train.labels[keep], data.class_names)`: "
               "one index tensor for both keeps each image with its label."),
        solution_code="""
import torch
from ftlib import TensorImageDataset

g = torch.Generator().manual_seed(0)
keep = []
for c in range(len(data.class_names)):
    idx = (data.train.labels == c).nonzero().flatten()          # every image of class c
    keep.append(idx[torch.randperm(len(idx), generator=g)[:10]])  # 10 of them, at random
keep = torch.cat(keep)
my_subset = TensorImageDataset(data.train.images[keep], data.train.labels[keep], data.class_names)
""",
    ),
    q2=Exercise(
        title="Lesson 02, exercise 2: read the curve",
        task="How many labels per class does the *scratch* model need to reach the mean accuracy that the "
             "pretrained model has with 10 labels per class? Answer with one of the label counts you "
             "measured (the smallest that gets there), or None if scratch never gets there in your run.",
        usage='ex.q2.check(my_answer, B["labels"], mean["scratch"], mean["pretrained"])',
        checker=check_labels_to_match,
        hints=("Find the pretrained curve's height at 10 labels per class, then move right along the "
               "scratch curve until it is at least as high.",
               "In code: `target = mean['pretrained'][10]`, then the first n in B['labels'] with "
               "`mean['scratch'][n] >= target`, or None if there is no such n."),
        solution_code="""
target = mean["pretrained"][10]
my_answer = next((n for n in B["labels"] if mean["scratch"][n] >= target), None)
""",
    ),
)

__all__ += ["check_balanced_subset", "labels_to_match", "check_labels_to_match", "lesson02"]
# --- end lesson02 ---


# --- lesson06 (added by the lesson06 notebook) ---
# --- lesson 06: overfitting -----------------------------------------------------------

# Transforms that break the label of an upright product photo (Fashion-MNIST and its stand-in):
# shoes and shirts are never shown upside down, and a crop that loses most of the item loses its class.
RETAIL_MAX_ROTATION = 20.0   # degrees
RETAIL_MIN_CROP_SCALE = 0.4  # fraction of the image area a random crop must keep


def _degrees(t: Any) -> float:
    """The largest absolute angle (degrees) a rotation-like transform may draw."""
    degrees = getattr(t, "degrees", 0)
    values = degrees if isinstance(degrees, (list, tuple)) else [degrees]
    return max(abs(float(v)) for v in values)


def _retail_label_problem(parts: list[Any]) -> str | None:
    """Why a transform in `parts` makes a retail image lie about its label, or None."""
    for t in parts:
        name = type(t).__name__
        if name == "RandomVerticalFlip" and getattr(t, "p", 1) > 0:
            return ("RandomVerticalFlip turns shoes and shirts upside down, which no catalogue photo shows: the "
                    "augmented images no longer look like their class. Keep RandomHorizontalFlip, drop the vertical one.")
        if name in ("RandomRotation", "RandomAffine") and _degrees(t) > RETAIL_MAX_ROTATION:
            return (f"{name} draws angles up to {_degrees(t):g} degrees; products are photographed upright, so "
                    f"keep rotations small (at most {RETAIL_MAX_ROTATION:g} degrees).")
        scale = getattr(t, "scale", None)
        if name == "RandomResizedCrop" and scale is not None and min(scale) < RETAIL_MIN_CROP_SCALE:
            return (f"RandomResizedCrop may keep only {min(scale):.0%} of the image, which can cut the product "
                    f"away; use scale=({RETAIL_MIN_CROP_SCALE}, 1.0) or more.")
    return None


def _retail_image() -> torch.Tensor:
    """A seeded uint8 (3, 64, 64) test image: a bright box on a dark background, with noise."""
    g = torch.Generator().manual_seed(6)
    image = torch.randint(0, 60, (3, 64, 64), generator=g, dtype=torch.uint8)
    image[:, 12:52, 20:44] = 200
    return image


def check_augmentation(pipeline: Callable) -> str:
    """A train-time augmentation for 64 px retail images (upright products): it returns a
    (3, 64, 64) tensor for a uint8 (3, 64, 64) image, is random (different outputs on the same
    image), and contains no transform that breaks the label: no vertical flip, no rotation
    over RETAIL_MAX_ROTATION degrees, no crop keeping under RETAIL_MIN_CROP_SCALE of the area.
    Inspects the transforms inside Compose / RandomApply / RandomChoice. Lesson 06.
    """
    if not callable(pipeline):
        raise TypeError(f"expected a transform (e.g. a v2.Compose), got {type(pipeline).__name__}.")
    problem = _retail_label_problem(_transform_parts(pipeline))
    if problem:
        raise Incorrect(problem)
    image = _retail_image()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            outputs = [pipeline(image.clone()) for _ in range(8)]
        except Exception as error:
            raise Incorrect(f"your pipeline fails on a uint8 (3, 64, 64) image tensor "
                            f"({type(error).__name__}: {error}).") from None
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        raise Incorrect(f"your pipeline returns a {type(outputs[0]).__name__}, not a tensor: keep the image a "
                        f"tensor (v2 transforms accept uint8 tensors directly).")
    if any(tuple(o.shape) != (3, 64, 64) for o in outputs):
        raise Incorrect(f"your pipeline turns a (3, 64, 64) image into {tuple(outputs[0].shape)}: every image of a "
                        f"batch must keep the model's input size; give RandomResizedCrop size=64.")
    if all(torch.equal(outputs[0], o) for o in outputs[1:]):
        raise Incorrect("your pipeline gave the same output 8 times: that is preprocessing, not augmentation. "
                        "Add random transforms (RandomHorizontalFlip, RandomResizedCrop, ColorJitter, ...).")
    names = [type(t).__name__ for t in _transform_parts(pipeline)]
    return f"a random, label-preserving pipeline for upright products: {', '.join(names)}."


def _owners(model: nn.Module) -> dict[int, tuple[str, bool]]:
    """{id(parameter): (qualified name, exempt from weight decay)}: norm-layer and bias parameters are exempt."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    owners = {}
    for module_name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            exempt = isinstance(module, norm_types) or pname == "bias"
            owners[id(p)] = (f"{module_name}.{pname}".lstrip("."), exempt)
    return owners


def check_weight_decay(optimizer: Any, model: nn.Module, weight_decay: float = 0.05) -> str:
    """`optimizer` is AdamW (decoupled weight decay) holding every trainable parameter of `model`
    once; conv and linear weights get `weight_decay`, norm-layer and bias parameters get 0.
    Lesson 06.
    """
    model = _expect_module(model, "check(optimizer, model)")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"expected a torch optimizer, got {type(optimizer).__name__}.")
    if type(optimizer) is not torch.optim.AdamW:
        raise Incorrect(f"this is {type(optimizer).__name__}: with Adam, weight_decay is an L2 term added to the "
                        f"gradient and then rescaled by Adam's per-parameter step sizes, so it barely regularises "
                        f"weights with large gradients. Use torch.optim.AdamW, which decays the weights directly.")
    owners, seen = _owners(model), {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in owners:
                raise Incorrect("the optimizer holds parameters that are not in this model: build it from the model "
                                "you pass to check().")
            if id(p) in seen:
                raise Incorrect(f"{owners[id(p)][0]} is in two groups: give each parameter exactly one group.")
            seen[id(p)] = float(group.get("weight_decay", 0.0))
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise Incorrect(f"{len(missing)} trainable parameters are in no group (e.g. {missing[0]}): the optimizer "
                        f"would never update them.")
    decayed = [owners[i][0] for i, wd in seen.items() if owners[i][1] and wd > 0]
    if decayed:
        raise Incorrect(f"{len(decayed)} norm-layer or bias parameters get weight decay (e.g. {decayed[0]}): they "
                        f"set scales and offsets, not features, and shrinking them toward 0 only hurts. Put them in "
                        f"a group with weight_decay=0.")
    wrong = [(owners[i][0], wd) for i, wd in seen.items() if not owners[i][1] and not math.isclose(wd, weight_decay)]
    if wrong:
        raise Incorrect(f"{wrong[0][0]} has weight_decay={wrong[0][1]:g}; conv and linear weights should get "
                        f"{weight_decay:g} (pass it in their group's dict).")
    n_decay = sum(1 for i in seen if not owners[i][1])
    return (f"AdamW: {n_decay} weight tensors decay at {weight_decay:g}; "
            f"{len(seen) - n_decay} norm and bias tensors are left alone.")


EARLY_STOP_VAL_LOSSES = (1.20, 0.95, 0.81, 0.84, 0.79, 0.83, 0.88, 0.91, 0.70)


def _early_stop_reference(losses: tuple[float, ...], patience: int) -> tuple[int, int]:
    """(epoch after which training stops, best epoch), both 1-based, for val losses `losses`."""
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, loss in enumerate(losses, start=1):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return len(losses), best_epoch


def check_early_stopping(stop_epoch: Any, restored_epoch: Any) -> str:
    """With the validation losses EARLY_STOP_VAL_LOSSES (epochs 1..9) and patience 3: after which
    epoch does early stopping end training, and whose weights does restore_best put back? Lesson 06.
    """
    stop, best = _early_stop_reference(EARLY_STOP_VAL_LOSSES, patience=3)
    got_stop, got_best = int(_as_number(stop_epoch, "stop_epoch")), int(_as_number(restored_epoch, "restored_epoch"))
    if got_stop == len(EARLY_STOP_VAL_LOSSES):
        raise Incorrect("training never gets to the last epoch: count the epochs without a new best after the "
                        "best one; the third such epoch ends training.")
    if got_stop != stop:
        raise Incorrect(f"training does not stop after epoch {got_stop}: count only epochs whose loss is not a "
                        f"new best, and reset the count whenever a new best appears.")
    if got_best == got_stop:
        raise Incorrect("restore_best does not keep the last epoch's weights: it puts back those of the epoch "
                        "with the lowest validation loss seen before stopping.")
    if got_best != best:
        raise Incorrect(f"epoch {got_best} is not the best one before the stop: look for the lowest validation "
                        f"loss among epochs 1 to {stop}.")
    return f"training stops after epoch {stop} and the weights of epoch {best} come back."


lesson06 = ExerciseSet(
    "06",
    q1=Exercise(
        title="Lesson 06, exercise 1: augmentation that keeps the labels true",
        task="Build a torchvision.transforms.v2 training augmentation for the retail domain (64 px photos of "
             "upright garments, shoes and bags): random, so that each epoch sees new versions, but never "
             "producing an image that no longer looks like its class. It takes and returns a (3, 64, 64) "
             "uint8 tensor (normalisation comes after it).",
        usage="ex.q1.check(train_augment)",
        checker=check_augmentation,
        hints=("Ask of each transform: could a photo in the catalogue look like this? A mirrored sneaker, yes; an "
               "upside-down one, no.",
               "v2.RandomResizedCrop(64, scale=(0.6, 1.0)), v2.RandomHorizontalFlip(), a small "
               "v2.RandomRotation(10) and a v2.ColorJitter all keep the label."),
        solution_code="""
from torchvision.transforms import v2

train_augment = v2.Compose([
    v2.RandomResizedCrop(64, scale=(0.6, 1.0), antialias=True),  # zoom in a little, keep the item
    v2.RandomHorizontalFlip(),                                   # a mirrored shoe is still a shoe
    v2.RandomRotation(10),                                       # small tilts only
    v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
])
""",
    ),
    q2=Exercise(
        title="Lesson 06, exercise 2: weight decay, but not on norms and biases",
        task="Build a torch.optim.AdamW for all trainable parameters of `model` with lr=1e-3 and weight decay "
             "0.05 on conv and linear weights, and no weight decay on BatchNorm parameters and biases.",
        usage="ex.q2.check(optimizer, model)",
        checker=check_weight_decay,
        hints=("Make two lists while looping over `model.named_modules()` and each module's "
               "`named_parameters(recurse=False)`: BatchNorm parameters and any parameter named 'bias' go to "
               "the no-decay list.",
               "Pass two groups: AdamW([{'params': decay, 'weight_decay': 0.05}, "
               "{'params': no_decay, 'weight_decay': 0.0}], lr=1e-3)."),
        solution_code="""
import torch
from torch import nn

decay, no_decay = [], []
for module in model.modules():
    for name, p in module.named_parameters(recurse=False):
        if not p.requires_grad:
            continue
        if isinstance(module, nn.BatchNorm2d) or name == "bias":
            no_decay.append(p)
        else:
            decay.append(p)
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                               {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
""",
    ),
    q3=Exercise(
        title="Lesson 06, exercise 3: read early stopping",
        task="A run's validation losses, epochs 1 to 9, are "
             f"{', '.join(f'{v:.2f}' for v in EARLY_STOP_VAL_LOSSES)}. With EarlyStopping(patience=3) "
             "(min_delta 0) and restore_best=True: after which epoch does training stop, and the weights "
             "of which epoch does the model end with?",
        usage="ex.q3.check(stop_epoch, restored_epoch)",
        checker=check_early_stopping,
        hints=("Walk the list: keep the best loss so far and a counter of epochs since it; a new best resets "
               "the counter to 0.",
               "Training stops when the counter reaches 3; the epochs after that are never run, so their "
               "losses do not matter."),
        solution_code="""
stop_epoch = 8       # bests at epochs 1, 2, 3 and 5; epochs 6, 7, 8 do not improve on 0.79
restored_epoch = 5   # the lowest validation loss seen (0.79); epoch 9's 0.70 never happens
""",
    ),
)

__all__ += ["check_augmentation", "check_weight_decay", "check_early_stopping", "EARLY_STOP_VAL_LOSSES",
            "lesson06"]
# --- end lesson06 ---
