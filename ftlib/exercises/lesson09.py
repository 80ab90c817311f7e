"""Project 09's exercises: chest X-rays (PneumoniaMNIST, or its offline stand-in).

q1 decides how many stages to freeze from the project's depth sweep (the projects' shared
exercise, `projects.check_depth_choice`: any depth within one seed spread of the best); q2 writes the rule that picks
a decision threshold for a target sensitivity (judged against `ftlib.metrics.threshold_for_sensitivity`
on fresh scores) and applies it to the notebook's validation split; q3 writes specificity at a
threshold; q4 writes balanced class weights for a class-weighted loss and the probe. Class 1
(pneumonia) is the positive class throughout.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..metrics import binary_metrics, threshold_for_sensitivity
from .checks import as_number, require_answer
from .core import Exercise, ExerciseSet, Incorrect, call_student
from .projects import depth_exercise
from .lesson08 import _as_weights

__all__ = ["check_threshold_fn", "check_specificity_fn", "check_class_weights_balanced", "balanced_weights",
           "lesson09"]

Scores = tuple[torch.Tensor, torch.Tensor]


def _expect_function(fn: Any, call: str) -> None:
    require_answer(fn, f"a function {call}")
    if not callable(fn):
        raise Incorrect(f"pass the function itself ({call.split('(')[0]}), not a {type(fn).__name__}.")


def _score_probes(seed: int) -> list[Scores]:
    """(scores (N,) float32 in [0, 1], targets (N,) int64): seeded two-class sets, more positives than
    negatives in most (as in the X-rays), positives scoring higher on average; the last has tied scores."""
    g = torch.Generator().manual_seed(seed)
    probes = []
    for n_pos, n_neg, tied in ((60, 25, False), (41, 40, False), (120, 35, False), (23, 50, False), (80, 30, True)):
        targets = torch.cat([torch.ones(n_pos, dtype=torch.int64), torch.zeros(n_neg, dtype=torch.int64)])
        scores = (torch.randn(len(targets), generator=g) + 1.2 * targets).sigmoid()
        if tied:
            scores = (scores * 12).round() / 12
        order = torch.randperm(len(targets), generator=g)
        probes.append((scores[order], targets[order]))
    return probes


# --- q2: a threshold for a target sensitivity ----------------------------------------------------

def _flags(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    return scores >= threshold


def _threshold_mistake(got: float, scores: torch.Tensor, targets: torch.Tensor, target: float) -> str:
    """The message for a threshold `got` that does not flag the same samples as the reference."""
    want = threshold_for_sensitivity(scores, targets, target)
    sens = binary_metrics(scores, targets, got)["sensitivity"]
    swapped = threshold_for_sensitivity(1 - scores, 1 - targets, target)
    if _flags(scores, got).equal(_flags(scores, threshold_for_sensitivity(scores, 1 - targets, target))) \
            or math.isclose(got, swapped, abs_tol=1e-6):
        return ("you took class 0 (normal) as the positive class: sensitivity is the share of *pneumonia* "
                "images (target 1) flagged, `scores >= threshold`.")
    if math.isclose(got, target, abs_tol=1e-9) or math.isclose(got, sens, abs_tol=1e-9):
        return "you return a sensitivity, not a threshold: return the score threshold itself."
    if sens < target:
        return (f"at your threshold {got:.4f} the sensitivity is {sens:.4f}, below the target {target}: one "
                f"positive too few is flagged. Keep every threshold whose sensitivity is >= target (an off-by-one "
                f"in the count of positives, or `>` where `>=` is meant, does this).")
    if got < want:
        return (f"your threshold {got:.4f} reaches the target (sensitivity {sens:.4f}), but it is not the "
                f"*highest* one that does: a lower threshold flags more normal images and costs specificity. "
                f"The highest such threshold here flags fewer.")
    return f"on {len(targets)} fresh scores with target {target} you return {got:.4f}; expected {want:.4f}."


def check_threshold_fn(pick_threshold: Callable[[torch.Tensor, torch.Tensor, float], Any], threshold: Any,
                       val: Scores, test: Scores) -> str:
    """`pick_threshold(scores, targets, target)` returns the highest threshold t at which the
    sensitivity (`scores >= t` among targets 1) is at least `target`; `threshold` is its answer on
    the notebook's validation split. Judged on seeded fresh scores: any t that flags the same samples
    as `ftlib.metrics.threshold_for_sensitivity` is right. Typical wrong answers it names: the lowest
    (or any lower) threshold that reaches the target, a sensitivity just below the target, class 0
    taken as positive, a sensitivity returned instead of a threshold, the threshold chosen on the test
    split, the same answer for every input. scores: (N,) float; targets: (N,) int64. Project 09."""
    _expect_function(pick_threshold, "pick_threshold(scores, targets, target)")
    require_answer(threshold, "threshold = pick_threshold(*val, 0.95)")
    answers = []
    for (scores, targets), target in zip(_score_probes(901), (0.95, 0.9, 0.95, 0.8, 0.95)):
        call = f"pick_threshold(scores, targets, {target})"
        got = as_number(call_student(call, pick_threshold, scores.clone(), targets.clone(), target), "the threshold")
        answers.append(got)
        if not _flags(scores, got).equal(_flags(scores, threshold_for_sensitivity(scores, targets, target))):
            raise Incorrect(_threshold_mistake(got, scores, targets, target))
    if len(set(answers)) == 1:
        raise Incorrect(f"you return {answers[0]:g} for every input: compute it from the scores and targets.")
    threshold = as_number(threshold, "threshold")
    (vs, vt), (ts, tt) = val, test
    if _flags(vs, threshold).equal(_flags(vs, threshold_for_sensitivity(vs, vt, 0.95))):
        sens = binary_metrics(vs, vt, threshold)["sensitivity"]
        return (f"your rule matches threshold_for_sensitivity on {len(answers)} fresh score sets, and on the "
                f"validation split it gives {threshold:.4f} (sensitivity {sens:.3f} >= 0.95).")
    if _flags(ts, threshold).equal(_flags(ts, threshold_for_sensitivity(ts, tt, 0.95))):
        raise Incorrect("your threshold was chosen on the *test* split: choose it on validation, "
                        "pick_threshold(*val, 0.95); the test split only reports what it does.")
    raise Incorrect(f"your rule is right, but `threshold` ({threshold:.4f}) is not its answer on the validation "
                    f"split for a sensitivity of 0.95: threshold = pick_threshold(*val, 0.95).")


# --- q3: specificity at a threshold --------------------------------------------------------------

def _specificity_mistake(got: float, scores: torch.Tensor, targets: torch.Tensor, t: float) -> str:
    m = binary_metrics(scores, targets, t)
    strict = binary_metrics(scores, targets, t + 1e-7)   # `>` instead of `>=`: the tied samples change side
    close = lambda a, b: math.isclose(a, b, abs_tol=1e-6)  # noqa: E731
    if close(got, 100 * m["specificity"]) and m["specificity"] > 0:
        return "that is a percentage: return a fraction in [0, 1]."
    for value, message in (
            (m["sensitivity"], "you return the sensitivity (the share of pneumonia flagged), or took class 0 as "
                               "positive: specificity is TN / (TN + FP), the share of *normal* images not flagged."),
            (1 - m["specificity"], "you return 1 - specificity, the false-positive rate: count the normal images "
                                   "*below* the threshold, TN / (TN + FP)."),
            (m["tn"] / len(targets), "you divide by all the samples: specificity is TN / (TN + FP), among the "
                                     "normal images (targets 0) only."),
            (m["accuracy"], "you return the accuracy at the threshold: count only among the normal images."),
            (strict["specificity"], "samples whose score equals the threshold count as negative in your code: a "
                                    "sample is flagged when score >= threshold (use >=, not >).")):
        if close(got, value):
            return message
    return f"at threshold {t:.4f} on {len(targets)} fresh scores you return {got:.4f}, expected {m['specificity']:.4f}."


def check_specificity_fn(specificity: Callable[[torch.Tensor, torch.Tensor, float], Any]) -> str:
    """`specificity(scores, targets, threshold)` returns TN / (TN + FP), a fraction in [0, 1]: the share
    of negatives (targets 0, normal) whose score is below the threshold; `score >= threshold` is
    flagged positive. Judged against `ftlib.metrics.binary_metrics` on seeded fresh scores, thresholds
    equal to some scores included. Typical wrong answers it names: the sensitivity (or class 0 taken as
    positive), the false-positive rate, TN over all samples, the accuracy, `>` instead of `>=`, a
    percentage, the same answer for every input. Project 09."""
    _expect_function(specificity, "specificity(scores, targets, threshold)")
    answers = []
    for i, (scores, targets) in enumerate(_score_probes(903)):
        t = float(scores[targets == 0].sort().values[len(scores[targets == 0]) * 2 // 3]) if i % 2 else 0.5 + i / 20
        call = f"specificity(scores, targets, {t:.4f})"
        got = as_number(call_student(call, specificity, scores.clone(), targets.clone(), t), "the specificity")
        answers.append(got)
        if not math.isclose(got, binary_metrics(scores, targets, t)["specificity"], abs_tol=1e-6):
            raise Incorrect(_specificity_mistake(got, scores, targets, t))
    if len(set(answers)) == 1:
        raise Incorrect(f"you return {answers[0]:g} for every input: compute it from the scores and targets.")
    return f"the same specificity as ftlib.metrics.binary_metrics on {len(answers)} fresh score sets, ties included."


# --- q4: balanced class weights --------------------------------------------------------------------

def balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """w_c = N / (C * n_c), float32 (C,): each class weighs the same in total, and the weights average
    1 over the samples (scikit-learn's class_weight="balanced"). labels: (N,) int64, every class present."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    return len(labels) / (num_classes * counts)


def _label_probes() -> list[tuple[torch.Tensor, int]]:
    """(labels, C): imbalanced label sets of 2 to 5 classes, every class present, shuffled so that the
    order in which classes first appear is not 0, 1, 2..."""
    g = torch.Generator().manual_seed(904)
    probes = []
    for counts in ((30, 90), (120, 45), (10, 40, 25), (8, 50, 20, 12), (60, 6, 30, 15, 45)):
        labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
        labels = labels[torch.randperm(len(labels), generator=g)]
        while labels[0] == 0:
            labels = labels.roll(1)
        probes.append((labels, len(counts)))
    return probes


def _weights_message(w: torch.Tensor, want: torch.Tensor, counts: torch.Tensor) -> str:
    close = lambda a, b: torch.allclose(a, b, rtol=1e-4)  # noqa: E731
    unit = lambda v: v / v.sum()  # noqa: E731
    if close(w.sort().values, want.sort().values):
        return ("the right values in the wrong class order: weight c must be at index c, the order of "
                "the class names (torch.bincount(labels, minlength=C) counts in that order; the order in "
                "which classes first appear, or a sorted count, is not it). With two classes, swapped "
                "weights also grow with the class count: the rarer class must weigh more.")
    if close(unit(w), unit(counts)):
        return "your weights are inverted: they grow with the class count. The rarer class must weigh more: 1 / n_c."
    if close(unit(w), unit(want)):
        return (f"the ratios are right, but the weights are not normalised: their average over the samples is "
                f"{float((w * counts).sum() / counts.sum()):.4g}, not 1. Use N / (C * n_c): with "
                f"scikit-learn's probe the scale multiplies C, the regularisation, not only the loss.")
    if close(unit(w), unit(1 / counts.sqrt())):
        return "your weights are 1 / sqrt(n_c): that shrinks the imbalance but does not remove it. Use N / (C * n_c)."
    return f"with counts {counts.long().tolist()} you return {[round(v, 4) for v in w.tolist()]}, " \
           f"expected N / (C * n_c) = {[round(v, 4) for v in want.tolist()]}."


def check_class_weights_balanced(class_weights: Callable[[torch.Tensor, int], Any]) -> str:
    """`class_weights(labels, num_classes)` returns float weights (C,), w_c = N / (C * n_c): every class
    the same total weight, and the weights average 1 over the samples (scikit-learn's "balanced", so
    the same numbers serve `nn.CrossEntropyLoss(weight=...)` and the probe's `class_weight`). Judged on
    fresh label sets of 2 to 5 classes. Typical wrong answers it names: inverted weights (frequencies),
    weights not normalised (1 / n_c), the wrong class order, 1 / sqrt(n_c), one weight per sample,
    integer weights, the same weights for every input. labels: (N,) int64. Project 09."""
    _expect_function(class_weights, "class_weights(labels, num_classes)")
    seen = []
    for labels, c in _label_probes():
        got = call_student(f"class_weights(labels, {c})", class_weights, labels.clone(), c)
        w = _as_weights(got, labels, c)
        counts = torch.bincount(labels, minlength=c).double()
        want = balanced_weights(labels, c).double()
        if seen and any(s.shape == w.shape and torch.equal(s, w) for s in seen):
            raise Incorrect("you return the same weights for different labels: count the labels you are given.")
        seen.append(w)
        if not torch.allclose(w, want, rtol=1e-4):
            raise Incorrect(_weights_message(w, want, counts))
    return (f"N / (C * n_c) on {len(seen)} fresh label sets (2 to 5 classes): pass them to "
            f"nn.CrossEntropyLoss(weight=w.to(device)) and, as a dict, to the probe's class_weight.")


# --- the exercises ----------------------------------------------------------------------------------

lesson09 = ExerciseSet(
    "09",
    q1=depth_exercise("09"),
    q2=Exercise(
        title="Project 09, exercise 2: a threshold for a target sensitivity",
        task="Write `pick_threshold(scores, targets, target)`: the *highest* threshold t such that at least a "
             "share `target` of the positives (targets 1, pneumonia) have `score >= t`. scores: (N,) float, the "
             "pneumonia probability; targets: (N,) int64. Then apply it where a threshold may be chosen: "
             "`threshold = pick_threshold(*val, 0.95)`.",
        usage="ex.q2.check(pick_threshold, threshold, val, test)",
        checker=check_threshold_fn,
        hints=("Sort the positives' scores from high to low. To flag at least `target` of the P positives you "
               "need the first ceil(target * P) of them.",
               "The threshold is the score of the last one you need: `pos[math.ceil(target * len(pos)) - 1]`. "
               "Choose it on `val`; `test` only reports what it does."),
        solution_code="""
import math

def pick_threshold(scores, targets, target):
    pos = scores[targets == 1].sort(descending=True).values
    return float(pos[max(math.ceil(target * len(pos) - 1e-9), 1) - 1])

threshold = pick_threshold(*val, 0.95)
""",
    ),
    q3=Exercise(
        title="Project 09, exercise 3: specificity at a threshold",
        task="Write `specificity(scores, targets, threshold)`: the share of normal images (targets 0) that the "
             "threshold leaves unflagged, TN / (TN + FP), where a sample is flagged when `score >= threshold`. "
             "Return a fraction in [0, 1].",
        usage="ex.q3.check(specificity)",
        checker=check_specificity_fn,
        hints=("Keep only the scores of the normal images: `scores[targets == 0]`.",
               "Of those, the share below the threshold: `(neg < threshold).float().mean().item()`."),
        solution_code="""
def specificity(scores, targets, threshold):
    neg = scores[targets == 0]
    return (neg < threshold).float().mean().item()
""",
    ),
    q4=Exercise(
        title="Project 09, exercise 4: balanced class weights",
        task="Write `class_weights(labels, num_classes)`: a float tensor (C,) with w_c = N / (C * n_c), where "
             "n_c counts class c in `labels` (N,) and weight c sits at index c. Every class then weighs the same "
             "in total, and the weights average 1 over the samples, so the same numbers serve the loss "
             "(`nn.CrossEntropyLoss(weight=w)`) and the probe (`class_weight={c: w_c}`).",
        usage="ex.q4.check(class_weights)",
        checker=check_class_weights_balanced,
        hints=("`torch.bincount(labels, minlength=num_classes)` counts each class, in class order.",
               "Divide N by C times those counts, as floats: `len(labels) / (num_classes * counts.float())`."),
        solution_code="""
import torch

def class_weights(labels, num_classes):
    counts = torch.bincount(labels, minlength=num_classes).float()
    return len(labels) / (num_classes * counts)
""",
    ),
)
