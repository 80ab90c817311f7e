"""Interactive explorers: how many stages to freeze (lesson 04), which learning rate (lesson 05).

Each explorer is a thin ipywidgets front end over pure functions that work without a
browser and are what the tests check:

| explorer          | the student changes             | pure functions behind it                              |
| ----------------- | ------------------------------- | ----------------------------------------------------- |
| `freeze_explorer` | frozen stages (a slider)        | `ftlib.freeze.apply_freeze_depth`, `ftlib.cost.freeze_table` |
| `lr_explorer`     | learning rates, then clicks Run | `ftlib.optim.parse_lrs`, `ftlib.optim.lr_sweep`       |

The figures come from `ftlib.plots` (`plot_freeze_diagram`, `plot_freeze_table`,
`plot_lr_sweep`). Where no widget front end exists (nbval, a plain terminal, CI) an
explorer prints a table and returns a static Figure instead (`use_static` states the
rule). Nothing is printed or displayed at import time, and ipywidgets is imported only
when a widget is built.

    >>> freeze_explorer(model)                       # lesson 04
    >>> lr_explorer(make_model, train_loader, val_loader, lrs=(1e-3, 1e-2))   # lesson 05
"""

from __future__ import annotations

import base64
import copy
import io
import os
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch
from matplotlib.figure import Figure
from torch import nn

from .config import in_notebook, is_quiet
from .cost import format_freeze_table, freeze_table
from .freeze import apply_freeze_depth
from .models import stages
from .optim import format_lr_table, lr_sweep, parse_lrs
from .plots import plot_freeze_diagram, plot_freeze_table, plot_lr_sweep
from .train import History

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["use_static", "freeze_explorer", "lr_explorer", "LR_CHOICES"]

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

    The times are estimated once, when the explorer is built
    (`ftlib.cost.measure_seconds_per_image`: FLOPs of a training step counted at every
    depth, calibrated by timing two depths, about 2-4 s), so moving the slider costs
    nothing; pass `seconds_per_image` (one value per depth, e.g. from
    `measure_seconds_per_image`) to skip the measuring. The explorer works on a copy: to
    freeze your own model the same way, call `ftlib.freeze.apply_freeze_depth(model, k)`.

    Returns the widget (an ipywidgets VBox: slider, summary, diagram). Where widgets cannot
    be shown (`use_static(static)`), prints the table for every depth and returns the
    static Figure of `ftlib.plots.plot_freeze_table` instead.
    """
    rows = freeze_table(model, image_size=image_size, batch_size=batch_size, epoch_images=epoch_images,
                        device=device, seconds_per_image=seconds_per_image)
    if use_static(static):
        print(format_freeze_table(rows))
        return plot_freeze_table(rows, epoch_images)
    return _freeze_widget(model, rows, epoch_images)


# --------------------------------------------------------------------------------------------
# Learning rates: the explorer
# --------------------------------------------------------------------------------------------

def _lr_controls(lrs: Sequence[float], epochs: int) -> tuple:
    """The controls of the LR explorer: the list of learning rates (`LR_CHOICES` and `lrs`,
    with `lrs` selected), a text box for more, and the Run and Clear buttons."""
    import ipywidgets as w

    options = sorted(set(LR_CHOICES) | {float(lr) for lr in lrs})
    pick = w.SelectMultiple(options=[(f"{lr:.0e}", lr) for lr in options],
                            value=[float(lr) for lr in lrs], rows=min(len(options), 8),
                            description="learning rates")
    extra = w.Text(value="", placeholder="more, e.g. 5e-3, 2e-2", description="add")
    button = w.Button(description=f"Run ({epochs} epochs each)", button_style="primary")
    clear = w.Button(description="Clear results")
    return pick, extra, button, clear


def _lr_widget(run: Callable[[list[float]], dict[float, History]], lrs: Sequence[float],
               epochs: int, known: Mapping[float, History]) -> "ipywidgets.VBox":
    """The LR explorer around `run(lrs) -> {lr: History}`; finished runs (starting with
    `known`) are kept in `cache`."""
    import ipywidgets as w

    pick, extra, button, clear = _lr_controls(lrs, epochs)
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
