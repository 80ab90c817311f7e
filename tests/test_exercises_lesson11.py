"""Tests of the project 11 exercises (ftlib.exercises.lesson11): each checker accepts the solution
and right answers written other ways, and rejects each typical mistake with a message that names it."""

import numpy as np
import pytest
import torch

from ftlib.exercises import NotAnswered, lesson11
from ftlib.exercises.lesson11 import most_confused

import exercise_helpers as helpers
from exercise_helpers import fails


def solved(key: str, name: str, **scope):
    return helpers.solved(lesson11, key, name, **scope)


# --- q1: which stages to freeze -------------------------------------------------------------

ROWS = [{"strategy": "partial", "depth": 2, "seeds": 2, "accuracy": 0.74, "accuracy_std": 0.02},
        {"strategy": "partial", "depth": 3, "seeds": 2, "accuracy": 0.73, "accuracy_std": 0.01},
        {"strategy": "partial", "depth": 4, "seeds": 2, "accuracy": 0.55, "accuracy_std": 0.03}]


@pytest.mark.parametrize("depth", [2, 3, np.int64(3), 3.0, torch.tensor(2)])
def test_q1_depths_within_the_spread_pass(depth):
    assert "within one seed spread" in lesson11.q1.verify(depth, ROWS)


def test_q1_solution_passes():
    scope = {"val_rows": ROWS}
    exec(lesson11.q1.solution_code, scope)
    assert scope["depth"] == 3
    assert "defensible depths here: [2, 3]" in lesson11.q1.verify(scope["depth"], ROWS)


@pytest.mark.parametrize("depth,message", [
    (4, "cheapest to train, but its validation accuracy 0.550"),
    ("layer2", "freezing up to layer2 is depth 3"),
    (0.74, "is it an accuracy"),
    (1, "if 1 is the number of stages that train below the head, that is depth 4"),
    (7, "choose among \\[2, 3, 4\\]"),
])
def test_q1_typical_mistakes(depth, message):
    fails(lesson11.q1, depth, ROWS, match=message)


def test_q1_a_depth_below_the_spread_that_is_not_the_cheapest():
    rows = [dict(ROWS[0], depth=1, accuracy=0.60), *ROWS]
    fails(lesson11.q1, 1, rows, match=r"depth 1: its validation accuracy 0.600 is 0.140 below the best")


def test_q1_needs_the_rows_and_an_answer():
    fails(lesson11.q1, 3, {"depth": 3}, match="pass the sweep's validation rows")
    with pytest.raises(NotAnswered):
        lesson11.q1.verify(None, ROWS)


# --- q2: top-k accuracy -------------------------------------------------------------------------

def topk_sorting(logits, targets, k):
    order = logits.argsort(dim=1, descending=True, stable=True)[:, :k]
    return float((order == targets[:, None]).any(1).double().mean())


def topk_rank(logits, targets, k):
    above = (logits > logits.gather(1, targets[:, None])).sum(1)
    return np.float64((above < k).double().mean().item())


@pytest.mark.parametrize("fn", [solved("q2", "top_k"), topk_sorting, topk_rank,
                                lambda lg, t, k: (lg.topk(k, 1).indices == t[:, None]).any(1).float().mean()])
def test_q2_right_answers_pass(fn):
    assert "ftlib.metrics.top_k_accuracy" in lesson11.q2.verify(fn)


def topk_count(logits, targets, k):
    return int((logits.topk(k, 1).indices == targets[:, None]).any(1).sum())


def topk_unique_values(logits, targets, k):
    hits = [float(r[t]) in sorted(set(r.tolist()), reverse=True)[:k] for r, t in zip(logits, targets.tolist())]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("fn,message", [
    (lambda lg, t, k: float((lg.argmax(1) == t).float().mean()), "the argmax only"),
    (lambda lg, t, k: topk_sorting(lg, t, min(2, lg.shape[1])), "`k` is ignored"),
    (topk_count, "the number of hits"),
    (lambda lg, t, k: 100 * topk_sorting(lg, t, k), "percentage"),
    (lambda lg, t, k: float((lg.topk(k, 1, largest=False).indices == t[:, None]).any(1).float().mean()), "lowest"),
    (topk_unique_values, "tied scores"),
    (lambda lg, t, k: 0.5, "for every input"),
    (lambda lg, t, k: topk_sorting(lg, t, k) + 0.01, "expected"),
])
def test_q2_typical_mistakes(fn, message):
    fails(lesson11.q2, fn, match=message)


def test_q2_tied_probes_are_unambiguous():
    probes = lesson11.q2.checker.__globals__["_topk_probes"]()
    tied = [p for p in probes if bool((p[0] == p[0].round()).all())]
    assert len(tied) == 2 and all(len(t) > 10 for _, t, _ in tied)
    for logits, targets, k in tied:   # the tie-breaking of topk cannot change the answer
        assert topk_sorting(logits, targets, k) == topk_sorting(logits.flip(1), (logits.shape[1] - 1 - targets), k)


# --- q3: a balanced few-shot subset, as indices ---------------------------------------------------

def few_shot_numpy(labels, per_class, seed):
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)])


@pytest.mark.parametrize("fn", [solved("q3", "few_shot"), few_shot_numpy,
                                lambda y, n, s: few_shot_numpy(y, n, s).tolist()])
def test_q3_right_answers_pass(fn):
    assert "balanced, random and reproducible" in lesson11.q3.verify(fn)


def few_shot_with_repeats(labels, per_class, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([idx[torch.randint(len(idx), (per_class,), generator=g)]
                      for idx in ((labels == c).nonzero().flatten() for c in labels.unique())])


def few_shot_unseeded(labels, per_class, seed):
    return torch.cat([idx[torch.randperm(len(idx))[:per_class]]
                      for idx in ((labels == c).nonzero().flatten() for c in labels.unique())])


def few_shot_in_place(labels, per_class, seed):
    keep = solved("q3", "few_shot")(labels, per_class, seed)
    labels[0] = (labels[0] + 1) % 2
    return keep


@pytest.mark.parametrize("fn,message", [
    (lambda y, n, s: torch.arange(n * len(y.unique())), "unbalanced classes|samples of \\*each\\* class"),
    (lambda y, n, s: torch.arange(n), r"samples in total"),
    (lambda y, n, s: torch.cat([(y == c).nonzero().flatten()[:n] for c in y.unique()]), "ignores `seed`"),
    (few_shot_with_repeats, "more than once"),
    (few_shot_unseeded, "two calls with seed=0 gave different"),
    (few_shot_in_place, "changed `labels` itself"),
    (lambda y, n, s: torch.isin(torch.arange(len(y)), solved("q3", "few_shot")(y, n, s)), "a mask"),
    (lambda y, n, s: solved("q3", "few_shot")(y, n, s).float(), "whole indices"),
    (lambda y, n, s: y[solved("q3", "few_shot")(y, n, s)] + len(y), "outside"),
    (lambda y, n, s: None, "returned None"),
])
def test_q3_typical_mistakes(fn, message):
    fails(lesson11.q3, fn, match=message)


# --- q4: the most confused pair -------------------------------------------------------------------

def confused_loops(cm):
    best, pair = -1, None
    for i in range(len(cm)):
        for j in range(len(cm)):
            if i != j and int(cm[i][j]) > best:
                best, pair = int(cm[i][j]), (i, j)
    return pair


@pytest.mark.parametrize("fn", [solved("q4", "confused"), confused_loops, most_confused,
                                lambda cm: np.array(most_confused(cm)), lambda cm: torch.tensor(most_confused(cm))])
def test_q4_right_answers_pass(fn):
    assert "largest off-diagonal cell" in lesson11.q4.verify(fn)


def confused_both_ways(cm):
    both = (cm + cm.T).clone()
    both.fill_diagonal_(-1)
    return most_confused(both.triu() + torch.tril(torch.full_like(both, -1), -1))


@pytest.mark.parametrize("fn,message", [
    (lambda cm: divmod(int(cm.argmax()), len(cm)), "a cell of the diagonal"),
    (lambda cm: most_confused(cm)[::-1], "reversed"),
    (confused_both_ways, "both directions added"),
    (lambda cm: int(cm.clone().fill_diagonal_(-1).argmax()), "one number"),
    (lambda cm: (0, 2), "for every matrix"),
    (lambda cm: (2, 1) if len(cm) == 3 else most_confused(cm), "the largest count off the diagonal is"),
])
def test_q4_typical_mistakes(fn, message):
    fails(lesson11.q4, fn, match=message)


def test_q4_reference_on_a_small_matrix():
    cm = torch.tensor([[5, 1, 0], [4, 7, 2], [0, 3, 9]])
    assert most_confused(cm) == (1, 0)
