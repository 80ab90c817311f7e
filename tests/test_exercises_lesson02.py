"""The lesson 02 exercises: a class-balanced subset, and reading the scratch-vs-pretrained curve.

Each checker is run with a right answer and with the typical wrong ones; the expected
answers are worked out by hand from small, fixed inputs.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Subset

from ftlib.data import TensorImageDataset
from ftlib.exercises import Incorrect, check_balanced_subset, check_labels_to_match, labels_to_match, lesson02

NAMES = ["a", "b", "c"]


def make_source(per_class: int = 15, seed: int = 0) -> TensorImageDataset:
    """3 classes x `per_class` distinct random uint8 images (3, 4, 4), labels interleaved 0, 1, 2, 0, ..."""
    g = torch.Generator().manual_seed(seed)
    n = 3 * per_class
    images = torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
    return TensorImageDataset(images, torch.arange(n) % 3, NAMES)


def by_index(source: TensorImageDataset, idx: list[int]) -> TensorImageDataset:
    keep = torch.tensor(idx)
    return TensorImageDataset(source.images[keep], source.labels[keep], NAMES)


def first_of_each_class(source: TensorImageDataset, n: int) -> list[int]:
    """Labels are i % 3, so class c sits at c, c + 3, c + 6, ...: its first n indices."""
    return [c + 3 * j for c in range(3) for j in range(n)]


# ---------------------------------------------------------------- exercise 1: balanced subset

def test_a_balanced_subset_passes():
    source = make_source()
    assert "10 of each of the 3 classes" in check_balanced_subset(by_index(source, first_of_each_class(source, 10)), source)


def test_the_library_subset_and_a_torch_subset_pass():
    source = make_source()
    check_balanced_subset(source.subset(10, seed=3), source)
    check_balanced_subset(Subset(source, first_of_each_class(source, 10)), source)


def test_ten_images_in_total_is_caught():
    source = make_source()
    with pytest.raises(Incorrect, match="in total"):
        check_balanced_subset(by_index(source, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), source)


def test_an_unbalanced_subset_is_caught():
    source = make_source()
    idx = first_of_each_class(source, 10)[:-2] + [0 + 3 * 12, 0 + 3 * 13]  # class 0: 12, class 2: 8
    with pytest.raises(Incorrect, match="unbalanced"):
        check_balanced_subset(by_index(source, idx), source)


def test_the_wrong_number_per_class_is_caught():
    source = make_source()
    with pytest.raises(Incorrect, match="every class has 5"):
        check_balanced_subset(by_index(source, first_of_each_class(source, 5)), source)


def test_images_from_another_split_are_caught():
    source, other = make_source(seed=0), make_source(seed=1)
    with pytest.raises(Incorrect, match="not in the source"):
        check_balanced_subset(by_index(other, first_of_each_class(other, 10)), source)


def test_labels_shuffled_apart_from_images_are_caught():
    source = make_source()
    subset = by_index(source, first_of_each_class(source, 10))
    shuffled = subset.labels[torch.randperm(30, generator=torch.Generator().manual_seed(0))]
    assert (shuffled != subset.labels).any()
    with pytest.raises(Incorrect, match="own label"):
        check_balanced_subset(TensorImageDataset(subset.images, shuffled, NAMES), source)


def test_an_image_taken_twice_is_caught():
    source = make_source()
    idx = first_of_each_class(source, 10)
    idx[1] = idx[0]  # class 0 still has 10 images, one of them twice
    with pytest.raises(Incorrect, match="more than once"):
        check_balanced_subset(by_index(source, idx), source)


def test_the_placeholder_and_a_wrong_type_get_clear_errors():
    source = make_source()
    with pytest.raises(Incorrect, match="placeholder"):
        check_balanced_subset(None, source)
    with pytest.raises(TypeError, match="TensorImageDataset"):
        check_balanced_subset([1, 2, 3], source)


def test_the_q1_solution_passes_and_check_says_correct(capsys):
    source = make_source()
    data = SimpleNamespace(train=source, class_names=NAMES)
    scope = {"data": data}
    exec(lesson02.q1.solution_code, scope)
    assert lesson02.q1.check(scope["my_subset"], source) is None
    assert "Correct" in capsys.readouterr().out


# ---------------------------------------------------------------- exercise 2: reading the curve

LABELS = [5, 10, 25, 50]
PRE = {5: 0.40, 10: 0.50, 25: 0.70, 50: 0.80}            # pretrained at 10: 0.50
REACHES_AT_50 = {5: 0.20, 10: 0.30, 25: 0.45, 50: 0.60}  # first >= 0.50 at 50
REACHES_AT_25 = {5: 0.20, 10: 0.30, 25: 0.55, 50: 0.60}  # first >= 0.50 at 25
NEVER = {5: 0.10, 10: 0.20, 25: 0.30, 50: 0.40}          # never reaches 0.50


def test_labels_to_match_by_hand():
    assert labels_to_match(LABELS, REACHES_AT_50, PRE) == 50
    assert labels_to_match(LABELS, REACHES_AT_25, PRE) == 25
    assert labels_to_match(LABELS, NEVER, PRE) is None
    assert labels_to_match(LABELS, list(REACHES_AT_25.values()), list(PRE.values())) == 25  # lists work too
    assert labels_to_match(LABELS, REACHES_AT_25, PRE, reference=5) == 25                  # 0.55 >= 0.40
    with pytest.raises(ValueError, match="reference"):
        labels_to_match(LABELS, NEVER, PRE, reference=7)


def test_right_answers_pass():
    assert "50 labels per class" in check_labels_to_match(50, LABELS, REACHES_AT_50, PRE)
    assert "more than" in check_labels_to_match(None, LABELS, NEVER, PRE)


@pytest.mark.parametrize("answer, scratch, message", [
    (10, REACHES_AT_50, "where the pretrained model is"),
    (25, REACHES_AT_50, "still below"),
    (None, REACHES_AT_50, "does reach"),
    (0.6, REACHES_AT_50, "looks like an accuracy"),
    (100, REACHES_AT_50, "measured label counts"),
    (..., REACHES_AT_50, "replace"),
    (50, REACHES_AT_25, "smaller count"),
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
