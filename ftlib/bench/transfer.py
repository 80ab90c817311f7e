"""Does the offline backbone transfer? Scratch vs linear probe vs fine-tuning on the stand-ins.

The course-made ResNet-18 (`load_model("resnet18", weights="offline")`) never saw a chest
X-ray, a satellite tile or a garment: it was pretrained on fractals. This module measures,
on each offline stand-in with at most 50 labels per class, three test accuracies:

- `scratch_acc`: the same architecture from random weights, trained on those labels;
- `probe_acc`: the frozen pretrained backbone's features + a linear classifier;
- `finetune_acc`: the pretrained backbone with a new head, all layers trained, with the
  same steps, batch size, learning rate and schedule as scratch.

`python -m ftlib.bench --quick` reports the result; lesson 02 makes the same comparison
with its own plots. It is built from the lessons' own pieces: `ftlib.fit` trains (AdamW,
warm-up then cosine, random flips, the bf16 fast path on CPUs that have it),
`ftlib.metrics.evaluate` scores, `ftlib.features.extract_features` and
`ftlib.features.probe_accuracy` make the linear probe.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate
from torchvision.models import resnet18

from ..course.standins import make_standin
from ..data import CLASS_NAMES
from ..features import extract_features, global_pool, probe_accuracy, stage_outputs
from ..metrics import evaluate
from ..models import stage_names
from ..optim import param_groups
from ..precision import Precision, cpu_has_native_bf16
from ..pretrained import load_model
from ..train import fit

PROBE_LAYERS = ("layer1", "layer2", "layer3", "layer4")

__all__ = ["to_inputs", "train_classifier", "stage_features", "domain_transfer", "transfer_benchmark"]


def to_inputs(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 images (N, 3, H, W) -> float32 inputs (N, 3, H, W), scaled to [0, 1] then normalised."""
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return (images.float() / 255 - m) / s


def _batches(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 200) -> DataLoader:
    """The tensors in order, `batch_size` at a time (for evaluation and feature extraction)."""
    return DataLoader(TensorDataset(inputs, labels), batch_size=batch_size)


class _RandomFlips:
    """A DataLoader `collate_fn`: stacks the batch, then mirrors each image left-right with
    probability 1/2, drawn from its own generator so that the flips depend on `seed` only."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = default_collate(items)
        flip = torch.rand(len(x), 1, 1, 1, generator=self.generator) < 0.5
        return torch.where(flip, x.flip(-1), x), y


def _warmup_cosine(steps_per_epoch: int, total: int) -> Callable[[int], float]:
    """LR factor at step s: a linear warm-up over the first epoch, times a cosine from 1 to 0 over `total` steps."""
    return lambda s: min(1.0, (s + 1) / steps_per_epoch) * 0.5 * (1 + math.cos(math.pi * s / total))


def train_classifier(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                     lr: float, backbone_lr: float | None = None, batch_size: int = 32,
                     weight_decay: float = 0.05, seed: int = 0, bf16: bool = False,
                     device: torch.device | str | None = None) -> nn.Module:
    """Train all trainable parameters with `ftlib.fit`: AdamW, 1-epoch warm-up then cosine to 0
    (stepped per batch), random horizontal flips.

    inputs: float32 (N, 3, H, W), already normalised; labels: int64 (N,). `backbone_lr`
    (optional) gives every stage but the head its own, usually smaller, rate
    (`ftlib.optim.param_groups`). The batch order and flips come from `seed`. bf16: the CPU
    fast path (`Precision(fast=True)`), else fp32. device: None means `get_device()`.
    Returns the model in eval mode. Used by `domain_transfer`.
    """
    if epochs < 1 or len(inputs) == 0:
        raise ValueError(f"need epochs >= 1 and some images, got epochs={epochs}, {len(inputs)} images")
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), collate_fn=_RandomFlips(seed))
    names = stage_names(model)
    lrs = {name: lr if backbone_lr is None or name == names[-1] else backbone_lr for name in names}
    optimizer = torch.optim.AdamW(param_groups(model, lr, lrs=lrs), weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(len(loader), epochs * len(loader)))
    fit(model, loader, None, epochs, optimizer, scheduler, scheduler_step="batch", device=device, quiet=True,
        precision=Precision(fast=True) if bf16 else "fp32")
    return model


class _PooledStages(nn.Module):
    """The globally pooled outputs of the stages `names` of `model`, side by side: (N, sum of their channels).

    The stages run once, in order (`ftlib.plots`' stage walk); `widths` holds each stage's
    channel count after a forward pass, to split the columns again.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names, self.widths = model, tuple(names), []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = stage_outputs(self.model, x, self.names)
        pooled = [global_pool(outputs[name]) for name in self.names]
        self.widths = [p.shape[1] for p in pooled]
        return torch.cat(pooled, dim=1)


def stage_features(model: nn.Module, loader: Iterable, names: Sequence[str],
                   device: torch.device | str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """({stage: its globally average-pooled output (N, C) float32}, labels (N,) int64), in one pass.

    `loader` yields (inputs, labels) batches, as for `ftlib.features.extract_features`, which
    runs here over the stages `names` of `ftlib.models.stages`
    (resnet: stem, layer1..layer4): eval mode, no gradients, the model is unchanged; each
    stage is computed once, however many are named. device: None means `get_device()`.
    """
    pooled = _PooledStages(model, names)
    features, labels = extract_features(pooled, loader, device)
    return dict(zip(pooled.names, features.split(pooled.widths, dim=1))), labels


def _scratch_inputs(images_train: torch.Tensor, images_test: torch.Tensor, mean: list[float], std: list[float],
                    scratch_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Scratch's (train, test) inputs: normalised by the training images' own statistics ("own")
    or by the pretrained weights' `mean` and `std` ("weights")."""
    if scratch_norm not in ("own", "weights"):
        raise ValueError(f"scratch_norm={scratch_norm!r}: use 'own' or 'weights'")
    if scratch_norm == "own":
        pixels = images_train.float() / 255
        mean, std = pixels.mean((0, 2, 3)).tolist(), pixels.std((0, 2, 3)).clamp(min=1e-3).tolist()
    return to_inputs(images_train, mean, std), to_inputs(images_test, mean, std)


def _probes(backbone: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
            device: torch.device | str | None) -> dict[str, float]:
    """{stage: test accuracy of a linear probe on its pooled output} for each of PROBE_LAYERS."""
    feats_tr, _ = stage_features(backbone, _batches(*train), PROBE_LAYERS, device)
    feats_te, _ = stage_features(backbone, _batches(*test), PROBE_LAYERS, device)
    return {layer: round(probe_accuracy((feats_tr[layer], train[1]), (feats_te[layer], test[1])), 4)
            for layer in PROBE_LAYERS}


def domain_transfer(domain: str, pretrained: Callable[[int], nn.Module], mean: list[float], std: list[float], *,
                    per_class: int = 50, test_per_class: int = 100, steps: int = 200, seed: int = 0,
                    scratch_lr: float = 1e-3, finetune_lr: float = 1e-3, bf16: bool = False,
                    scratch_norm: str = "own", device: torch.device | str | None = None) -> dict:
    """Scratch, probe and fine-tune test accuracies on one stand-in, with `per_class` training labels.

    pretrained(num_classes) returns the backbone with a fresh head. Scratch and fine-tune
    share the budget (about `steps` optimizer steps of 32 images, rounded up to whole epochs),
    batch size, learning rate, schedule and augmentation.
    scratch_norm: "own" (default) normalises scratch's inputs by the training images' own
    per-channel mean and std, as one would for a model without pretrained weights, so the
    baseline stays put when the pretrained weights (and their `mean`, `std`) change;
    "weights" gives scratch the pretrained weights' `mean` and `std`, like fine-tuning.
    `probe_acc` probes the penultimate (layer4) features; `probe_acc_by_layer` probes each
    stage's pooled output as well, to show where the transferable features are.
    device: None means `get_device()`.
    Returns {"scratch_acc", "probe_acc", "finetune_acc", "chance", "probe_acc_by_layer",
    "train_images", "test_images", "epochs", "seconds"}.
    """
    t0 = time.time()
    k = len(CLASS_NAMES[domain])
    data = make_standin(domain, per_class=(per_class, 0, test_per_class), seed=seed)
    xs_tr, xs_te = _scratch_inputs(data.train.images, data.test.images, mean, std, scratch_norm)
    xtr, ytr = to_inputs(data.train.images, mean, std), data.train.labels
    xte, yte = to_inputs(data.test.images, mean, std), data.test.labels
    epochs = math.ceil(steps / math.ceil(len(ytr) / 32))
    train = dict(epochs=epochs, seed=seed, bf16=bf16, device=device)
    torch.manual_seed(seed)
    scratch = train_classifier(resnet18(num_classes=k), xs_tr, ytr, lr=scratch_lr, **train)
    backbone = pretrained(k)
    probes = _probes(backbone, (xtr, ytr), (xte, yte), device)
    tuned = train_classifier(backbone, xtr, ytr, lr=finetune_lr, **train)
    return {"scratch_acc": round(evaluate(scratch, _batches(xs_te, yte), device).accuracy, 4),
            "probe_acc": probes["layer4"],
            "finetune_acc": round(evaluate(tuned, _batches(xte, yte), device).accuracy, 4), "chance": round(1 / k, 4),
            "probe_acc_by_layer": probes,
            "train_images": len(ytr), "test_images": len(yte), "epochs": epochs, "seconds": round(time.time() - t0, 1)}


def transfer_benchmark(quick: bool = True, per_class: int = 50, seeds: tuple[int, ...] = (0, 1, 2), *,
                       weights_dir: Path | None = None, domains: tuple[str, ...] = ("medical", "satellite", "retail")) -> dict:
    """The transfer table of the offline backbone: {domain: the mean of domain_transfer(...) over `seeds`}.

    quick: about 200 optimizer steps (batches of 32) per model and 100 test images per class
    (300 for the 2-class medical stand-in): about 4 minutes per seed on 2 CPU cores; otherwise
    500 steps and 3x the test images. per_class: training labels per class (at most 50: this
    is a small-data benchmark). seeds: each seed draws its own stand-in images and training
    order; with 100 training images one seed moves the medical accuracies by 3 points or so,
    so the table averages several and also lists each seed's gain (`gain_by_seed`,
    fine-tune minus scratch). weights_dir: where `resnet18_offline.pt/.json` are (default:
    the package's). Training uses the bf16 fast path on CPUs with native bf16. Used by `python -m ftlib.bench`.
    """
    if not 1 <= per_class <= 50:
        raise ValueError(f"per_class={per_class}: the benchmark is about small data, use 1 to 50 labels per class.")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=(0,)")
    info_model = load_model("resnet18", weights="offline", offline_dir=weights_dir, verbose=False)
    prep = info_model.weights_info.preprocessing
    mean, std = list(prep["mean"]), list(prep["std"])
    bf16 = cpu_has_native_bf16()
    steps, scale = (200, 1) if quick else (500, 3)
    out = {}
    for domain in domains:
        tests = (300 if domain == "medical" else 100) * scale
        runs = [domain_transfer(
            domain, lambda k: load_model("resnet18", weights="offline", num_classes=k, offline_dir=weights_dir, verbose=False),
            mean, std, per_class=per_class, test_per_class=tests, steps=steps, seed=seed, bf16=bf16) for seed in seeds]
        out[domain] = _average(runs, seeds)
    return out


def _average(runs: list[dict], seeds: tuple[int, ...]) -> dict:
    """One row from several domain_transfer results: accuracies averaged, counts kept, seconds summed."""
    mean = lambda values: round(sum(values) / len(values), 4)  # noqa: E731
    row = {key: mean([r[key] for r in runs]) for key in ("scratch_acc", "probe_acc", "finetune_acc")}
    row["chance"] = runs[0]["chance"]
    row["probe_acc_by_layer"] = {layer: mean([r["probe_acc_by_layer"][layer] for r in runs])
                                 for layer in runs[0]["probe_acc_by_layer"]}
    row["gain_by_seed"] = {seed: round(r["finetune_acc"] - r["scratch_acc"], 4) for seed, r in zip(seeds, runs)}
    row.update({key: runs[0][key] for key in ("train_images", "test_images", "epochs")})
    row["seconds"] = round(sum(r["seconds"] for r in runs), 1)
    return row
