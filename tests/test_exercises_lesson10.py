"""Project 10's checkers (ftlib.exercises.lesson10), judged the way they judge students: the shown
solution and other correct versions pass; every typical mistake fails, named in the message."""

import pytest
import torch
from torchvision.transforms import v2

from ftlib.exercises import NotAnswered, lesson10
from ftlib.exercises.lesson10 import dihedral_variants, most_confused_pair, random_dihedral
from ftlib.exercises.lesson11 import most_confused

import exercise_helpers as helpers
from exercise_helpers import fails


def solved(key: str, name: str, **scope):
    return helpers.solved(lesson10, key, name, **scope)


# --- q1: which stages to freeze (project 11's checker, tested there) ----------------------------

ROWS = [{"strategy": "partial", "depth": 1, "seeds": 2, "accuracy": 0.56, "accuracy_std": 0.01},
        {"strategy": "partial", "depth": 2, "seeds": 2, "accuracy": 0.59, "accuracy_std": 0.02},
        {"strategy": "partial", "depth": 3, "seeds": 2, "accuracy": 0.54, "accuracy_std": 0.05}]


def test_q1_solution_passes_and_a_worse_depth_fails():
    scope = {"val_rows": ROWS}
    exec(lesson10.q1.solution_code, scope)
    assert scope["depth"] == 3
    assert "defensible depths here: [2, 3]" in lesson10.q1.verify(scope["depth"], ROWS)
    fails(lesson10.q1, 1, ROWS, match="depth 1: its validation accuracy 0.560 is 0.030 below the best")
    with pytest.raises(NotAnswered):
        lesson10.q1.verify(None, ROWS)


# --- q2: per-class accuracy -------------------------------------------------------------------------

def test_q2_solution_and_other_right_answers_pass():
    assert "an empty class included" in lesson10.q2.verify(solved("q2", "per_class_accuracy"))

    def as_list(cm):
        return [float(cm[i, i]) / float(cm[i].sum()) if cm[i].sum() else 0.0 for i in range(len(cm))]
    assert lesson10.q2.verify(as_list)


def _recall(cm):
    return cm.double().diagonal() / cm.double().sum(1).clamp(min=1)


@pytest.mark.parametrize("wrong,message", [
    (lambda cm: cm.double().diagonal() / cm.double().sum(0).clamp(min=1), "column sums .* that is precision"),
    (lambda cm: torch.full((len(cm),), cm.double().trace().item() / cm.sum().item()), "overall accuracy"),
    (lambda cm: cm.double().diagonal() / cm.sum(), "number of all images"),
    (lambda cm: torch.div(cm.diagonal(), cm.sum(1).clamp(min=1), rounding_mode="floor"), "integer division"),
    (lambda cm: 100 * _recall(cm), "percentages"),
    (lambda cm: cm.double().diagonal() / cm.double().sum(1), "nan \\(0 / 0\\)"),
    (lambda cm: _recall(cm).mean(), "returned one number"),
    (lambda cm: None, "returned None"),
])
def test_q2_typical_mistakes(wrong, message):
    fails(lesson10.q2, wrong, match=message)


# --- q3: the pair confused most ----------------------------------------------------------------------

def test_q3_solution_and_either_order_pass():
    assert "fresh matrices" in lesson10.q3.verify(solved("q3", "confused_pair"))
    assert lesson10.q3.verify(lambda cm: most_confused_pair(cm)[::-1])
    assert lesson10.q3.verify(lambda cm: set(most_confused_pair(cm)))
    assert lesson10.q3.verify(lambda cm: torch.tensor(most_confused_pair(cm)))


def _with_diagonal(cm):
    both = (cm + cm.T).triu()
    return divmod(int(both.argmax()), len(cm))


@pytest.mark.parametrize("wrong,message", [
    (most_confused, "the largest single cell: that counts one direction only"),
    (_with_diagonal, "a class with itself"),
    (lambda cm: int((cm + cm.T).triu(diagonal=1).argmax()), "not a pair"),
    (lambda cm: (0, 1), "for every matrix"),
])
def test_q3_typical_mistakes(wrong, message):
    fails(lesson10.q3, wrong, match=message)


# --- q4: an augmentation for overhead tiles ------------------------------------------------------------

def test_q4_solution_and_the_reference_pass():
    assert "all 8 views appeared" in lesson10.q4.verify(solved("q4", "overhead_augment"))
    assert lesson10.q4.verify(random_dihedral)


def test_q4_a_v2_pipeline_of_flips_and_a_transpose_passes():
    pipeline = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                           v2.RandomApply([v2.Lambda(lambda x: x.transpose(-2, -1))], p=0.5)])
    assert lesson10.q4.verify(pipeline)


def test_dihedral_variants_are_8_distinct_views():
    image = torch.arange(2 * 3 * 3, dtype=torch.uint8).view(2, 3, 3)
    views = dihedral_variants(image)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8 and torch.equal(views[0], image)


def _hflip_only(image):
    return image.flip(-1) if torch.rand(()) < 0.5 else image


def _flips_only(image):
    image = image.flip(-1) if torch.rand(()) < 0.5 else image
    return image.flip(-2) if torch.rand(()) < 0.5 else image


def _in_place(image):
    image.copy_(random_dihedral(image))
    return image


PHOTO = v2.Compose([v2.RandomResizedCrop(64, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                    v2.RandomRotation(10), v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)])


@pytest.mark.parametrize("wrong,message", [
    (PHOTO, "photo augmentation"),
    (v2.RandomResizedCrop(64, scale=(0.6, 1.0), antialias=True), "a crop, a zoom or a shift"),
    (lambda image: (random_dihedral(image).float() * 0.8).to(torch.uint8), "colour, brightness or contrast"),
    (_hflip_only, "only ever mirror left to right"),
    (_flips_only, "flips alone give 4 of the 8 views"),
    (lambda image: torch.rot90(image, int(torch.randint(4, ())), dims=(1, 2)), "quarter turns alone"),
    (v2.RandomRotation(180), "arbitrary angle leaves empty corners"),
    (lambda image: random_dihedral(image).float() / 255, "came back as torch.float32"),
    (lambda image: random_dihedral(image)[None], "no batch dimension"),
    (_in_place, "changed its input in place"),
    (lambda image: image, "every output was the same view"),
    (lambda image: None, "returned None"),
])
def test_q4_typical_mistakes(wrong, message):
    fails(lesson10.q4, wrong, match=message)


def test_q4_placeholder_and_non_callables():
    with pytest.raises(NotAnswered):
        lesson10.q4.verify(None)
    fails(lesson10.q4, "flip", match="pass the function itself")
