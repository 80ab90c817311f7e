"""Does the offline backbone transfer? Scratch vs linear probe vs fine-tuning on the stand-ins.

The course-made ResNet-18 (`load_model("resnet18", weights="offline")`) never saw a chest
X-ray, a satellite tile or a garment: it was pretrained on fractals. This module measures,
on each offline stand-in with at most 50 labels per class, three test accuracies:

- `scratch_acc`: the same architecture from random weights, trained on those labels;
- `probe_acc`: the frozen pretrained backbone's features + a linear classifier;
- `finetune_acc`: the pretrained backbone with a new head, all layers trained, with the
  same steps, batch size, learning rate and schedule as scratch.

`python -m ftlib.bench --quick` reports the result; lesson 02 makes the same comparison
with its own plots. The training loop here is deliberately minimal (AdamW, cosine schedule,
random flips, bf16 autocast on CPUs that support it) so that the benchmark is short.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn
from torchvision.models import resnet18

from ..data import CLASS_NAMES
from ..features import global_pool
from ..models import stages
from ..pretrained import load_model
from ..progress import progress
from ..course.standins import make_standin
from ..precision import cpu_has_native_bf16

PROBE_LAYERS = ("layer1", "layer2", "layer3", "layer4")

__all__ = ["to_inputs", "train_classifier", "accuracy", "extract_features", "stage_features", "probe_accuracy",
           "domain_transfer", "transfer_benchmark"]


def to_inputs(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 images (N, 3, H, W) -> float32 inputs (N, 3, H, W), scaled to [0, 1] then normalised."""
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return (images.float() / 255 - m) / s


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def _groups(model: nn.Module, lr: float, backbone_lr: float | None) -> list[dict]:
    """One optimizer group, or two: the head `fc` at `lr` and everything else at `backbone_lr`."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if backbone_lr is None:
        return [{"params": [p for _, p in params], "lr": lr, "name": "all"}]
    head = [p for n, p in params if n.startswith("fc.")]
    body = [p for n, p in params if not n.startswith("fc.")]
    return [{"params": head, "lr": lr, "name": "head"}, {"params": body, "lr": backbone_lr, "name": "backbone"}]


def train_classifier(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                     lr: float, backbone_lr: float | None = None, batch_size: int = 32,
                     weight_decay: float = 0.05, seed: int = 0, bf16: bool = False,
                     device: str = "cpu") -> nn.Module:
    """Train all trainable parameters: AdamW, 1-epoch warm-up then cosine to 0, random horizontal flips.

    inputs: float32 (N, 3, H, W), already normalised; labels: int64 (N,). `backbone_lr`
    (optional) gives every parameter outside the head `fc` its own, usually smaller, rate.
    The batch order and flips come from `seed`. Returns the model in eval mode. Used by
    `domain_transfer`.
    """
    if epochs < 1 or len(inputs) == 0:
        raise ValueError(f"need epochs >= 1 and some images, got epochs={epochs}, {len(inputs)} images")
    dev = torch.device(device)
    model.to(dev).train()
    opt = torch.optim.AdamW(_groups(model, lr, backbone_lr), weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(inputs) / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / steps_per_epoch) * 0.5 * (1 + math.cos(math.pi * s / total)))
    g = torch.Generator().manual_seed(seed)
    for _ in progress(range(epochs), desc="train"):
        order = torch.randperm(len(inputs), generator=g)
        for i in range(0, len(inputs), batch_size):
            idx = order[i:i + batch_size]
            x, y = inputs[idx], labels[idx]
            flip = torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5
            x = torch.where(flip, x.flip(-1), x).to(dev)
            with _autocast(dev, bf16):
                loss = F.cross_entropy(model(x).float(), y.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 200,
             bf16: bool = False, device: str = "cpu") -> float:
    """Fraction of `inputs` (N, 3, H, W float32) classified as `labels` (N,), in [0, 1]; eval mode."""
    model.to(device).eval()
    correct = 0
    for i in range(0, len(inputs), batch_size):
        with _autocast(torch.device(device), bf16):
            pred = model(inputs[i:i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == labels[i:i + batch_size]).sum())
    return correct / len(inputs)


@torch.no_grad()
def extract_features(model: nn.Module, inputs: torch.Tensor, *, upto: str = "layer4", batch_size: int = 200,
                     bf16: bool = False, device: str = "cpu") -> torch.Tensor:
    """Globally average-pooled output of the stage `upto`: (N, C) float32; eval mode, the model is unchanged.

    Stages as in `ftlib.models.stages` (resnet: stem, layer1..layer4). The default, layer4,
    gives the penultimate features (N, 512) that the model's own head sees.
    """
    return stage_features(model, inputs, (upto,), batch_size=batch_size, bf16=bf16, device=device)[upto]


@torch.no_grad()
def stage_features(model: nn.Module, inputs: torch.Tensor, names: tuple[str, ...], *, batch_size: int = 200,
                   bf16: bool = False, device: str = "cpu") -> dict[str, torch.Tensor]:
    """{stage: its globally average-pooled output (N, C) float32} for each stage in `names`, in one pass.

    Runs the stages in order up to the last one named, so earlier stages are computed once.
    """
    parts = stages(model)
    missing = [n for n in names if n not in parts]
    if missing:
        raise ValueError(f"no stage named {missing}; the stages of this model are {list(parts)}")
    last = max(list(parts).index(n) for n in names)
    model.to(device).eval()
    out = {n: [] for n in names}
    for i in range(0, len(inputs), batch_size):
        x = inputs[i:i + batch_size].to(device)
        with _autocast(torch.device(device), bf16):
            for name, module in list(parts.items())[:last + 1]:
                x = module(x)
                if name in out:
                    out[name].append(global_pool(x).float().cpu())
    return {n: torch.cat(v) for n, v in out.items()}


def probe_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                   test_labels: torch.Tensor, c: float = 1.0) -> float:
    """Linear probe: standardised features (N, D) -> multinomial logistic regression; test accuracy in [0, 1]."""
    mu, sd = train_feats.mean(0), train_feats.std(0).clamp(min=1e-6)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(((train_feats - mu) / sd).numpy(), train_labels.numpy())
    pred = clf.predict(((test_feats - mu) / sd).numpy())
    return float((torch.as_tensor(pred) == test_labels).float().mean())


def domain_transfer(domain: str, pretrained: Callable[[int], nn.Module], mean: list[float], std: list[float], *,
                    per_class: int = 50, test_per_class: int = 100, steps: int = 200, seed: int = 0,
                    scratch_lr: float = 1e-3, finetune_lr: float = 1e-3, bf16: bool = False,
                    scratch_norm: str = "own") -> dict:
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
    Returns {"scratch_acc", "probe_acc", "finetune_acc", "chance", "probe_acc_by_layer",
    "train_images", "test_images", "epochs", "seconds"}.
    """
    t0 = time.time()
    k = len(CLASS_NAMES[domain])
    data = make_standin(domain, per_class=(per_class, 0, test_per_class), seed=seed)
    xtr, ytr = to_inputs(data.train.images, mean, std), data.train.labels
    xte, yte = to_inputs(data.test.images, mean, std), data.test.labels
    if scratch_norm not in ("own", "weights"):
        raise ValueError(f"scratch_norm={scratch_norm!r}: use 'own' or 'weights'")
    xs_tr, xs_te = xtr, xte
    if scratch_norm == "own":
        pixels = data.train.images.float() / 255
        own_mean, own_std = pixels.mean((0, 2, 3)).tolist(), pixels.std((0, 2, 3)).clamp(min=1e-3).tolist()
        xs_tr, xs_te = to_inputs(data.train.images, own_mean, own_std), to_inputs(data.test.images, own_mean, own_std)
    epochs = math.ceil(steps / math.ceil(len(ytr) / 32))
    torch.manual_seed(seed)
    scratch = train_classifier(resnet18(num_classes=k), xs_tr, ytr, epochs=epochs, lr=scratch_lr, seed=seed, bf16=bf16)
    backbone = pretrained(k)
    feats_tr = stage_features(backbone, xtr, PROBE_LAYERS, bf16=bf16)
    feats_te = stage_features(backbone, xte, PROBE_LAYERS, bf16=bf16)
    probes = {layer: round(probe_accuracy(feats_tr[layer], ytr, feats_te[layer], yte), 4) for layer in PROBE_LAYERS}
    tuned = train_classifier(backbone, xtr, ytr, epochs=epochs, lr=finetune_lr, seed=seed, bf16=bf16)
    return {"scratch_acc": round(accuracy(scratch, xs_te, yte, bf16=bf16), 4), "probe_acc": probes["layer4"],
            "finetune_acc": round(accuracy(tuned, xte, yte, bf16=bf16), 4), "chance": round(1 / k, 4),
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
    the package's). bf16 autocast is used on CPUs with native bf16. Used by `python -m ftlib.bench`.
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
