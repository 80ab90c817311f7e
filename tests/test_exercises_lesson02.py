"""The lesson 02 exercises: a class-balanced subset, and reading the scratch-vs-pretrained curve.

Each checker is run with right answers written in several ways and with the typical wrong
ones; each wrong one must get a message that names its mistake. The expected answers of
exercise 2 are worked out by hand from small, fixed inputs.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from ftlib.data import TensorImageDataset
from ftlib.exercises import Incorrect, NotAnswered, check_balanced_subset, check_labels_to_match, labels_to_match, lesson02


def solve_q1() -> dict:
    scope: dict = {}
    exec(lesson02.q1.solution_code, scope)
    return scope


def same_labels_dataset(dataset, idx):
    keep = torch.as_tensor(idx, dtype=torch.int64)
    return TensorImageDataset(dataset.images[keep], dataset.labels[keep], dataset.class_names)


# ---------------------------------------------------------------- exercise 1: balanced subset

def subset_by_hand(dataset, per_class, seed):
    return solve_q1()["balanced_subset"](dataset, per_class, seed)


def library_subset(dataset, per_class, seed):
    return dataset.subset(per_class, seed=seed)


def torch_subset(dataset, per_class, seed):
    g = torch.Generator().manual_seed(seed)
    idx = [i for c in range(len(dataset.class_names))
           for i in (dataset.labels == c).nonzero().flatten()[torch.randperm(int((dataset.labels == c).sum()), generator=g)][:per_class].tolist()]
    return Subset(dataset, idx)


def numpy_subset(dataset, per_class, seed):
    rng = np.random.default_rng(seed)
    labels = dataset.labels.numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                          for c in range(len(dataset.class_names))])
    return same_labels_dataset(dataset, idx)


@pytest.mark.parametrize("fn", [subset_by_hand, library_subset, torch_subset, numpy_subset])
def test_right_answers_written_differently_pass(fn):
    assert "balanced, random and reproducible" in check_balanced_subset(fn)


def n_in_total(dataset, per_class, seed):
    g = torch.Generator().manual_seed(seed)
    return same_labels_dataset(dataset, torch.randperm(len(dataset.labels), generator=g)[:per_class])


def first_images(dataset, per_class, seed):
    return same_labels_dataset(dataset, torch.arange(per_class * len(dataset.class_names)))


def always_ten(dataset, per_class, seed):
    return subset_by_hand(dataset, 10, seed)


def labels_shuffled_apart(dataset, per_class, seed):
    right = subset_by_hand(dataset, per_class, seed)
    g = torch.Generator().manual_seed(seed + 1)
    return TensorImageDataset(right.images, right.labels[torch.randperm(len(right.labels), generator=g)], right.class_names)


def with_replacement(dataset, per_class, seed):
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(len(dataset.class_names)):
        idx = (dataset.labels == c).nonzero().flatten()
        keep.append(idx[torch.randint(0, len(idx), (per_class,), generator=g)])
    return same_labels_dataset(dataset, torch.cat(keep))


def seed_ignored(dataset, per_class, seed):
    keep = [(dataset.labels == c).nonzero().flatten()[:per_class] for c in range(len(dataset.class_names))]
    return same_labels_dataset(dataset, torch.cat(keep))


def not_reproducible(dataset, per_class, seed):
    keep = []
    for c in range(len(dataset.class_names)):
        idx = (dataset.labels == c).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx))[:per_class]])  # the global RNG, never seeded
    return same_labels_dataset(dataset, torch.cat(keep))


def no_return(dataset, per_class, seed):
    subset_by_hand(dataset, per_class, seed)


def returns_indices(dataset, per_class, seed):
    return torch.arange(per_class)


OTHER = TensorImageDataset(torch.randint(0, 256, (90, 3, 4, 4), dtype=torch.uint8), torch.arange(90) % 3, ["a", "b", "c"])


def another_data_set(dataset, per_class, seed):
    return subset_by_hand(OTHER, per_class, seed)


def changes_the_dataset(dataset, per_class, seed):
    out = subset_by_hand(dataset, per_class, seed)
    dataset.labels[0] = (dataset.labels[0] + 1) % len(dataset.class_names)
    return out


def raises(dataset, per_class, seed):
    return dataset.labels[10 ** 6]


@pytest.mark.parametrize("fn, message", [
    (n_in_total, "in total"),
    (first_images, "unbalanced"),
    (always_ten, "use the `per_class` argument"),
    (labels_shuffled_apart, "its own label"),
    (with_replacement, "more than once"),
    (seed_ignored, "ignores `seed`"),
    (not_reproducible, "different images"),
    (no_return, "returned None"),
    (returns_indices, "returned a Tensor"),
    (another_data_set, "not in `dataset`"),
    (changes_the_dataset, "changed `dataset` itself"),
    (raises, "your code raised IndexError"),
])
def test_typical_wrong_subsets_are_named(fn, message):
    with pytest.raises(Incorrect, match=message.replace("(", r"\(")):
        check_balanced_subset(fn)


def test_the_placeholder_and_a_non_function_get_clear_messages():
    with pytest.raises(NotAnswered, match="balanced_subset"):
        check_balanced_subset(None)
    with pytest.raises(Incorrect, match="the function itself"):
        check_balanced_subset(OTHER)


def test_the_q1_solution_passes_and_check_says_correct(capsys):
    assert lesson02.q1.check(solve_q1()["balanced_subset"]) is None
    assert "Correct" in capsys.readouterr().out


# ---------------------------------------------------------------- exercise 2: reading the curve

LABELS = [5, 10, 25, 50]
PRE = {5: 0.40, 10: 0.50, 25: 0.70, 50: 0.80}            # pretrained at 10: 0.50
REACHES_AT_50 = {5: 0.20, 10: 0.30, 25: 0.45, 50: 0.60}  # first >= 0.50 at 50
REACHES_AT_25 = {5: 0.20, 10: 0.30, 25: 0.55, 50: 0.60}  # first >= 0.50 at 25
TIE_AT_25 = {5: 0.20, 10: 0.30, 25: 0.50, 50: 0.45}      # exactly 0.50 at 25 counts; 50 dips again
NEVER = {5: 0.10, 10: 0.20, 25: 0.30, 50: 0.40}          # never reaches 0.50


def test_labels_to_match_by_hand():
    assert labels_to_match(LABELS, REACHES_AT_50, PRE) == 50
    assert labels_to_match(LABELS, REACHES_AT_25, PRE) == 25
    assert labels_to_match(LABELS, TIE_AT_25, PRE) == 25
    assert labels_to_match(LABELS, NEVER, PRE) is None
    assert labels_to_match(LABELS, list(REACHES_AT_25.values()), list(PRE.values())) == 25  # lists work too
    assert labels_to_match(LABELS, REACHES_AT_25, PRE, reference=5) == 25                  # 0.55 >= 0.40
    with pytest.raises(ValueError, match="reference"):
        labels_to_match(LABELS, NEVER, PRE, reference=7)


@pytest.mark.parametrize("answer", [50, np.int64(50), torch.tensor(50), 50.0, np.float32(50.0)])
def test_the_right_count_passes_in_any_integer_form(answer):
    assert "50 labels per class" in check_labels_to_match(answer, LABELS, REACHES_AT_50, PRE)


def test_none_passes_where_scratch_never_gets_there_and_a_tie_counts():
    assert "more than" in check_labels_to_match(None, LABELS, NEVER, PRE)
    assert "25 labels per class" in check_labels_to_match(25, LABELS, TIE_AT_25, PRE)
    assert "25 labels per class" in check_labels_to_match(np.int32(25), np.array(LABELS).tolist(),
                                                          list(TIE_AT_25.values()), list(PRE.values()))


@pytest.mark.parametrize("answer, scratch, message", [
    (10, REACHES_AT_50, "where the pretrained model is"),
    (25, REACHES_AT_50, "still below"),
    (None, REACHES_AT_50, "does reach"),
    (0.6, REACHES_AT_50, "looks like an accuracy"),
    (50.5, REACHES_AT_50, "whole number"),
    (True, REACHES_AT_50, "a bool"),
    ("50", REACHES_AT_50, "is text"),
    (torch.tensor([25, 50]), REACHES_AT_50, "one whole number"),
    (100, REACHES_AT_50, "measured label counts"),
    (3, REACHES_AT_50, "the position of 50"),
    (..., REACHES_AT_50, "replace"),
    (50, REACHES_AT_25, "smaller count"),
    (None, TIE_AT_25, "counts a tie"),
    (50, NEVER, "never reaches"),
])
def test_typical_wrong_answers(answer, scratch, message):
    with pytest.raises(Incorrect, match=message):
        check_labels_to_match(answer, LABELS, scratch, PRE)


def test_the_q2_solution_passes(capsys):
    scope = {"B": {"labels": LABELS}, "mean": {"scratch": REACHES_AT_25, "pretrained": PRE}}
    exec(lesson02.q2.solution_code, scope)
    assert scope["my_answer"] == 25
    assert lesson02.q2.check(scope["my_answer"], LABELS, REACHES_AT_25, PRE) is None
    assert "Correct" in capsys.readouterr().out
    scope["mean"]["scratch"] = NEVER
    exec(lesson02.q2.solution_code, scope)
    assert scope["my_answer"] is None
    assert lesson02.q2.verify(None, LABELS, NEVER, PRE)


def test_q1_solution_in_a_notebook_scope():
    data = SimpleNamespace(train=OTHER, class_names=OTHER.class_names)
    scope = solve_q1()
    subset = scope["balanced_subset"](data.train, 10, 0)
    assert subset.class_counts() == [10, 10, 10]
