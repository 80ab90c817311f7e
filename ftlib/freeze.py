"""Freezing: which parameters train, and what frozen BatchNorm layers do.

Freezing a parameter means `p.requires_grad = False`: no gradient, so the optimizer leaves
it alone. The lessons freeze whole *stages* (see `ftlib.models.stages`), input first:

    >>> freeze(model)                 # everything
    >>> unfreeze(model, last=1)       # ... except the head: a linear probe (lesson 03)
    >>> freeze(model, upto="layer2")  # stem, layer1 and layer2 (lesson 04)
    >>> print(format_stage_table(model))

BatchNorm layers need one more decision. Their running mean and variance are buffers, not
parameters, and `requires_grad` does not stop them: in training mode every forward pass
moves them towards the statistics of the current batch. `freeze(..., bn="eval")`, the
default, keeps frozen BatchNorm layers in eval mode, and this survives later `model.train()`
calls, which would otherwise switch them back on (the pitfall of lesson 04). Used in
lessons 03, 04, 05 and 07.
"""

from __future__ import annotations

import re
from typing import Sequence

from torch import nn

from .models import stages

__all__ = ["freeze", "unfreeze", "apply_freeze_depth", "count_parameters", "stage_status", "STATUSES", "stage_table", "format_stage_table",
           "frozen_stages", "bn_modes", "BATCHNORM_TYPES"]

BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
"""The layers the BatchNorm policy applies to."""


# --- choosing parameters -----------------------------------------------------------

def _chosen_stages(model: nn.Module, upto: str | None, last: int | None,
                   only: str | Sequence[str] | None) -> list[nn.Module]:
    """The stages from the input up to and including `upto`, the last `last` stages, or the
    stages named in `only`."""
    parts = stages(model)
    names = list(parts)
    if isinstance(only, str):
        only = [only]
    asked = [upto] if upto is not None else list(only or [])
    unknown = [name for name in asked if name not in parts]
    if unknown:
        raise ValueError(f"{type(model).__name__} has no stage {', '.join(map(repr, unknown))}. "
                         f"Its stages, input to output: {', '.join(names)}.")
    if upto is not None:
        return [parts[n] for n in names[: names.index(upto) + 1]]
    if only is not None:
        return [parts[n] for n in names if n in asked]
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= len(names):
        raise ValueError(f"last must be a whole number from 1 to {len(names)} "
                         f"(the stages are {', '.join(names)}), not {last!r}.")
    return [parts[n] for n in names[-last:]]


def _by_pattern(model: nn.Module, pattern: str) -> list[nn.Parameter]:
    """Parameters whose name (e.g. 'layer4.1.bn2.weight') contains a match of the regex."""
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({err}).") from err
    named = list(model.named_parameters())
    picked = [p for name, p in named if regex.search(name)]
    if not picked:
        examples = ", ".join(name for name, _ in named[:4])
        raise ValueError(f"pattern {pattern!r} matches no parameter name (names look like: {examples}).")
    return picked


def _select(model: nn.Module, upto: str | None, last: int | None, pattern: str | None,
            only: str | Sequence[str] | None) -> list[nn.Parameter]:
    """The parameters one selector picks; no selector picks them all."""
    given = [name for name, value in (("upto", upto), ("last", last), ("pattern", pattern),
                                      ("only", only)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"Give at most one of upto=, last=, pattern=, only= (got {', '.join(given)}).")
    stages(model)  # a clear TypeError for models whose stages ftlib does not know
    if pattern is not None:
        return _by_pattern(model, pattern)
    if not given:
        return list(model.parameters())
    return [p for stage in _chosen_stages(model, upto, last, only) for p in stage.parameters()]


def _touched_stages(model: nn.Module, params: list[nn.Parameter]) -> list[str]:
    ids = {id(p) for p in params}
    return [name for name, stage in stages(model).items()
            if any(id(p) in ids for p in stage.parameters())]


def _batchnorms_among(model: nn.Module, params: list[nn.Parameter]) -> list[nn.Module]:
    """BatchNorm layers owning at least one of `params`."""
    ids = {id(p) for p in params}
    return [m for m in model.modules() if isinstance(m, BATCHNORM_TYPES)
            and any(id(p) in ids for p in m.parameters(recurse=False))]


# --- the BatchNorm policy ------------------------------------------------------------
# The hook itself is the only record that a layer is held in eval mode: torch has no public
# way to list a module's hooks, so `_is_held` looks for it in `_forward_pre_hooks`. Nothing is
# kept anywhere else, and a `copy.deepcopy` of the model keeps the policy.

def _keep_eval(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: put the layer back in eval mode just before it runs."""
    module.train(False)


def _is_held(bn: nn.Module) -> bool:
    return any(hook is _keep_eval for hook in bn._forward_pre_hooks.values())


def _hold_eval(bn: nn.Module) -> None:
    if not _is_held(bn):
        bn.register_forward_pre_hook(_keep_eval)
    bn.train(False)


def _release(bn: nn.Module, training: bool) -> None:
    for key in [k for k, hook in bn._forward_pre_hooks.items() if hook is _keep_eval]:
        del bn._forward_pre_hooks[key]
    bn.train(training)


# --- public API --------------------------------------------------------------------

def freeze(model: nn.Module, *, upto: str | None = None, last: int | None = None,
           pattern: str | None = None, only: str | Sequence[str] | None = None,
           bn: str = "eval") -> list[str]:
    """Stop training part of `model` (`requires_grad = False`). Returns the names of the
    stages touched, input to output (a short list, so a notebook cell ending in `freeze(...)`
    shows what changed rather than the whole model).

    Select at most one (stage names come from `ftlib.models.stages`):
      - nothing: every parameter;
      - `upto="layer2"`: every stage from the input up to and including that one;
      - `last=k`: the last k stages;
      - `only="layer3"` or `only=["layer3", "layer4"]`: exactly those stages;
      - `pattern`: a regular expression searched (`re.search`, not a glob) in parameter
        names such as "layer4.1.bn2.weight", e.g. r"^layer4\\." or r"bn".

    bn="eval" (default): a BatchNorm layer whose parameters are now all frozen is set to eval
    mode and held there through later `model.train()` calls, so it normalises with the
    running statistics it was pretrained with and never updates them. Frozen features should
    see the statistics they were trained with, and the small batches of fine-tuning would
    make those statistics drift. bn="train": frozen BatchNorm layers keep updating their
    running statistics in training mode (the parameters still do not train); lesson 07 uses
    it so that a stage waiting to be unfrozen handles BatchNorm as a trainable one does.

        >>> freeze(model)
        ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
        >>> unfreeze(model, last=1)   # a linear probe: only the head trains
        ['head']
    """
    if bn not in ("eval", "train"):
        raise ValueError(f"bn must be 'eval' (hold frozen BatchNorm layers in eval mode) or "
                         f"'train' (let them update), not {bn!r}.")
    params = _select(model, upto, last, pattern, only)
    for p in params:
        p.requires_grad_(False)
    for layer in _batchnorms_among(model, params):
        if bn == "train":
            _release(layer, model.training)
        elif not any(p.requires_grad for p in layer.parameters()):
            _hold_eval(layer)
    return _touched_stages(model, params)


def unfreeze(model: nn.Module, *, upto: str | None = None, last: int | None = None,
             pattern: str | None = None, only: str | Sequence[str] | None = None) -> list[str]:
    """Train part of `model` again (`requires_grad = True`); same selectors as `freeze`.

    BatchNorm layers among the unfrozen parameters are released from eval mode and follow
    the model's mode again. Returns the names of the stages touched, input to output.
    Used in lessons 03, 04 and 07 (gradual unfreezing: `unfreeze(model, last=k)` with k
    growing, or `unfreeze(model, only=name)`).
    """
    params = _select(model, upto, last, pattern, only)
    for p in params:
        p.requires_grad_(True)
    for layer in _batchnorms_among(model, params):
        _release(layer, model.training)
    return _touched_stages(model, params)


def count_parameters(model: nn.Module, trainable: bool | None = None) -> int:
    """Number of parameter values (scalars): all (None), trainable (True) or frozen (False).

    Used in lessons 01, 03 and 04.
    """
    return sum(p.numel() for p in model.parameters()
               if trainable is None or p.requires_grad == trainable)


def bn_modes(model: nn.Module) -> dict[str, bool]:
    """For each BatchNorm layer (by module name): will it update its running statistics when
    the model trains? False for layers held in eval mode by `freeze(bn="eval")` and for
    layers without running statistics. Used in lesson 04 (the BatchNorm pitfall) and its
    exercise checkers.
    """
    return {name: m.track_running_stats and not _is_held(m)
            for name, m in model.named_modules() if isinstance(m, BATCHNORM_TYPES)}


def stage_table(model: nn.Module) -> list[dict]:
    """One row per stage, input to output: stage, total, trainable, frozen (parameter
    counts), status ("trainable", "frozen", "partly", or "no parameters") and bn_held (how
    many BatchNorm layers are held in eval mode). Used in lessons 03, 04 and 07.
    """
    rows = []
    for name, stage in stages(model).items():
        total, trainable = count_parameters(stage), count_parameters(stage, trainable=True)
        held = sum(1 for m in stage.modules() if isinstance(m, BATCHNORM_TYPES) and _is_held(m))
        rows.append({"stage": name, "total": total, "trainable": trainable,
                     "frozen": total - trainable, "status": _status(total, trainable), "bn_held": held})
    return rows


STATUSES = ("trainable", "frozen", "partly", "no parameters")
"""The words for a stage's state, in `stage_status`, `stage_table` and the freeze diagram."""


def _status(total: int, trainable: int) -> str:
    if total == 0:
        return "no parameters"
    return "trainable" if trainable == total else "frozen" if trainable == 0 else "partly"


def stage_status(model: nn.Module) -> dict[str, str]:
    """For each stage, input to output: "trainable" (every parameter has requires_grad),
    "frozen" (none has), "partly" or "no parameters". The one place a stage's state is
    decided; `stage_table`, the freeze diagram and the exercise checkers read it.
    Used in lessons 04 and 07."""
    return {name: _status(count_parameters(stage), count_parameters(stage, trainable=True))
            for name, stage in stages(model).items()}


def format_stage_table(model: nn.Module) -> str:
    """`stage_table` as aligned text, with a total line, for `print`."""
    rows = stage_table(model)
    width = max(len("total"), *(len(r["stage"]) for r in rows))
    lines = [f"{'stage':<{width}} {'params':>12} {'trainable':>12} {'frozen':>12}  "
             f"{'BN held':>7}  status"]
    for r in rows:
        lines.append(f"{r['stage']:<{width}} {r['total']:>12,} {r['trainable']:>12,} "
                     f"{r['frozen']:>12,}  {r['bn_held']:>7}  {r['status']}")
    total, trainable = count_parameters(model), count_parameters(model, trainable=True)
    lines.append(f"{'total':<{width}} {total:>12,} {trainable:>12,} {total - trainable:>12,}")
    return "\n".join(lines)


def frozen_stages(model: nn.Module) -> list[str]:
    """Names of the stages whose parameters are all frozen, input to output (lessons 04, 07)."""
    return [r["stage"] for r in stage_table(model) if r["status"] == "frozen"]


def _check_depth(model: nn.Module, k: int) -> list[str]:
    names = list(stages(model))
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(names) - 1:
        raise ValueError(f"k (the number of frozen stages) must be a whole number from 0 to "
                         f"{len(names) - 1}: the head ({names[-1]!r}) always trains. "
                         f"The stages are {', '.join(names)}; got {k!r}.")
    return names


def apply_freeze_depth(model: nn.Module, k: int) -> list[str]:
    """Freeze the first `k` stages of `model` (input side) and train the rest, head included.

    First `ftlib.freeze.unfreeze(model)` (every parameter trains again, held BatchNorm
    layers are released), then `freeze(model, upto=<stage k>)` with the default BatchNorm
    policy: BatchNorm layers in frozen stages stay in eval mode. Any earlier freezing of
    `model` is replaced. The model is changed in place and left that way; returns the names
    of the frozen stages, input to output. Used by `ftlib.widgets.freeze_explorer` (lesson 04).
    """
    names = _check_depth(model, k)
    unfreeze(model)
    if k > 0:
        freeze(model, upto=names[k - 1])
    return names[:k]


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------
