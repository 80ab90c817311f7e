"""Evaluation: accuracy, top-k, confusion matrix, precision / recall / F1, binary metrics, prediction.

Pure computation on tensors, no plotting (the figures are in `ftlib.plots`). Everything is
counted over samples, never averaged per batch, so a short last batch weighs what it should.

    >>> result = evaluate(model, test_loader, class_names=splits.class_names)
    >>> result.accuracy                 # a fraction in [0, 1]
    >>> print(result.report())          # precision, recall, F1 and support per class
    >>> result.binary()                 # sensitivity, specificity, ROC-AUC (two classes only)

Used in lesson 08 (the classification pipeline) and in the projects, lessons 09-11; the
accuracy helpers are used by every lesson that trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .device import eval_mode, resolve_device
from .progress import progress

__all__ = [
    "accuracy", "top_k_accuracy", "confusion_matrix", "per_class_metrics", "classification_report",
    "binary_metrics", "roc_curve", "threshold_for_sensitivity", "Evaluation", "evaluate", "predict", "label_error",
]

ImageInput = Union[torch.Tensor, Image.Image, str, Path]


# ---------------------------------------------------------------- accuracy

def _as_preds(logits_or_preds: torch.Tensor) -> torch.Tensor:
    """(N, C) scores become (N,) class indices by argmax; (N,) indices pass through."""
    if logits_or_preds.ndim == 2:
        return logits_or_preds.argmax(dim=1)
    if logits_or_preds.ndim == 1:
        return logits_or_preds.long()
    raise ValueError(f"expected logits (N, C) or predicted classes (N,), got shape {tuple(logits_or_preds.shape)}")


def label_error(label: int, num_classes: int, where: str) -> ValueError:
    """The error for a label that is not a class index of a model with `num_classes` outputs
    (also raised by `fit` and `evaluate_loss_acc`)."""
    return ValueError(f"labels must be class indices 0..{num_classes - 1} for this model's {num_classes} "
                      f"outputs; {where} has label {label}: is num_classes right? "
                      "(load_model(..., num_classes=...), or the data set's labels)")


def _check_targets(n: int, targets: torch.Tensor, num_classes: int | None = None,
                   where: str = "the targets") -> None:
    """Raise ValueError unless `targets` are `n` integer class indices, in 0..num_classes-1
    when `num_classes` is known (else at least not negative)."""
    if targets.ndim != 1 or len(targets) != n:
        raise ValueError(f"targets must have shape ({n},) to match the predictions, got {tuple(targets.shape)}")
    if n == 0:
        raise ValueError("no samples: accuracy of an empty set is undefined (is the loader empty?)")
    if targets.is_floating_point() or targets.is_complex():
        raise ValueError(f"targets must be class indices (int64), {where} are {targets.dtype}: convert them "
                         "with .long() (soft targets of shape (N, C) have no accuracy).")
    low, high = (int(v) for v in torch.aminmax(targets.long()))
    if low < 0 or (num_classes is not None and high >= num_classes):
        raise label_error(low if low < 0 else high, num_classes if num_classes is not None else high + 1, where)


def accuracy(logits_or_preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of correct predictions, in [0, 1], counted over samples.

    `logits_or_preds`: logits or probabilities (N, C) float, or predicted classes (N,) int.
    `targets`: (N,) int class indices. Used by every lesson that trains.
    """
    preds = _as_preds(logits_or_preds)
    _check_targets(len(preds), targets, logits_or_preds.shape[1] if logits_or_preds.ndim == 2 else None)
    return (preds.cpu() == targets.cpu().long()).float().mean().item()


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int = 5) -> float:
    """Fraction of samples whose true class is among the `k` highest scores, in [0, 1].

    `logits`: (N, C) float; `targets`: (N,) int. `k=1` is plain accuracy. Used in lesson 01
    (ImageNet top-5) and lesson 08.
    """
    if logits.ndim != 2:
        raise ValueError(f"top-k needs scores (N, C), got shape {tuple(logits.shape)}")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes ({logits.shape[1]})")
    _check_targets(len(logits), targets, logits.shape[1])
    top = logits.cpu().topk(k, dim=1).indices                    # (N, k)
    return (top == targets.cpu().long()[:, None]).any(dim=1).float().mean().item()


# ---------------------------------------------------------------- confusion matrix and per-class metrics

def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts as an int64 tensor (C, C): row = true class, column = predicted class.

    `preds`: (N,) predicted classes, or (N, C) logits (argmax is taken); `targets`: (N,).
    `cm[i, j]` is the number of samples of class i predicted as j; the diagonal is correct.
    Used in lesson 08 and the projects.
    """
    preds = _as_preds(preds).cpu()
    _check_targets(len(preds), targets.cpu())
    targets = targets.cpu().long()
    for name, t in (("preds", preds), ("targets", targets)):
        if t.min() < 0 or t.max() >= num_classes:
            raise ValueError(f"{name} holds classes outside 0..{num_classes - 1}: "
                             f"min {t.min().item()}, max {t.max().item()}. Is num_classes right?")
    flat = targets * num_classes + preds
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: float, den: float) -> float:
    """num / den, and 0.0 when den is 0 (see `per_class_metrics`)."""
    return num / den if den > 0 else 0.0


def per_class_metrics(cm: torch.Tensor, class_names: Sequence[str] | None = None) -> list[dict]:
    """Precision, recall, F1 and support for each class, then the macro and weighted averages.

    `cm`: confusion matrix (C, C), rows = true class (as from `confusion_matrix`).
    Returns C + 2 dicts with keys `name`, `precision`, `recall`, `f1`, `support`; the
    last two rows are named `"macro avg"` (plain mean over classes) and `"weighted avg"`
    (mean weighted by support). Precision, recall and F1 are fractions in [0, 1].

    0 / 0 is 0.0, explicitly: a class never predicted has precision 0.0, a class with no
    samples has recall 0.0, and F1 is 0.0 when precision + recall is 0 (scikit-learn's
    `zero_division=0`). Such classes still count in the macro average. Used in lesson 08.
    """
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square (C, C), got shape {tuple(cm.shape)}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(cm))]
    if len(names) != len(cm):
        raise ValueError(f"{len(names)} class names for a {len(cm)}-class confusion matrix")
    cm = cm.double()
    rows = []
    for i, name in enumerate(names):
        tp, predicted, actual = cm[i, i].item(), cm[:, i].sum().item(), cm[i, :].sum().item()
        p, r = _ratio(tp, predicted), _ratio(tp, actual)
        rows.append({"name": name, "precision": p, "recall": r, "f1": _ratio(2 * p * r, p + r),
                     "support": int(actual)})
    return rows + _averages(rows)


def _averages(rows: list[dict]) -> list[dict]:
    """The macro (plain mean) and weighted (by support) averages of per-class rows."""
    total = sum(r["support"] for r in rows)
    out = []
    for name, weights in (("macro avg", [1 / len(rows)] * len(rows)),
                          ("weighted avg", [_ratio(r["support"], total) for r in rows])):
        avg = {key: sum(w * r[key] for w, r in zip(weights, rows)) for key in ("precision", "recall", "f1")}
        out.append({"name": name, **avg, "support": total})
    return out


def classification_report(cm: torch.Tensor, class_names: Sequence[str] | None = None, digits: int = 3) -> str:
    """A text table of `per_class_metrics(cm)`, one line per class plus accuracy and averages.

    Print it: `print(classification_report(cm, names))`. Used in lesson 08 and the projects.
    """
    rows = per_class_metrics(cm, class_names)
    width = max(12, *(len(r["name"]) for r in rows))
    lines = [f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}"]
    for i, r in enumerate(rows):
        if i == len(rows) - 2:  # a blank line and the accuracy before the averages
            total = int(cm.sum())
            acc = _ratio(float(cm.diag().sum()), total)
            lines += ["", f"{'accuracy':>{width}}  {'':>9}  {'':>9}  {acc:>9.{digits}f}  {total:>8}"]
        lines.append(f"{r['name']:>{width}}  {r['precision']:>9.{digits}f}  {r['recall']:>9.{digits}f}  "
                     f"{r['f1']:>9.{digits}f}  {r['support']:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------- binary tasks

def _roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the ROC curve with scikit-learn; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score  # imported here: only binary tasks need it

    if targets.unique().numel() < 2:
        return math.nan
    return float(roc_auc_score(targets.numpy(), scores.double().numpy()))


def binary_metrics(scores: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5) -> dict:
    """Metrics of a two-class task where class 1 is the positive class (e.g. pneumonia).

    `scores`: (N,) float, the score of the positive class, usually its probability
    (`logits.softmax(1)[:, 1]`); a sample is predicted positive when `score >= threshold`.
    `targets`: (N,) int in {0, 1}.

    Returns a dict: `sensitivity` (recall of the positive class, TP / (TP + FN)),
    `specificity` (recall of the negative class, TN / (TN + FP)), `precision` (TP / (TP + FP)),
    `accuracy`, `roc_auc` (threshold-free; NaN when the targets hold one class only),
    `threshold`, and the counts `tp`, `fn`, `tn`, `fp`. A ratio with a zero denominator is 0.0.
    Used in lesson 08 and lesson 09 (chest X-rays).
    """
    if scores.ndim != 1:
        raise ValueError(f"scores must be (N,), the positive-class score; got shape {tuple(scores.shape)}. "
                         "From logits (N, 2) use logits.softmax(1)[:, 1].")
    scores, targets = scores.detach().cpu().float(), targets.cpu()
    if targets.ndim != 1 or len(targets) != len(scores) or len(targets) == 0:
        _check_targets(len(scores), targets)
    if not set(targets.unique().tolist()) <= {0, 1}:  # 0.0 and 1.0 (BCE targets) count as 0 and 1
        raise ValueError(f"binary targets must be 0 or 1, got {sorted(targets.unique().tolist())}")
    targets = targets.long()
    pred = (scores >= threshold).long()
    tp = int(((pred == 1) & (targets == 1)).sum())
    fn = int(((pred == 0) & (targets == 1)).sum())
    tn = int(((pred == 0) & (targets == 0)).sum())
    fp = int(((pred == 1) & (targets == 0)).sum())
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "precision": _ratio(tp, tp + fp), "accuracy": (tp + tn) / len(targets),
            "roc_auc": _roc_auc(scores, targets), "threshold": threshold,
            "tp": tp, "fn": fn, "tn": tn, "fp": fp}


def roc_curve(scores: torch.Tensor, targets: torch.Tensor) -> dict:
    """The ROC curve of a two-class task (class 1 positive) with scikit-learn.

    Returns a dict of 1-D float tensors: `fpr` (1 - specificity), `tpr` (sensitivity) and
    `thresholds`, where point i counts a sample positive when `score >= thresholds[i]`; the
    first threshold is infinite (nothing positive). Raises ValueError when the targets hold
    one class only, for then the curve is not defined.
    """
    from sklearn.metrics import roc_curve as _sk_roc_curve

    scores, targets = _binary_inputs(scores, targets)
    fpr, tpr, thresholds = _sk_roc_curve(targets.numpy(), scores.double().numpy(), drop_intermediate=False)
    return {"fpr": torch.from_numpy(fpr).float(), "tpr": torch.from_numpy(tpr).float(),
            "thresholds": torch.from_numpy(thresholds).float()}


def threshold_for_sensitivity(scores: torch.Tensor, targets: torch.Tensor, target: float = 0.95) -> float:
    """The highest threshold at which the sensitivity on (scores, targets) is at least `target`.

    Pick it on the validation split, then report the test split at it: a threshold chosen on the
    test split overstates what it will do on new data. A higher threshold flags fewer samples, so
    the highest one that still reaches `target` keeps the most specificity.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    scores, targets = _binary_inputs(scores, targets)
    positives = scores[targets == 1].sort(descending=True).values
    need = math.ceil(target * len(positives) - 1e-9)     # positives that must score >= the threshold
    return float(positives[max(need, 1) - 1])


def _binary_inputs(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, targets) on the CPU as float (N,) and int64 (N,), both classes present."""
    if scores.ndim != 1 or targets.ndim != 1 or len(scores) != len(targets):
        raise ValueError(f"scores and targets must be (N,) each, got {tuple(scores.shape)} and {tuple(targets.shape)}; "
                         "from logits (N, 2) use logits.softmax(1)[:, 1].")
    scores, targets = scores.detach().cpu().float(), targets.detach().cpu().long()
    if set(targets.unique().tolist()) != {0, 1}:
        raise ValueError(f"binary targets must hold both 0 and 1, got {sorted(targets.unique().tolist())}")
    return scores, targets


# ---------------------------------------------------------------- evaluating a model

@dataclass
class Evaluation:
    """The outputs of a model on a whole data set, and the metrics computed from them.

    `logits`: (N, C) float32 on the CPU; `targets`: (N,) int64; `class_names`: C names or
    None. Built by `evaluate`. Used in lesson 08 and the projects.
    """
    logits: torch.Tensor
    targets: torch.Tensor
    class_names: list[str] | None = field(default=None)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def preds(self) -> torch.Tensor:
        """Predicted classes (N,) int64 (argmax of the logits)."""
        return self.logits.argmax(dim=1)

    @property
    def probs(self) -> torch.Tensor:
        """Class probabilities (N, C) float32 (softmax of the logits)."""
        return self.logits.softmax(dim=1)

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions over all N samples, in [0, 1]."""
        return accuracy(self.logits, self.targets)

    @property
    def confusion_matrix(self) -> torch.Tensor:
        """(C, C) int64 counts, row = true class, column = predicted class."""
        return confusion_matrix(self.preds, self.targets, self.num_classes)

    @property
    def mistakes(self) -> torch.Tensor:
        """Indices (int64) of the wrongly predicted samples, e.g. to show them with `show_images`."""
        return (self.preds != self.targets).nonzero().flatten()

    def top_k(self, k: int) -> float:
        """Top-k accuracy, in [0, 1]."""
        return top_k_accuracy(self.logits, self.targets, k)

    def per_class(self) -> list[dict]:
        """Precision, recall, F1 and support per class, then macro and weighted averages."""
        return per_class_metrics(self.confusion_matrix, self.class_names)

    def report(self) -> str:
        """The classification report as text; `print(result.report())`."""
        return classification_report(self.confusion_matrix, self.class_names)

    def binary(self, threshold: float = 0.5) -> dict:
        """Sensitivity, specificity, ROC-AUC... for a two-class task, positive class = 1."""
        if self.num_classes != 2:
            raise ValueError(f"binary metrics need 2 classes, this model has {self.num_classes}; "
                             "use report() or per_class() instead")
        return binary_metrics(self.probs[:, 1], self.targets, threshold)


def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str | None = None,
             class_names: Sequence[str] | None = None) -> Evaluation:
    """Run `model` on every batch of `loader` (eval mode, no gradients) and keep the logits.

    `loader` yields `(images, labels)` batches. `device`: where to run (the model is moved
    there and stays, as `fit` does; None means `get_device()`, see `ftlib.device`). Each module's
    train/eval mode is restored afterwards.
    Returns an `Evaluation` with logits (N, C) float32 and targets (N,) int64 on the CPU.
    Labels must be class indices 0..C-1 of the model's C outputs: a batch with other labels
    (float, negative, too large: a wrong num_classes) raises a ValueError that names it.
    Used in lesson 08 and the projects.
    """
    device = resolve_device(device)
    model.to(device)
    logits, targets = [], []
    with eval_mode(model), torch.no_grad():
        for i, (images, labels) in enumerate(progress(loader, desc="evaluate")):
            labels = torch.as_tensor(labels).cpu()
            if len(labels) == 0:
                raise ValueError(f"the loader gave an empty batch (batch {i}): check the data set, "
                                 "the sampler, and drop_last.")
            out = model(images.to(device)).float().cpu()
            if out.ndim == 2:
                _check_targets(len(out), labels, out.shape[1], where=f"batch {i}")
            logits.append(out)
            targets.append(labels.long())
    if not logits:
        raise ValueError("the loader gave no batches: nothing to evaluate")
    names = list(class_names) if class_names is not None else None
    return Evaluation(torch.cat(logits), torch.cat(targets), names)


# ---------------------------------------------------------------- prediction on new images

def _read_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}: check the path (relative to {Path.cwd()})")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"could not read {path} as an image ({err}); use a PNG or JPEG file") from err


def _to_chw_list(item: ImageInput) -> list[torch.Tensor]:
    """One input (tensor CHW / NCHW, PIL image or path) as a list of CHW tensors."""
    if isinstance(item, (str, Path)):
        item = _read_image(item)
    if isinstance(item, Image.Image):
        return [TF.pil_to_tensor(item.convert("RGB"))]        # uint8 (3, H, W)
    if isinstance(item, torch.Tensor) and item.ndim == 3:
        return [item]
    if isinstance(item, torch.Tensor) and item.ndim == 4:
        return list(item)
    raise TypeError(f"predict takes tensors (C, H, W) or (N, C, H, W), PIL images or file paths, "
                    f"or a list of them; got {type(item).__name__}"
                    + (f" of shape {tuple(item.shape)}" if isinstance(item, torch.Tensor) else ""))


def _prepare(image: torch.Tensor, transform) -> torch.Tensor:
    """Apply `transform`; without one, uint8 becomes float in [0, 1] and floats pass through."""
    if transform is not None:
        return transform(image)
    return image.float() / 255 if image.dtype == torch.uint8 else image.float()


def predict(model: nn.Module, inputs: ImageInput | Sequence[ImageInput], *, transform=None,
            class_names: Sequence[str] | None = None, k: int = 1,
            device: torch.device | str | None = None) -> list[list[tuple[str | int, float]]]:
    """Top-k predictions for new images: one list of `(class, probability)` pairs per image.

    `inputs`: a tensor (C, H, W) or (N, C, H, W), a PIL image, a file path, or a list of
    any of these. Files and PIL images are read as RGB uint8 (3, H, W). `transform` (e.g.
    the eval transform used in training) runs on each image; without it uint8 images are
    scaled to [0, 1] and float tensors are used as they are. After the transform all images
    must have the same size. The class is its name when `class_names` is given, else its
    index; probabilities (softmax) are in [0, 1], highest first. Used in lessons 01 and 08.

        >>> predict(model, "my_xray.png", transform=eval_tf, class_names=names, k=2)
        [[('pneumonia', 0.91), ('normal', 0.09)]]
    """
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    images = [_prepare(im, transform) for item in items for im in _to_chw_list(item)]
    if not images:
        raise ValueError("predict got no images")
    if len({tuple(im.shape) for im in images}) > 1:
        raise ValueError(f"images have different shapes {sorted({tuple(im.shape) for im in images})}; "
                         "pass a transform that resizes them (e.g. v2.Resize + v2.CenterCrop)")
    device = resolve_device(device)
    model.to(device)
    with eval_mode(model), torch.no_grad():
        probs = model(torch.stack(images).to(device)).float().softmax(dim=1).cpu()
    if not 1 <= k <= probs.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes ({probs.shape[1]})")
    if class_names is not None and len(class_names) != probs.shape[1]:
        raise ValueError(f"{len(class_names)} class names for a model with {probs.shape[1]} outputs")
    labels = list(class_names) if class_names is not None else list(range(probs.shape[1]))
    top = probs.topk(k, dim=1)
    return [[(labels[int(i)], float(p)) for p, i in zip(ps, idx)] for ps, idx in zip(top.values, top.indices)]
