"""Tests of lesson 01's exercises (ftlib.exercises.lesson01): right answers pass, typical wrong ones fail.

Expected answers are worked out by hand: resnet18's conv1 is 64 filters of 3x7x7 without a
bias (9,408); channels go 64, 64, 128, 256, 512 through stem..layer4; of the zoo models with
top-1 >= 75 %, efficientnet_b0 (5.29 M) has the fewest parameters (torchvision's model docs).
"""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

import ftlib
from ftlib import exercises as E
from ftlib.exercises import Incorrect
from ftlib.exercises.lesson01 import smallest_above

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


def _stage_outputs(channels: int = 256) -> list[str]:
    """Plain loop: the names of the resnet18 stages (head left out) whose output has `channels` channels."""
    x, found = torch.zeros(1, 3, 64, 64), []
    parts = list(ftlib.stages(resnet18().eval()).items())[:-1]
    with torch.no_grad():
        for name, stage in parts:
            x = stage(x)
            if x.shape[1] == channels:
                found.append(name)
    return found


def test_q1_right_answers_computed_several_ways():
    ex.q1.verify(_stage_outputs()[0])                                   # a plain loop over the stages
    names = list(E.resnet18_stage_shapes())
    channels = np.array([E.resnet18_stage_shapes()[n][0] for n in names])
    by_numpy = np.array(names)[np.argmax(channels == 256)]              # numpy: a np.str_, not a str
    assert type(by_numpy) is not str
    assert "256 channels" in ex.q1.verify(by_numpy)
    model, seen = resnet18().eval(), {}                                 # forward hooks on torchvision's layers

    def record(name):
        def hook(module, inputs, output):
            seen[name] = output.shape[1]                                # returns None: the output is kept
        return hook

    for name in ("layer1", "layer2", "layer3", "layer4"):
        getattr(model, name).register_forward_hook(record(name))
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    ex.q1.verify(next(n for n, c in seen.items() if c == 256))


@pytest.mark.parametrize("answer, fragments", [
    ("stem", ["64 channels", "double"]),                   # the stage before layer1, still 64
    ("layer1", ["64 channels"]),
    ("fc", ["inside the head", "not a stage"]),            # torchvision's module names, not stages
    ("maxpool", ["inside the stem"]),
    ("layer3.1", ["one block inside the stage layer3"]),   # a residual block, not the stage
    ("Layer3", ["spell", "'layer3'"]),
    (" layer3", ["spell"]),
    (["layer3"], ["one name, not a list"]),
    (torch.nn.Sequential(), ["a module", "not its name"]),  # model.layer3 itself
    (3, ["as a string"]),                                   # the stage's index
])
def test_q1_typical_wrong_answers_are_named(answer, fragments):
    fails(ex.q1, answer, *fragments)


def test_q1_other_channel_counts_move_the_answer():
    assert "128 channels" in E.check_stage_with_channels("layer2", channels=128)
    assert "512 channels" in E.check_stage_with_channels("layer4", channels=512)
    with pytest.raises(Incorrect, match="256 channels"):
        E.check_stage_with_channels("layer3", channels=128)


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


ZOO = [*ftlib.models.ARCHS, "inception_v3"]


def test_q3_right_answers_computed_several_ways():
    rows = ftlib.model_zoo_table(ZOO)
    best, best_params = None, float("inf")                              # a plain loop
    for r in rows:
        if r["acc1"] >= 75 and r["params"] < best_params:
            best, best_params = r["arch"], r["params"]
    ex.q3.verify(best)
    ex.q3.verify(sorted((r for r in rows if r["acc1"] >= 75), key=lambda r: r["params"])[0]["arch"])
    params = np.array([r["params"] for r in rows], dtype=float)        # numpy: mask, then argmin
    acc = np.array([r["acc1"] for r in rows])
    by_numpy = np.array([r["arch"] for r in rows])[np.argmin(np.where(acc >= 75, params, np.inf))]
    assert type(by_numpy) is not str
    assert "5.29 M parameters" in ex.q3.verify(by_numpy)
    ex.q3.verify(smallest_above(rows, 75)["arch"])


@pytest.mark.parametrize("answer, fragments", [
    ("convnext_tiny", ["most accurate", "fewest parameters"]),        # max top-1 instead of min params
    ("mobilenet_v3_large", ["cheapest in GFLOPs"]),                    # min GFLOPs instead of params
    ("mobilenet_v3_small", ["below the 75 %", "smallest of all"]),     # the threshold forgotten
    ("vgg16", ["71.59", "below"]),
    ("inception_v3", ["27.16 M", "fewer", "sort the qualifying rows"]),
    ("resnet50", ["25.56 M", "fewer"]),
    ("EfficientNet-B0", ["spell", "'efficientnet_b0'"]),
    ("EfficientNet_B0_Weights.IMAGENET1K_V1", ["names the weights", "'efficientnet_b0'"]),
    ({"arch": "efficientnet_b0", "params": 5288548}, ["a whole row", "row['arch']"]),
    (["efficientnet_b0", "mobilenet_v3_large"], ["one name, not a list"]),
    (5288548, ["as a string"]),
])
def test_q3_typical_wrong_answers_are_named(answer, fragments):
    fails(ex.q3, answer, *fragments)


def test_smallest_above_by_hand():
    rows = [{"arch": "a", "params": 30, "acc1": 80.0}, {"arch": "b", "params": 10, "acc1": 74.9},
            {"arch": "c", "params": 20, "acc1": 75.0}]
    assert smallest_above(rows, 75)["arch"] == "c"      # "at least": 75.0 counts
    assert smallest_above(rows, 70)["arch"] == "b"
    assert smallest_above(rows, 90) is None


def test_q3_threshold_moves_the_answer():
    # Above 80 %: resnet50 (80.86, 25.6 M) and convnext_tiny (82.52, 28.6 M); resnet50 is smaller.
    assert "resnet50" in E.check_smallest_model("resnet50", min_acc1=80.0)
    with pytest.raises(Incorrect, match="below"):
        E.check_smallest_model("efficientnet_b0", min_acc1=80.0)
    # At 60 % every model qualifies: the smallest of all, mobilenet_v3_small (2.54 M), is the answer.
    assert "2.54 M parameters" in E.check_smallest_model("mobilenet_v3_small", min_acc1=60.0)
    with pytest.raises(ValueError, match="no model"):
        E.check_smallest_model("convnext_tiny", min_acc1=90.0)


def _solved(key: str) -> dict:
    scope: dict = {}
    exec(ex.exercises[key].solution_code, scope)  # noqa: S102 - the exercise's own solution text
    return scope


@pytest.mark.parametrize("key", ["q1", "q2", "q3"])
def test_each_solution_passes_its_own_check(key, capsys):
    answer = _solved(key)["answer"]
    capsys.readouterr()                               # what the solution printed
    assert ex.exercises[key].check(answer) is None
    assert capsys.readouterr().out.startswith("**Correct.**")


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
