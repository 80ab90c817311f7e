"""Fine-tuning strategies raced at one budget: the experiment of the projects (lessons 09 to 11).

A project asks two questions of its data, and this module measures both.

- *How close is it to the pretraining data?* `stage_probes` fits a linear probe on the pooled
  output of each stage of the pretrained network; `depth_sweep` fine-tunes with the first
  `depth` stages frozen, for several depths and seeds. `within_spread` names the depths whose
  mean lies within one seed spread of the best: the answers a project's checker accepts.
- *Which way to fine-tune?* `race` trains each of `STRATEGIES` once per seed on the same images,
  for the same epochs, with the same optimizer (AdamW), schedule (cosine) and `Recipe`;
  `summarize`, `format_table` and `plot_race` show means and seed spreads, and `choose` picks a
  strategy on the validation split (never on the test split).

| strategy  | what trains                                   | head starts as  | learning rates           |
| --------- | --------------------------------------------- | --------------- | ------------------------ |
| `probe`   | a linear head on cached pooled features (logistic regression, scikit-learn) | -  | -      |
| `partial` | the stages after the first `depth` (frozen, BatchNorm in eval mode) | random  | discriminative |
| `full`    | every stage                                   | random          | discriminative           |
| `lp-ft`   | every stage                                   | the linear probe | discriminative          |
| `scratch` | every stage, from random weights (the floor)  | random          | `lr` for every stage     |

Discriminative: the head gets `recipe.lr` and each stage below it `recipe.factor` times less
(ULMFiT's 2.6, lesson 05). `partial` and `full` differ only in the frozen depth, `full` and
`lp-ft` only in the head's start. Without augmentation, `partial` trains on activations cached
once after the frozen stages (lesson 03), which computes the same thing faster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader

from .data import DataSplits, TensorImageDataset
from .deploy import preprocess_for
from .device import release_memory, resolve_device, seed_everything
from .features import cache_activations, extract_features, linear_probe, split_model, without_head
from .freeze import freeze
from .metrics import Evaluation, evaluate
from .models import stage_names, stages
from .optim import param_groups
from .pretrained import get_weights, load_model
from .train import fit

STRATEGIES = ("probe", "partial", "full", "lp-ft", "scratch")
"""The five strategies of a project's race, cheapest first, the floor last."""

DESCRIPTIONS = {
    "probe": "linear probe on frozen features",
    "partial": "partial fine-tuning (first stages frozen)",
    "full": "full fine-tuning, discriminative LRs",
    "lp-ft": "linear probe, then full fine-tuning",
    "scratch": "from scratch (random weights)",
}


@dataclass(frozen=True)
class Recipe:
    """What every arm of a race shares: epochs, batch size, the head's learning rate, the factor
    between stages, AdamW's weight decay (not on norms and biases), the precision `fit` uses, and the
    probe's inverse regularisation strength `probe_c`."""

    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    factor: float = 2.6
    weight_decay: float = 0.05
    precision: str = "fast"
    probe_c: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.factor < 1 or self.probe_c <= 0:
            raise ValueError(f"a Recipe needs epochs >= 1, batch_size >= 1, lr > 0, factor >= 1 and probe_c > 0; got {self}")


@dataclass
class Run:
    """One strategy trained once: its seed, frozen depth, the model's outputs on the validation and test
    splits (`Evaluation`s), the training time in seconds (caching included) and, for the first seed of
    each strategy, the trained model on the CPU (`None` otherwise, to keep memory low)."""

    strategy: str
    seed: int
    depth: int
    val: Evaluation | None
    test: Evaluation
    time_s: float
    model: nn.Module | None = None


# Batches for passes without gradients (features, caching, evaluation): small enough that their
# activations stay well under the training step's on a 2 GB machine (Binder), large enough to be fast.
FEATURE_BATCH, EVAL_BATCH = 64, 100


def _loader(data, batch_size: int = FEATURE_BATCH, **options) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, **options)


def _eval(model: nn.Module, part: TensorImageDataset, preprocess: nn.Module, device) -> Evaluation | None:
    """The model's outputs on one split (None for an empty split), preprocessed image by image."""
    if len(part) == 0:
        return None
    return evaluate(model, _loader(part.with_transform(preprocess), EVAL_BATCH), device=device, class_names=part.class_names)


def stage_probes(splits: DataSplits, *, arch: str = "resnet18", weights: str = "auto", device=None,
                 c: float = 1.0, probe_stages: Sequence[str] | None = None) -> dict[str, float]:
    """Test accuracy of a linear probe on the pooled output of each stage of the pretrained `arch`.

    Each stage's feature maps are averaged over space and fed to `linear_probe` (logistic regression,
    standardised features) fitted on the training split and scored on the test split. A high probe
    at an early stage and little gain after it: the data are close to what those stages learned. A
    probe that keeps rising to the last stage, well below a fine-tuned model: the deep stages need
    to adapt (lesson 04). Returns `{stage: accuracy}` for every stage but the head.
    """
    model = load_model(arch, weights, num_classes=len(splits.class_names), verbose=False)
    preprocess, device = preprocess_for(model.weights_info), resolve_device(device)
    names = list(probe_stages or stage_names(model)[:-1])
    data = {part: getattr(splits, part).with_transform(preprocess) for part in ("train", "test")}
    out: dict[str, float] = {}
    for name in names:
        prefix = split_model(model, upto=name)[0]
        feats = {part: extract_features(prefix, _loader(d), device) for part, d in data.items()}
        head = linear_probe(*feats["train"], c=c)
        with torch.no_grad():
            out[name] = float((head(feats["test"][0]).argmax(1) == feats["test"][1]).float().mean())
    return out


def _probe_head(model: nn.Module, train: TensorImageDataset, device, c: float, class_weight) -> nn.Linear:
    """A linear probe fitted on the model's pooled features of the (preprocessed) training images.

    The features are divided by one number, their overall standard deviation, and the division is
    folded back into the weights: the solver converges in a few hundred steps instead of thousands,
    and, unlike a per-feature standardisation, no nearly constant feature gets a huge weight (which
    would make the head a bad start for LP-FT)."""
    x, y = extract_features(without_head(model), _loader(train), device)
    scale = float(x.std().clamp(min=1e-6))
    head = linear_probe(x / scale, y, c=c, standardize=False, class_weight=class_weight)
    with torch.no_grad():
        head.weight.div_(scale)
    return head


def _head_layer(model: nn.Module) -> nn.Linear:
    head = [m for m in stages(model)["head"].modules() if isinstance(m, nn.Linear)]
    if not head:
        raise ValueError("the model's head has no nn.Linear to start from the probe")
    return head[-1]


def _train_part(strategy: str, model: nn.Module, depth: int, train: TensorImageDataset, augmented: bool,
                recipe: Recipe, seed: int, device, loss_fn) -> None:
    """Freeze the first `depth` stages, cache after them when the images are not augmented, and train."""
    names, part = stage_names(model), model
    if depth > 0:
        freeze(model, upto=names[depth - 1])
        if not augmented:                                     # one pass through the frozen stages is enough
            train = cache_activations(model, _loader(train), upto=names[depth - 1], device=device)
            part = split_model(model, upto=names[depth - 1])[1]
    factor = 1.0 if strategy == "scratch" else recipe.factor
    optimizer = torch.optim.AdamW(param_groups(part, lr=recipe.lr, factor=factor, weight_decay=recipe.weight_decay))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    loader = DataLoader(train, batch_size=recipe.batch_size, shuffle=True, generator=seed_everything(seed))
    fit(part, loader, None, recipe.epochs, optimizer, scheduler, loss_fn=loss_fn, device=device,
        precision=recipe.precision, quiet=True)
    model.zero_grad(set_to_none=True)     # the last step's gradients: 45 MB that evaluation and a kept model never use


def train_strategy(strategy: str, splits: DataSplits, *, depth: int = 3, seed: int = 0, recipe: Recipe = Recipe(),
                   arch: str = "resnet18", weights: str = "auto", device=None, loss_fn: Callable | None = None,
                   class_weight: str | dict | None = None, augment: Callable | None = None,
                   keep_model: bool = False) -> Run:
    """Train one of `STRATEGIES` on `splits.train` and evaluate it on the validation and test splits.

    `depth`: the frozen stages of `partial` (0: none, as `full`; len(stages) - 1: all but the head).
    `loss_fn` (for example a class-weighted cross-entropy) is the loss of every trained arm, and
    `class_weight` ("balanced", a dict, or None) the probe's; give both or neither for a fair race.
    `augment`: a transform of one uint8 image `(3, H, W)` applied to training images on the fly
    (the frozen stages then run every batch instead of once). Returns a `Run`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    release_memory()          # what the caller let go of since the last run (models dropped between races)
    device, start = resolve_device(device), time.perf_counter()
    seed_everything(seed)
    model = load_model(arch, None if strategy == "scratch" else weights, num_classes=len(splits.class_names),
                       verbose=False)
    top = len(stage_names(model)) - 1
    if strategy == "partial" and not 0 <= depth <= top:
        raise ValueError(f"depth must be 0 to {top} frozen stages of {arch}, got {depth}")
    # scratch sees its images prepared as the pretrained arms see theirs: one change only, the weights
    preprocess = preprocess_for(get_weights(arch, weights, verbose=False) if strategy == "scratch" else model.weights_info)
    train = splits.train.with_transform(preprocess)
    if strategy in ("probe", "lp-ft"):
        probe = _probe_head(model, train, device, recipe.probe_c, class_weight)
        _head_layer(model).load_state_dict(probe.state_dict())
    frozen = {"probe": top, "partial": depth}.get(strategy, 0)
    if strategy != "probe":
        if augment is not None:
            train = splits.train.with_transform(lambda image: preprocess(augment(image)))
        _train_part(strategy, model, frozen, train, augment is not None, recipe, seed, device, loss_fn)
    seconds = time.perf_counter() - start
    val, test = (_eval(model, part, preprocess, device) for part in (splits.val, splits.test))
    model = model.to("cpu", memory_format=torch.contiguous_format).eval() if keep_model else None
    release_memory()          # this run's gradients, optimizer state and cached activations are gone
    return Run(strategy, seed, frozen, val, test, seconds, model)


def accuracy_of(ev: Evaluation) -> float:
    return ev.accuracy


def race(splits: DataSplits, strategies: Sequence[str] = STRATEGIES, seeds: Sequence[int] = (0, 1), *,
         depth: int = 3, recipe: Recipe = Recipe(), on_run: Callable[[Run], None] | None = None,
         keep: str = "first", metric: Callable[[Evaluation], float] = accuracy_of, **options) -> list[Run]:
    """Every strategy once per seed, at one budget (`recipe`).

    `keep`: which trained models the runs hold (each ResNet-18 is about 45 MB): `"first"`, the
    first seed's model of every strategy; `"best"`, only that of the strategy with the best mean
    validation `metric` so far (the one `choose(runs, metric)` picks, ties to the strategy listed
    first), so that one model is held instead of one per strategy; `"none"`, no model.
    `options` go to `train_strategy` (`arch`, `weights`, `device`, `loss_fn`, `class_weight`,
    `augment`). `on_run(run)` is called after each run, for example to print a line. Returns the
    runs in order: strategy by strategy, seed by seed.
    """
    if keep not in ("first", "best", "none"):
        raise ValueError(f"keep must be 'first', 'best' or 'none', got {keep!r}")
    runs: list[Run] = []
    best, best_score = None, -math.inf
    for strategy in strategies:
        group = []
        for i, seed in enumerate(seeds):
            run = train_strategy(strategy, splits, depth=depth, seed=seed, recipe=recipe,
                                 keep_model=keep != "none" and i == 0, **options)
            group.append(run)
            if on_run is not None:
                on_run(run)
        if keep == "best":
            score = _mean_std([metric(r.val) for r in group])[0] if all(r.val is not None for r in group) else -math.inf
            loser = group[0] if score <= best_score else best
            if score > best_score:
                best, best_score = group[0], score
            if loser is not None:
                loser.model = None
                release_memory()
        runs.extend(group)
    return runs


def depth_sweep(splits: DataSplits, depths: Sequence[int] = (2, 3, 4), seeds: Sequence[int] = (0, 1), *,
                recipe: Recipe = Recipe(), keep_model: bool = False, **options) -> list[Run]:
    """`partial` fine-tuning at each frozen depth, once per seed, at one budget. With `keep_model`,
    the first seed's run at each depth keeps its model (so the chosen depth's model can be saved)."""
    return [train_strategy("partial", splits, depth=d, seed=s, recipe=recipe, keep_model=keep_model and i == 0, **options)
            for d in depths for i, s in enumerate(seeds)]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def summarize(runs: Sequence[Run], metrics: dict[str, Callable[[Evaluation], float]] | None = None,
              split: str = "test") -> list[dict]:
    """One row per (strategy, depth): `strategy`, `depth`, `seeds`, each metric's mean and seed standard
    deviation (`"<metric>"`, `"<metric>_std"`) on `split`, and the mean training time `time_s`.
    `metrics` maps a name to a function of an `Evaluation`; the default is accuracy."""
    metrics = metrics or {"accuracy": accuracy_of}
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.strategy, run.depth), []).append(run)
    rows = []
    for (strategy, depth), group in groups.items():
        evals = [getattr(r, split) for r in group]
        if any(e is None for e in evals):
            raise ValueError(f"the runs of {strategy!r} have no {split} split to summarize")
        row = {"strategy": strategy, "depth": depth, "seeds": len(group)}
        for name, fn in metrics.items():
            row[name], row[f"{name}_std"] = _mean_std([fn(e) for e in evals])
        row["time_s"] = sum(r.time_s for r in group) / len(group)
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict], chosen: str | None = None) -> str:
    """The rows of `summarize` as a text table: mean ± seed standard deviation, and the time per run.
    `chosen` marks that strategy's row with an arrow."""
    metrics = [k for k in rows[0] if k not in ("strategy", "depth", "seeds", "time_s") and not k.endswith("_std")]
    head = f"  {'strategy':<9} {'frozen':>6} {'seeds':>5} " + " ".join(f"{m:>15}" for m in metrics) + f" {'time/run':>9}"
    lines = [head]
    for r in rows:
        mark = "→" if r["strategy"] == chosen else " "
        values = " ".join(f"{r[m]:>7.3f} ± {r[m + '_std']:.3f}" for m in metrics)
        lines.append(f"{mark} {r['strategy']:<9} {r['depth']:>6} {r['seeds']:>5} {values} {r['time_s']:>8.1f}s")
    return "\n".join(lines)


def choose(runs: Sequence[Run], metric: Callable[[Evaluation], float] = accuracy_of) -> str:
    """The strategy with the best mean `metric` on the validation split (ties: the cheaper, listed first)."""
    rows = summarize(runs, {"m": metric}, split="val")
    return max(rows, key=lambda r: r["m"])["strategy"]


def within_spread(rows: Sequence[dict], metric: str = "accuracy", key: str = "depth") -> list:
    """The `key` values (depths, by default) whose mean `metric` is within one seed spread of the best:
    `best - mean <= max(std of the best, std of that row)`. These are the defensible choices."""
    best = max(rows, key=lambda r: r[metric])
    return [r[key] for r in rows
            if best[metric] - r[metric] <= max(best[f"{metric}_std"], r[f"{metric}_std"]) + 1e-12]


def plot_race(runs: Sequence[Run], metric: Callable[[Evaluation], float] = accuracy_of, label: str = "test accuracy",
              chance: float | None = None) -> Figure:
    """One column per strategy: a dot per seed and a bar at the mean, on the test split."""
    from .plots import _figure

    fig = _figure(7.5, 3.4)
    ax = fig.subplots()
    order = list(dict.fromkeys((r.strategy, r.depth) for r in runs))
    for i, key in enumerate(order):
        values = [metric(r.test) for r in runs if (r.strategy, r.depth) == key]
        ax.bar(i, sum(values) / len(values), color="tab:blue", alpha=0.35, width=0.6)
        ax.plot([i] * len(values), values, "o", color="tab:blue")
    if chance is not None:
        ax.axhline(chance, ls=":", color="grey", label="chance")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(order)), [s if s != "partial" else f"partial (k={d})" for s, d in order])
    ax.set_ylabel(label)
    ax.set_title(f"{label} per strategy: bar = mean, dots = seeds")
    ax.grid(alpha=0.3, axis="y")
    return fig
