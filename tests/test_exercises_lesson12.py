"""Tests of lesson 12's checkers: a new box predictor, IoU by hand, and the choice of trainable
stages; each with right answers and with the typical wrong ones, each named."""

import pytest
import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from ftlib import exercises as E
from ftlib.exercises import Incorrect, NotAnswered

# --- q1 -------------------------------------------------------------------------------------


def right_predictor(model, k):
    model.roi_heads.box_predictor = FastRCNNPredictor(model.roi_heads.box_predictor.cls_score.in_features, k + 1)


def test_q1_right_answers():
    assert "K + 1" in E.check_box_predictor_fn(right_predictor)
    from ftlib.detection import replace_box_predictor
    E.check_box_predictor_fn(replace_box_predictor)


@pytest.mark.parametrize("answer,message", [
    (lambda m, k: setattr(m.roi_heads, "box_predictor", FastRCNNPredictor(m.roi_heads.box_predictor.cls_score.in_features, k)),
     "you forgot the background class"),
    (lambda m, k: None, "still the old one"),
    (lambda m, k: setattr(m.roi_heads, "box_predictor", FastRCNNPredictor(1024, k + 1)), "read in_features from the old"),
    (lambda m, k: setattr(m.roi_heads, "box_predictor", nn.Linear(3, 3)), "cls_score and bbox_pred"),
    (lambda m, k: setattr(m.roi_heads, "box_predictor", FastRCNNPredictor(m.roi_heads.box_predictor.cls_score.in_features, k + 2)),
     "it needs"),
])
def test_q1_typical_mistakes_are_named(answer, message):
    with pytest.raises(Incorrect, match=message):
        E.check_box_predictor_fn(answer)


def test_q1_four_k_box_outputs_and_a_replaced_box_head():
    def four_k(model, k):
        right_predictor(model, k)
        model.roi_heads.box_predictor.bbox_pred = nn.Linear(model.roi_heads.box_predictor.cls_score.in_features, 4 * k)
    with pytest.raises(Incorrect, match="4 per class, background included"):
        E.check_box_predictor_fn(four_k)

    def new_head_too(model, k):
        right_predictor(model, k)
        model.roi_heads.box_head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 49, 64), nn.ReLU())
    with pytest.raises(Incorrect, match="replaced the box head too"):
        E.check_box_predictor_fn(new_head_too)


def test_q1_placeholder_and_raising_code():
    with pytest.raises(NotAnswered):
        E.check_box_predictor_fn(None)
    with pytest.raises(Incorrect, match="your code raised"):
        E.check_box_predictor_fn(lambda m, k: 1 / 0)


# --- q2 -------------------------------------------------------------------------------------


def right_iou(a, b):
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_q2_right_answers():
    assert "torchvision.ops.box_iou" in E.check_iou_fn(right_iou)
    import torchvision
    E.check_iou_fn(torchvision.ops.box_iou)


def unclamped(a, b):
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def union_twice(a, b):
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None])


def as_xywh(a, b):
    to = lambda x: torch.cat([x[:, :2], x[:, :2] + x[:, 2:]], 1)
    return right_iou(to(a), to(b))


def over_one_area(a, b):
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]


@pytest.mark.parametrize("answer,message", [
    (unclamped, "clamp the intersection"),
    (union_twice, "counts the intersection twice"),
    (as_xywh, r"reads the boxes as \(x, y, width, height\)"),
    (over_one_area, "divides the intersection by one box's area"),
    (lambda a, b: right_iou(a, b).diagonal() if len(a) == len(b) else right_iou(a, b)[:, 0], "one IoU per pair"),
    (lambda a, b: right_iou(a, b).tolist(), "should return a tensor"),
    (lambda a, b: torch.zeros(len(a), len(b)), "differs from torchvision.ops.box_iou"),
])
def test_q2_typical_mistakes_are_named(answer, message):
    with pytest.raises(Incorrect, match=message):
        E.check_iou_fn(answer)


# --- q3 -------------------------------------------------------------------------------------

MEASURED = {3: {"map": 0.14, "seconds": 11.0}, 0: {"map": 0.02, "seconds": 6.0}, 5: {"map": 0.15, "seconds": 13.0}}
CLOSE = {3: {"map": 0.14, "seconds": 11.0}, 0: {"map": 0.13, "seconds": 6.0}}


def test_q3_right_answers_follow_the_measurement():
    assert "within 0.02" in E.check_trainable_choice(3, MEASURED)
    E.check_trainable_choice(0, CLOSE)
    E.check_trainable_choice(torch.tensor(3), MEASURED)


@pytest.mark.parametrize("choice,measured,message", [
    (0, MEASURED, "is the fastest, but its mAP"),
    (5, MEASURED, "is as good"),
    (3, CLOSE, "is as good"),
    ("layer3", MEASURED, "not a name"),
    (0.14, MEASURED, "that is an mAP"),
    (2, MEASURED, "was not measured"),
    (3, [0.1, 0.2], "pass the lesson's `measured` dict"),
])
def test_q3_typical_mistakes_are_named(choice, measured, message):
    with pytest.raises(Incorrect, match=message):
        E.check_trainable_choice(choice, measured)


def test_q3_less_accurate_and_not_the_fastest():
    measured = {3: {"map": 0.30, "seconds": 11.0}, 1: {"map": 0.10, "seconds": 8.0}, 0: {"map": 0.05, "seconds": 6.0}}
    with pytest.raises(Incorrect, match="more than 0.02 below the best"):
        E.check_trainable_choice(1, measured)


def test_the_set_has_three_exercises_with_hints_and_solutions():
    ns = {"measured": MEASURED}
    for key, ex in E.lesson12.exercises.items():
        assert len(ex.hints) >= 2 and ex.usage.startswith(f"ex.{key}.check(")
        exec(ex.solution_code, ns)  # noqa: S102 - our own solution text
    E.lesson12.q1.verify(ns["replace"])
    E.lesson12.q2.verify(ns["iou"])
    E.lesson12.q3.verify(ns["choice"], ns["measured"])
    assert E.LESSON_SETS["12"] is E.lesson12
