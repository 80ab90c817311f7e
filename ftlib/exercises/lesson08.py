"""Lesson 08's exercises: evaluation.

q1 writes precision and recall of the positive class, q2 a confusion matrix. The reference
numbers come from `ftlib.metrics`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

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


def _near(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b))


def check_precision_recall_fn(precision_recall: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]) -> str:
    """`precision_recall(preds, targets)` returns (precision, recall) of the positive class 1.

    preds, targets: (N,) int64 class indices (0 or 1). Wrong answers it names: the two
    swapped (or the arguments passed the other way round), the scores of class 0, accuracy.
    Lesson 08.
    """
    preds, targets = _binary_probe()
    answer = call_student("precision_recall(preds, targets)", precision_recall, preds.clone(), targets.clone())
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Incorrect(f"return a pair (precision, recall), got {type(answer).__name__}.")
    got = tuple(as_number(v, "precision and recall") for v in answer)
    cm = confusion_matrix(preds, targets, 2)
    tp, fp, fn = int(cm[1, 1]), int(cm[0, 1]), int(cm[1, 0])
    class0, class1 = per_class_metrics(cm)[:2]
    right, negative = (class1["precision"], class1["recall"]), (class0["precision"], class0["recall"])
    if _near(got, right):
        return f"precision {got[0]:.3f}, recall {got[1]:.3f} on the check set (TP={tp}, FP={fp}, FN={fn})."
    if _near(got, right[::-1]):
        raise Incorrect("precision and recall are swapped: precision = TP / (TP + FP), the share of predicted "
                        "positives that are right; recall = TP / (TP + FN), the share of true positives found. "
                        "(Or the arguments went in the other order: preds first, then targets.)")
    if _near(got, negative):
        raise Incorrect("those are the precision and recall of class 0: the positive class is 1.")
    if any(math.isclose(v, accuracy(preds, targets), abs_tol=1e-4) for v in got):
        raise Incorrect("one of your numbers is the accuracy: precision divides by the predicted positives "
                        "(TP + FP), recall by the actual positives (TP + FN).")
    raise Incorrect(f"you returned ({got[0]:.3f}, {got[1]:.3f}): count TP, FP and FN for class 1, then "
                    f"precision = TP / (TP + FP) and recall = TP / (TP + FN).")


def check_confusion_matrix_fn(confusion: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> str:
    """`confusion(preds, targets, num_classes)` returns the (C, C) count matrix whose entry
    [i, j] counts samples of true class i predicted as class j (scikit-learn's layout).
    Lesson 08."""
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    preds = torch.tensor([0, 1, 2, 1, 1, 2, 0, 2, 1, 1])
    expected = confusion_matrix(preds, targets, 3)
    got = torch.as_tensor(call_student("confusion(preds, targets, 3)", confusion, preds.clone(), targets.clone(), 3))
    if tuple(got.shape) != (3, 3):
        raise Incorrect(f"for 3 classes the matrix has shape (3, 3), got {tuple(got.shape)}.")
    if torch.equal(got.long(), expected):
        return "rows are the true classes, columns the predictions; the counts are right."
    if torch.equal(got.long(), expected.T):
        raise Incorrect("your matrix is transposed: row i should be the true class, column j the prediction.")
    if math.isclose(float(got.sum()), 1.0, abs_tol=1e-4) or torch.allclose(got.float().sum(1), torch.ones(3)):
        raise Incorrect("your matrix is normalised: return the raw counts.")
    raise Incorrect(f"entry [i, j] should count samples of true class i predicted as j; your matrix sums to "
                    f"{float(got.sum()):g} for 10 samples.")


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
