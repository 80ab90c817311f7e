"""Interactive explorers: how many stages to freeze (lesson 04), which learning rate (lesson 05).

Each explorer is a thin ipywidgets front end over pure functions that work without a
browser and are what the tests check:

| explorer          | the student changes             | pure functions behind it                       |
| ----------------- | ------------------------------- | ---------------------------------------------- |
| `freeze_explorer` | frozen stages (a slider)        | `apply_freeze_depth`, `freeze_table`           |
| `lr_explorer`     | learning rates, then clicks Run | `parse_lrs`, `lr_sweep`, `plot_lr_sweep`       |

Where no widget front end exists (nbval, a plain terminal, CI) an explorer prints a
table and returns a static Figure instead (`use_static` states the rule). Nothing is
printed or displayed at import time, and ipywidgets is imported only when a widget is
built.

    >>> freeze_explorer(model)                       # lesson 04
    >>> lr_explorer(make_model, train_loader, val_loader, lrs=(1e-3, 1e-2))   # lesson 05
"""

from __future__ import annotations

import base64
import copy
import io
import math
import numbers
import os
import re
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import in_notebook, is_quiet
from .device import resolve_device, seed_everything
from .freeze import count_parameters, freeze, unfreeze
from .models import stages
from .plots import plot_freeze_diagram
from .timing import throughput
from .train import History, Stopping, fit

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["use_static", "apply_freeze_depth", "training_flops", "calibrate_seconds",
           "measure_seconds_per_image", "freeze_table", "format_freeze_table", "plot_freeze_table",
           "freeze_explorer", "parse_lrs", "make_optimizer", "lr_sweep", "format_lr_table",
           "plot_lr_sweep", "lr_explorer", "LR_CHOICES"]

LR_CHOICES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
"""The learning rates the LR explorer offers (the `lrs` you pass are added)."""


# --------------------------------------------------------------------------------------------
# Widgets or static output?
# --------------------------------------------------------------------------------------------


def use_static(static: bool | None = None) -> bool:
    """Should an explorer print a table and return a Figure instead of building widgets?

    `static=True` or `False` decides. `static=None` (auto) means static when any of these
    holds: `ftlib.config.is_quiet()` (CI or FTLIB_QUIET=1), the environment variable
    `FTLIB_WIDGETS` is `0`/`false`/`no`/`off`, or the code does not run in an IPython kernel
    (a plain terminal or script); it also means static when ipywidgets cannot be imported.
    """
    if static is not None:
        return bool(static)
    if is_quiet() or os.environ.get("FTLIB_WIDGETS", "").strip().lower() in {"0", "false", "no", "off"}:
        return True
    if not in_notebook():
        return True
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return True
    return False


def _figure_output(fig: Figure) -> dict:
    """The figure as a notebook display_data output (PNG), to put in an Output widget."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png, "text/plain": repr(fig)}}


def _show_figure(out: "ipywidgets.Output", fig: Figure) -> None:
    """Replace what `out` shows by `fig`.

    The outputs are set directly (not `with out: display(fig)`), so that it works the same
    in a kernel, in a callback and in a test without a kernel.
    """
    out.outputs = (_figure_output(fig),)


# --------------------------------------------------------------------------------------------
# Freezing: the pure part
# --------------------------------------------------------------------------------------------

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
    of the frozen stages, input to output. Used by `freeze_explorer` (lesson 04).
    """
    names = _check_depth(model, k)
    unfreeze(model)
    if k > 0:
        freeze(model, upto=names[k - 1])
    return names[:k]


def training_flops(model: nn.Module, image_size: int = 64) -> list[float]:
    """FLOPs of one training step per image (forward + backward), for k = 0 .. n-1 frozen stages.

    Counted with `torch.utils.flop_counter.FlopCounterMode` on a copy of `model` moved to
    PyTorch's "meta" device, where tensors have shapes but no data: the count is exact and
    costs no arithmetic (the model is not touched). A batch of 2 random (3, image_size,
    image_size) images, halved. Frozen stages cost only their forward pass: autograd does
    not go back into them. The counter sees convolutions and matrix products, not BatchNorm
    or ReLU. Returns n floats, non-increasing. Used by `freeze_table` (lesson 04).
    """
    probe = copy.deepcopy(model).to("meta").eval()  # eval: BatchNorm works with any batch size
    x = torch.empty(2, 3, image_size, image_size, device="meta")
    flops = []
    for k in range(len(stages(probe))):
        apply_freeze_depth(probe, k)
        with FlopCounterMode(display=False) as counter:
            loss = probe(x).float().sum()
            if loss.requires_grad:
                loss.backward()
        probe.zero_grad(set_to_none=True)
        flops.append(counter.get_total_flops() / 2)
    return flops


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
    depths with `ftlib.timing.throughput` (fp32 forward, backward and SGD step on random
    images, `steps` timed steps after one warm-up): nothing frozen, and everything but the
    head frozen; then fit `calibrate_seconds` through them. Works on a copy: `model` is not
    touched. About 2-4 s for a ResNet-18 at 64 px on a 2-core CPU. Used by `freeze_table`.
    """
    device = resolve_device(device)
    flops = training_flops(model, image_size)
    probe = copy.deepcopy(model)
    measured = {}
    for k in sorted({0, len(flops) - 1}):
        apply_freeze_depth(probe, k)
        rate = throughput(probe, image_size=image_size, batch_size=batch_size, steps=steps,
                          train=True, device=device)
        measured[k] = 1.0 / rate
    return calibrate_seconds(flops, measured)


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


def plot_freeze_table(rows: Sequence[dict], epoch_images: int | None = None) -> Figure:
    """Two bar charts against the number of frozen stages: trainable parameters (% of all)
    and estimated seconds per epoch. The static view of `freeze_explorer` (lesson 04)."""
    fig = plt.figure(figsize=(10, 3.4), layout="constrained")
    plt.close(fig)
    ax_params, ax_time = fig.subplots(1, 2)
    ks = [r["frozen_stages"] for r in rows]
    ax_params.bar(ks, [r["trainable_pct"] for r in rows], color="#4daf4a")
    ax_params.set_ylabel("trainable parameters (% of all)")
    ax_time.bar(ks, [r["s_per_epoch"] for r in rows], color="#377eb8")
    per = f" of {epoch_images:,} images" if epoch_images else ""
    ax_time.set_ylabel(f"estimated s / epoch{per}")
    for ax in (ax_params, ax_time):
        ax.set_xlabel("frozen stages (from the input)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
    return fig


# --------------------------------------------------------------------------------------------
# Freezing: the explorer
# --------------------------------------------------------------------------------------------

def _freeze_summary(row: dict, rows: Sequence[dict], epoch_images: int) -> str:
    """HTML lines for one freeze depth; `rows` gives the extremes to compare with."""
    frozen = ", ".join(row["frozen"]) or "nothing"
    speedup = rows[0]["s_per_epoch"] / row["s_per_epoch"]
    return (f"<b>frozen:</b> {frozen}<br>"
            f"<b>trainable parameters:</b> {row['trainable']:,} of {row['total']:,} "
            f"({row['trainable_pct']:.1f}%)<br>"
            f"<b>estimated time per epoch</b> ({epoch_images:,} images): {row['s_per_epoch']:.1f} s, "
            f"{speedup:.1f}x as fast as training everything "
            f"(nothing frozen: {rows[0]['s_per_epoch']:.1f} s, head only: {rows[-1]['s_per_epoch']:.1f} s)")


def _freeze_widget(model: nn.Module, rows: list[dict], epoch_images: int) -> "ipywidgets.VBox":
    import ipywidgets as w

    probe = copy.deepcopy(model)
    names = list(stages(probe))
    slider = w.IntSlider(value=0, min=0, max=len(names) - 1, step=1, description="frozen stages",
                         continuous_update=False, style={"description_width": "initial"})
    summary, diagram = w.HTML(), w.Output()

    def show(change: dict | None = None) -> None:
        k = slider.value
        apply_freeze_depth(probe, k)
        summary.value = _freeze_summary(rows[k], rows, epoch_images)
        _show_figure(diagram, plot_freeze_diagram(probe))

    slider.observe(show, names="value")
    show()
    return w.VBox([slider, summary, diagram])


def freeze_explorer(model: nn.Module, *, image_size: int = 64, batch_size: int = 32, epoch_images: int = 1000,
                    device: torch.device | str | None = None, static: bool | None = None,
                    seconds_per_image: Sequence[float] | None = None) -> "ipywidgets.VBox | Figure":
    """Lesson 04: how many stages to freeze? A slider from 0 to n-1 frozen stages (input
    side first; the head always trains) shows the trainable-parameter count (and % of all),
    the freeze diagram (`ftlib.plots.plot_freeze_diagram`) and the estimated training time
    for one epoch of `epoch_images` images of `image_size` px on `device`.

    The times are estimated once, when the explorer is built (`measure_seconds_per_image`:
    FLOPs of a training step counted at every depth, calibrated by timing two depths, about
    2-4 s), so moving the slider costs nothing; pass `seconds_per_image` (one value per
    depth, e.g. from `measure_seconds_per_image`) to skip the measuring. The explorer works
    on a copy: to freeze your own model the same way, call `apply_freeze_depth(model, k)`.

    Returns the widget (an ipywidgets VBox: slider, summary, diagram). Where widgets cannot
    be shown (`use_static(static)`), prints the table for every depth and returns the
    static Figure of `plot_freeze_table` instead.
    """
    rows = freeze_table(model, image_size=image_size, batch_size=batch_size, epoch_images=epoch_images,
                        device=device, seconds_per_image=seconds_per_image)
    if use_static(static):
        print(format_freeze_table(rows))
        return plot_freeze_table(rows, epoch_images)
    return _freeze_widget(model, rows, epoch_images)


# --------------------------------------------------------------------------------------------
# Learning rates: the pure part
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


def make_optimizer(model: nn.Module, lr: float,
                   optimizer: str | Callable[[list, float], torch.optim.Optimizer] = "sgd") -> torch.optim.Optimizer:
    """An optimizer over the trainable parameters of `model`, in one group named "trainable".

    "sgd": SGD with momentum 0.9; "adam": Adam; "adamw": AdamW (weight decay 0.01); or a
    callable `(params, lr) -> Optimizer`. Used by `lr_sweep` (lesson 05).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: unfreeze something (ftlib.unfreeze).")
    if callable(optimizer):
        return optimizer(params, lr)
    optimizer = str(optimizer).lower()
    group = [{"params": params, "lr": lr, "name": "trainable"}]
    kinds = {"sgd": lambda: torch.optim.SGD(group, lr=lr, momentum=0.9),
             "adam": lambda: torch.optim.Adam(group, lr=lr),
             "adamw": lambda: torch.optim.AdamW(group, lr=lr, weight_decay=0.01)}
    if optimizer not in kinds:
        raise ValueError(f"optimizer must be one of {', '.join(kinds)} or a callable (params, lr) -> "
                         f"Optimizer, not {optimizer!r}")
    return kinds[optimizer]()


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
    (its own weights are then never touched). Used by `lr_explorer` (lesson 05).
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


def _split(history: History) -> str:
    """"val" when the history has validation columns, else "train"."""
    return "val" if history.rows and "val_acc" in history.rows[0] else "train"


def format_lr_table(results: Mapping[float, History]) -> str:
    """One line per learning rate: epochs run, last train loss, last loss and accuracy and
    best accuracy (on val, or on train without a validation loader), and "diverged" where
    the loss blew up. Used by `lr_explorer` (lesson 05)."""
    split = _split(next(iter(results.values()))) if results else "val"
    lines = [f"{'lr':>8} {'epochs':>6} {'train loss':>10} {split + ' loss':>9} {split + ' acc':>8} "
             f"{'best acc':>8}"]
    for lr, h in sorted(results.items()):
        note = "  diverged" if h.diverged else ""
        if not h.rows:
            lines.append(f"{lr:>8.0e} {0:>6} {'-':>10} {'-':>9} {'-':>8} {'-':>8}{note}")
            continue
        s, last = _split(h), h.rows[-1]
        lines.append(f"{lr:>8.0e} {len(h):>6} {last['train_loss']:>10.3f} {last[s + '_loss']:>9.3f} "
                     f"{last[s + '_acc']:>8.3f} {max(h[s + '_acc']):>8.3f}{note}")
    return "\n".join(lines)


def plot_lr_sweep(results: Mapping[float, History]) -> Figure:
    """Validation accuracy (left) and loss (right, log scale; train loss dashed) per epoch,
    one colour per learning rate, overlaid. Without validation columns the train curves are
    drawn. A run that diverged is marked in the legend. Used in lesson 05."""
    if not results:
        raise ValueError("no results to plot: run lr_sweep first")
    fig = plt.figure(figsize=(10, 3.6), layout="constrained")
    plt.close(fig)
    ax_acc, ax_loss = fig.subplots(1, 2)
    colours = plt.get_cmap("viridis")
    ordered = sorted(results.items())
    for i, (lr, h) in enumerate(ordered):
        colour = colours(i / max(len(ordered) - 1, 1) * 0.9)
        label = f"lr={lr:.0e}" + (" (diverged)" if h.diverged else "")
        s, epochs = _split(h), h["epoch"] if h.rows else []
        ax_acc.plot(epochs, h[s + "_acc"] if h.rows else [], "-o", color=colour, label=label, markersize=4)
        ax_loss.plot(epochs, h[s + "_loss"] if h.rows else [], "-o", color=colour, label=label, markersize=4)
        if s == "val":
            ax_loss.plot(epochs, h["train_loss"], "--", color=colour, alpha=0.6)
    split = _split(ordered[0][1])
    ax_acc.set_ylabel(f"{split} accuracy")
    ax_loss.set_ylabel(f"{split} loss" + (" (dashed: train)" if split == "val" else ""))
    ax_loss.set_yscale("log")
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# Learning rates: the explorer
# --------------------------------------------------------------------------------------------

def _lr_widget(run: Callable[[list[float]], dict[float, History]], lrs: Sequence[float],
               epochs: int, known: Mapping[float, History]) -> "ipywidgets.VBox":
    """The LR explorer around `run(lrs) -> {lr: History}`; finished runs (starting with
    `known`) are kept in `cache`."""
    import ipywidgets as w

    options = sorted(set(LR_CHOICES) | {float(lr) for lr in lrs})
    pick = w.SelectMultiple(options=[(f"{lr:.0e}", lr) for lr in options],
                            value=[float(lr) for lr in lrs], rows=min(len(options), 8),
                            description="learning rates")
    extra = w.Text(value="", placeholder="more, e.g. 5e-3, 2e-2", description="add")
    button = w.Button(description=f"Run ({epochs} epochs each)", button_style="primary")
    clear = w.Button(description="Clear results")
    status, out = w.HTML(), w.Output()
    cache: dict[float, History] = dict(known)

    def show() -> None:
        status.value = f"<pre>{format_lr_table(cache)}</pre>"
        _show_figure(out, plot_lr_sweep(cache))

    def on_run(_: object = None) -> None:
        try:
            wanted = sorted(set(pick.value) | set(parse_lrs(extra.value)))
        except ValueError as error:
            status.value = f"<span style='color:red'>{error}</span>"
            return
        todo = [lr for lr in wanted if lr not in cache]
        button.disabled = True
        try:
            for i, lr in enumerate(todo, 1):
                status.value = f"training lr={lr:.0e} ({i} of {len(todo)}) ..."
                cache.update(run([lr]))
        except Exception as error:  # a callback's traceback would go to a log nobody reads
            status.value = f"<span style='color:red'>{type(error).__name__}: {error}</span>"
            return
        finally:
            button.disabled = False
        if cache:
            show()
        else:
            status.value = "pick at least one learning rate, then Run"

    def on_clear(_: object = None) -> None:
        cache.clear()
        out.outputs = ()
        status.value = "results cleared"

    button.on_click(on_run)
    clear.on_click(on_clear)
    status.value = "pick learning rates, then Run: each one fine-tunes a fresh model"
    if cache:
        show()
    return w.VBox([w.HBox([pick, w.VBox([extra, w.HBox([button, clear])])]), status, out])


def lr_explorer(make_model: Callable[[], nn.Module], train_loader, val_loader, *,
                lrs: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1), epochs: int = 3,
                optimizer: str | Callable = "sgd", device: torch.device | str | None = None,
                static: bool | None = None, seed: int = 0, fit_kwargs: Mapping | None = None,
                results: Mapping[float, History] | None = None) -> "ipywidgets.VBox | Figure":
    """Lesson 05: which learning rate? The student picks learning rates (a list, plus a text
    box for other values) and clicks Run: each new LR fine-tunes a fresh `make_model()` for
    `epochs` epochs (`lr_sweep`), and the accuracy and loss curves of every LR run so far are
    overlaid (`plot_lr_sweep`) with a table of final values. Finished runs are cached, so
    running again only trains the new LRs and adds their curves; "Clear results" empties it.

    `results` ({lr: History}, e.g. from an earlier `lr_sweep` with the same settings) are
    shown from the start and never retrained. Returns the widget (an ipywidgets VBox).
    Where widgets cannot be shown (`use_static(static)`), runs the sweep once for the LRs of
    `lrs` not in `results`, prints the table of all of them and returns the Figure instead.
    """
    def run(chosen: Sequence[float]) -> dict[float, History]:
        return lr_sweep(make_model, train_loader, val_loader, chosen, epochs, optimizer=optimizer,
                        device=device, seed=seed, fit_kwargs=fit_kwargs)

    known = {float(lr): h for lr, h in (results or {}).items()}
    if use_static(static):
        missing = [lr for lr in lrs if float(lr) not in known]
        if missing:
            known.update(run(missing))
        print(format_lr_table(known))
        return plot_lr_sweep(known)
    return _lr_widget(run, lrs, epochs, known)
