"""Lesson 08's exercises: evaluation, imbalance, loading a saved model.

q1 writes precision and recall of the positive class, q2 a confusion matrix (the reference
numbers come from `ftlib.metrics`), q3 class weights for a loss that balances the classes,
q4 a loader that rebuilds a model saved with plain `torch.save` and never runs code from the file.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..metrics import accuracy, confusion_matrix, per_class_metrics
from .checks import as_number
from .core import Exercise, ExerciseSet, Incorrect, call_student

__all__ = ["check_precision_recall_fn", "check_confusion_matrix_fn", "check_class_weights_fn",
           "check_plain_loader", "lesson08"]


# --- metrics written by hand --------------------------------------------------------------

def _binary_probe() -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and targets with TP=2, FP=1, FN=3, TN=4 for class 1 (positive)."""
    targets = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    preds = torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    return preds, targets


def _random_probe(n: int, num_classes: int, balance: float, right: float, never: int | None,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(preds, targets), int64 (n,): class 0 drawn with probability `balance`, the others evenly;
    a prediction is the target with probability `right`, else a random class, and `never` is
    never predicted (it becomes the next class)."""
    weights = torch.full((num_classes,), (1 - balance) / (num_classes - 1))
    weights[0] = balance
    targets = torch.multinomial(weights, n, replacement=True, generator=gen)
    noise = torch.randint(0, num_classes, (n,), generator=gen)
    keep = torch.rand(n, generator=gen) < right
    preds = torch.where(keep, targets, noise)
    if never is not None:
        preds = torch.where(preds == never, (never + 1) % num_classes, preds)
    return preds, targets


def _binary_probes() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The hand-counted probe, then seeded ones of other lengths and balances, one of them
    with every prediction 1 (class 0 absent from the predictions). Each has predicted and
    actual positives, so precision and recall are defined."""
    gen = torch.Generator().manual_seed(808)
    probes = [_binary_probe()]
    for n, balance, right, never in ((17, 0.35, 0.6, None), (40, 0.75, 0.6, None), (64, 0.5, 0.8, 0), (9, 0.6, 0.5, 0)):
        preds, targets = _random_probe(n, 2, balance, right, never, gen)
        while int((preds == 1).sum()) == 0 or int((targets == 1).sum()) == 0 or int((targets == 0).sum()) == 0:
            preds, targets = _random_probe(n, 2, balance, right, never, gen)
        probes.append((preds, targets))
    return probes


def _near(a: tuple[float, ...], b: tuple[float, ...], tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b))


def _pair(answer: Any) -> tuple[float, float]:
    """(precision, recall) as floats from a tuple, a list, or a 2-element tensor or array."""
    if hasattr(answer, "tolist") and getattr(answer, "ndim", 0) == 1:
        answer = answer.tolist()
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Incorrect(f"return a pair (precision, recall), got {type(answer).__name__}.")
    return tuple(as_number(v, "precision and recall") for v in answer)


def _binary_scores(preds: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    cm = confusion_matrix(preds, targets, 2)
    class0, class1 = per_class_metrics(cm)[:2]
    return {"precision": class1["precision"], "recall": class1["recall"], "specificity": class0["recall"],
            "npv": class0["precision"], "accuracy": accuracy(preds, targets),
            "tp": int(cm[1, 1]), "fp": int(cm[0, 1]), "fn": int(cm[1, 0]), "tn": int(cm[0, 0])}


def _pr_mistake(got: tuple[float, float], s: dict[str, float], earlier: tuple[float, float] | None) -> str:
    """The message for a wrong (precision, recall) `got` on a probe with scores `s`."""
    right = (s["precision"], s["recall"])
    if _near(got, (100 * right[0], 100 * right[1]), 1e-2):
        return "those are percentages: return fractions in [0, 1] (TP / (TP + FP), not 100 times it)."
    if _near(got, right[::-1]):
        return ("precision and recall are swapped: precision = TP / (TP + FP), the share of predicted "
                "positives that are right; recall = TP / (TP + FN), the share of true positives found. "
                "(Or the arguments went in the other order: preds first, then targets.)")
    if _near(got, (s["precision"], s["specificity"])):
        return ("your recall is the specificity, TN / (TN + FP), the share of true negatives found: "
                "recall = TP / (TP + FN), the share of true positives found.")
    if _near(got, (s["npv"], s["specificity"])):
        return "those are the precision and recall of class 0: the positive class is 1."
    if (any(math.isclose(v, s["accuracy"], abs_tol=1e-4) for v in got)
            and not any(math.isclose(v, s["accuracy"], abs_tol=1e-4) for v in right)):
        return ("one of your numbers is the accuracy: precision divides by the predicted positives "
                "(TP + FP), recall by the actual positives (TP + FN).")
    if earlier is not None and _near(got, earlier):
        return (f"you return ({got[0]:.3f}, {got[1]:.3f}) for every input, but these predictions have "
                f"precision {right[0]:.3f} and recall {right[1]:.3f}: compute them from preds and targets.")
    return ""


def check_precision_recall_fn(precision_recall: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]) -> str:
    """`precision_recall(preds, targets)` returns (precision, recall) of the positive class 1.

    preds, targets: (N,) int64 class indices (0 or 1). Runs on the hand-counted probe and on
    seeded ones of other lengths and balances. Wrong answers it names: the two swapped (or the
    arguments passed the other way round), specificity as recall, the scores of class 0,
    accuracy, percentages, the same answer for every input. Lesson 08.
    """
    first = None
    for preds, targets in _binary_probes():
        got = _pair(call_student("precision_recall(preds, targets)", precision_recall, preds.clone(), targets.clone()))
        s = _binary_scores(preds, targets)
        if not _near(got, (s["precision"], s["recall"])):
            message = _pr_mistake(got, s, first)
            raise Incorrect(message or (
                f"on {len(targets)} samples with TP={s['tp']}, FP={s['fp']}, FN={s['fn']}, TN={s['tn']} you returned "
                f"({got[0]:.3f}, {got[1]:.3f}), expected ({s['precision']:.3f}, {s['recall']:.3f}): "
                f"precision = TP / (TP + FP) and recall = TP / (TP + FN), with class 1 positive."))
        first = got if first is None else first
    s = _binary_scores(*_binary_probe())
    return (f"precision {s['precision']:.3f}, recall {s['recall']:.3f} on the check set (TP={s['tp']}, "
            f"FP={s['fp']}, FN={s['fn']}), and right on 4 more sets of other sizes and balances.")


def _matrix_probes() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(preds, targets, C): the hand-made 3-class probe, then seeded binary and multi-class
    ones of other lengths; in the 4-class one class 3 is never predicted."""
    gen = torch.Generator().manual_seed(8082)
    probes = [(torch.tensor([0, 1, 2, 1, 1, 2, 0, 2, 1, 1]), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 1]), 3)]
    for n, c, balance, right, never in ((23, 2, 0.7, 0.6, None), (31, 4, 0.4, 0.5, 3), (50, 5, 0.3, 0.6, None)):
        probes.append((*_random_probe(n, c, balance, right, never, gen), c))
    return probes


def _as_matrix(answer: Any) -> torch.Tensor:
    """A float64 tensor from a tensor, a numpy array or a nested list."""
    try:
        return torch.as_tensor(np.asarray(answer, dtype=np.float64))
    except (TypeError, ValueError):
        raise Incorrect(f"return the matrix as a tensor, a numpy array or a list of rows, "
                        f"got {type(answer).__name__}.") from None


def _normalised(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    cm = cm.double()
    rows, cols = cm.sum(1, keepdim=True), cm.sum(0, keepdim=True)
    return {"each row sums to 1": torch.nan_to_num(cm / rows), "each column sums to 1": torch.nan_to_num(cm / cols),
            "the whole matrix sums to 1": cm / cm.sum()}


def _matrix_mistake(got: torch.Tensor, expected: torch.Tensor) -> str:
    """The message for a wrong matrix `got` of the right shape."""
    got = torch.nan_to_num(got)
    if torch.equal(got, expected.T.double()):
        return "your matrix is transposed: row i should be the true class, column j the prediction."
    for how, norm in _normalised(expected).items():
        if torch.allclose(got, norm, atol=1e-4):
            return f"your matrix is normalised ({how}): return the raw counts."
        if torch.allclose(got, 100 * norm, atol=1e-2):
            return f"your matrix holds percentages ({how} to 100): return the raw counts."
    return ""


def check_confusion_matrix_fn(confusion: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> str:
    """`confusion(preds, targets, num_classes)` returns the (C, C) count matrix whose entry
    [i, j] counts samples of true class i predicted as class j (scikit-learn's layout).

    Runs on the hand-made probe and seeded binary and multi-class ones (one with a class never
    predicted); a tensor, a numpy array or a nested list is accepted. Lesson 08."""
    first = None
    for preds, targets, c in _matrix_probes():
        call = f"confusion(preds, targets, {c})"
        got = _as_matrix(call_student(call, confusion, preds.clone(), targets.clone(), c))
        if first is not None and got.shape == first.shape and torch.equal(got, first):
            raise Incorrect("you return the same matrix for every input: count the pairs (target, prediction) "
                            "you are given.")
        if tuple(got.shape) != (c, c):
            raise Incorrect(f"for {c} classes the matrix has shape ({c}, {c}), got {tuple(got.shape)}.")
        expected = confusion_matrix(preds, targets, c)
        if not torch.equal(got, expected.double()):
            message = _matrix_mistake(got, expected)
            raise Incorrect(message or (
                f"entry [i, j] should count samples of true class i predicted as j; on {len(targets)} samples "
                f"and {c} classes your matrix sums to {float(got.sum()):g}, expected {expected.tolist()}."))
        first = got if first is None else first
    return "rows are the true classes, columns the predictions; the counts are right on 4 sets (2 to 5 classes)."


# --- class weights for an imbalanced training set ----------------------------------------

def _weight_probes() -> list[tuple[torch.Tensor, int]]:
    """(labels, C): imbalanced label sets of 3 to 10 classes; in one the last class is absent,
    in another a middle class."""
    gen = torch.Generator().manual_seed(8083)
    probes = []
    for counts in ((50, 10, 5), (30, 30, 6, 12, 0), (8, 0, 40, 20), (100, 60, 40, 25, 16, 10, 7, 5, 3, 2)):
        labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
        probes.append((labels[torch.randperm(len(labels), generator=gen)], len(counts)))
    return probes


def _as_weights(answer: Any, labels: torch.Tensor, c: int) -> torch.Tensor:
    """The student's weights as a float64 tensor (C,), or `Incorrect` naming the shape or type problem."""
    if not isinstance(answer, torch.Tensor):
        raise Incorrect(f"return a float tensor of shape ({c},): nn.CrossEntropyLoss(weight=...) takes a tensor, "
                        f"got {type(answer).__name__}.")
    if not answer.is_floating_point():
        raise Incorrect(f"your weights are {answer.dtype}: nn.CrossEntropyLoss needs float weights "
                        "(integer division would also round them); compute them with floats.")
    if answer.ndim == 1 and len(answer) == len(labels) and len(labels) != c:
        raise Incorrect(f"you return one weight per sample ({len(labels)} values): the loss takes one weight per "
                        f"class, shape ({c},) (a per-sample weight is what WeightedRandomSampler takes).")
    if answer.ndim == 1 and len(answer) < c and len(answer) == int(labels.max()) + 1:
        raise Incorrect(f"you return {len(answer)} weights for {c} classes: torch.bincount(labels) stops at the "
                        f"largest label present; pass minlength=num_classes.")
    if tuple(answer.shape) != (c,):
        raise Incorrect(f"return one weight per class, shape ({c},), got {tuple(answer.shape)}.")
    return answer.detach().double().cpu()


def _weights_mistake(w: torch.Tensor, counts: torch.Tensor) -> str:
    """The message for weights `w` that do not give each present class the same total weight."""
    present = counts > 0
    if not torch.isfinite(w).all():
        bad = int((~torch.isfinite(w)).nonzero()[0])
        return (f"class {bad} has weight {float(w[bad])}: it has no samples, so 1 / count divides by zero. "
                f"Give an absent class the weight 0.")
    if bool((w[~present] != 0).any()):
        bad = int((~present & (w != 0)).nonzero()[0])
        return f"class {bad} has no samples but weight {float(w[bad]):.3g}: give an absent class the weight 0."
    n = counts[present]
    for name, target in (("grow with the class count (frequencies, not inverse frequencies)", n),
                         ("are 1 / sqrt(count): that halves the imbalance but does not remove it", 1 / n.sqrt())):
        if torch.allclose(w[present] / w[present].sum(), target / target.sum(), rtol=1e-4):
            return f"your weights {name}. Weight class c by 1 / count_c, e.g. N / (C * count_c)."
    return ""


def check_class_weights_fn(class_weights: Callable[[torch.Tensor, int], torch.Tensor]) -> str:
    """`class_weights(labels, num_classes)` returns float weights (C,) with which
    `nn.CrossEntropyLoss(weight=w)` gives every class present the same total weight
    (w_c * count_c equal), and weight 0 to a class absent from `labels`. Any common scale is
    right (the loss divides by the sum of the weights): N / (C * count_c), 1 / count_c, ...

    labels: (N,) int64. Runs on label sets of 3 to 10 classes, one with its last class absent
    and one with a middle class absent. Wrong answers it names: frequencies instead of inverse
    frequencies, 1 / sqrt(count), one weight per sample, bincount without minlength, inf for
    an absent class, integer weights, the same weights for every input. Lesson 08.
    """
    first = None
    for labels, c in _weight_probes():
        w = _as_weights(call_student(f"class_weights(labels, {c})", class_weights, labels.clone(), c), labels, c)
        counts = torch.bincount(labels, minlength=c).double()
        if first is not None and w.shape == first.shape and torch.equal(w, first):
            raise Incorrect("you return the same weights for every input: count the labels you are given.")
        present = counts > 0
        totals = w[present] * counts[present]
        balanced = bool(torch.isfinite(w).all()) and bool((w[~present] == 0).all()) and bool((w[present] > 0).all()) \
            and torch.allclose(totals, totals.mean().expand_as(totals), rtol=1e-4)
        if not balanced:
            raise Incorrect(_weights_mistake(w, counts) or (
                f"with counts {counts.long().tolist()} your weights {[round(v, 4) for v in w.tolist()]} give the "
                f"classes total weights (weight x count) {[round(v, 2) for v in (w * counts).tolist()]}: "
                f"they should be equal for every class present, so weight class c by 1 / count_c."))
        first = w if first is None else first
        loss = nn.CrossEntropyLoss(weight=w.float())(torch.zeros(len(labels), c), labels)
        if not torch.isfinite(loss):
            raise Incorrect("nn.CrossEntropyLoss with your weights gives a loss that is not finite.")
    return ("every class present gets the same total weight and an absent class 0, on 4 label sets "
            "(3 to 10 classes); pass the result to nn.CrossEntropyLoss(weight=...).")


# --- a safe loader for a model saved with plain torch.save --------------------------------

_SPRUNG: list[str] = []


def _spring() -> dict:
    """Called only if a loader unpickles `_Trap`: that is code from the file running."""
    _SPRUNG.append("sprung")
    return {}


class _Trap:
    """An object whose unpickling calls `_spring`: what a malicious checkpoint would hold."""

    def __reduce__(self):
        return (_spring, ())


def _plain_probe(folder: Path, arch: str, names: list[str], size: int, mean: list[float], std: list[float],
                 seed: int) -> tuple[Path, nn.Module]:
    """A checkpoint in the lesson's plain format, and the reference model (eval mode) it holds.

    BatchNorm statistics are randomised, so train mode and eval mode give different outputs."""
    from torchvision.models import get_model

    torch.manual_seed(seed)
    model = get_model(arch, weights=None, num_classes=len(names))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    path = folder / f"{arch}-{len(names)}.pt"
    torch.save({"arch": arch, "class_names": names, "preprocessing": {"size": size, "mean": mean, "std": std},
                "state_dict": model.state_dict()}, path)
    return path, model.eval()


def _reference_probs(model: nn.Module, images: torch.Tensor, mean, std, scale: float = 255.0) -> torch.Tensor:
    x = (images.float() / scale - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).softmax(1)


def _student_probs(loaded: Any, images: torch.Tensor) -> tuple[torch.Tensor, nn.Module, list]:
    """Run the student's (model, preprocess, class_names) on `images` as they return them."""
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 3:
        raise Incorrect(f"return a triple (model, preprocess, class_names), got {type(loaded).__name__}.")
    model, preprocess, names = loaded
    if not isinstance(model, nn.Module) or not callable(preprocess):
        raise Incorrect("return (model, preprocess, class_names): an nn.Module, a callable that prepares one "
                        "image, and the list of names.")
    batch = torch.stack([torch.as_tensor(call_student("preprocess(image)", preprocess, im)) for im in images])
    with torch.no_grad():
        out = call_student("model(batch)", model, batch.float())
    return out.float().softmax(1), model, list(names)


def _loader_mistake(got: torch.Tensor, model: nn.Module, student_model: nn.Module, images, mean, std) -> str:
    near = lambda ref: torch.allclose(got, ref, atol=1e-4)
    if any(m.training for m in student_model.modules()):
        return ("your model is in training mode: BatchNorm then normalises with the batch's own statistics and "
                "dropout is on. Call model.eval() before returning it.")
    if near(_reference_probs(model, images, std, mean)):
        return "mean and std are swapped in your preprocessing: Normalize(mean, std)."
    if near(_reference_probs(model, images, [0.0] * 3, [1.0] * 3)):
        return "your preprocessing never normalises: subtract the stored mean and divide by the stored std."
    if near(_reference_probs(model, images, mean, std, scale=1.0)):
        return "your preprocessing normalises values 0..255: scale the uint8 image to [0, 1] first."
    return ""


def check_plain_loader(load_plain: Callable[[str], Any]) -> str:
    """`load_plain(path)` reads a checkpoint saved as `torch.save({"arch", "class_names",
    "preprocessing": {"size", "mean", "std"}, "state_dict"}, path)` and returns `(model,
    preprocess, class_names)`: the model rebuilt for that architecture and number of classes,
    weights loaded, in eval mode; `preprocess(image)` maps a uint8 (3, size, size) image to the
    normalised float input. The checker writes checkpoints of two architectures (resnet18, 3
    classes, 32 px; mobilenet_v3_small, 5 classes, 40 px) with other class names and other
    mean and std, and compares the probabilities on fresh images with the saved model's. A
    third file holds an object whose unpickling would run code: loading it must fail without
    running it (`torch.load(..., weights_only=True)`). Wrong answers it names: train mode,
    mean and std swapped, no normalisation, no scaling to [0, 1], class names not read from
    the file, code from the file run. Lesson 08.
    """
    gen = torch.Generator().manual_seed(8084)
    probes = (("resnet18", ["cat", "dog", "fox"], 32, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], 1),
              ("mobilenet_v3_small", ["ant", "bee", "elk", "gnu", "yak"], 40, [0.3, 0.3, 0.6], [0.3, 0.2, 0.1], 2))
    with tempfile.TemporaryDirectory() as folder:
        for arch, names, size, mean, std, seed in probes:
            path, model = _plain_probe(Path(folder), arch, names, size, mean, std, seed)
            images = torch.randint(0, 256, (4, 3, size, size), dtype=torch.uint8, generator=gen)
            got, student_model, got_names = _student_probs(call_student(f"load_plain({path.name!r})", load_plain,
                                                                        str(path)), images)
            if got_names != names:
                raise Incorrect(f"for the {arch} file you return the class names {got_names}, the file holds "
                                f"{names}: read them from the checkpoint, in their order.")
            if not torch.allclose(got, _reference_probs(model, images, mean, std), atol=1e-4):
                raise Incorrect(_loader_mistake(got, model, student_model, images, mean, std) or (
                    f"for the {arch} file your model's probabilities differ from the saved model's on the same "
                    f"images: load the state dict, rebuild the preprocessing from the stored size, mean and std."))
        trap = Path(folder) / "untrusted.pt"
        torch.save({"arch": "resnet18", "class_names": ["a", "b"], "note": _Trap()}, trap)
        _SPRUNG.clear()
        try:
            load_plain(str(trap))
        except Exception:
            pass
        if _SPRUNG:
            raise Incorrect("your loader ran code stored in the file: torch.load(path, weights_only=False) unpickles any "
                            "Python object, and unpickling can call any function. Use weights_only=True.")
    return ("both checkpoints (resnet18, mobilenet_v3_small) give the saved models' probabilities, with their "
            "class names; the file with code in it was refused without running it.")


# --- the exercises ------------------------------------------------------------------------

lesson08 = ExerciseSet(
    "08",
    q1=Exercise(
        title="Lesson 08, exercise 1: precision and recall",
        task="Write `precision_recall(preds, targets)` for a 2-class problem (1 = positive): it "
             "returns (precision, recall) of class 1. preds and targets are int64 tensors of shape (N,).",
        usage="ex.q1.check(precision_recall)",
        checker=check_precision_recall_fn,
        hints=("Count TP (predicted 1, truly 1), FP (predicted 1, truly 0) and FN (predicted 0, truly 1).",
               "Precision asks 'of what I flagged, how much was right?': TP / (TP + FP). Recall asks "
               "'of what was there, how much did I find?': TP / (TP + FN)."),
        solution_code="""
def precision_recall(preds, targets):
    tp = ((preds == 1) & (targets == 1)).sum().item()
    fp = ((preds == 1) & (targets == 0)).sum().item()
    fn = ((preds == 0) & (targets == 1)).sum().item()
    return tp / (tp + fp), tp / (tp + fn)
""",
    ),
    q2=Exercise(
        title="Lesson 08, exercise 2: a confusion matrix",
        task="Write `confusion(preds, targets, num_classes)` returning the (C, C) matrix of counts "
             "whose entry [i, j] is the number of samples of true class i predicted as class j.",
        usage="ex.q2.check(confusion)",
        checker=check_confusion_matrix_fn,
        hints=("Start from torch.zeros(num_classes, num_classes, dtype=torch.int64).",
               "Loop over pairs (t, p) of target and prediction and add 1 at [t, p]: rows are the truth."),
        solution_code="""
import torch

def confusion(preds, targets, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p in zip(targets.tolist(), preds.tolist()):
        matrix[t, p] += 1
    return matrix
""",
    ),
    q3=Exercise(
        title="Lesson 08, exercise 3: class weights for an imbalanced training set",
        task="Write `class_weights(labels, num_classes)`: a float tensor of shape (num_classes,) with which "
             "nn.CrossEntropyLoss(weight=...) gives every class the same total weight (weight x count equal), "
             "e.g. N / (C * count_c); a class absent from `labels` gets weight 0.",
        usage="ex.q3.check(class_weights)",
        checker=check_class_weights_fn,
        hints=("Count each class with torch.bincount(labels, minlength=num_classes): without minlength a class "
               "absent at the end of the range is missing.",
               "Divide where the count is above 0 and put 0 elsewhere: torch.where(counts > 0, N / (C * counts), 0)."),
        solution_code="""
import torch

def class_weights(labels, num_classes):
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = len(labels) / (num_classes * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))
""",
    ),
    q4=Exercise(
        title="Lesson 08, exercise 4: load a model saved with plain torch.save, safely",
        task="Write `load_plain(path)` for a file saved as torch.save({'arch', 'class_names', 'preprocessing': "
             "{'size', 'mean', 'std'}, 'state_dict'}, path). Return (model, preprocess, class_names): the model "
             "rebuilt with torchvision.models.get_model, weights loaded, in eval mode; preprocess turns a uint8 "
             "(3, size, size) image into the normalised input. Never run code from the file.",
        usage="ex.q4.check(load_plain)",
        checker=check_plain_loader,
        hints=("torch.load(path, map_location='cpu', weights_only=True) reads tensors and plain values only; "
               "get_model(arch, num_classes=len(class_names)) builds the architecture, load_state_dict fills it.",
               "ftlib.deploy.Preprocess(size, mean, std) rebuilds the preprocessing from the three values; "
               "and call model.eval() before returning the model."),
        solution_code="""
import torch
from torchvision.models import get_model
from ftlib.deploy import Preprocess

def load_plain(path):
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = get_model(saved["arch"], num_classes=len(saved["class_names"]))
    model.load_state_dict(saved["state_dict"])
    p = saved["preprocessing"]
    return model.eval(), Preprocess(p["size"], p["mean"], p["std"]), list(saved["class_names"])
""",
    ),
)
