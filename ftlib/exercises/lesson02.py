"""Lesson 02's exercises: scratch vs pretrained.

q1 builds a class-balanced subset by hand; q2 reads the scratch-vs-pretrained curve: how
many labels scratch needs to match pretrained at 10 labels per class.
"""

from __future__ import annotations

from typing import Any

import torch

from .core import Exercise, ExerciseSet, Incorrect, NotAnswered, is_placeholder

__all__ = ["check_balanced_subset", "labels_to_match", "check_labels_to_match", "lesson02"]


def _images_and_labels(subset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, H, W) uint8, labels (N,) int64) of a TensorImageDataset or a torch Subset of one."""
    if is_placeholder(subset):
        raise NotAnswered("replace the placeholder with your subset: a data set of images and labels "
                          "taken from data.train.")
    if isinstance(subset, torch.utils.data.Subset) and hasattr(subset.dataset, "images"):
        idx = torch.as_tensor(list(subset.indices), dtype=torch.int64)
        return subset.dataset.images[idx], subset.dataset.labels[idx]
    if hasattr(subset, "images") and hasattr(subset, "labels"):
        return subset.images, torch.as_tensor(subset.labels).long()
    raise TypeError(f"expected a data set with `.images` and `.labels` (a TensorImageDataset, as "
                    f"data.train is) or a torch.utils.data.Subset of one, got {type(subset).__name__}.")


def _fingerprints(images: torch.Tensor) -> list[int]:
    """One hash per image (its raw bytes), to find an image of one data set in another."""
    return [hash(row.numpy().tobytes()) for row in images.reshape(len(images), -1)]


def _balance_problem(counts: list[int], per_class: int) -> str | None:
    """Why per-class counts are wrong, or None when every class has `per_class` images."""
    if all(c == per_class for c in counts):
        return None
    if sum(counts) == per_class:
        return (f"your subset has {per_class} images in total (per class: {counts}); the task asks for "
                f"{per_class} images of *each* class.")
    if len(set(counts)) > 1:
        return (f"the classes are unbalanced: {counts} images per class. Taking the first N images of a "
                f"data set gives whatever classes happen to come first; pick the images class by class.")
    return f"every class has {counts[0]} images; the task asks for {per_class} per class."


def check_balanced_subset(subset: Any, source: Any, per_class: int = 10) -> str:
    """`subset` holds exactly `per_class` images of each class, each one an image of `source` with its label, none twice.

    subset, source: TensorImageDataset (uint8 images (N, C, H, W), int64 labels (N,)) or a
    torch Subset of one. Catches the typical mistakes: N images in total instead of N per
    class, the first N images (unbalanced), images from another split, images and labels
    shuffled separately, an image taken twice. Lesson 02.
    """
    images, labels = _images_and_labels(subset)
    src_images, src_labels = _images_and_labels(source)
    num_classes = int(src_labels.max()) + 1
    problem = _balance_problem(torch.bincount(labels, minlength=num_classes).tolist(), per_class)
    if problem:
        raise Incorrect(problem)
    owner = dict(zip(_fingerprints(src_images), src_labels.tolist()))
    prints = _fingerprints(images)
    for i, (fp, label) in enumerate(zip(prints, labels.tolist())):
        if fp not in owner:
            raise Incorrect(f"image {i} of your subset is not in the source data set: take the images from "
                            f"data.train itself (not the test split, and before any transform).")
        if owner[fp] != label:
            raise Incorrect(f"image {i} is labelled {label}, but in the source it has label {owner[fp]}: keep "
                            f"each image with its own label (index images and labels with the same indices).")
    if len(set(prints)) < len(prints):
        raise Incorrect("an image appears more than once: draw without replacement (torch.randperm), "
                        "not with torch.randint.")
    return f"{len(prints)} distinct images, {per_class} of each of the {num_classes} classes, each with its own label."


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


def _matching_problem(answer: Any, labels: list[int], s: dict[int, float], target: float,
                      expected: int | None, reference: int) -> str:
    """The message for a wrong answer to lesson 02's question 2."""
    if isinstance(answer, float) and not float(answer).is_integer():
        return f"{answer} looks like an accuracy; the question asks for a number of labels per class."
    if expected is None:
        return (f"scratch never reaches {100 * target:.1f} % (pretrained at {reference} labels/class): its best is "
                f"{100 * max(s.values()):.1f} %. The answer is None: more than {labels[-1]} labels per class.")
    if answer is None:
        return f"scratch does reach {100 * target:.1f} % within the measured counts: find the first count where it does."
    if answer not in labels:
        return f"answer one of the measured label counts {labels} (or None)."
    if answer == reference:
        return (f"{reference} is where the pretrained model is; the question is where the *scratch* curve gets "
                f"as high ({100 * target:.1f} %).")
    if s[answer] < target:
        return f"at {answer} labels/class scratch is at {100 * s[answer]:.1f} %, still below {100 * target:.1f} %."
    return f"scratch already reaches {100 * target:.1f} % at a smaller count: give the smallest one."


def check_labels_to_match(answer: Any, labels: list[int], scratch: Any, pretrained: Any, reference: int = 10) -> str:
    """`answer` is `labels_to_match(labels, scratch, pretrained, reference)`: a label count, or None.

    The accuracies are the notebook's own measurements, passed in explicitly. Lesson 02.
    """
    if answer is Ellipsis:
        raise NotAnswered("replace ... with your answer: a label count from the list you measured, or None.")
    labels = sorted(labels)
    expected = labels_to_match(labels, scratch, pretrained, reference)
    s = _by_count(scratch, labels, "scratch")
    target = _by_count(pretrained, labels, "pretrained")[reference]
    if answer is None and expected is None or (answer is not None and not isinstance(answer, bool)
                                               and answer == expected):
        if expected is None:
            return (f"scratch stays below pretrained-at-{reference} ({100 * target:.1f} %) up to {labels[-1]} labels "
                    f"per class: the pretrained start is worth more than {labels[-1] // reference}x the labels here.")
        return (f"scratch needs {expected} labels per class to match pretrained at {reference}: "
                f"{expected / reference:g}x the labels.")
    raise Incorrect(_matching_problem(answer, labels, s, target, expected, reference))


# --- the exercises ------------------------------------------------------------------------

lesson02 = ExerciseSet(
    "02",
    q1=Exercise(
        title="Lesson 02, exercise 1: a class-balanced subset",
        task="Build a data set with exactly 10 images of each class, taken from `data.train` (each image "
             "with its own label, none twice). Do it by hand with torch: for each class, find its indices, "
             "shuffle them with a seeded generator, keep 10. Then compare with `data.train.subset(10)`.",
        usage="ex.q1.check(my_subset, data.train)",
        checker=check_balanced_subset,
        hints=("`(data.train.labels == c).nonzero().flatten()` gives the indices of class c; "
               "`torch.randperm(len(idx), generator=g)` shuffles them.",
               "Concatenate the 10 kept indices of every class, then build "
               "`TensorImageDataset(data.train.images[keep], data.train.labels[keep], data.class_names)`: "
               "one index tensor for both keeps each image with its label."),
        solution_code="""
import torch
from ftlib import TensorImageDataset

g = torch.Generator().manual_seed(0)
keep = []
for c in range(len(data.class_names)):
    idx = (data.train.labels == c).nonzero().flatten()          # every image of class c
    keep.append(idx[torch.randperm(len(idx), generator=g)[:10]])  # 10 of them, at random
keep = torch.cat(keep)
my_subset = TensorImageDataset(data.train.images[keep], data.train.labels[keep], data.class_names)
""",
    ),
    q2=Exercise(
        title="Lesson 02, exercise 2: read the curve",
        task="How many labels per class does the *scratch* model need to reach the mean accuracy that the "
             "pretrained model has with 10 labels per class? Answer with one of the label counts you "
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
