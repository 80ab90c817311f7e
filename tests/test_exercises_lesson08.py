"""Tests of the lesson 08 exercises (ftlib.exercises.lesson08): right answers, written several
ways, pass on every probe; hard-coded results and the typical mistakes fail with their message."""

import numpy as np
import pytest
import torch

from ftlib.exercises import Incorrect, lesson08


def fails(exercise, answer, match: str) -> None:
    with pytest.raises(Incorrect, match=match):
        exercise.verify(answer)


# --- q1: precision and recall -------------------------------------------------------------

def pr_loops(preds, targets):
    tp = fp = fn = 0
    for p, t in zip(preds.tolist(), targets.tolist()):
        tp += p == 1 and t == 1
        fp += p == 1 and t == 0
        fn += p == 0 and t == 1
    return tp / (tp + fp), tp / (tp + fn)


def pr_tensors(preds, targets):
    tp = ((preds == 1) & (targets == 1)).sum()
    return tp / (preds == 1).sum(), tp / (targets == 1).sum()  # 0-d tensors


def pr_numpy(preds, targets):
    p, t = preds.numpy(), targets.numpy()
    tp = np.sum((p == 1) & (t == 1))
    return np.float64(tp / np.sum(p == 1)), np.float64(tp / np.sum(t == 1))


def pr_sklearn(preds, targets):
    metrics = pytest.importorskip("sklearn.metrics")
    return metrics.precision_score(targets, preds), metrics.recall_score(targets, preds)


@pytest.mark.parametrize("fn", [pr_loops, pr_tensors, pr_numpy, pr_sklearn,
                                lambda p, t: torch.stack(pr_tensors(p, t))])
def test_q1_right_answers_pass(fn):
    assert "precision 0.667, recall 0.400" in lesson08.q1.verify(fn)


def specificity_as_recall(preds, targets):
    tn = int(((preds == 0) & (targets == 0)).sum())
    return pr_loops(preds, targets)[0], tn / int((targets == 0).sum())


@pytest.mark.parametrize("fn,message", [
    (lambda p, t: (2 / 3, 0.4), "for every input"),  # the check set's answer, hard-coded
    (lambda p, t: pr_loops(p, t)[::-1], "precision and recall are swapped"),
    (lambda p, t: pr_loops(t, p), "arguments went in the other order"),
    (specificity_as_recall, "recall is the specificity"),
    (lambda p, t: tuple(100 * v for v in pr_loops(p, t)), "percentages"),
    (lambda p, t: pr_loops(1 - p, 1 - t), "of class 0"),
    (lambda p, t: (float((p == t).float().mean()), pr_loops(p, t)[1]), "accuracy"),
    (lambda p, t: 0.5, "return a pair"),
])
def test_q1_typical_mistakes(fn, message):
    fails(lesson08.q1, fn, message)


def test_q1_right_on_the_first_probe_only():
    calls = []

    def first_then_zero(preds, targets):
        calls.append(len(targets))
        return pr_loops(preds, targets) if len(calls) == 1 else (0.0, 0.0)
    fails(lesson08.q1, first_then_zero, r"on 17 samples with TP=\d+, FP=\d+")


def test_q1_probes_are_fixed():
    a, b = lesson08.q1.checker.__globals__["_binary_probes"](), lesson08.q1.checker.__globals__["_binary_probes"]()
    assert all(torch.equal(x, y) for (p, t), (q, u) in zip(a, b) for x, y in ((p, q), (t, u)))
    assert any(bool((p == 1).all()) for p, _ in a)  # class 0 absent from the predictions


# --- q2: the confusion matrix -------------------------------------------------------------

def cm_loops(preds, targets, c):
    m = torch.zeros(c, c, dtype=torch.int64)
    for t, p in zip(targets.tolist(), preds.tolist()):
        m[t, p] += 1
    return m


def cm_lists(preds, targets, c):
    rows = [[0] * c for _ in range(c)]
    for t, p in zip(targets.tolist(), preds.tolist()):
        rows[t][p] += 1
    return rows


def cm_numpy(preds, targets, c):
    m = np.zeros((c, c), dtype=np.int64)
    np.add.at(m, (targets.numpy(), preds.numpy()), 1)
    return m


def cm_sklearn(preds, targets, c):
    metrics = pytest.importorskip("sklearn.metrics")
    return metrics.confusion_matrix(targets, preds, labels=list(range(c)))


def cm_bincount(preds, targets, c):
    return torch.bincount(targets * c + preds, minlength=c * c).reshape(c, c).float()


@pytest.mark.parametrize("fn", [cm_loops, cm_lists, cm_numpy, cm_sklearn, cm_bincount])
def test_q2_right_answers_pass(fn):
    assert "counts are right" in lesson08.q2.verify(fn)


def cm_norm(dim):
    def normalised(p, t, c):
        m = cm_loops(p, t, c).double()
        return m / m.sum(dim, keepdim=True)
    return normalised


@pytest.mark.parametrize("fn,message", [
    (lambda p, t, c: torch.tensor([[1, 1, 1], [0, 3, 0], [1, 1, 2]]), "same matrix for every input"),
    (lambda p, t, c: cm_loops(t, p, c), "transposed"),
    (cm_norm(1), r"normalised \(each row sums to 1\)"),
    (cm_norm(0), r"normalised \(each column sums to 1\)"),
    (lambda p, t, c: 100 * cm_norm(1)(p, t, c), "percentages"),
    (lambda p, t, c: cm_loops(p, t, 3), r"for 2 classes the matrix has shape \(2, 2\)"),
    (lambda p, t, c: cm_loops(p, t, c) + torch.eye(c, dtype=torch.int64), "entry \\[i, j\\] should count"),
    (lambda p, t, c: "matrix", "return the matrix as"),
])
def test_q2_typical_mistakes(fn, message):
    fails(lesson08.q2, fn, message)


def test_q2_solution_passes():
    scope = {}
    exec(lesson08.q2.solution_code, scope)
    assert "counts are right" in lesson08.q2.verify(scope["confusion"])
