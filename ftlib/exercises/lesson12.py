"""Lesson 12's exercises: fine-tuning a detector.

q1 replaces a Faster R-CNN's box predictor for K object classes, q2 writes IoU by hand
(checked on fresh random boxes against `torchvision.ops.box_iou`), q3 chooses how many
backbone stages to train, graded against the lesson's own measurement.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torchvision.ops import box_iou as tv_box_iou

from .checks import as_number, require_answer, whole_number
from .core import Exercise, ExerciseSet, Incorrect, call_student

__all__ = ["check_box_predictor_fn", "check_iou_fn", "check_trainable_choice", "random_boxes", "lesson12"]


# --- q1: the box predictor ----------------------------------------------------------------

def _tiny_detector() -> nn.Module:
    """A small random Faster R-CNN (ResNet-18 FPN, 2 object classes) to hand to the student."""
    from ..detection import fasterrcnn_resnet18_fpn, resnet18_fpn
    return fasterrcnn_resnet18_fpn(resnet18_fpn(None, 5, frozen_bn=False, out_channels=32), 2, image_size=64,
                                   representation=64)


def _predictor_problem(model: nn.Module, old: nn.Module, k: int) -> str | None:
    heads = getattr(model, "roi_heads", None)
    pred = getattr(heads, "box_predictor", None)
    if pred is None or pred is old:
        return (f"model.roi_heads.box_predictor is still the old one after your call for {k} classes: "
                f"assign a new FastRCNNPredictor to model.roi_heads.box_predictor.")
    cls, box = getattr(pred, "cls_score", None), getattr(pred, "bbox_pred", None)
    if not isinstance(cls, nn.Linear) or not isinstance(box, nn.Linear):
        return "the new box predictor needs cls_score and bbox_pred layers: use torchvision's FastRCNNPredictor."
    want_in = old.cls_score.in_features
    if cls.in_features != want_in:
        return (f"the new predictor takes {cls.in_features} features, but the box head gives {want_in}: "
                f"read in_features from the old predictor's cls_score.")
    if cls.out_features == k:
        return (f"cls_score gives {k} scores for {k} object classes: you forgot the background class. "
                f"A Faster R-CNN predictor scores K + 1 classes, class 0 being the background.")
    if cls.out_features != k + 1:
        return f"cls_score gives {cls.out_features} scores; for {k} object classes it needs {k + 1} (with the background)."
    if box.out_features != 4 * (k + 1):
        return (f"bbox_pred gives {box.out_features} numbers; it needs 4 per class, background included: "
                f"{4 * (k + 1)}.")
    return None


def check_box_predictor_fn(replace: Callable[[nn.Module, int], Any]) -> str:
    """`replace(model, num_classes)` gives a Faster R-CNN a new box predictor for `num_classes`
    object classes: cls_score (in_features -> K + 1) and bbox_pred (-> 4 (K + 1)), the rest of
    the model untouched, and the detector still runs. Checked for K = 1, 3 and 7 on fresh small
    detectors. Typical wrong answers it names: the background class forgotten; the old
    predictor left in place; in_features guessed; 4 K box outputs. Lesson 12."""
    require_answer(replace, "a function replace(model, num_classes)")
    for k in (1, 3, 7):
        torch.manual_seed(k)
        model = _tiny_detector()
        old, box_head = model.roi_heads.box_predictor, model.roi_heads.box_head
        call_student(f"replace(model, {k})", replace, model, k)
        problem = _predictor_problem(model, old, k)
        if problem:
            raise Incorrect(problem)
        if model.roi_heads.box_head is not box_head:
            raise Incorrect("your function replaced the box head too: only the predictor (the last layers) changes.")
        model.eval()
        with torch.no_grad():
            out = model([torch.rand(3, 64, 64)])[0]
        if out["labels"].numel() and int(out["labels"].max()) > k:
            raise Incorrect(f"the detector predicts label {int(out['labels'].max())} with {k} classes.")
    return "a fresh FastRCNNPredictor with K + 1 class scores and 4 (K + 1) box numbers, for K = 1, 3 and 7."


# --- q2: IoU by hand ----------------------------------------------------------------------

def random_boxes(n: int, g: torch.Generator, size: float = 100.0) -> torch.Tensor:
    """n random boxes (x1, y1, x2, y2), float32, inside a size x size image, 2 to 50 px a side."""
    xy = torch.rand(n, 2, generator=g) * (size - 50)
    wh = 2 + torch.rand(n, 2, generator=g) * 48
    return torch.cat([xy, xy + wh], dim=1)


def _probes(g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random boxes, plus pairs that do not overlap, that touch, and that are the same box."""
    a, b = random_boxes(5, g), random_boxes(4, g)
    apart = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 70]]), torch.tensor([[20.0, 20, 30, 30], [0, 0, 5, 5]])
    touching = torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[10.0, 0, 20, 10], [0, 0, 10, 10]])
    return [(a, b), apart, touching, (b, a)]


def _iou_mistake(a: torch.Tensor, b: torch.Tensor, got: torch.Tensor) -> str | None:
    """The typical mistake `got` matches on the probe (a, b), if any."""
    def close(x):
        return x.shape == got.shape and torch.allclose(got, x.float(), atol=1e-4)
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = rb - lt
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    unclamped = wh.prod(-1) / (area_a[:, None] + area_b[None] - wh.prod(-1))
    if close(unclamped):
        return ("boxes that do not overlap get a non-zero IoU: clamp the intersection's width and height at 0 "
                "(torch.clamp(..., min=0)) before multiplying them.")
    inter = wh.clamp(min=0).prod(-1)
    if close(inter / (area_a[:, None] + area_b[None])):
        return "the union counts the intersection twice: union = area_a + area_b - intersection."
    from ..detection import xywh_to_xyxy
    if close(tv_box_iou(xywh_to_xyxy(a), xywh_to_xyxy(b))):
        return ("your function reads the boxes as (x, y, width, height), but they come as (x1, y1, x2, y2) "
                "corners: width is x2 - x1. Convert only boxes that really are (x, y, w, h).")
    if close(inter / area_a[:, None]) or close(inter / area_b[None]):
        return "that divides the intersection by one box's area; IoU divides by the union of both."
    return None


def check_iou_fn(iou: Callable[[torch.Tensor, torch.Tensor], Any]) -> str:
    """`iou(a, b)` for boxes a (N, 4) and b (M, 4) in (x1, y1, x2, y2) returns the (N, M) IoU
    of every pair, equal to `torchvision.ops.box_iou`, on fresh random boxes and on boxes that
    do not overlap, that only touch, and that coincide. Typical wrong answers it names: no
    clamp (non-overlapping boxes get a value), intersection counted twice in the union, boxes
    read as (x, y, w, h), divided by one area. Lesson 12."""
    require_answer(iou, "a function iou(a, b)")
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    for a, b in _probes(g):
        got = call_student("iou(a, b)", iou, a.clone(), b.clone())
        if not isinstance(got, torch.Tensor):
            raise Incorrect(f"iou(a, b) should return a tensor of shape ({len(a)}, {len(b)}), got {type(got).__name__}.")
        want = tv_box_iou(a, b)
        if got.shape != want.shape:
            raise Incorrect(f"for a of shape {tuple(a.shape)} and b of shape {tuple(b.shape)} the result has shape "
                            f"{tuple(got.shape)}; it should be ({len(a)}, {len(b)}): one IoU per pair.")
        if not torch.allclose(got.float(), want, atol=1e-4):
            raise Incorrect(_iou_mistake(a, b, got.float()) or
                            f"IoU differs from torchvision.ops.box_iou by up to "
                            f"{(got.float() - want).abs().max():.3f} on a = {a.tolist()[:2]}...")
    return "the same IoU as torchvision.ops.box_iou on random, disjoint, touching and identical boxes."


# --- q3: how many stages to train ---------------------------------------------------------

TOLERANCE = 0.02  # mAP points (a fraction) a cheaper setting may lose and still be the choice


def check_trainable_choice(choice: Any, measured: Any) -> str:
    """`choice`: the trainable_layers setting (an int) to use, given `measured`, the lesson's
    {trainable_layers: {"map": mAP@0.5, "seconds": time per epoch}}: the fastest setting whose
    mAP is within `TOLERANCE` (0.02) of the best. Graded against the numbers measured in the
    student's own run. Typical wrong answers it names: the fastest whatever its mAP; the most
    accurate though a faster one is as good; a layer name; the mAP instead of the setting. Lesson 12."""
    require_answer(choice, "choice = 3")
    if not isinstance(measured, dict) or not all(isinstance(v, dict) and {"map", "seconds"} <= set(v)
                                                 for v in measured.values()):
        raise Incorrect("pass the lesson's `measured` dict as the second argument: ex.q3.check(choice, measured).")
    if isinstance(choice, str):
        raise Incorrect(f"give the number of trainable stages (e.g. 3), not a name such as {choice!r}.")
    if isinstance(choice, float) and not float(choice).is_integer():
        if any(abs(choice - as_number(v["map"], "mAP")) < 1e-9 for v in measured.values()):
            raise Incorrect("that is an mAP; give the trainable_layers setting that scored it.")
    choice = whole_number(choice, "the trainable_layers setting")
    if choice not in measured:
        raise Incorrect(f"{choice} was not measured; choose among {sorted(measured)}.")
    best = max(float(v["map"]) for v in measured.values())
    good = [k for k, v in measured.items() if float(v["map"]) >= best - TOLERANCE]
    want = min(good, key=lambda k: float(measured[k]["seconds"]))
    fastest = min(measured, key=lambda k: float(measured[k]["seconds"]))
    if choice == want:
        return (f"trainable_layers={choice}: mAP {float(measured[choice]['map']):.3f}, within {TOLERANCE} of the "
                f"best, at {float(measured[choice]['seconds']):.1f} s per epoch.")
    if choice == fastest:
        raise Incorrect(f"trainable_layers={choice} is the fastest, but its mAP "
                        f"({float(measured[choice]['map']):.3f}) is more than {TOLERANCE} below the best "
                        f"({best:.3f}): speed is no use if the detector misses.")
    if float(measured[choice]["map"]) >= best - TOLERANCE:
        raise Incorrect(f"trainable_layers={choice} is accurate enough, but trainable_layers={want} is as good "
                        f"(within {TOLERANCE}) and faster per epoch: choose the cheaper one.")
    raise Incorrect(f"trainable_layers={choice} scored {float(measured[choice]['map']):.3f}, more than "
                    f"{TOLERANCE} below the best ({best:.3f}).")


# --- the exercises ------------------------------------------------------------------------

lesson12 = ExerciseSet(
    "12",
    q1=Exercise(
        title="Lesson 12, exercise 1: a new box predictor",
        task="Write `replace(model, num_classes)`: give the Faster R-CNN `model` a new box predictor for "
             "`num_classes` object classes. The checker calls it on fresh detectors for several class counts.",
        usage="ex.q1.check(replace)",
        checker=check_box_predictor_fn,
        hints=("The old predictor is `model.roi_heads.box_predictor`; its `cls_score.in_features` is what the "
               "box head gives.",
               "`FastRCNNPredictor(in_features, num_classes + 1)`: the + 1 is the background, class 0."),
        solution_code="""
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

def replace(model, num_classes):
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes + 1)
""",
    ),
    q2=Exercise(
        title="Lesson 12, exercise 2: IoU by hand",
        task="Write `iou(a, b)`: boxes a (N, 4) and b (M, 4) as (x1, y1, x2, y2); return the (N, M) tensor "
             "of the intersection over union of every pair. Boxes that do not overlap have IoU 0.",
        usage="ex.q2.check(iou)",
        checker=check_iou_fn,
        hints=("The intersection's corners: the larger of the two top-left corners and the smaller of the two "
               "bottom-right ones; broadcast with a[:, None] and b[None].",
               "Clamp the intersection's width and height at 0; union = area_a + area_b - intersection."),
        solution_code="""
import torch

def iou(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)
""",
    ),
    q3=Exercise(
        title="Lesson 12, exercise 3: how many stages to train",
        task="From the lesson's measurement `measured` ({trainable_layers: {'map', 'seconds'}}), choose the "
             "setting to use: the fastest per epoch among those whose mAP@0.5 is within 0.02 of the best.",
        usage="ex.q3.check(choice, measured)",
        checker=check_trainable_choice,
        hints=("First find the best mAP, then keep the settings that come within 0.02 of it.",
               "Among those, take the one with the fewest seconds per epoch."),
        solution_code="""
best = max(m["map"] for m in measured.values())
good = [k for k, m in measured.items() if m["map"] >= best - 0.02]
choice = min(good, key=lambda k: measured[k]["seconds"])
""",
    ),
)
