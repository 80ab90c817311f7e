"""Tests of lesson 01's exercises (ftlib.exercises.lesson01): right answers pass, typical wrong ones fail.

Expected answers are worked out by hand: resnet18's conv1 is 64 filters of 3x7x7 without a
bias (9,408); channels go 64, 64, 128, 256, 512 through stem..layer4; of the zoo models with
top-1 >= 75 %, efficientnet_b0 (5.29 M) has the fewest parameters (torchvision's model docs).
"""

import pytest
import torch
from torch import nn

from ftlib import exercises as E
from ftlib.exercises import Incorrect

ex = E.lesson01


def fails(exercise, answer, *fragments):
    with pytest.raises(Incorrect) as info:
        exercise.verify(answer)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_the_set_has_three_exercises_with_hints_and_solutions():
    assert list(ex.exercises) == ["q1", "q2", "q3"]
    for q in ex.exercises.values():
        assert q.hints and "answer" in q.solution_code


def test_placeholder_answers_say_no_answer_yet():
    for q in ex.exercises.values():
        fails(q, None, "no answer yet")
        fails(q, ..., "no answer yet")


def test_stage_shapes_follow_resnet18_by_hand():
    # 64 px: the stem halves twice (conv stride 2, max-pool) -> 16; layer2..4 halve again.
    assert E.resnet18_stage_shapes(64) == {"stem": (64, 16, 16), "layer1": (64, 16, 16), "layer2": (128, 8, 8),
                                           "layer3": (256, 4, 4), "layer4": (512, 2, 2)}


def test_q1_right_and_wrong_stages():
    ex.q1.verify("layer3")
    fails(ex.q1, "layer4", "512 channels")
    fails(ex.q1, "layer2", "128 channels")
    fails(ex.q1, "head", "class scores")
    fails(ex.q1, "conv3", "no stage", "layer1")
    fails(ex.q1, 256, "as a string")


def test_q1_leaves_the_global_rng_alone():
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    ex.q1.verify("layer3")
    assert torch.equal(torch.rand(1), expected)


def test_q2_right_answer_and_typical_wrong_counts():
    ex.q2.verify(64 * 3 * 7 * 7)
    ex.q2.verify(torch.tensor(9408))
    fails(ex.q2, 64, "number of filters")
    fails(ex.q2, 3 * 7 * 7, "one filter")
    fails(ex.q2, 64 * 7 * 7, "input channels")
    fails(ex.q2, 9408 + 64, "bias")
    fails(ex.q2, 1, "parameter tensors")
    fails(ex.q2, 9408.5, "whole number")
    fails(ex.q2, 1234, "multiply out")


def test_q2_counts_the_bias_of_another_model():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())
    E.check_conv1_parameters(8 * 1 * 3 * 3 + 8, model)
    with pytest.raises(Incorrect, match="one filter"):
        E.check_conv1_parameters(9, model)


def test_q3_right_model_and_typical_wrong_ones():
    ex.q3.verify("efficientnet_b0")
    fails(ex.q3, "mobilenet_v3_large", "cheapest in GFLOPs", "fewer")
    fails(ex.q3, "convnext_tiny", "fewer")
    fails(ex.q3, "resnet18", "69.76", "below")
    fails(ex.q3, "mobilenet_v3_small", "below")
    fails(ex.q3, "alexnet", "one architecture name")


def test_q3_threshold_moves_the_answer():
    # Above 80 %: resnet50 (80.86, 25.6 M) and convnext_tiny (82.52, 28.6 M); resnet50 is smaller.
    assert "resnet50" in E.check_smallest_model("resnet50", min_acc1=80.0)
    with pytest.raises(Incorrect, match="below"):
        E.check_smallest_model("efficientnet_b0", min_acc1=80.0)


@pytest.mark.parametrize("answer", [9408, 64 * 3 * 7 * 7, 9408.0, torch.tensor(9408), torch.tensor(9408.0)])
def test_q2_any_integer_type_is_a_count(answer):
    assert "9,408 weights" in ex.q2.verify(answer)


def test_q2_numpy_counts():
    np = pytest.importorskip("numpy")
    ex.q2.verify(np.int64(9408))
    ex.q2.verify(np.prod((64, 3, 7, 7)))
    fails(ex.q2, np.float64(9408.5), "whole number")


def test_q2_non_counts_are_refused():
    fails(ex.q2, True, "a bool")
    fails(ex.q2, "9408", "whole number")
    fails(ex.q2, torch.tensor([64, 3, 7, 7]), "one whole number")
