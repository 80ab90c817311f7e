"""What training costs: FLOPs, images per second, seconds per epoch for each freeze depth.

A frozen stage costs only its forward pass: autograd does not go back into it. This
module counts that (`training_step_flops`, `training_flops`), measures it (`throughput`),
turns both into an estimate for every freeze depth (`calibrate_seconds`,
`measure_seconds_per_image`, `freeze_table`), and times the training pass of a real `fit`
(`TrainTimer`):

    >>> throughput(model, image_size=64, device="cpu")     # images per second (lesson 00)
    >>> print(format_freeze_table(freeze_table(model)))     # one row per freeze depth (lesson 04)
    >>> timer = TrainTimer(); fit(model, ..., callbacks=[timer]); timer.typical()  # lesson 03

A freeze depth k means: the first k stages of `ftlib.models.stages(model)` are frozen
and the rest trains, head included (`ftlib.freeze.apply_freeze_depth`). Everything here works
on a copy of the model, except `throughput` (which moves the model to `device`). `device=None` means
`ftlib.device.get_device()`. Used in lessons 00, 03, 04 and by `python -m ftlib.bench`.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Mapping, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .callbacks import Callback, FitState
from .device import resolve_device
from .freeze import apply_freeze_depth, count_parameters
from .models import stages

__all__ = ["training_step_flops", "training_flops", "throughput", "calibrate_seconds",
           "measure_seconds_per_image", "freeze_table", "format_freeze_table", "TrainTimer"]


# --------------------------------------------------------------------------------------------
# Freeze depth
# --------------------------------------------------------------------------------------------

def training_step_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one training step (forward + backward) of `model` as it is frozen now, on one
    float32 batch of shape `input_shape`, e.g. (N, 3, H, W): the whole batch, not per image.

    Counted with `torch.utils.flop_counter.FlopCounterMode` on a copy of `model` moved to
    PyTorch's "meta" device, where tensors have shapes but no data: the count is exact and
    costs no arithmetic, and `model` (weights, BatchNorm statistics, mode) is not touched.
    Frozen parameters get no gradient, and autograd does not go back into stages in front
    of the first trainable one. The counter sees convolutions and matrix products, not
    BatchNorm, activations or the loss. Used by `training_flops` and `python -m ftlib.bench`.
    """
    probe = copy.deepcopy(model).to("meta").eval()  # eval: BatchNorm works with any batch size
    x = torch.empty(*input_shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss = probe(x).float().sum()
        if loss.requires_grad:
            loss.backward()
    return counter.get_total_flops()


def training_flops(model: nn.Module, image_size: int = 64) -> list[float]:
    """FLOPs of one training step per image (forward + backward), for k = 0 .. n-1 frozen stages.

    `training_step_flops` of a batch of 2 (3, image_size, image_size) images, halved, at
    every freeze depth (`apply_freeze_depth` on a copy: `model` is not touched). Returns
    n floats, non-increasing. Used by `measure_seconds_per_image` (lesson 04).
    """
    probe = copy.deepcopy(model).to("meta")
    flops = []
    for k in range(len(stages(probe))):
        apply_freeze_depth(probe, k)
        flops.append(training_step_flops(probe, (2, 3, image_size, image_size)) / 2)
    return flops


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(model: nn.Module, *, image_size: int = 64, batch_size: int = 32, steps: int = 5,
               train: bool = True, device: torch.device | str | None = None, warmup: int = 1,
               restore: bool = True) -> float:
    """Images per second of `model` on random (3, image_size, image_size) images, after
    `warmup` untimed steps; `device=None` means `get_device()`, and the model is moved there.

    `train=True` times forward, backward and an SGD step of the trainable parameters
    (frozen stages cost only their forward pass: lesson 04 shows it); `train=False`
    times a no-grad forward in eval mode. The model's weights, gradients and mode are restored
    (`restore=False`, for a throwaway copy, skips the copy of the weights that this takes).
    Used in lessons 00 (time per lesson on this machine) and 04.
    """
    device = resolve_device(device)
    model = model.to(device)
    was_training = model.training
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()} if restore else None
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad for p in params]
    opt = torch.optim.SGD(params, lr=1e-3) if (train and params) else None
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    model.train(train)

    def step() -> None:
        if opt is None:
            with torch.no_grad():
                model(x)
            return
        opt.zero_grad(set_to_none=True)
        model(x).float().logsumexp(1).mean().backward()
        opt.step()

    for _ in range(warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    elapsed = time.perf_counter() - start
    if restore:
        model.load_state_dict(saved)
        for p, g in zip(params, grads):
            p.grad = g
    model.train(was_training)
    return batch_size * steps / elapsed


class TrainTimer(Callback):
    """A `fit` callback: the seconds of each epoch's training pass, validation left out.

    `fit`'s own `time_s` adds the validation pass, which costs the same forward passes
    whatever trains and so hides the difference between two strategies. The clock starts
    when an epoch begins and stops after its last training batch; on a GPU it waits for the
    queued work after every batch, so the time is what the batches took. `seconds`: one
    float per epoch; `typical()`: their median, which the first epoch's one-off warm-up
    and a single disturbed epoch cannot move much. Used in lesson 03.

        >>> timer = TrainTimer()
        >>> history = fit(model, train_loader, val_loader, 4, optimizer, callbacks=[timer])
        >>> timer.typical()          # seconds per training pass over train_loader
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def _now(self, state: FitState) -> float:
        param = next(state.model.parameters(), None)
        if param is not None:
            _synchronize(param.device)
        return time.perf_counter()

    def on_epoch_begin(self, state: FitState) -> None:
        self._start = self._now(state)
        self.seconds.append(0.0)

    def on_batch_end(self, state: FitState) -> None:
        self.seconds[-1] = self._now(state) - self._start

    def typical(self) -> float:
        """The median of `seconds` (seconds per training pass); ValueError before any epoch."""
        if not self.seconds:
            raise ValueError("TrainTimer has timed no epoch: pass it to fit(..., callbacks=[timer]) first.")
        return statistics.median(self.seconds)


def calibrate_seconds(flops: Sequence[float], measured: Mapping[int, float]) -> list[float]:
    """Seconds per image for each freeze depth, from FLOPs and one or two measured depths.

    Model: seconds = a + b * flops, with a >= 0 (work the FLOP counter does not see:
    BatchNorm, activations, the optimizer step) and b >= 0 (seconds per FLOP). Two
    measurements, e.g. `{0: 2.1e-3, 5: 0.9e-3}` (depth: seconds per image), fix a and b;
    where noise gives a < 0 the line goes through zero and the first measurement (b = t/f),
    where it gives b < 0 the estimate is their mean. One measurement: b = t/f, a = 0. As
    `flops` never increases with the depth, neither does the estimate. Pure (lesson 04).
    """
    if not measured:
        raise ValueError("measured needs at least one {depth: seconds per image} entry.")
    if any(t <= 0 for t in measured.values()) or any(f < 0 for f in flops):
        raise ValueError(f"seconds must be > 0 and FLOPs >= 0; got measured={dict(measured)}")
    (k0, t0), *rest = sorted(measured.items())
    a, b = 0.0, t0 / max(flops[k0], 1.0)
    if rest:
        k1, t1 = rest[-1]
        if flops[k0] != flops[k1]:
            b = (t0 - t1) / (flops[k0] - flops[k1])
            a = t0 - b * flops[k0]
        if b < 0 or flops[k0] == flops[k1]:
            a, b = (t0 + t1) / 2, 0.0
        elif a < 0:
            a, b = 0.0, t0 / max(flops[k0], 1.0)
    return [a + b * f for f in flops]


def measure_seconds_per_image(model: nn.Module, *, image_size: int = 64, batch_size: int = 32,
                              device: torch.device | str | None = None, steps: int = 2) -> list[float]:
    """Estimated seconds per training image for k = 0 .. n-1 frozen stages, on this machine.

    How: count the FLOPs of a training step at every depth (`training_flops`), time two
    depths with `throughput` (fp32 forward, backward and SGD step on random images,
    `steps` timed steps after one warm-up): nothing frozen, and everything but the head
    frozen; then fit `calibrate_seconds` through them. Works on a copy: `model` is not
    touched. About 2-4 s for a ResNet-18 at 64 px on a 2-core CPU. Used by `freeze_table`.
    """
    device = resolve_device(device)
    flops = training_flops(model, image_size)
    probe = copy.deepcopy(model)
    measured = {}
    for k in sorted({0, len(flops) - 1}):
        apply_freeze_depth(probe, k)
        rate = throughput(probe, image_size=image_size, batch_size=batch_size, steps=steps,
                          train=True, device=device, restore=False)    # the copy need not be restored
        measured[k] = 1.0 / rate
    return calibrate_seconds(flops, measured)


# --------------------------------------------------------------------------------------------
# The freeze cost table
# --------------------------------------------------------------------------------------------

def freeze_table(model: nn.Module, *, image_size: int = 64, batch_size: int = 32, epoch_images: int = 1000,
                 device: torch.device | str | None = None,
                 seconds_per_image: Sequence[float] | None = None) -> list[dict]:
    """One row per freeze depth k = 0 .. n-1 (the head always trains), for lesson 04.

    Each row: `frozen_stages` (k), `frozen` (their names), `trainable` and `total`
    (parameter counts, scalars), `trainable_pct` (percent of all), `s_per_image` and
    `s_per_epoch` (estimated training seconds for one image and for `epoch_images` images).
    The times come from `measure_seconds_per_image` unless you pass `seconds_per_image`
    (one value per depth, e.g. measured earlier). Works on a copy: `model` is not touched.
    """
    if epoch_images < 1:
        raise ValueError(f"epoch_images must be at least 1, got {epoch_images}")
    n = len(stages(model))
    if seconds_per_image is None:
        seconds_per_image = measure_seconds_per_image(model, image_size=image_size,
                                                      batch_size=batch_size, device=device)
    if len(seconds_per_image) != n:
        raise ValueError(f"seconds_per_image needs one value per freeze depth 0..{n - 1} "
                         f"({n} values), got {len(seconds_per_image)}.")
    probe, total = copy.deepcopy(model), count_parameters(model)
    rows = []
    for k, seconds in enumerate(seconds_per_image):
        frozen = apply_freeze_depth(probe, k)
        trainable = count_parameters(probe, trainable=True)
        rows.append({"frozen_stages": k, "frozen": frozen, "trainable": trainable, "total": total,
                     "trainable_pct": 100.0 * trainable / max(total, 1),
                     "s_per_image": float(seconds), "s_per_epoch": float(seconds) * epoch_images})
    return rows


def format_freeze_table(rows: Sequence[dict]) -> str:
    """`freeze_table` rows as aligned text, for `print`."""
    lines = [f"{'frozen':>6}  {'last frozen stage':<18} {'trainable':>12} {'% of all':>8} {'s/epoch':>9}"]
    for r in rows:
        last = r["frozen"][-1] if r["frozen"] else "-"
        lines.append(f"{r['frozen_stages']:>6}  {last:<18} {r['trainable']:>12,} "
                     f"{r['trainable_pct']:>7.1f}% {r['s_per_epoch']:>9.2f}")
    return "\n".join(lines)
