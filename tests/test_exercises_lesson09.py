"""Tests of the project 09 exercises (ftlib.exercises.lesson09): each checker accepts the solution
and right answers written other ways, and rejects each typical mistake with a message that names it."""

import math

import numpy as np
import pytest
import torch

from ftlib.exercises import NotAnswered, lesson09
from ftlib.exercises.lesson09 import balanced_weights
from ftlib.metrics import roc_curve, threshold_for_sensitivity

import exercise_helpers as helpers
from exercise_helpers import fails


def solved(key: str, name: str, **scope):
    return helpers.solved(lesson09, key, name, **scope)


def split(seed: int, n_pos: int = 50, n_neg: int = 20):
    g = torch.Generator().manual_seed(seed)
    targets = torch.cat([torch.ones(n_pos, dtype=torch.int64), torch.zeros(n_neg, dtype=torch.int64)])
    return (torch.randn(len(targets), generator=g) + 1.5 * targets).sigmoid(), targets


VAL, TEST = split(1), split(2)


# --- q1: which stages to freeze (the checker of project 11) ----------------------------------

ROWS = [{"strategy": "partial", "depth": 2, "seeds": 2, "accuracy": 0.80, "accuracy_std": 0.02},
        {"strategy": "partial", "depth": 3, "seeds": 2, "accuracy": 0.79, "accuracy_std": 0.01},
        {"strategy": "partial", "depth": 4, "seeds": 2, "accuracy": 0.70, "accuracy_std": 0.01}]


def test_q1_solution_passes_and_the_cheapest_clearly_worse_depth_fails():
    scope = {"val_rows": ROWS}
    exec(lesson09.q1.solution_code, scope)
    assert scope["depth"] == 3 and "within one seed spread" in lesson09.q1.verify(3, ROWS)
    fails(lesson09.q1, 4, ROWS, match="cheapest to train, but")
    fails(lesson09.q1, "layer2", ROWS, match="freezing up to layer2 is depth 3")


# --- q2: a threshold for a target sensitivity ----------------------------------------------------

def pick_with_roc(scores, targets, target):
    c = roc_curve(scores, targets)
    ok = c["tpr"] >= target - 1e-9
    return float(c["thresholds"][ok][0])


def pick_midpoint(scores, targets, target):
    t = threshold_for_sensitivity(scores, targets, target)
    below = scores[scores < t]
    return (t + float(below.max())) / 2 if len(below) else t - 1e-3


RIGHT_PICKS = [solved("q2", "pick_threshold", val=VAL), threshold_for_sensitivity, pick_with_roc, pick_midpoint,
               lambda s, t, target: np.float32(threshold_for_sensitivity(s, t, target))]


@pytest.mark.parametrize("fn", RIGHT_PICKS)
def test_q2_right_rules_pass(fn):
    assert "matches threshold_for_sensitivity" in lesson09.q2.verify(fn, fn(*VAL, 0.95), VAL, TEST)


def test_q2_solution_binds_the_validation_threshold():
    scope = {"val": VAL}
    exec(lesson09.q2.solution_code, scope)
    assert scope["threshold"] == threshold_for_sensitivity(*VAL, 0.95)


def pick_lowest(scores, targets, target):
    return float(scores[targets == 1].min())


def pick_one_short(scores, targets, target):
    pos = scores[targets == 1].sort(descending=True).values
    return float(pos[math.ceil(target * len(pos)) - 2])


def pick_class0(scores, targets, target):
    return threshold_for_sensitivity(scores, 1 - targets, target)


def pick_class0_probability(scores, targets, target):
    return threshold_for_sensitivity(1 - scores, 1 - targets, target)


REF = threshold_for_sensitivity


@pytest.mark.parametrize("fn,message", [
    (pick_lowest, "not the \\*highest\\*"),
    (lambda s, t, target: REF(s, t, target) - 0.05, "not the \\*highest\\*"),
    (pick_one_short, "below the target"),
    (pick_class0, "class 0 \\(normal\\) as the positive class"),
    (pick_class0_probability, "class 0 \\(normal\\) as the positive class"),
    (lambda s, t, target: target, "a sensitivity, not a threshold"),
    (lambda s, t, target: 0.3, "below the target|not the \\*highest\\*|for every input"),
])
def test_q2_typical_wrong_rules(fn, message):
    fails(lesson09.q2, fn, REF(*VAL, 0.95), VAL, TEST, match=message)


def test_q2_a_threshold_chosen_on_test_or_another_value():
    fails(lesson09.q2, REF, REF(*TEST, 0.95), VAL, TEST, match="chosen on the \\*test\\* split")
    fails(lesson09.q2, REF, REF(*VAL, 0.8), VAL, TEST, match="not its answer on the validation split")


def test_q2_placeholders_are_not_answered():
    with pytest.raises(NotAnswered):
        lesson09.q2.verify(REF, None, VAL, TEST)
    with pytest.raises(NotAnswered):
        lesson09.q2.verify(None, 0.5, VAL, TEST)


# --- q3: specificity at a threshold --------------------------------------------------------------

def specificity_counts(scores, targets, threshold):
    flagged = scores >= threshold
    tn, fp = int((~flagged & (targets == 0)).sum()), int((flagged & (targets == 0)).sum())
    return tn / (tn + fp)


@pytest.mark.parametrize("fn", [solved("q3", "specificity"), specificity_counts,
                                lambda s, t, th: torch.tensor(specificity_counts(s, t, th)),
                                lambda s, t, th: np.mean(s[t == 0].numpy() < th)])
def test_q3_right_answers_pass(fn):
    assert "binary_metrics" in lesson09.q3.verify(fn)


def sensitivity(scores, targets, threshold):
    return (scores[targets == 1] >= threshold).float().mean().item()


@pytest.mark.parametrize("fn,message", [
    (sensitivity, "you return the sensitivity"),
    (lambda s, t, th: 1 - specificity_counts(s, t, th), "false-positive rate"),
    (lambda s, t, th: ((s < th) & (t == 0)).float().mean().item(), "divide by all the samples"),
    (lambda s, t, th: ((s >= th).long() == t).float().mean().item(), "accuracy"),
    (lambda s, t, th: (s[t == 0] <= th).float().mean().item(), "use >=, not >"),
    (lambda s, t, th: 100 * specificity_counts(s, t, th), "percentage"),
    (lambda s, t, th: 0.5, "for every input|expected"),
])
def test_q3_typical_mistakes(fn, message):
    fails(lesson09.q3, fn, match=message)


# --- q4: balanced class weights --------------------------------------------------------------------

@pytest.mark.parametrize("fn", [solved("q4", "class_weights"), balanced_weights,
                                lambda y, c: torch.tensor([len(y) / (c * int((y == k).sum())) for k in range(c)])])
def test_q4_right_answers_pass(fn):
    assert "N / (C * n_c)" in lesson09.q4.verify(fn)


def sklearn_weights(labels, num_classes):
    from sklearn.utils.class_weight import compute_class_weight
    return torch.tensor(compute_class_weight("balanced", classes=np.arange(num_classes), y=labels.numpy()))


def first_seen_order(labels, num_classes):
    order = list(dict.fromkeys(labels.tolist()))
    return torch.tensor([len(labels) / (num_classes * int((labels == k).sum())) for k in order])


@pytest.mark.parametrize("fn,message", [
    (lambda y, c: torch.bincount(y, minlength=c).float() / len(y), "inverted"),
    (lambda y, c: 1 / torch.bincount(y, minlength=c).float(), "not normalised"),
    (lambda y, c: balanced_weights(y, c) / balanced_weights(y, c).sum(), "not normalised"),
    (first_seen_order, "wrong class order"),
    (lambda y, c: balanced_weights(y, c).flip(0), "wrong class order"),
    (lambda y, c: 1 / torch.bincount(y, minlength=c).float().sqrt(), "sqrt"),
    (lambda y, c: balanced_weights(y, c)[y], "one weight per sample"),
    (lambda y, c: torch.bincount(y, minlength=c), "integer division|float"),
    (lambda y, c: torch.ones(c), "expected N / \\(C \\* n_c\\)|same weights"),
])
def test_q4_typical_mistakes(fn, message):
    fails(lesson09.q4, fn, match=message)


def test_q4_sklearn_balanced_is_the_reference():
    assert "N / (C * n_c)" in lesson09.q4.verify(sklearn_weights)
