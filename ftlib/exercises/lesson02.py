"""Lesson 02's exercises: scratch vs pretrained.

q1 writes `balanced_subset(dataset, per_class, seed)`, a class-balanced random subset; the
checker runs it on several seeded data sets. q2 reads the scratch-vs-pretrained curve: how
many labels scratch needs to match pretrained at 10 labels per class.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..data import TensorImageDataset
from .checks import whole_number
from .core import Exercise, ExerciseSet, Incorrect, NotAnswered, call_student, is_placeholder

__all__ = ["check_balanced_subset", "labels_to_match", "check_labels_to_match", "lesson02"]


# --- exercise 1: a class-balanced subset --------------------------------------------------

def _images_and_labels(subset: Any, call: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, H, W) uint8, labels (N,) int64) of a TensorImageDataset or a torch Subset of one."""
    if subset is None:
        raise Incorrect(f"{call} returned None: end your function with `return` and the subset.")
    if isinstance(subset, torch.utils.data.Subset) and hasattr(subset.dataset, "images"):
        idx = torch.as_tensor(list(subset.indices), dtype=torch.int64)
        return subset.dataset.images[idx], torch.as_tensor(subset.dataset.labels)[idx].long()
    if hasattr(subset, "images") and hasattr(subset, "labels"):
        return subset.images, torch.as_tensor(subset.labels).long()
    raise Incorrect(f"{call} returned a {type(subset).__name__}; return a data set with `.images` and "
                    f"`.labels` (a TensorImageDataset, as data.train is) or a torch.utils.data.Subset of one.")


def _fingerprints(images: torch.Tensor) -> list[bytes]:
    """One key per image (its raw bytes), to find an image of one data set in another."""
    return [row.numpy().tobytes() for row in images.reshape(len(images), -1)]


def _balance_problem(counts: list[int], per_class: int, call: str) -> str | None:
    """Why per-class counts are wrong, or None when every class has `per_class` images."""
    if all(c == per_class for c in counts):
        return None
    if sum(counts) == per_class:
        return (f"{call} has {per_class} images in total (per class: {counts}); the task asks for "
                f"{per_class} images of *each* class.")
    if len(set(counts)) > 1:
        return (f"{call} gives unbalanced classes: {counts} images per class. Taking the first N images of a "
                f"data set gives whatever classes happen to come first; pick the images class by class.")
    return (f"{call} has {counts[0]} images of every class; the task asks for {per_class} per class: "
            f"use the `per_class` argument, not a fixed number.")


def _subset_problem(images: torch.Tensor, labels: torch.Tensor, source: TensorImageDataset,
                    per_class: int, call: str) -> str | None:
    """What is wrong with one returned subset of `source`, or None."""
    counts = torch.bincount(labels, minlength=len(source.class_names)).tolist()
    problem = _balance_problem(counts, per_class, call)
    if problem:
        return problem
    owner = dict(zip(_fingerprints(source.images), source.labels.tolist()))
    prints = _fingerprints(images)
    for i, (fp, label) in enumerate(zip(prints, labels.tolist())):
        if fp not in owner:
            return (f"image {i} of {call} is not in `dataset`: take the images from the data set the function "
                    f"receives (not from data.train or another split, and before any transform).")
        if owner[fp] != label:
            return (f"image {i} of {call} is labelled {label}, but in `dataset` it has label {owner[fp]}: keep "
                    f"each image with its own label (index images and labels with the same indices).")
    if len(set(prints)) < len(prints):
        return ("an image appears more than once in " + call + ": draw without replacement "
                "(torch.randperm), not with torch.randint.")
    return None


def _probe_sources() -> list[tuple[TensorImageDataset, int]]:
    """Seeded (data set, per_class) probes: 3, 4 and 2 classes; labels interleaved, sorted by
    class, and in random order; distinct random uint8 images (3, 4, 4)."""
    g = torch.Generator().manual_seed(202)
    probes = []
    for classes, size, per_class, order in ((3, 15, 10, "interleaved"), (4, 12, 5, "sorted"), (2, 20, 3, "random")):
        n = classes * size
        labels = torch.arange(n) % classes
        if order == "sorted":
            labels = labels.sort().values
        elif order == "random":
            labels = labels[torch.randperm(n, generator=g)]
        images = torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
        probes.append((TensorImageDataset(images, labels, [f"class{c}" for c in range(classes)]), per_class))
    return probes


def _drawn(fn: Callable, source: TensorImageDataset, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[bytes]]:
    """Run the student's function once; its (images, labels, fingerprints), checked against `source`."""
    call = f"balanced_subset(dataset, {per_class}, seed={seed})"
    before = (source.images.clone(), source.labels.clone())
    images, labels = _images_and_labels(call_student(call, fn, source, per_class, seed), call)
    if not (torch.equal(before[0], source.images) and torch.equal(before[1], source.labels)):
        raise Incorrect(f"{call} changed `dataset` itself (its images or labels): index a copy, leave the "
                        f"data set you were given as it was.")
    problem = _subset_problem(images, labels, source, per_class, call)
    if problem:
        raise Incorrect(problem)
    return images, labels, _fingerprints(images)


def check_balanced_subset(fn: Any) -> str:
    """`fn(dataset, per_class, seed)` returns `per_class` random images of each class of `dataset`, each
    with its own label, none twice, the same ones for the same seed and other ones for another seed.

    fn returns a TensorImageDataset (uint8 images (N, C, H, W), int64 labels (N,)) or a torch Subset
    of one. It is run on seeded data sets of 2 to 4 classes, with labels interleaved, sorted by class
    and in random order. Catches the typical mistakes: N images in total instead of N per class, the
    first N images (unbalanced), a fixed count instead of `per_class`, images from another data set,
    images and labels shuffled separately, an image taken twice, the seed ignored (the first N of
    each class), a draw that is not reproducible, the data set changed in place. Lesson 02.
    """
    if is_placeholder(fn):
        raise NotAnswered("write the function `balanced_subset(dataset, per_class, seed)` and pass it: "
                          "ex.q1.check(balanced_subset).")
    if not callable(fn):
        raise Incorrect(f"pass the function itself, ex.q1.check(balanced_subset), not a {type(fn).__name__}.")
    probes = _probe_sources()
    for source, per_class in probes:
        _, _, first = _drawn(fn, source, per_class, seed=0)
        _, _, again = _drawn(fn, source, per_class, seed=0)
        if sorted(first) != sorted(again):
            raise Incorrect("two calls with seed=0 gave different images: draw with a generator seeded by `seed` "
                            "(torch.Generator().manual_seed(seed)), so a subset can be drawn again.")
    source, per_class = probes[0]
    first = set(_drawn(fn, source, per_class, seed=0)[2])
    if all(set(_drawn(fn, source, per_class, seed=s)[2]) == first for s in (1, 2)):
        raise Incorrect(f"seeds 0, 1 and 2 all give the same {per_class} images per class: the draw ignores "
                        f"`seed` (the first images of each class?). Shuffle each class's indices with a "
                        f"generator seeded by `seed`.")
    return (f"balanced, random and reproducible on {len(probes)} data sets (2 to 4 classes, "
            f"{', '.join(str(p) for _, p in probes)} per class), each image with its own label.")


# --- exercise 2: reading the curve ----------------------------------------------------------

def _by_count(values: Any, labels: list[int], what: str) -> dict[int, float]:
    """Accuracies keyed by label count, from a dict {count: acc} or a list aligned with `labels`."""
    if isinstance(values, dict):
        missing = [n for n in labels if n not in values]
        if missing:
            raise ValueError(f"{what} has no accuracy for the label counts {missing}.")
        return {n: float(values[n]) for n in labels}
    values = list(values)
    if len(values) != len(labels):
        raise ValueError(f"{what} has {len(values)} accuracies for {len(labels)} label counts.")
    return dict(zip(labels, map(float, values)))


def labels_to_match(labels: list[int], scratch: Any, pretrained: Any, reference: int = 10) -> int | None:
    """The smallest label count at which scratch's accuracy reaches pretrained's at `reference`; None if none.

    scratch, pretrained: mean accuracies, as {labels per class: accuracy} or lists aligned with
    `labels` (ascending). Lesson 02 (the curve of scratch vs pretrained).
    """
    labels = sorted(labels)
    if reference not in labels:
        raise ValueError(f"reference={reference} is not one of the measured label counts {labels}.")
    s, p = _by_count(scratch, labels, "scratch"), _by_count(pretrained, labels, "pretrained")
    return next((n for n in labels if s[n] >= p[reference]), None)


def _as_count(answer: Any, labels: list[int]) -> int:
    """The answer as a Python int; `Incorrect` for accuracies, fractions, bools and strings."""
    if isinstance(answer, float) and 0 < answer < 1:
        raise Incorrect(f"{answer} looks like an accuracy; the question asks for a number of labels per "
                        f"class, one of {labels} (or None).")
    if isinstance(answer, str):
        raise Incorrect(f"{answer!r} is text: answer with the number itself, e.g. {labels[-1]}, not a string.")
    return whole_number(answer, "the number of labels per class")


def _matching_problem(answer: int | None, labels: list[int], s: dict[int, float], p: dict[int, float],
                      expected: int | None, reference: int) -> str:
    """The message for a wrong answer to lesson 02's question 2."""
    target = p[reference]
    if expected is None:
        return (f"scratch never reaches {100 * target:.1f} % (pretrained at {reference} labels/class): its best is "
                f"{100 * max(s.values()):.1f} %. The answer is None: more than {labels[-1]} labels per class.")
    if answer is None and abs(s[expected] - target) < 1e-9:
        return (f"scratch does reach {100 * target:.1f} %: at {expected} labels/class it is exactly as high, and "
                f"'at least as high' counts a tie (>=, not >).")
    if answer is None:
        return f"scratch does reach {100 * target:.1f} % within the measured counts: find the first count where it does."
    if answer not in labels:
        position = f" (the position of {labels[answer]} in the list?)" if 0 <= answer < len(labels) else ""
        return f"{answer} is not one of the measured label counts {labels}{position}: answer one of them, or None."
    if answer == reference:
        return (f"{reference} is where the pretrained model is; the question is where the *scratch* curve gets "
                f"as high ({100 * target:.1f} %).")
    if s[answer] < target:
        return (f"at {answer} labels/class scratch is at {100 * s[answer]:.1f} %, still below {100 * target:.1f} % "
                f"(the pretrained model's accuracy at {reference} labels/class).")
    return f"scratch already reaches {100 * target:.1f} % at a smaller count: give the smallest one."


def check_labels_to_match(answer: Any, labels: list[int], scratch: Any, pretrained: Any, reference: int = 10) -> str:
    """`answer` is `labels_to_match(labels, scratch, pretrained, reference)`: a label count, or None.

    The count may be a Python or numpy integer, a one-element integer tensor or a whole float
    (50.0); accuracies, fractions, bools and strings are turned down. The accuracies are the
    notebook's own measurements, passed in explicitly. Lesson 02.
    """
    if answer is Ellipsis:
        raise NotAnswered("replace ... with your answer: a label count from the list you measured, or None.")
    labels = sorted(labels)
    expected = labels_to_match(labels, scratch, pretrained, reference)
    s, p = _by_count(scratch, labels, "scratch"), _by_count(pretrained, labels, "pretrained")
    count = None if answer is None else _as_count(answer, labels)
    if count == expected:
        if expected is None:
            return (f"scratch stays below pretrained-at-{reference} ({100 * p[reference]:.1f} %) up to {labels[-1]} "
                    f"labels per class: the pretrained start is worth more than {labels[-1] // reference}x the labels here.")
        return (f"scratch needs {expected} labels per class to match pretrained at {reference}: "
                f"{expected / reference:g}x the labels.")
    raise Incorrect(_matching_problem(count, labels, s, p, expected, reference))


# --- the exercises ------------------------------------------------------------------------

lesson02 = ExerciseSet(
    "02",
    q1=Exercise(
        title="Lesson 02, exercise 1: a class-balanced subset",
        task="Write `balanced_subset(dataset, per_class, seed)`: a data set with exactly `per_class` images of "
             "each class of `dataset` (a TensorImageDataset, as `data.train` is), each image with its own "
             "label, none twice, drawn at random with `seed` (the same seed gives the same subset). Do it by "
             "hand with torch: for each class, find its indices, shuffle them with a seeded generator, keep "
             "`per_class`. The checker runs your function on several small data sets.",
        usage="ex.q1.check(balanced_subset)",
        checker=check_balanced_subset,
        hints=("`(dataset.labels == c).nonzero().flatten()` gives the indices of class c; "
               "`torch.randperm(len(idx), generator=g)` shuffles them, with "
               "`g = torch.Generator().manual_seed(seed)` made once, before the loop.",
               "Concatenate the `per_class` kept indices of every class, then return "
               "`TensorImageDataset(dataset.images[keep], dataset.labels[keep], dataset.class_names)`: "
               "one index tensor for both keeps each image with its label."),
        solution_code="""
import torch
from ftlib import TensorImageDataset

def balanced_subset(dataset, per_class, seed):
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(len(dataset.class_names)):
        idx = (dataset.labels == c).nonzero().flatten()                    # every image of class c
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])  # per_class of them, at random
    keep = torch.cat(keep)
    return TensorImageDataset(dataset.images[keep], dataset.labels[keep], dataset.class_names)
""",
    ),
    q2=Exercise(
        title="Lesson 02, exercise 2: read the curve",
        task="How many labels per class does the *scratch* model need to reach the mean test accuracy that "
             "the pretrained model has with 10 labels per class? Answer with one of the label counts you "
             "measured (the smallest that gets there), or None if scratch never gets there in your run.",
        usage='ex.q2.check(my_answer, B["labels"], mean["scratch"], mean["pretrained"])',
        checker=check_labels_to_match,
        none_is_an_answer=True,
        hints=("Find the pretrained curve's height at 10 labels per class, then move right along the "
               "scratch curve until it is at least as high.",
               "In code: `target = mean['pretrained'][10]`, then the first n in B['labels'] with "
               "`mean['scratch'][n] >= target`, or None if there is no such n."),
        solution_code="""
target = mean["pretrained"][10]
my_answer = next((n for n in B["labels"] if mean["scratch"][n] >= target), None)
""",
    ),
)
