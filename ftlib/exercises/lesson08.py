"""Lesson 08's exercises: evaluation.

q1 writes precision and recall of the positive class, q2 a confusion matrix. The reference
numbers come from `ftlib.metrics`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..metrics import accuracy, confusion_matrix, per_class_metrics
from .checks import as_number
from .core import Exercise, ExerciseSet, Incorrect, call_student

__all__ = ["check_precision_recall_fn", "check_confusion_matrix_fn", "lesson08"]


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
)
