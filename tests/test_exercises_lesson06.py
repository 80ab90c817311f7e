"""Tests of the lesson 06 exercises (ftlib.exercises.lesson06): right answers pass, the
typical wrong ones fail with their specific message. Tiny models and 64 px test images only;
the expected early-stopping epochs are worked out by hand in the test."""

import re

import pytest
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.transforms import v2

from ftlib import exercises as E
from ftlib.exercises import lesson06

from exercise_helpers import fails


# --- q1: augmentation that keeps labels -------------------------------------------------

def test_q1_right_answers_pass(capsys):
    lesson06.q1.check(v2.Compose([v2.RandomResizedCrop(64, scale=(0.6, 1.0), antialias=True),
                                  v2.RandomHorizontalFlip(), v2.RandomRotation(10),
                                  v2.ColorJitter(0.3, 0.3, 0.3)]))
    assert "Correct" in capsys.readouterr().out
    lesson06.q1.verify(v2.Compose([v2.RandomHorizontalFlip(p=0.5)]))  # minimal but valid


@pytest.mark.parametrize("bad, message", [
    (v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]), "upside down"),
    (v2.Compose([v2.RandomRotation(90)]), "90 degrees"),
    (v2.RandomApply([v2.RandomRotation((-45, 45))], p=0.5), "45 degrees"),
    (v2.Compose([v2.RandomResizedCrop(64, scale=(0.08, 1.0))]), "8%"),
])
def test_q1_label_breaking_transforms_fail(bad, message):
    fails(lesson06.q1, bad, match=re.escape(message))


def test_q1_size_randomness_and_type():
    fails(lesson06.q1, v2.Compose([v2.RandomResizedCrop(32, scale=(0.6, 1.0)), v2.RandomHorizontalFlip()]),
          match=r"\(3, 32, 32\)")
    fails(lesson06.q1, v2.Compose([v2.Resize(64), v2.CenterCrop(64)]), match="same output 8 times")
    fails(lesson06.q1, v2.Compose([v2.RandomHorizontalFlip(), v2.ToPILImage()]), match="not a tensor")
    with pytest.raises(TypeError, match="expected a transform"):
        E.check_augmentation(None)


def test_q1_check_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    lesson06.q1.verify(v2.RandomHorizontalFlip())
    assert torch.equal(torch.rand(3), expected)


# --- q2: AdamW with weight decay off norms and biases -----------------------------------

@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=10)


def split_by_hand(model: nn.Module) -> tuple[list, list]:
    """Plain re-implementation: BatchNorm parameters and biases do not decay (resnet18 has no other norms)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        leaf = dict(model.named_modules())[name.rsplit(".", 1)[0]]
        (no_decay if isinstance(leaf, nn.BatchNorm2d) or name.endswith("bias") else decay).append(p)
    return decay, no_decay


def test_q2_right_answer_passes(model, capsys):
    decay, no_decay = split_by_hand(model)
    assert len(decay) == 21 and len(no_decay) == 41  # 20 convs + fc.weight; 20 BN x 2 + fc.bias
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    assert lesson06.q2.check(opt, model) is None
    out = capsys.readouterr().out
    assert "21 weight tensors" in out and "41 norm and bias" in out


def test_q2_ftlib_param_groups_pass(model):
    import ftlib
    lesson06.q2.verify(torch.optim.AdamW(ftlib.param_groups(model, lr=1e-3, factor=1, weight_decay=0.05)), model)


def test_q2_typical_wrong_answers(model):
    decay, no_decay = split_by_hand(model)
    fails(lesson06.q2, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05), model,
          match="norm-layer or bias parameters get weight decay")
    fails(lesson06.q2, torch.optim.Adam([{"params": decay, "weight_decay": 0.05},
                                         {"params": no_decay, "weight_decay": 0.0}]), model, match="Use torch.optim.AdamW")
    fails(lesson06.q2, torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}]), model, match="in no group")
    fails(lesson06.q2, torch.optim.AdamW([{"params": decay, "weight_decay": 0.0},
                                          {"params": no_decay, "weight_decay": 0.0}]), model, match="should get 0.05")
    other = resnet18(num_classes=10)
    fails(lesson06.q2, torch.optim.AdamW(other.parameters()), model, match="not in this model")
    fails(lesson06.q2, torch.optim.AdamW([{"params": decay + no_decay[:1], "weight_decay": 0.05},
                                          {"params": no_decay[1:], "weight_decay": 0.0}]), model,
          match="norm-layer or bias")


def test_q2_frozen_parameters_may_be_left_out(model):
    for p in model.layer1.parameters():
        p.requires_grad = False
    decay, no_decay = split_by_hand(model)
    keep = lambda ps: [p for p in ps if p.requires_grad]
    lesson06.q2.verify(torch.optim.AdamW([{"params": keep(decay), "weight_decay": 0.05},
                                         {"params": keep(no_decay), "weight_decay": 0.0}]), model)


# --- q3: reading early stopping -----------------------------------------------------------

def test_q3_reference_by_hand():
    # losses 1.20 0.95 0.81 0.84 0.79 0.83 0.88 0.91 0.70: new bests at 1, 2, 3, 5; no improvement at
    # 6, 7, 8 -> patience 3 is used up after epoch 8; the best weights are epoch 5's.
    assert E.EARLY_STOP_VAL_LOSSES == (1.20, 0.95, 0.81, 0.84, 0.79, 0.83, 0.88, 0.91, 0.70)
    lesson06.q3.verify(8, 5)
    lesson06.q3.verify(torch.tensor(8), 5.0)


@pytest.mark.parametrize("answer, message", [
    ((9, 9), "never gets to the last epoch"),
    ((8, 8), "does not keep the last epoch"),
    ((6, 5), "does not stop after epoch 6"),
    ((8, 3), "epoch 3 is not the best"),
])
def test_q3_typical_wrong_answers(answer, message):
    fails(lesson06.q3, *answer, match=re.escape(message))


def test_q3_matches_ftlib_early_stopping():
    """The checker's reading agrees with ftlib.train.EarlyStopping on the same losses."""
    from ftlib.callbacks import EarlyStopping, FitState
    from ftlib.train import History
    stopper, history = EarlyStopping(patience=3), History()
    state = FitState(model=nn.Linear(1, 1), optimizer=None, history=history, epochs=len(E.EARLY_STOP_VAL_LOSSES))
    stopper.on_fit_begin(state)
    for epoch, loss in enumerate(E.EARLY_STOP_VAL_LOSSES, start=1):
        state.epoch = epoch
        history.rows.append({"epoch": epoch, "val_loss": loss})
        stopper.on_epoch_end(state)
        if state.stop:
            break
    assert (state.epoch, stopper.best_epoch) == (8, 5)


def test_lesson06_is_exported():
    assert "lesson06" in E.__all__ and "check_weight_decay" in E.__all__
    assert [k for k in lesson06.exercises] == ["q1", "q2", "q3"]
    for exercise in lesson06.exercises.values():
        assert exercise.hints and exercise.solution_code.strip()


# --- q1: bounds inside policies and on what the pipeline outputs ---------------------------

@pytest.mark.parametrize("good", [
    v2.RandAugment(),  # magnitude 9 of 31: rotations up to 9 degrees, shifts up to 14%
    v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1))]),
    v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]),
    v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                v2.Normalize([0.5] * 3, [0.25] * 3)]),
    v2.RandomChoice([v2.ColorJitter(0.4, 0.4, 0.4), v2.GaussianBlur(5, (0.1, 2.0)), v2.RandomGrayscale(1.0)]),
])
def test_q1_mild_pipelines_written_differently_pass(good):
    assert "label-preserving" in lesson06.q1.verify(good)


@pytest.mark.parametrize("bad, message", [
    (v2.TrivialAugmentWide(), "TrivialAugmentWide rotates by up to 135 degrees"),
    (v2.AutoAugment(), "AutoAugment rotates by up to 30 degrees"),
    (v2.RandAugment(magnitude=25), "RandAugment rotates by up to 25 degrees"),
    (v2.RandAugment(magnitude=15), "RandAugment shifts the image by up to 22%"),  # int(14.5) px of 64
    (v2.RandomAffine(5, translate=(0.4, 0.4)), "shifts by up to 40%"),
    (v2.RandomAffine(5, scale=(0.3, 1.0)), "zooms by 0.3 to 1"),
    (v2.Compose([v2.RandomRotation(5), v2.RandomInvert(p=1.0)]), "barely resemble the input"),
    (v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.RandomErasing(p=1.0, scale=(0.5, 0.9), value=0)]),
     "barely resemble the input"),
    (v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32)]), "scale=True"),
    (v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.int32)]), "torch.int32"),
])
def test_q1_policies_and_outputs_that_break_labels_fail(bad, message):
    fails(lesson06.q1, bad, match=re.escape(message))


# --- q1: shear, and geometry measured on a test image of known orientation --------------------

F = v2.functional


def randomly(p, op):
    """A plain function (no transform class to read) that applies `op` with probability p."""
    return lambda image: op(image) if torch.rand(()) < p else image


@pytest.mark.parametrize("bad, message", [
    (v2.RandomAffine(5, shear=30), "RandomAffine shears by up to 30 degrees"),
    (v2.RandomAffine(0, shear=(-5, 5, -25, 25)), "RandomAffine shears by up to 25 degrees"),
    (v2.TrivialAugmentWide(num_magnitude_bins=31), "rotates by up to 135 degrees"),
    (v2.Compose([v2.RandomHorizontalFlip(), v2.RandAugment(num_ops=1, magnitude=31, num_magnitude_bins=32)]),
     "RandAugment rotates by up to 30 degrees"),
])
def test_q1_shear_and_policies_fail(bad, message):
    fails(lesson06.q1, bad, match=re.escape(message))


def test_q1_a_policy_shear_is_measured():
    # TrivialAugmentWide's op table cut down to its shears, which reach 0.99 (45 degrees).
    class ShearOnly(v2.TrivialAugmentWide):
        _AUGMENTATION_SPACE = {k: v for k, v in v2.TrivialAugmentWide._AUGMENTATION_SPACE.items()
                               if k.startswith("Shear")}
    fails(lesson06.q1, ShearOnly(), match="ShearOnly shears by up to 45 degrees")


@pytest.mark.parametrize("bad, message", [
    (v2.Compose([v2.RandomHorizontalFlip(), v2.Lambda(lambda x: torch.rot90(x, 1, (1, 2)))]),
     "a transform of yours turns the product on its side"),
    (randomly(0.5, lambda x: x.flip(-2)), "turns the product upside down"),  # a vertical flip by hand
    (randomly(0.5, lambda x: F.rotate(x, 40.0)), "rotates the product by up to 40 degrees"),
    (randomly(0.5, lambda x: F.affine(x, 0.0, [0, 0], 1.0, [35.0, 0.0])), "shears the image by up to 35 degrees"),
    (randomly(0.5, lambda x: F.affine(x, 0.0, [0, 0], 0.4, [0.0, 0.0])), "zooms by a factor of 0.40"),
    (randomly(0.5, lambda x: F.affine(x, 0.0, [40, 0], 1.0, [0.0, 0.0])), "moves the product out of the frame"),
])
def test_q1_geometry_of_transforms_it_cannot_read_is_measured(bad, message):
    fails(lesson06.q1, bad, match=re.escape(message))


@pytest.mark.parametrize("good", [
    randomly(0.5, lambda x: F.rotate(x, 8.0)),
    v2.Compose([v2.RandomResizedCrop(64, scale=(0.4, 1.0), antialias=True), v2.RandomHorizontalFlip()]),
    v2.Compose([v2.RandomAffine(10, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10), v2.ColorJitter(0.3, 0.3)]),
    v2.AugMix(),
])
def test_q1_mild_geometry_passes(good):
    assert "label-preserving" in lesson06.q1.verify(good)


def test_q1_measurement_reads_known_transforms():
    from ftlib.exercises.lesson06 import _coordinate_image, measure_geometry
    image = _coordinate_image()
    assert measure_geometry(image) == pytest.approx({"rotation": 0, "shear": 0, "zoom": 1, "mirrored": 0,
                                                     "visible": 1}, abs=1e-2)
    sheared = measure_geometry(F.affine(image, 0.0, [0, 0], 1.0, [30.0, 0.0]))
    assert sheared["shear"] == pytest.approx(30, abs=1) and sheared["rotation"] < 1  # a shear is not a rotation
    assert measure_geometry(F.horizontal_flip(image))["mirrored"] == 1
    assert measure_geometry(F.vertical_flip(image))["rotation"] == pytest.approx(180, abs=0.5)
    assert measure_geometry(F.rotate(image, 15.0))["rotation"] == pytest.approx(15, abs=1)
    assert measure_geometry(F.affine(image, 0.0, [0, 0], 1.0, [20.0, 0.0]))["shear"] == pytest.approx(20, abs=1)
    assert measure_geometry(F.affine(image, 0.0, [0, 0], 1.25, [0.0, 0.0]))["zoom"] == pytest.approx(1.25, abs=0.03)
    assert measure_geometry(F.invert(image)) is None  # a colour change is not read as geometry


# --- q2: more wrong optimizers, and what one step does -------------------------------------

def two_groups(model, wd=0.05, lr=1e-3, cls=torch.optim.AdamW, **kwargs):
    decay, no_decay = split_by_hand(model)
    return cls([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, **kwargs)


def test_q2_adam_with_decoupled_weight_decay_is_adamw(model):
    assert "21 weight tensors" in lesson06.q2.verify(two_groups(model, cls=torch.optim.Adam,
                                                                decoupled_weight_decay=True), model)


def test_q2_solution_with_named_parameters_passes(model):
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]  # conv and linear weights
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]  # BatchNorm and biases
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0}])
    assert "21 weight tensors" in lesson06.q2.verify(opt, model)


@pytest.mark.parametrize("build, message", [
    (lambda m: two_groups(m, cls=torch.optim.SGD), "this is SGD: the task asks for torch.optim.AdamW"),
    (lambda m: two_groups(m, wd=5.0), "5 looks like a percentage"),
    (lambda m: two_groups(m, lr=1e-2), "learning rate is 0.01; the task asks for lr=0.001"),
    (lambda m: two_groups(m, cls=torch.optim.Adam), "this is Adam"),
])
def test_q2_more_typical_wrong_answers(model, build, message):
    fails(lesson06.q2, build(model), model, match=re.escape(message))


def test_q2_one_step_with_zero_gradients_tells_decoupled_decay_from_l2():
    from ftlib.exercises.lesson06 import _decay_per_step
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(8, 8))
    assert _decay_per_step(torch.optim.AdamW([weight], lr=1e-3, weight_decay=0.05)) == pytest.approx([5e-5], rel=1e-3)
    assert _decay_per_step(torch.optim.AdamW([weight], lr=1e-3, weight_decay=0.0)) == [0.0]
    l2 = _decay_per_step(torch.optim.Adam([weight], lr=1e-3, weight_decay=0.05))[0]
    assert abs(l2 - 5e-5) > 1e-5  # Adam's L2 step is about lr per weight, not lr x wd of it
    assert torch.equal(weight, weight.detach().clone())  # measured on copies


# --- q3: epochs of any integer type; 0-based epochs and losses named -------------------------

def test_q3_numpy_and_tensor_integers_pass():
    import numpy as np
    lesson06.q3.verify(np.int64(8), torch.tensor(5))


@pytest.mark.parametrize("answer, message", [
    ((7, 4), "counts epochs from 0"),
    ((8, 9), "that epoch never runs"),
    ((8, 0.79), "one of the validation losses: give the epoch, not its loss"),
    ((8.5, 5), "whole number, got 8.5"),
    ((8, True), "a bool"),
])
def test_q3_more_typical_wrong_answers(answer, message):
    fails(lesson06.q3, *answer, match=re.escape(message))
