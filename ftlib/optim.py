"""Optimisation: parameter groups, optimizers, and two ways to choose a learning rate.

`param_groups` turns a model into optimizer groups, one per named stage (see
`ftlib.models.stages`), each with its own concrete learning rate and a `name`, so every
torch optimizer and scheduler works with them unchanged:

    >>> groups = param_groups(model, lr=1e-3)          # head 1e-3, layer4 1e-3/2.6, ...
    >>> optimizer = torch.optim.AdamW(groups)
    >>> [(g["name"], g["lr"]) for g in optimizer.param_groups]

`make_optimizer` builds an SGD, Adam or AdamW optimizer over one such group. Choosing the
learning rate:

- `lr_find` runs the LR range test (Smith, 2017): train for a few batches while the
  learning rate grows exponentially, record the loss, put the model back as it was.
  `suggest_lr` reads a learning rate off the curve; it is a pure function of the two lists.
- `lr_sweep` fine-tunes a fresh model for a few epochs at each of several learning rates
  (`ftlib.fit`), to compare the curves (`format_lr_table`, `ftlib.plots.plot_lr_sweep`).

Used in lessons 05 (learning rates) and 07 (gradual unfreezing).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .device import resolve_device, seed_everything
from .models import stages
from .progress import progress
from .train import History, Stopping, fit, train_step

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["param_groups", "NORM_LAYERS", "make_optimizer", "lr_find", "LRFindResult", "suggest_lr",
           "SUGGESTION_METHODS", "parse_lrs", "lr_sweep", "format_lr_table", "sweep_split"]

# Normalisation layers: their scale and shift get no weight decay (BatchNorm, InstanceNorm,
# LayerNorm, GroupNorm; ConvNeXt's LayerNorm2d is a LayerNorm).
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


# --------------------------------------------------------------------------------------------
# Parameter groups
# --------------------------------------------------------------------------------------------

def _stage_lrs(names: list[str], lr: float, factor: float,
               lrs: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
    """{stage: lr}: explicit `lrs`, else lr / factor**(n-1-i) for stage i of n (the head gets lr)."""
    if lrs is None:
        if factor <= 0:
            raise ValueError(f"factor must be > 0 (ULMFiT uses 2.6), got {factor}")
        n = len(names)
        return {name: lr / factor ** (n - 1 - i) for i, name in enumerate(names)}
    if isinstance(lrs, Mapping):
        missing, unknown = set(names) - set(lrs), set(lrs) - set(names)
        if missing or unknown:
            raise ValueError(f"lrs must give one learning rate per stage {names}; "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        return {name: float(lrs[name]) for name in names}
    if len(lrs) != len(names):
        raise ValueError(f"lrs has {len(lrs)} values but the model has {len(names)} stages {names}")
    return {name: float(value) for name, value in zip(names, lrs)}


def _split_params(module: nn.Module, seen: set[int], include_frozen: bool,
                  split: bool) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay) parameters of one stage; norm-layer and bias parameters are no_decay.

    Parameters already in `seen` (shared with an earlier stage) are skipped. With
    `split=False` everything goes to the first list.
    """
    decay, no_decay = [], []
    for sub in module.modules():
        for pname, p in sub.named_parameters(recurse=False):
            if id(p) in seen or (not p.requires_grad and not include_frozen):
                continue
            seen.add(id(p))
            exempt = isinstance(sub, NORM_LAYERS) or pname == "bias"
            (no_decay if split and exempt else decay).append(p)
    return decay, no_decay


def param_groups(model: nn.Module, lr: float, *, factor: float = 2.6,
                 lrs: Mapping[str, float] | Sequence[float] | None = None,
                 weight_decay: float = 0.0, include_frozen: bool = False, by_stage: bool = True) -> list[dict]:
    """Optimizer groups, one per stage of `ftlib.models.stages(model)`, input to output.

    Discriminative learning rates: stage i of n gets `lr / factor**(n-1-i)`, so the head
    gets `lr`, the stage below `lr / 2.6`, and so on (ULMFiT's factor). `factor=1` gives
    every stage the same rate. `lrs` gives explicit rates instead: a dict {stage: lr} or a
    sequence with one value per stage, input to output.

    Every group is `{"params": [...], "lr": float, "name": stage}`. With `weight_decay > 0`
    each stage is split into `"<stage>"` (decay) and `"<stage>.no_decay"` (norm-layer and
    bias parameters, weight_decay 0); both carry their own `weight_decay`, so pass it here
    and not to the optimizer. With `weight_decay=0` the groups carry no `weight_decay` key
    and the optimizer's own setting applies to every parameter.

    Frozen parameters (`requires_grad=False`) are left out, unless `include_frozen=True`:
    then they are in the optimizer from the start, torch skips them while their gradient
    is None, and gradual unfreezing can switch them on without a new optimizer or
    scheduler (lesson 07). Empty groups are dropped. `by_stage=False` puts every parameter
    in one group named "all" at `lr` (any model: no stages needed). Used in lessons 05 and 07.
    """
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    parts = stages(model) if by_stage else {"all": model}
    stage_lr = _stage_lrs(list(parts), lr, factor, lrs)
    split = weight_decay > 0
    groups, seen = [], set()
    for name, module in parts.items():
        decay, no_decay = _split_params(module, seen, include_frozen, split)
        extra = {"weight_decay": weight_decay} if split else {}
        groups.append({"params": decay, "lr": stage_lr[name], "name": name, **extra})
        if split:
            groups.append({"params": no_decay, "lr": stage_lr[name], "name": f"{name}.no_decay",
                           "weight_decay": 0.0})
    _check_covered(model, seen, include_frozen)
    return [g for g in groups if g["params"]]


def _check_covered(model: nn.Module, seen: set[int], include_frozen: bool) -> None:
    """Raise if a parameter that should be trained belongs to no stage."""
    left = [n for n, p in model.named_parameters()
            if id(p) not in seen and (p.requires_grad or include_frozen)]
    if left:
        raise ValueError(f"{len(left)} parameters belong to no stage of ftlib.models.stages(model), "
                         f"e.g. {left[:3]}; build the groups by hand for this model.")


def make_optimizer(model: nn.Module, lr: float,
                   optimizer: str | Callable[[list, float], torch.optim.Optimizer] = "sgd") -> torch.optim.Optimizer:
    """An optimizer over the trainable parameters of `model`, in one group named "all"
    (`param_groups(model, lr, by_stage=False)`; any model, stages or not).

    "sgd": SGD with momentum 0.9; "adam": Adam; "adamw": AdamW (weight decay 0.01); or a
    callable `(params, lr) -> Optimizer`, given the list of trainable parameters. Used by
    `lr_sweep` (lesson 05).
    """
    groups = param_groups(model, lr, by_stage=False)
    if not groups:
        raise ValueError("the model has no trainable parameters: unfreeze something (ftlib.unfreeze).")
    if callable(optimizer):
        return optimizer(groups[0]["params"], lr)
    optimizer = str(optimizer).lower()
    kinds = {"sgd": lambda: torch.optim.SGD(groups, lr=lr, momentum=0.9),
             "adam": lambda: torch.optim.Adam(groups, lr=lr),
             "adamw": lambda: torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)}
    if optimizer not in kinds:
        raise ValueError(f"optimizer must be one of {', '.join(kinds)} or a callable (params, lr) -> "
                         f"Optimizer, not {optimizer!r}")
    return kinds[optimizer]()


# --------------------------------------------------------------------------------------------
# LR suggestion: pure functions of (lrs, losses)
# --------------------------------------------------------------------------------------------

def _clean_curve(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The curve as arrays, without points whose loss is NaN or infinite."""
    x, y = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"lrs and losses must be two lists of the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        raise ValueError("suggest_lr needs at least 3 points with a finite loss; "
                         "run lr_find with more iterations or a lower start_lr.")
    if np.any(x <= 0):
        raise ValueError("learning rates must be > 0")
    return x, y


def _steepest(x: np.ndarray, y: np.ndarray) -> float:
    """The LR at the start of the segment where the loss falls fastest against log10(lr),
    looking only up to the lowest loss."""
    end = int(np.argmin(y))
    if end == 0:
        return float(x[0])
    slopes = np.diff(y[: end + 1]) / np.diff(np.log10(x[: end + 1]))
    return float(x[int(np.argmin(slopes))])


def _valley(x: np.ndarray, y: np.ndarray) -> float:
    """Two thirds of the way along the longest decreasing run of points (which may skip
    noisy points): steep enough to learn fast, well before the loss turns up."""
    n = len(y)
    length, start = [1] * n, list(range(n))  # longest decreasing run ending at each point
    for j in range(n):
        for i in range(j):
            if y[i] > y[j] and (length[i] + 1 > length[j]
                                or (length[i] + 1 == length[j] and start[i] < start[j])):
                length[j], start[j] = length[i] + 1, start[i]
    end = max(range(n), key=lambda j: (length[j], -start[j]))
    return float(x[start[end] + (end - start[end]) * 2 // 3])


def _min_div10(x: np.ndarray, y: np.ndarray) -> float:
    """A tenth of the LR with the lowest loss (a classic rule of thumb)."""
    return float(x[int(np.argmin(y))] / 10)


SUGGESTION_METHODS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "steepest": _steepest, "valley": _valley, "min_div10": _min_div10}


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], method: str = "steepest") -> float:
    """A learning rate read off an LR range test curve (`lrs` increasing, same length as `losses`).

    - `"steepest"`: where the loss falls fastest against log10(lr), before its minimum;
    - `"valley"`: two thirds along the longest decreasing stretch of the curve;
    - `"min_div10"`: the LR with the lowest loss, divided by 10.

    Points with a NaN or infinite loss are ignored. Returns a positive float. Used in lesson 05.
    """
    if method not in SUGGESTION_METHODS:
        raise ValueError(f"method must be one of {list(SUGGESTION_METHODS)}, got {method!r}")
    x, y = _clean_curve(lrs, losses)
    return SUGGESTION_METHODS[method](x, y)


# --------------------------------------------------------------------------------------------
# LR range test
# --------------------------------------------------------------------------------------------

@dataclass
class LRFindResult:
    """The LR range test curve: `lrs[i]` was used for step i, `losses[i]` is the smoothed
    training loss after it (`raw_losses[i]` unsmoothed); `suggestion` is `suggest_lr(lrs,
    losses, method)`."""
    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    method: str = "steepest"

    def suggest(self, method: str = "steepest") -> float:
        """The suggestion by another method (see `suggest_lr`)."""
        return suggest_lr(self.lrs, self.losses, method)

    def plot(self) -> Figure:
        """Loss against learning rate (log scale), the suggestion marked
        (`ftlib.plots.plot_lr_find`); returns the Figure."""
        from .plots import plot_lr_find

        return plot_lr_find(self.lrs, self.losses, self.suggestion)


def _snapshot(model: nn.Module) -> dict:
    """Everything lr_find changes: weights and buffers, train/eval flags, requires_grad, device."""
    first = next(model.parameters(), None)
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "training": {name: m.training for name, m in model.named_modules()},
            "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
            "device": first.device if first is not None else None}


def _restore(model: nn.Module, snap: dict) -> None:
    if snap["device"] is not None:
        model.to(snap["device"])
    model.load_state_dict(snap["state"])
    for name, m in model.named_modules():
        m.training = snap["training"][name]
    for name, p in model.named_parameters():
        p.requires_grad_(snap["requires_grad"][name])


def _cycle(loader: Iterable) -> Iterable:
    """The batches of `loader`, again and again."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader gave no batches")


def _default_optimizer(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=1e-7, momentum=0.9)


def _range_test(model: nn.Module, loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                schedule: np.ndarray, device: torch.device, smooth: float,
                diverge: float) -> tuple[list[float], list[float], list[float]]:
    """The training loop of lr_find: one step per LR in `schedule`, stopping at divergence."""
    lrs, losses, raw = [], [], []
    average, best = 0.0, math.inf
    batches = _cycle(loader)
    with progress(total=len(schedule), desc="lr_find") as bar:
        for step, lr in enumerate(schedule):
            x, y = next(batches)[:2]
            for group in optimizer.param_groups:
                group["lr"] = float(lr)
            loss, _ = train_step(model, x.to(device), y.to(device), loss_fn, optimizer)
            value = loss.item()
            if not math.isfinite(value):
                break
            average = (1 - smooth) * average + smooth * value
            smoothed = average / (1 - (1 - smooth) ** (step + 1))  # bias-corrected running mean
            lrs.append(float(lr))
            losses.append(smoothed)
            raw.append(value)
            bar.update(1)
            best = min(best, smoothed)
            if smoothed > diverge * best:
                break
    return lrs, losses, raw


def lr_find(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None, *,
            optimizer_fn: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
            start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
            device: torch.device | str | None = None, smooth: float = 0.05,
            diverge: float = 4.0) -> LRFindResult:
    """The LR range test: `num_iter` training steps with the LR growing exponentially from
    `start_lr` to `end_lr`, recording the loss, then the model is put back exactly as it was
    (weights, BatchNorm statistics, train/eval mode, requires_grad flags, device).

    `loader` yields `(x, y)` batches (cycled if shorter than `num_iter`); `loss_fn` defaults
    to cross-entropy. Only trainable parameters are updated, by `optimizer_fn(params)`
    (default SGD with momentum 0.9); every group's LR is overwritten at each step. The loss
    is smoothed by an exponential moving average (weight `smooth` on the newest value), and
    the test stops once the smoothed loss exceeds `diverge` x its best value or becomes NaN.
    Returns an `LRFindResult` (`.lrs`, `.losses`, `.suggestion`, `.plot()`). Used in lesson 05.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_iter < 3:
        raise ValueError(f"num_iter must be at least 3, got {num_iter}")
    device = resolve_device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: unfreeze at least the head first.")
    schedule = start_lr * (end_lr / start_lr) ** (np.arange(num_iter) / (num_iter - 1))
    snap = _snapshot(model)
    try:
        model.to(device).train()
        optimizer = (optimizer_fn or _default_optimizer)(params)
        lrs, losses, raw = _range_test(model, loader, loss_fn, optimizer, schedule, device, smooth, diverge)
    finally:
        _restore(model, snap)
    return LRFindResult(lrs, losses, raw, suggest_lr(lrs, losses, "steepest"), "steepest")


# --------------------------------------------------------------------------------------------
# LR sweep: one short fine-tune per learning rate
# --------------------------------------------------------------------------------------------

def parse_lrs(text: str) -> list[float]:
    """Learning rates from text such as "1e-3, 3e-3 0.01": positive numbers, sorted, no repeats."""
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    lrs = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number: write learning rates like 1e-3, 0.01") from None
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"learning rates must be positive and finite, got {part!r}")
        lrs.append(value)
    return sorted(set(lrs))


def _fresh_model(make_model: Callable[[], nn.Module], previous: nn.Module | None) -> nn.Module:
    model = make_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"make_model() must return an nn.Module, got {type(model).__name__}.")
    if previous is not None and (model is previous or
                                 {id(p) for p in model.parameters()} & {id(p) for p in previous.parameters()}):
        raise ValueError("make_model() returned a model that shares weights with the previous one, so "
                         "each LR would go on training the last. Build a new model in each call "
                         "(e.g. `lambda: copy.deepcopy(base)` or `lambda: ftlib.load_model(...)`).")
    return model


def lr_sweep(make_model: Callable[[], nn.Module], train_loader, val_loader, lrs: Sequence[float],
             epochs: int = 3, *, optimizer: str | Callable = "sgd", device: torch.device | str | None = None,
             seed: int = 0, fit_kwargs: Mapping | None = None) -> dict[float, History]:
    """Short fine-tunes, one per learning rate, each from a fresh `make_model()`.

    For each lr in `lrs`: `seed_everything(seed)` (so every run starts from the same random
    head), `model = make_model()`, then `ftlib.fit(model, train_loader, val_loader, epochs,
    make_optimizer(model, lr, optimizer), quiet=True, stopping=Stopping(on_nan="stop"),
    **fit_kwargs)`.
    A run whose loss diverges stops early (`history.diverged`, fewer rows). Returns
    {lr: History}, in the order of `lrs`. `make_model` must build a new model each call
    (its own weights are then never touched). Used by `ftlib.widgets.lr_explorer` (lesson 05).
    """
    if not lrs:
        raise ValueError("give at least one learning rate, e.g. lrs=(1e-3, 1e-2)")
    bad = [lr for lr in lrs if isinstance(lr, bool) or not isinstance(lr, numbers.Real)
           or not (lr > 0 and math.isfinite(lr))]
    if bad:
        raise ValueError(f"learning rates must be positive numbers, got {bad}")
    results, previous = {}, None
    for lr in lrs:
        seed_everything(seed)
        model = _fresh_model(make_model, previous)
        opt = make_optimizer(model, float(lr), optimizer)
        kwargs = {"quiet": True, "stopping": Stopping(on_nan="stop"), **(fit_kwargs or {})}
        results[float(lr)] = fit(model, train_loader, val_loader, epochs, opt, device=device, **kwargs)
        previous = model
    return results


def sweep_split(history: History) -> str:
    """The split an LR sweep's run is judged on: "val" when the history has validation
    columns, else "train". Read by `format_lr_table` and `ftlib.plots.plot_lr_sweep`."""
    return "val" if history.rows and "val_acc" in history.rows[0] else "train"


def format_lr_table(results: Mapping[float, History]) -> str:
    """One line per learning rate: epochs run, last train loss, last loss and accuracy and
    best accuracy (on val, or on train without a validation loader), and "diverged" where
    the loss blew up. Used by `ftlib.widgets.lr_explorer` (lesson 05)."""
    split = sweep_split(next(iter(results.values()))) if results else "val"
    lines = [f"{'lr':>8} {'epochs':>6} {'train loss':>10} {split + ' loss':>9} {split + ' acc':>8} "
             f"{'best acc':>8}"]
    for lr, h in sorted(results.items()):
        note = "  diverged" if h.diverged else ""
        if not h.rows:
            lines.append(f"{lr:>8.0e} {0:>6} {'-':>10} {'-':>9} {'-':>8} {'-':>8}{note}")
            continue
        s, last = sweep_split(h), h.rows[-1]
        lines.append(f"{lr:>8.0e} {len(h):>6} {last['train_loss']:>10.3f} {last[s + '_loss']:>9.3f} "
                     f"{last[s + '_acc']:>8.3f} {max(h[s + '_acc']):>8.3f}{note}")
    return "\n".join(lines)
