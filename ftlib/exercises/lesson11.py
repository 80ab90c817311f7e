"""Project 11's exercises: retail products (Fashion-MNIST, or its offline stand-in).

q1 decides how many stages to freeze from the project's depth sweep (the projects' shared
exercise, `projects.check_depth_choice`: any depth within one seed spread of the best), q2 writes top-k accuracy
(checked against `ftlib.metrics.top_k_accuracy` on fresh logits), q3 draws a class-balanced
few-shot subset as indices (lesson 02's `check_balanced_subset` judges the draw), and q4 finds
the most confused ordered pair of classes in a confusion matrix.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..data import TensorImageDataset
from ..metrics import top_k_accuracy
from .checks import as_number, require_answer, whole_number
from .core import Exercise, ExerciseSet, Incorrect, call_student
from .projects import depth_exercise, pairs_on_matrices
from .lesson02 import check_balanced_subset

__all__ = ["check_top_k_fn", "check_few_shot_fn", "check_most_confused_fn",
           "most_confused", "lesson11"]

# --- q2: top-k accuracy -----------------------------------------------------------------------

def _unambiguous(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """Rows whose top-k membership of the target does not depend on how ties are broken."""
    mine = logits.gather(1, targets[:, None])
    above, level = (logits > mine).sum(1), (logits >= mine).sum(1)
    return (above >= k) | (level <= k)


def _topk_probes() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(logits (N, C) float32, targets (N,) int64, k): seeded fresh logits of 4 to 12 classes, k from
    1 to C; the last two have integer scores with many ties (rows where the tie decides are left out)."""
    g = torch.Generator().manual_seed(1101)
    probes = []
    for n, c, k, tied in ((40, 10, 3, False), (33, 5, 2, False), (50, 12, 5, False), (24, 6, 1, False),
                          (30, 4, 4, False), (80, 10, 2, True), (60, 8, 3, True)):
        targets = torch.randint(0, c, (n,), generator=g)
        if tied:
            logits = torch.randint(0, 4, (n, c), generator=g).float()
        else:
            logits = torch.randn(n, c, generator=g) * 2
            logits[torch.arange(n), targets] += torch.rand(n, generator=g) * 2   # better than chance
        keep = _unambiguous(logits, targets, k)
        probes.append((logits[keep], targets[keep], k))
    return probes


def _by_unique_values(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """The tie mistake: the target counts when its score is among the k largest *distinct* values."""
    hits = [float(row[t]) in sorted(set(row.tolist()), reverse=True)[:k] for row, t in zip(logits, targets.tolist())]
    return sum(hits) / len(hits)


def _topk_mistake(got: float, logits: torch.Tensor, targets: torch.Tensor, k: int) -> str:
    """The message for a wrong fraction `got` on one probe."""
    want, n, c = top_k_accuracy(logits, targets, k), len(targets), logits.shape[1]
    close = lambda a, b: math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)  # noqa: E731
    if close(got, want * n) and n > 1:
        return f"you return {got:g}, the number of hits: divide by the number of samples ({n}) to get a fraction."
    if close(got, 100 * want):
        return "that is a percentage: return a fraction in [0, 1]."
    if k > 1 and close(got, top_k_accuracy(logits, targets, 1)):
        return (f"you return the top-1 accuracy (the argmax only) for k={k}: count a sample as right when its "
                f"class is among the {k} highest scores.")
    lowest = (logits.topk(k, dim=1, largest=False).indices == targets[:, None]).any(1).float().mean().item()
    if close(got, lowest) and not close(lowest, want):
        return "you look at the k *lowest* scores: topk takes the largest by default (largest=True)."
    if close(got, _by_unique_values(logits, targets, k)):
        return ("with tied scores your count is too high: you rank distinct score values, so several classes "
                "tied above the target count as one. Rank the classes, e.g. with logits.topk(k, dim=1).")
    fixed = [j for j in range(1, c + 1) if j != k and close(got, top_k_accuracy(logits, targets, j))]
    if fixed:
        return f"for k={k} you return the top-{fixed[0]} accuracy: `k` is ignored, use the k you are given."
    return (f"on {n} samples of {c} classes with k={k} you return {got:.4f}, expected {want:.4f}: the fraction of "
            f"samples whose true class is among the k highest scores.")


def check_top_k_fn(top_k: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> str:
    """`top_k(logits, targets, k)` returns the fraction in [0, 1] of samples whose true class is among
    the k highest of its C scores. logits: (N, C) float; targets: (N,) int64.

    Judged against `ftlib.metrics.top_k_accuracy` on seeded fresh logits (4 to 12 classes, k from
    1 to C, two with many tied scores). Typical wrong answers it names: the count instead of the
    fraction, a percentage, the argmax only (top-1), k ignored (a fixed k), the k lowest scores,
    ties counted by distinct values, the same answer for every input. Project 11."""
    require_answer(top_k, "a function top_k(logits, targets, k)")
    if not callable(top_k):
        raise Incorrect(f"pass the function itself, ex.q2.check(top_k), not a {type(top_k).__name__}.")
    probes = _topk_probes()
    answers = [as_number(call_student(f"top_k(logits, targets, {k})", top_k, logits.clone(), targets.clone(), k),
                         "the top-k accuracy") for logits, targets, k in probes]
    if len(set(answers)) == 1:
        raise Incorrect(f"you return {answers[0]:g} for every input: compute it from the logits and targets.")
    for got, (logits, targets, k) in zip(answers, probes):
        if not math.isclose(got, top_k_accuracy(logits, targets, k), abs_tol=1e-6):
            raise Incorrect(_topk_mistake(got, logits, targets, k))
    return f"the same fractions as ftlib.metrics.top_k_accuracy on {len(probes)} fresh sets (k = 1 to C, ties included)."


# --- q3: a balanced few-shot subset, as indices -------------------------------------------------

def _as_indices(answer: Any, n: int, call: str) -> torch.Tensor:
    """The student's indices as an int64 tensor (M,), or `Incorrect` naming what is wrong with them."""
    if answer is None:
        raise Incorrect(f"{call} returned None: end your function with `return` and the indices.")
    if isinstance(answer, TensorImageDataset) or hasattr(answer, "images"):
        raise Incorrect(f"{call} returned a data set: return the indices (an int64 tensor), so that cached "
                        f"features or images can be indexed with them.")
    try:
        idx = torch.as_tensor(np.asarray(answer.tolist() if hasattr(answer, "tolist") else answer))
    except (TypeError, ValueError):
        raise Incorrect(f"{call} returned a {type(answer).__name__}: return a 1-D tensor of indices.") from None
    if idx.dtype == torch.bool:
        raise Incorrect(f"{call} returned a mask of {len(idx)} booleans: return the indices it selects "
                        f"(mask.nonzero().flatten()).")
    if idx.ndim != 1 or idx.is_floating_point() or idx.is_complex():
        raise Incorrect(f"{call} returned {tuple(idx.shape)} {idx.dtype} values: return a 1-D tensor of whole "
                        f"indices (int64), one per image kept.")
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise Incorrect(f"{call} returned an index outside 0..{n - 1}: are those labels rather than positions? "
                        f"Return positions in `labels`.")
    return idx.long()


def check_few_shot_fn(few_shot: Callable[[torch.Tensor, int, int], Any]) -> str:
    """`few_shot(labels, per_class, seed)` returns the indices (int64, (C * per_class,)) of `per_class`
    random samples of each class of `labels` ((N,) int64), none twice, the same for the same seed and
    other ones for another seed. The draw is judged by lesson 02's `check_balanced_subset` on its
    seeded data sets. Typical wrong answers it names: the first N indices overall (unbalanced), N
    in total instead of N per class, an index twice, the seed ignored, a draw that is not
    reproducible, the labels changed in place, a mask or a data set instead of indices. Project 11."""
    require_answer(few_shot, "a function few_shot(labels, per_class, seed)")
    if not callable(few_shot):
        raise Incorrect(f"pass the function itself, ex.q3.check(few_shot), not a {type(few_shot).__name__}.")

    def as_subset(dataset: TensorImageDataset, per_class: int, seed: int) -> TensorImageDataset:
        call, labels = f"few_shot(labels, {per_class}, seed={seed})", dataset.labels.clone()
        idx = _as_indices(call_student(call, few_shot, labels, per_class, seed), len(labels), call)
        if not torch.equal(labels, dataset.labels):
            raise Incorrect(f"{call} changed `labels` itself: sort or shuffle a copy, leave its input as it was.")
        return TensorImageDataset(dataset.images[idx], dataset.labels[idx], dataset.class_names)

    try:
        summary = check_balanced_subset(as_subset)
    except Incorrect as err:
        message = str(err)
        for mine, theirs in (("balanced_subset(dataset, ", "few_shot(labels, "), ("an image", "an index"),
                             ("images", "samples"), ("image", "sample")):
            message = message.replace(mine, theirs)
        raise Incorrect(message) from None
    return summary.replace("each image with its own label", "indices into the labels given")


# --- q4: the most confused pair -------------------------------------------------------------------

def most_confused(cm: torch.Tensor) -> tuple[int, int]:
    """(true class, predicted class) of the largest off-diagonal count of a confusion matrix (C, C),
    rows = true class (`ftlib.metrics.confusion_matrix`); ties go to the first in row order."""
    off = torch.as_tensor(cm).clone().long()
    off.fill_diagonal_(-1)
    flat = int(off.flatten().argmax())
    return flat // off.shape[1], flat % off.shape[1]


def _matrix_probes() -> list[torch.Tensor]:
    """Seeded (C, C) int64 count matrices of 3 to 10 classes, a strong diagonal, one unique largest
    off-diagonal count each; in one the largest off-diagonal pair is not the largest of cm + cm.T."""
    g = torch.Generator().manual_seed(1104)
    probes = [torch.tensor([[20, 3, 9], [8, 25, 0], [0, 2, 30]])]  # (0, 2) largest; (0, 1) + (1, 0) larger as a pair
    for c in (4, 6, 10, 5):
        while True:
            cm = torch.randint(0, 12, (c, c), generator=g)
            cm += torch.diag(torch.randint(30, 60, (c,), generator=g))
            off = cm.clone().fill_diagonal_(-1).flatten()
            if int((off == off.max()).sum()) == 1:
                break
        probes.append(cm)
    return probes


def _pair_of(answer: Any, call: str) -> tuple[int, int]:
    if isinstance(answer, (torch.Tensor, np.ndarray)) and math.prod(answer.shape) == 2:
        answer = answer.flatten().tolist()
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        what = "one number: is it a flat index or the count? Return the pair (i, j)" if np.ndim(answer) == 0 else \
            "not a pair"
        raise Incorrect(f"{call} returned {answer!r}, {what}: (true class, predicted class).")
    return tuple(whole_number(v, "a class index") for v in answer)


def check_most_confused_fn(confused: Callable[[torch.Tensor], Any]) -> str:
    """`confused(cm)` returns the ordered pair (i, j), i != j, of the largest count cm[i, j] off the
    diagonal of a confusion matrix (C, C) int64, rows = true class: the images of class i most often
    predicted as class j. Run on seeded fresh matrices of 3 to 10 classes. Typical wrong answers it
    names: the diagonal included (the best-predicted class), the pair reversed (predicted, true),
    both directions added, the flat index or the count instead of the pair, the same pair for every
    matrix. Project 11."""
    answers = pairs_on_matrices(confused, "confused", "q4", _matrix_probes(), _pair_of,
                                "find the largest off-diagonal count of the one given.")
    for call, cm, got in answers:
        want = most_confused(cm)
        if got == want:
            continue
        both = cm + cm.T
        if got[0] == got[1]:
            raise Incorrect(f"{call} returned ({got[0]}, {got[1]}), a cell of the diagonal: those are correct "
                            f"predictions. Leave the diagonal out (set it to -1 or 0 first).")
        if got == want[::-1]:
            raise Incorrect(f"{call} returned {got}, reversed: rows are the true classes, so cm[i, j] counts class i "
                            f"predicted as j; return (row, column) = {want}.")
        if both[got] > both[want]:
            raise Incorrect(f"{call} returned {got}, the pair with the most confusions in both directions added "
                            f"(cm + cm.T): the task asks for the single ordered cell, true class first.")
        raise Incorrect(f"{call} returned {got} (count {int(cm[got])}); the largest count off the diagonal is "
                        f"cm{list(want)} = {int(cm[want])}.")
    return f"the largest off-diagonal cell, (true, predicted), on {len(answers)} fresh matrices of 3 to 10 classes."


# --- the exercises ----------------------------------------------------------------------------------

lesson11 = ExerciseSet(
    "11",
    q1=depth_exercise("11"),
    q2=Exercise(
        title="Project 11, exercise 2: top-k accuracy",
        task="Write `top_k(logits, targets, k)`: the fraction of samples whose true class is among the k "
             "highest of their scores. logits: (N, C) float; targets: (N,) int64. The checker compares it with "
             "`ftlib.metrics.top_k_accuracy` on fresh logits, tied scores included.",
        usage="ex.q2.check(top_k)",
        checker=check_top_k_fn,
        hints=("`logits.topk(k, dim=1).indices` gives the k best classes of each row, shape (N, k).",
               "Compare them with `targets[:, None]`, take `.any(dim=1)` per row, and the mean as a float."),
        solution_code="""
def top_k(logits, targets, k):
    best = logits.topk(k, dim=1).indices
    return (best == targets[:, None]).any(dim=1).float().mean().item()
""",
    ),
    q3=Exercise(
        title="Project 11, exercise 3: a balanced few-shot subset, as indices",
        task="Write `few_shot(labels, per_class, seed)`: the indices (an int64 tensor) of `per_class` random "
             "samples of each class in `labels`, none twice, drawn with `seed` (the same seed gives the same "
             "indices). Indices, not images: they select cached features as well as images.",
        usage="ex.q3.check(few_shot)",
        checker=check_few_shot_fn,
        hints=("Make one generator, `g = torch.Generator().manual_seed(seed)`, before looping over the classes.",
               "For each class c: `idx = (labels == c).nonzero().flatten()`, then "
               "`idx[torch.randperm(len(idx), generator=g)[:per_class]]`; `torch.cat` the pieces."),
        solution_code="""
import torch

def few_shot(labels, per_class, seed):
    g = torch.Generator().manual_seed(seed)
    by_class = [(labels == c).nonzero().flatten() for c in labels.unique()]
    return torch.cat([idx[torch.randperm(len(idx), generator=g)[:per_class]] for idx in by_class])
""",
    ),
    q4=Exercise(
        title="Project 11, exercise 4: the most confused pair",
        task="Write `confused(cm)`: for a confusion matrix (C, C) of counts, rows = true class, columns = "
             "prediction, return the ordered pair (true class, predicted class) of the largest count off the "
             "diagonal. Ordered: (Shirt, T-shirt/top) and (T-shirt/top, Shirt) are two different cells.",
        usage="ex.q4.check(confused)",
        checker=check_most_confused_fn,
        hints=("The diagonal holds the correct predictions: copy the matrix and set its diagonal to -1 "
               "(`off.fill_diagonal_(-1)`).",
               "`int(off.argmax())` is a flat index f into the C x C matrix: the row is f // C, the column f % C."),
        solution_code="""
def confused(cm):
    off = cm.clone().long()
    off.fill_diagonal_(-1)
    flat = int(off.argmax())
    return flat // off.shape[1], flat % off.shape[1]
""",
    ),
)
