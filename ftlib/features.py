"""Features: run a frozen backbone once, keep its outputs, and train only what comes after.

A frozen part of a network computes the same thing for an image every epoch. When the
data has no random augmentation, it is enough to run that part once and keep its output:

* **feature extraction** (linear probe): the backbone is the model without its head;
  `extract_features` gives one vector per image (N, D) and a small head (`linear_head`,
  `mlp_head`) trains on them in seconds, or `linear_probe` fits a logistic regression;
* **prefix caching**: the first stages are frozen; `cache_activations` keeps the
  activations at the frozen boundary and only the rest of the model trains.

    >>> prefix, rest = split_model(model, upto="layer2")     # prefix frozen
    >>> cached = cache_activations(model, train_loader, upto="layer2")
    >>> loader = DataLoader(cached, batch_size=64, shuffle=True)   # train `rest` on it

Used in lesson 03 (feature extraction vs fine-tuning) and by the benchmark.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .device import eval_mode, module_device, resolve_device
from .models import stages
from .progress import progress

__all__ = [
    "split_model", "without_head", "global_pool", "GlobalAvgPool", "extract_features",
    "cache_activations", "CachedActivations", "stage_outputs", "linear_head", "mlp_head", "linear_probe",
    "probe_accuracy",
]


def split_model(model: nn.Module, upto: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut `model` after the stage `upto`: `(prefix, rest)`, with `rest(prefix(x)) == model(x)`.

    Stage names come from `ftlib.models.stages` (resnet: stem, layer1..layer4, head). The
    prefix holds the stages up to and including `upto`, the rest the stages after it. Both
    share the model's own modules: freezing the prefix freezes the model.
    """
    parts = list(stages(model).items())
    names = [name for name, _ in parts]
    if upto not in names:
        raise ValueError(f"no stage named {upto!r}; the stages of this model are {names}")
    cut = names.index(upto) + 1
    return nn.Sequential(OrderedDict(parts[:cut])), nn.Sequential(OrderedDict(parts[cut:]))


def without_head(model: nn.Module) -> nn.Sequential:
    """The backbone: every stage but the last (the classifier head). Shares the model's modules.

    For a resnet18 it outputs (N, 512, h, w) feature maps; `extract_features` pools them
    to (N, 512). Used in lesson 03.
    """
    names = list(stages(model))
    if len(names) < 2:
        raise ValueError(f"the model has only the stages {names}: nothing is left without the head")
    return split_model(model, upto=names[-2])[0]


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling: (N, C, H, W) -> (N, C), the mean over H and W; (N, D) is returned as is.

    What torchvision's `avgpool` + `flatten` do before the classifier. Used in lesson 03.
    """
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    if x.ndim == 2:
        return x
    raise ValueError(f"global_pool takes (N, C, H, W) maps or (N, D) vectors, got shape {tuple(x.shape)}")


class GlobalAvgPool(nn.Module):
    """`global_pool` as a layer, so that one head works on feature maps and on cached vectors (lesson 03)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(x)


def _run_once(module: nn.Module, loader: Iterable, device: torch.device | str | None, desc: str,
              pool: bool, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of `module` (eval mode, no grad) for every batch, stored on the CPU as `dtype`."""
    device = resolve_device(device)
    module.to(device)
    outputs, labels = [], []
    with eval_mode(module), torch.no_grad():
        for images, targets in progress(loader, desc=desc):
            out = module(images.to(device))
            outputs.append((global_pool(out) if pool else out).to("cpu", dtype))
            labels.append(torch.as_tensor(targets).long().cpu())
    if not outputs:
        raise ValueError("the loader gave no batches: nothing to extract")
    return torch.cat(outputs), torch.cat(labels)


def extract_features(backbone: nn.Module, loader: Iterable, device: torch.device | str | None = None,
                     pool: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `backbone` once over `loader`; return `(features (N, D) float32, labels (N,) int64)` on the CPU.

    Runs in eval mode (BatchNorm uses its running statistics, dropout is off) under
    `no_grad`; each module's mode is restored afterwards. Feature maps (N, C, H, W) are
    averaged over H and W (`pool=True`), so a resnet18 backbone (`without_head(model)`)
    gives (N, 512). `device`: where to run (None: `get_device()`); the backbone moves there. The loader must not
    augment randomly, or the cached features freeze one random draw. Used in lesson 03.
    """
    return _run_once(backbone, loader, device, "extract features", pool, torch.float32)


class CachedActivations(TensorDataset):
    """Activations (N, C, H, W) and labels (N,) kept in memory; items come back as float32.

    Storing float16 halves the memory; `__getitem__` casts each item back to float32, so a
    model in float32 trains on it unchanged. Made by `cache_activations` (lesson 03).
    """

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        activation, label = super().__getitem__(index)
        return activation.float(), label


def cache_activations(model: nn.Module, loader: Iterable, upto: str, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> CachedActivations:
    """Run the stages up to and including `upto` once and keep their outputs (prefix caching).

    Returns a data set of `(activation (C, H, W) float32, label)` items; train the
    rest of the model (`split_model(model, upto)[1]`) on it instead of the whole model.

    Valid only when (1) the prefix is frozen: its weights must not change, and its BatchNorm
    layers must use fixed running statistics (the prefix runs here in eval mode); and (2)
    the loader has no random augmentation: one pass is cached, so every epoch would see the
    same draw. A warning is given when a prefix parameter still requires grad.

    Memory: N x C x H x W x 4 bytes in float32 (`dtype=torch.float16`: 2 bytes). For
    resnet18 at 224 px, per image: after layer1 64x56x56 = 0.8 MB, layer2 128x28x28 =
    0.4 MB, layer3 256x14x14 = 0.2 MB, layer4 512x7x7 = 0.1 MB (float32); 1,000 images
    after layer2 take 400 MB. `result.tensors[0].nbytes` gives the exact size.
    Used in lesson 03 and by the benchmark (`prefix_cache_speedup`).
    """
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, not {dtype}")
    prefix, _ = split_model(model, upto)
    trainable = [name for name, p in prefix.named_parameters() if p.requires_grad]
    if trainable:
        warnings.warn(f"{len(trainable)} parameter tensors up to {upto!r} still require grad (e.g. "
                      f"{trainable[0]}); cached activations are only valid for a frozen prefix. "
                      f"Freeze it first.", stacklevel=2)
    activations, labels = _run_once(prefix, loader, device, f"cache up to {upto}", False, dtype)
    return CachedActivations(activations, labels)


def linear_head(in_features: int, num_classes: int) -> nn.Sequential:
    """Global average pooling + one linear layer: the classic transfer-learning head.

    Takes feature maps (N, in_features, H, W) or pooled features (N, in_features); outputs
    logits (N, num_classes). Used in lesson 03.
    """
    return nn.Sequential(GlobalAvgPool(), nn.Linear(in_features, num_classes))


def mlp_head(in_features: int, num_classes: int, hidden: int = 256, dropout: float = 0.5) -> nn.Sequential:
    """Global average pooling + a small MLP with dropout: Linear, ReLU, Dropout, Linear.

    Takes (N, in_features, H, W) or (N, in_features); outputs logits (N, num_classes).
    More capacity than `linear_head`, hence more overfitting risk on small data. Used in lesson 03.
    """
    return nn.Sequential(GlobalAvgPool(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))


def stage_outputs(model: nn.Module, images: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs (N, C, H, W) of the named stages, in one pass, stage after stage, in eval mode
    without gradients, on the CPU as float32. `images`: (C, H, W) or (N, C, H, W), moved to the
    model's own device. Used by `plots.plot_feature_maps` (lesson 01) and the benchmark's
    probes by depth."""
    parts = stages(model)
    unknown = [n for n in names if n not in parts]
    if unknown:
        raise ValueError(f"no stage named {unknown}; the stages of this model are {list(parts)}")
    x = (images.unsqueeze(0) if images.ndim == 3 else images).to(module_device(model))
    outputs, last = {}, max(list(parts).index(n) for n in names)
    with eval_mode(model), torch.no_grad():
        for name, stage in list(parts.items())[: last + 1]:
            x = stage(x)
            if name in names:
                outputs[name] = x.detach().float().cpu()
    return outputs


# ---------------------------------------------------------------- the linear probe

def _finite(features: torch.Tensor) -> torch.Tensor:
    """A diverged network gives NaN or huge features; they carry no information: keep them finite."""
    return torch.nan_to_num(features.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp(-1e6, 1e6)


def linear_probe(features: torch.Tensor, labels: torch.Tensor, *, c: float = 1.0, max_iter: int = 2000,
                 standardize: bool = True, class_weight: str | dict | None = None) -> nn.Linear:
    """Fit a linear probe on frozen features and return it as an `nn.Linear` on the raw features.

    features: (N, D) float (e.g. from `extract_features`); labels: (N,) int class indices.
    The probe is scikit-learn's multinomial logistic regression (L2, inverse strength `c`),
    on features standardised by their training mean and standard deviation when
    `standardize`; the standardisation is folded into the layer's weights, so the layer
    takes the features as they are and can replace `model.fc` (LP-FT, lesson 04). With two
    classes sklearn keeps one logit; it is spread over two outputs, so softmax gives the
    same probabilities. `class_weight` ("balanced" or {class: weight}) weighs each image's loss
    by its class, as a class-weighted cross-entropy does (lesson 08). Used in lessons 01, 04,
    05, 07, the projects and the benchmark.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y = _finite(features), torch.as_tensor(labels).long()
    mean = x.mean(0) if standardize else torch.zeros(x.shape[1])
    std = x.std(0).clamp(min=1e-6) if standardize else torch.ones(x.shape[1])
    # one BLAS thread: on these small problems threads only wait for each other (10 times slower on 2 cores)
    with threadpool_limits(limits=1):
        clf = LogisticRegression(C=c, max_iter=max_iter, class_weight=class_weight).fit(((x - mean) / std).numpy(),
                                                                                         y.numpy())
    weight = torch.tensor(clf.coef_, dtype=torch.float32) / std
    bias = torch.tensor(clf.intercept_, dtype=torch.float32) - weight @ mean
    if len(weight) == 1:  # two classes: one row, the logit of class 1; spread it over two
        weight, bias = torch.cat([-weight / 2, weight / 2]), torch.cat([-bias / 2, bias / 2])
    head = nn.Linear(x.shape[1], len(weight))
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head


def probe_accuracy(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                   **probe_options) -> float:
    """Test accuracy in [0, 1] of a `linear_probe` fitted on `train` = (features, labels) and
    scored on `test` = (features, labels). `probe_options` go to `linear_probe`."""
    head = linear_probe(*train, **probe_options)
    with torch.no_grad():
        pred = head(_finite(test[0])).argmax(1)
    return float((pred == torch.as_tensor(test[1]).long()).float().mean())
