"""Plots: training curves, confusion matrix, image grids, filters, feature maps, LR curves, freezing.

Every function returns a matplotlib `Figure` and never calls `plt.show()`. The figure is
closed in pyplot before it is returned, so Jupyter shows it once, when a cell ends with
it (or on `display(fig)`), and loops do not pile up open figures. Save it with
`fig.savefig("name.png")`.
Numbers come from `ftlib.metrics`, `ftlib.train`, `ftlib.freeze`, `ftlib.cost` and
`ftlib.optim`; this module only draws. Lessons 01 (filters, feature maps), 04 (freeze
diagram, freeze cost), 05 (LR finder, LR sweep, schedules), 06 (curves) and 08 (confusion
matrix, predictions) use it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator
from torch import nn

from .features import stage_outputs
from .freeze import STATUSES, count_parameters, stage_status
from .models import stages as model_stages
from .optim import sweep_split
from .train import History

__all__ = [
    "plot_history", "plot_confusion_matrix", "show_images", "plot_conv1_filters", "plot_feature_maps",
    "plot_lr_find", "plot_lr_sweep", "plot_lr_schedule", "plot_freeze_diagram", "plot_freeze_table",
    "FREEZE_COLORS", "WRONG_COLOR",
]

WRONG_COLOR = "red"
# Colours of the freeze diagram, by stage state (`ftlib.freeze.STATUSES`, decided by `stage_status`).
FREEZE_COLORS = dict(zip(STATUSES, ("#4daf4a", "#377eb8", "#ff7f00", "#d9d9d9")))


def _figure(width: float, height: float) -> Figure:
    """A new figure, already closed in pyplot: it is shown only where the caller displays it."""
    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)
    return fig


# ---------------------------------------------------------------- training curves

def _history_rows(history) -> list[dict]:
    """The per-epoch dicts of a History (anything with `.rows`) or of a plain list."""
    rows = getattr(history, "rows", history)
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise TypeError("plot_history takes a History (with .rows) or a list of per-epoch dicts")
    if not rows:
        raise ValueError("the history is empty: train for at least one epoch first")
    return list(rows)


def plot_history(history) -> Figure:
    """Loss (left) and accuracy (right) per epoch, train and val.

    `history`: an `ftlib.train.History` or a list of dicts with keys `epoch`, `train_loss`,
    `train_acc`, `val_loss`, `val_acc` (missing or None values are skipped). Accuracy is a
    fraction in [0, 1]. Used in lessons 05-07 to read under- and overfitting.
    """
    rows = _history_rows(history)
    fig = _figure(10, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "-o"), ("val", "-s")):
            points = [(r.get("epoch", i + 1), r[f"{split}_{metric}"]) for i, r in enumerate(rows)
                      if r.get(f"{split}_{metric}") is not None]
            if points:
                ax.plot(*zip(*points), style, label=split, markersize=4)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    return fig


# ---------------------------------------------------------------- confusion matrix

def plot_confusion_matrix(cm: torch.Tensor, class_names: Sequence[str] | None = None,
                          normalize: bool = False) -> Figure:
    """The confusion matrix as a heat map, each cell labelled. Rows = true, columns = predicted.

    `cm`: (C, C) counts from `ftlib.metrics.confusion_matrix`. `normalize=True` divides
    each row by its total, so a cell shows the fraction of that true class (the diagonal
    is then the recall); a row with no samples stays 0. Used in lesson 08 and the projects.
    """
    counts = torch.as_tensor(cm).double()
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix is square (C, C), got shape {tuple(counts.shape)}")
    n = len(counts)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    values = counts / counts.sum(dim=1, keepdim=True).clamp(min=1) if normalize else counts
    size = max(4.0, 0.6 * n + 2)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    image = ax.imshow(values.numpy(), cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    threshold = values.max().item() / 2
    for i in range(n):
        for j in range(n):
            v = values[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                    color="white" if v > threshold else "black", fontsize=8)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix\n" + ("fraction of each true class" if normalize else "counts"))
    return fig


# ---------------------------------------------------------------- image grid

def _displayable(image: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """One (C, H, W) image as an (H, W, 3) or (H, W) float array in [0, 1] for imshow."""
    x = image.detach().cpu()
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if mean is not None and std is not None:
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    x = x.clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _name(index: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[index]) if class_names is not None else str(index)


def show_images(images: torch.Tensor | Sequence[torch.Tensor], labels: Sequence[int] | torch.Tensor | None = None,
                preds: Sequence[int] | torch.Tensor | None = None, class_names: Sequence[str] | None = None,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                ncols: int = 8) -> Figure:
    """A grid of images titled with their label, or prediction; wrong predictions in red.

    `images`: (N, C, H, W) uint8 (0..255) or float, or a list of (C, H, W) tensors; C is 1
    (shown in grey) or 3. Float images normalised for a model are put back with `mean`
    and `std` (per channel) before display. With `preds` and `labels`, a right prediction
    is titled with its class; a wrong one is titled "pred: X / true: Y" in red and gets a
    red frame. Used in lessons 02, 06 and 08.
    """
    images = list(images)
    if not images:
        raise ValueError("show_images got no images")
    for name, values in (("labels", labels), ("preds", preds)):
        if values is not None and len(values) != len(images):
            raise ValueError(f"{len(images)} images but {len(values)} {name}")
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    fig = _figure(1.6 * ncols, 1.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.set_axis_off()
            continue
        array = _displayable(images[i], mean, std)
        ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1)
        _title_and_frame(ax, None if labels is None else int(labels[i]),
                         None if preds is None else int(preds[i]), class_names)
    return fig


def _title_and_frame(ax, label: int | None, pred: int | None, class_names: Sequence[str] | None) -> None:
    """Title an image axis; a wrong prediction gets a red title and a red frame."""
    wrong = label is not None and pred is not None and label != pred
    for spine in ax.spines.values():
        spine.set_visible(wrong)
        spine.set_color(WRONG_COLOR)
        spine.set_linewidth(3)
    if wrong:
        title = f"pred: {_name(pred, class_names)}\ntrue: {_name(label, class_names)}"
        ax.set_title(title, color=WRONG_COLOR, fontsize=8)
    elif pred is not None or label is not None:
        ax.set_title(_name(pred if pred is not None else label, class_names), fontsize=8)


# ---------------------------------------------------------------- what a pretrained network knows

def _first_conv(model: nn.Module) -> nn.Conv2d:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer: there are no filters to show")


def _filter_tile(weight: torch.Tensor) -> torch.Tensor:
    """One filter (I, kh, kw) as a tile in [0, 1]: RGB (kh, kw, 3) if I == 3, else grey (kh, kw)."""
    w = weight.detach().float().cpu()
    w = w.permute(1, 2, 0) if w.shape[0] == 3 else w.mean(dim=0)
    span = (w.max() - w.min()).clamp(min=1e-12)
    return (w - w.min()) / span


def plot_conv1_filters(model: nn.Module, max_filters: int = 64) -> Figure:
    """The first convolution's filters as small tiles, each scaled to its own min..max.

    With 3 input channels each filter is an RGB tile (resnet18: 64 filters of 7x7); with
    another number of channels the mean over channels is shown in grey. Tiles are placed
    in one mosaic image, with a 1-pixel white gap. Used in lesson 01 (pretrained filters
    look like edge and colour detectors; random ones look like noise).
    """
    weight = _first_conv(model).weight[:max_filters]
    tiles = [_filter_tile(w) for w in weight]
    ncols = math.ceil(math.sqrt(len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    kh, kw = tiles[0].shape[:2]
    mosaic = torch.ones((nrows * (kh + 1) - 1, ncols * (kw + 1) - 1) + tiles[0].shape[2:])
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        mosaic[r * (kh + 1): r * (kh + 1) + kh, c * (kw + 1): c * (kw + 1) + kw] = tile
    fig = _figure(5, 5 * nrows / ncols + 0.4)
    ax = fig.subplots()
    ax.imshow(mosaic.numpy(), cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"first conv layer: {len(tiles)} filters of {kh}x{kw}")
    return fig


def plot_feature_maps(model: nn.Module, image: torch.Tensor, stages: Sequence[str] | None = None,
                      n: int = 8) -> Figure:
    """Activations of one image after each stage, early (top row) to deep (bottom row).

    `image`: (C, H, W) or (1, C, H, W) float, preprocessed as the model expects. `stages`:
    stage names from `ftlib.models.stages`; None means every stage but the head. Each row
    shows the `n` channels with the highest mean activation, each tile in its own colour
    scale; the row label gives the stage name and its (C x H x W). Used in lesson 01
    (edges early, then textures and shapes, then object parts).
    """
    names = list(stages) if stages is not None else list(model_stages(model))[:-1]
    if image.ndim not in (3, 4) or (image.ndim == 4 and len(image) != 1):
        raise ValueError(f"pass one image (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}")
    outputs = stage_outputs(model, image, names)
    fig = _figure(1.3 * n + 1, 1.4 * len(names))
    axes = fig.subplots(len(names), n, squeeze=False)
    for row, name in zip(axes, names):
        maps = outputs[name][0]
        if maps.ndim != 3:
            raise ValueError(f"stage {name!r} outputs shape {tuple(outputs[name].shape)}, not feature maps; "
                             "leave the head out of `stages`")
        top = maps.mean(dim=(1, 2)).argsort(descending=True)[:n]
        for ax, channel in zip(row, top.tolist()):
            ax.imshow(maps[channel].numpy(), cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in row[len(top):]:
            ax.set_axis_off()
        row[0].set_ylabel(f"{name}\n{'x'.join(str(s) for s in maps.shape)}", fontsize=8)
    return fig


# ---------------------------------------------------------------- learning rates

def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None) -> Figure:
    """The LR range test: loss against learning rate on a log axis, the suggestion marked.

    `lrs` and `losses` are as returned by `ftlib.optim.lr_find` (one value per step). The
    suggestion gets a dashed vertical line and a red dot on the curve. Used in lesson 05.
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.shape != losses.shape or lrs.ndim != 1 or len(lrs) < 2:
        raise ValueError(f"need as many learning rates as losses, at least 2: got {lrs.shape} and {losses.shape}")
    if (lrs <= 0).any():
        raise ValueError("learning rates must be positive for a log axis")
    fig = _figure(6, 4)
    ax = fig.subplots()
    ax.plot(lrs, losses, label="loss")
    ax.set_xscale("log")
    if suggestion is not None:
        order = np.argsort(lrs)
        at = np.interp(np.log10(suggestion), np.log10(lrs[order]), losses[order])
        ax.axvline(suggestion, color="red", linestyle="--", linewidth=1)
        ax.plot([suggestion], [at], "o", color="red", label=f"suggested lr {suggestion:.1e}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def _lr_series(lrs) -> dict[str, list[float]]:
    """Named LR series from a list of floats, a list of {group: lr} dicts, or {name: list}."""
    if isinstance(lrs, Mapping):
        return {str(k): [float(v) for v in vs] for k, vs in lrs.items()}
    lrs = list(lrs)
    if lrs and isinstance(lrs[0], Mapping):
        return {str(g): [float(step[g]) for step in lrs] for g in lrs[0]}
    return {"lr": [float(v) for v in lrs]}


def plot_lr_schedule(lrs_per_step, log: bool = False, title: str = "learning-rate schedule") -> Figure:
    """Learning rate against step, one line per series.

    `lrs_per_step`: a list of floats (one schedule), a list of `{group name: lr}` dicts
    (one line per optimizer group, e.g. recorded each step from `optimizer.param_groups`),
    or `{schedule name: list of floats}` to compare shapes (step, cosine, one-cycle...).
    `log=True` uses a log y axis (discriminative LRs differ by factors). Used in lesson 05.
    """
    series = _lr_series(lrs_per_step)
    if not series or not any(series.values()):
        raise ValueError("no learning rates to plot")
    fig = _figure(6, 3.6)
    ax = fig.subplots()
    for name, values in series.items():
        ax.plot(range(len(values)), values, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_lr_sweep(results: Mapping[float, History]) -> Figure:
    """Validation accuracy (left) and loss (right, log scale; train loss dashed) per epoch,
    one colour per learning rate, overlaid: `results` is {lr: History} from
    `ftlib.optim.lr_sweep`. Without validation columns the train curves are drawn. A run
    that diverged is marked in the legend. Used in lesson 05 (`ftlib.widgets.lr_explorer`)."""
    if not results:
        raise ValueError("no results to plot: run lr_sweep first")
    fig = _figure(10, 3.6)
    ax_acc, ax_loss = fig.subplots(1, 2)
    colours = plt.get_cmap("viridis")
    ordered = sorted(results.items())
    for i, (lr, h) in enumerate(ordered):
        colour = colours(i / max(len(ordered) - 1, 1) * 0.9)
        label = f"lr={lr:.0e}" + (" (diverged)" if h.diverged else "")
        s, epochs = sweep_split(h), h["epoch"] if h.rows else []
        ax_acc.plot(epochs, h[s + "_acc"] if h.rows else [], "-o", color=colour, label=label, markersize=4)
        ax_loss.plot(epochs, h[s + "_loss"] if h.rows else [], "-o", color=colour, label=label, markersize=4)
        if s == "val":
            ax_loss.plot(epochs, h["train_loss"], "--", color=colour, alpha=0.6)
    split = sweep_split(ordered[0][1])
    ax_acc.set_ylabel(f"{split} accuracy")
    ax_loss.set_ylabel(f"{split} loss" + (" (dashed: train)" if split == "val" else ""))
    ax_loss.set_yscale("log")
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- freezing

def _count(n: int) -> str:
    """12,345 -> '12.3k', 11,689,512 -> '11.7M'."""
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def plot_freeze_diagram(model: nn.Module) -> Figure:
    """One box per stage, input (left) to output (right), coloured by what trains.

    Green: every parameter trains; blue: frozen; orange: partly frozen; grey: no
    parameters: the state is `ftlib.freeze.stage_status`. Each box gives the stage name,
    its state and "trainable / total" parameters (`ftlib.freeze.count_parameters`), and has
    the stage name as its gid (`patch.get_gid()`). Used in lessons 04 and 07.
    """
    states = stage_status(model)
    counts = {name: (count_parameters(stage, trainable=True), count_parameters(stage))
              for name, stage in model_stages(model).items()}
    fig = _figure(max(6.0, 1.25 * len(states)), 2.4)
    ax = fig.subplots()
    for i, (name, state) in enumerate(states.items()):
        box = Rectangle((i * 1.2, 0), 1.0, 1.0, facecolor=FREEZE_COLORS[state], edgecolor="black", gid=name)
        ax.add_patch(box)
        trainable, total = counts[name]
        ax.text(i * 1.2 + 0.5, 0.5, f"{name}\n{state}\n{_count(trainable)} / {_count(total)}",
                ha="center", va="center", fontsize=8)
    ax.set_xlim(-0.1, len(states) * 1.2)
    ax.set_ylim(-0.1, 1.1)
    ax.set_axis_off()
    trainable, total = sum(t for t, _ in counts.values()), sum(n for _, n in counts.values())
    ax.set_title(f"trainable parameters: {trainable:,} of {total:,}")
    handles = [Patch(facecolor=c, edgecolor="black", label=s) for s, c in FREEZE_COLORS.items()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4, frameon=False, fontsize=8)
    return fig


def plot_freeze_table(rows: Sequence[dict], epoch_images: int | None = None) -> Figure:
    """Two bar charts against the number of frozen stages: trainable parameters (% of all)
    and estimated seconds per epoch; `rows` from `ftlib.cost.freeze_table`. The static view
    of `ftlib.widgets.freeze_explorer` (lesson 04)."""
    fig = _figure(10, 3.4)
    ax_params, ax_time = fig.subplots(1, 2)
    ks = [r["frozen_stages"] for r in rows]
    ax_params.bar(ks, [r["trainable_pct"] for r in rows], color=FREEZE_COLORS["trainable"])
    ax_params.set_ylabel("trainable parameters (% of all)")
    ax_time.bar(ks, [r["s_per_epoch"] for r in rows], color="#377eb8")
    per = f" of {epoch_images:,} images" if epoch_images else ""
    ax_time.set_ylabel(f"estimated s / epoch{per}")
    for ax in (ax_params, ax_time):
        ax.set_xlabel("frozen stages (from the input)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
    return fig
