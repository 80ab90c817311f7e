"""Tests of lesson 03's accuracy exercise (ftlib.exercises.lesson03.q2): right answers written
several ways pass on every loader; the typical mistakes fail with their message. The probe is a
seeded small network on three loaders with a short last batch."""

import numpy as np
import pytest
import torch

from ftlib.exercises import Incorrect, lesson03


def fails(answer, match: str) -> None:
    with pytest.raises(Incorrect, match=match):
        lesson03.q2.verify(answer)


def acc_loop(model, loader):
    hits = seen = 0
    for x, y in loader:
        for p, t in zip(model(x).argmax(1).tolist(), y.tolist()):  # sample by sample
            hits += p == t
            seen += 1
    return hits / seen


def acc_eval_no_grad(model, loader):
    model.eval()
    with torch.no_grad():
        hits = torch.cat([model(x).argmax(1) == y for x, y in loader])
    return hits.float().mean()  # a 0-d tensor


def acc_numpy(model, loader):
    with torch.no_grad():
        pairs = [(model(x).argmax(1).numpy(), y.numpy()) for x, y in loader]
    preds, labels = np.concatenate([p for p, _ in pairs]), np.concatenate([y for _, y in pairs])
    return np.mean(preds == labels)  # a numpy float


def acc_dataset_len(model, loader):
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / len(loader.dataset)


@pytest.mark.parametrize("fn", [acc_loop, acc_eval_no_grad, acc_numpy, acc_dataset_len])
def test_right_answers_pass(fn):
    assert "0.600" in lesson03.q2.verify(fn)


def test_solution_passes():
    scope = {}
    exec(lesson03.q2.solution_code, scope)
    assert "right on loaders of 23 and 37" in lesson03.q2.verify(scope["accuracy"])


def acc_per_batch(model, loader):
    accs = [(model(x).argmax(1) == y).float().mean().item() for x, y in loader]
    return sum(accs) / len(accs)


def acc_full_batches(model, loader):
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / (loader.batch_size * len(loader))


def right_once():
    seen = []

    def accuracy(model, loader):
        seen.append(acc_loop(model, loader))
        return seen[0]  # the first loader's answer, every time
    return accuracy


@pytest.mark.parametrize("fn,message", [
    (acc_per_batch, "the mean of the per-batch accuracies"),
    (lambda m, dl: 0.6, "without calling the model"),  # the check set's answer, hard-coded
    (lambda m, dl: 0.3, "never called the model"),
    (right_once(), r"on a check set of 23 samples in batches of 5, 5, 5, 5 and 3, expected 0.609"),
    (lambda m, dl: 100 * acc_loop(m, dl), "a percentage"),
    (acc_full_batches, "batch size x number of batches"),
    (lambda m, dl: 1 - acc_loop(m, dl), "the error rate"),
    (lambda m, dl: acc_loop(m, dl) * len(dl.dataset) / len(dl), "not by the number of batches"),
])
def test_typical_mistakes(fn, message):
    fails(fn, message)


def test_probes_are_fixed_and_separate_the_mistakes():
    probes = lesson03.q2.checker.__globals__["_accuracy_probes"]
    state = torch.random.get_rng_state()
    a, b = probes(), probes()
    assert torch.equal(state, torch.random.get_rng_state())  # the student's seed is left alone
    for (m, dl, r), (_, dl2, r2) in zip(a, b):
        assert torch.equal(r, r2) and torch.equal(dl.dataset.tensors[0], dl2.dataset.tensors[0])
        assert len(dl.dataset) % dl.batch_size  # a short last batch
        assert abs(acc_loop(m, dl) - acc_per_batch(m, dl)) > 1e-3
