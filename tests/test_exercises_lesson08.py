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


# --- q3: class weights --------------------------------------------------------------------

def cw_balanced(labels, c):
    counts = torch.bincount(labels, minlength=c).double()
    return torch.where(counts > 0, len(labels) / (c * counts.clamp(min=1)), torch.zeros(c, dtype=torch.float64))


def cw_inverse_float32(labels, c):
    counts = torch.bincount(labels, minlength=c).float()
    return torch.nan_to_num(1 / counts, posinf=0.0)


def cw_sum_to_one(labels, c):
    w = cw_balanced(labels, c)
    return w / w.sum()


def cw_numpy_loop(labels, c):
    counts = np.bincount(labels.numpy(), minlength=c)
    return torch.tensor([0.0 if n == 0 else len(labels) / (c * n) for n in counts])


@pytest.mark.parametrize("fn", [cw_balanced, cw_inverse_float32, cw_sum_to_one, cw_numpy_loop])
def test_q3_right_answers_pass(fn):
    assert "same total weight" in lesson08.q3.verify(fn)


def test_q3_solution_passes():
    scope = {}
    exec(lesson08.q3.solution_code, scope)
    assert "same total weight" in lesson08.q3.verify(scope["class_weights"])


def cw_no_minlength(labels, c):
    counts = torch.bincount(labels).double()
    return torch.where(counts > 0, 1 / counts.clamp(min=1), torch.zeros_like(counts))


@pytest.mark.parametrize("fn,message", [
    (lambda y, c: torch.bincount(y, minlength=c).double(), "grow with the class count"),
    (lambda y, c: torch.nan_to_num(1 / torch.bincount(y, minlength=c).double().sqrt(), posinf=0.0), "1 / sqrt"),
    (lambda y, c: cw_balanced(y, c)[y], "one weight per sample"),
    (cw_no_minlength, "pass minlength=num_classes"),
    (lambda y, c: 1 / torch.bincount(y, minlength=c).double(), "Give an absent class the weight 0"),
    (lambda y, c: torch.where(torch.bincount(y, minlength=c) > 0, 1 / torch.bincount(y, minlength=c).clamp(min=1), 1.0),
     "has no samples but weight"),
    (lambda y, c: len(y) // (c * torch.bincount(y, minlength=c).clamp(min=1)), "integer division"),
    (lambda y, c: cw_balanced(y, c).tolist(), "return a float tensor"),
    (lambda y, c: torch.ones(c, 1), "return one weight per class, shape"),
    (lambda y, c: torch.ones(c), "total weights"),
])
def test_q3_typical_mistakes(fn, message):
    fails(lesson08.q3, fn, message)


def test_q3_hard_coded_first_answer_fails():
    first = cw_balanced(*lesson08.q3.checker.__globals__["_weight_probes"]()[0])
    fails(lesson08.q3, lambda y, c: first.clone(), r"shape \(5,\)")


# --- q4: a safe loader for a plain checkpoint ---------------------------------------------

def plain_loader(*, eval_mode=True, swap=False, scale=255.0, names=None, weights_only=True, normalise=True):
    from torchvision.models import get_model
    from torchvision.transforms import v2

    def load_plain(path):
        saved = torch.load(path, map_location="cpu", weights_only=weights_only)
        model = get_model(saved["arch"], num_classes=len(saved["class_names"]))
        model.load_state_dict(saved["state_dict"])
        if eval_mode:
            model.eval()
        p = saved["preprocessing"]
        mean, std = (p["std"], p["mean"]) if swap else (p["mean"], p["std"])
        steps = [v2.ToDtype(torch.float32, scale=False), v2.Lambda(lambda x: x / scale)]
        steps += [v2.Normalize(mean, std)] if normalise else []
        return model, v2.Compose(steps), names if names is not None else saved["class_names"]
    return load_plain


def test_q4_right_answers_pass():
    assert "refused without running it" in lesson08.q4.verify(plain_loader())


def test_q4_solution_passes():
    scope = {}
    exec(lesson08.q4.solution_code, scope)
    assert "refused without running it" in lesson08.q4.verify(scope["load_plain"])


@pytest.mark.parametrize("kwargs,message", [
    (dict(eval_mode=False), "your model is in training mode"),
    (dict(swap=True), "mean and std are swapped"),
    (dict(normalise=False), "never normalises"),
    (dict(scale=1.0), "scale the uint8 image to"),
    (dict(names=["cat", "dog", "fox"]), "read them from the checkpoint"),
    (dict(weights_only=False), "your loader ran code stored in the file"),
])
def test_q4_typical_mistakes(kwargs, message):
    fails(lesson08.q4, plain_loader(**kwargs), message)


def test_q4_a_head_size_written_in_raises_with_the_call():
    from torchvision.models import get_model

    def fixed_head(path):
        saved = torch.load(path, weights_only=True)
        model = get_model(saved["arch"], num_classes=10)
        model.load_state_dict(saved["state_dict"])
        return model.eval(), lambda x: x, saved["class_names"]
    fails(lesson08.q4, fixed_head, "your code raised RuntimeError")


def test_q4_not_a_triple():
    fails(lesson08.q4, lambda path: torch.load(path, weights_only=True), "return a triple")
