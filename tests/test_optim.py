"""Parameter groups, the optimizer factory, LR suggestions and the LR range test (lesson 05)."""

from __future__ import annotations

from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ftlib.optim import LRFindResult, lr_find, make_optimizer, param_groups, suggest_lr
from tiny import loader, tiny_data, tiny_model


def tiny_loader(n: int = 48, batch_size: int = 8, seed: int = 0) -> DataLoader:
    return loader(*tiny_data(n, seed), batch_size=batch_size)


def ids(params) -> set[int]:
    return {id(p) for p in params}


# ------------------------------------------------------------------ param_groups

def test_groups_follow_the_stages_with_ulmfit_factor():
    model = tiny_model()
    groups = param_groups(model, lr=0.01)
    assert [g["name"] for g in groups] == ["stem", "body", "head"]
    # by hand: head lr, body lr / 2.6, stem lr / 2.6**2
    assert groups[2]["lr"] == pytest.approx(0.01)
    assert groups[1]["lr"] == pytest.approx(0.01 / 2.6)
    assert groups[0]["lr"] == pytest.approx(0.01 / 6.76)
    assert ids(groups[0]["params"]) == ids(model.stem.parameters())
    assert ids(groups[1]["params"]) == ids(model.body.parameters())
    assert ids(groups[2]["params"]) == ids([model.head.weight, model.head.bias])
    assert all("weight_decay" not in g for g in groups)  # the optimizer's own setting applies


def test_explicit_lrs_as_dict_or_sequence():
    model = tiny_model()
    by_dict = param_groups(model, lr=1.0, lrs={"stem": 1e-4, "body": 1e-3, "head": 1e-2})
    by_list = param_groups(model, lr=1.0, lrs=[1e-4, 1e-3, 1e-2])
    assert [g["lr"] for g in by_dict] == [1e-4, 1e-3, 1e-2]
    assert [g["lr"] for g in by_list] == [1e-4, 1e-3, 1e-2]
    with pytest.raises(ValueError, match="missing"):
        param_groups(model, lr=1.0, lrs={"head": 1e-2})
    with pytest.raises(ValueError, match="3 stages"):
        param_groups(model, lr=1.0, lrs=[1e-3, 1e-2])


def test_norm_and_bias_parameters_get_no_weight_decay():
    model = tiny_model()
    groups = {g["name"]: g for g in param_groups(model, lr=0.1, weight_decay=0.05)}
    assert list(groups) == ["stem", "stem.no_decay", "body", "body.no_decay", "head", "head.no_decay"]
    conv, bn = model.stem[0], model.stem[1]
    assert ids(groups["stem"]["params"]) == ids([conv.weight])
    assert ids(groups["stem.no_decay"]["params"]) == ids([conv.bias, bn.weight, bn.bias])
    assert ids(groups["head"]["params"]) == ids([model.head.weight])
    assert ids(groups["head.no_decay"]["params"]) == ids([model.head.bias])
    assert groups["stem"]["weight_decay"] == 0.05 and groups["stem.no_decay"]["weight_decay"] == 0.0
    assert groups["stem.no_decay"]["lr"] == groups["stem"]["lr"] == pytest.approx(0.1 / 2.6 ** 2)


def test_frozen_parameters_are_left_out_unless_asked():
    model = tiny_model()
    for p in model.stem.parameters():
        p.requires_grad_(False)
    model.body[0].bias.requires_grad_(False)
    groups = param_groups(model, lr=0.1)
    assert [g["name"] for g in groups] == ["body", "head"]  # the empty stem group is dropped
    assert id(model.body[0].bias) not in ids(groups[0]["params"])
    every = param_groups(model, lr=0.1, include_frozen=True)
    assert [g["name"] for g in every] == ["stem", "body", "head"]
    total = sum(len(g["params"]) for g in every)
    assert total == len(list(model.parameters()))


def test_groups_work_with_a_plain_torch_optimizer_and_scheduler():
    model = tiny_model()
    optimizer = torch.optim.SGD(param_groups(model, lr=0.1), momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    before = [g["lr"] for g in optimizer.param_groups]
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([lr / 2 for lr in before])


def test_bad_lr_is_explained():
    with pytest.raises(ValueError, match="lr must be > 0"):
        param_groups(tiny_model(), lr=0.0)


def test_one_group_for_any_model():
    model = tiny_model()
    model.stem.requires_grad_(False)
    [group] = param_groups(model, lr=0.01, by_stage=False)
    assert group["name"] == "all" and group["lr"] == 0.01
    assert ids(group["params"]) == ids(list(model.body.parameters()) + list(model.head.parameters()))
    linear = nn.Linear(4, 2)  # ftlib knows no stages of a bare Linear
    decay, no_decay = param_groups(linear, lr=0.1, by_stage=False, weight_decay=0.01)
    assert (decay["name"], no_decay["name"]) == ("all", "all.no_decay")
    assert ids(decay["params"]) == {id(linear.weight)} and ids(no_decay["params"]) == {id(linear.bias)}


def test_make_optimizer_builds_its_group_with_param_groups():
    model = tiny_model()
    model.stem.requires_grad_(False)
    opt = make_optimizer(model, 0.05, "adam")
    [group] = opt.param_groups
    assert isinstance(opt, torch.optim.Adam) and group["name"] == "all" and group["lr"] == 0.05
    assert ids(group["params"]) == ids(param_groups(model, 0.05, by_stage=False)[0]["params"])
    assert isinstance(make_optimizer(nn.Linear(4, 2), 0.1), torch.optim.SGD)  # any model
    custom = make_optimizer(model, 0.2, lambda params, lr: torch.optim.RMSprop(params, lr=lr))
    assert isinstance(custom, torch.optim.RMSprop) and custom.param_groups[0]["lr"] == 0.2


# ------------------------------------------------------------------ suggest_lr

LRS = [10.0 ** e for e in range(-5, 3)]             # 1e-5 ... 1e2, one decade apart
CURVE = [2.0, 2.0, 1.9, 1.2, 1.0, 0.9, 1.5, 4.0]    # steepest fall between 1e-3 and 1e-2


def test_steepest_is_the_start_of_the_fastest_fall():
    # slopes per decade: 0, -0.1, -0.7, -0.2, -0.1, then up: the fall from 1e-3 to 1e-2 is steepest
    assert suggest_lr(LRS, CURVE, "steepest") == pytest.approx(1e-3)


def test_min_div10():
    assert suggest_lr(LRS, CURVE, "min_div10") == pytest.approx(1.0 / 10)  # lowest loss (0.9) at 1e0


def test_valley_on_a_noisy_descent():
    lrs = [10.0 ** (e / 2) for e in range(-10, 1)]  # 11 points
    losses = [3.0, 2.9, 3.1, 2.5, 2.6, 2.0, 1.5, 1.6, 1.0, 2.0, 5.0]
    # longest decreasing run: points 0, 1, 3, 5, 6, 8 (3.0 > 2.9 > 2.5 > 2.0 > 1.5 > 1.0);
    # two thirds of the way from index 0 to index 8 is index 5
    assert suggest_lr(lrs, losses, "valley") == pytest.approx(lrs[5])


def test_non_finite_points_are_ignored_and_bad_input_explained():
    losses = CURVE[:6] + [math.nan] + CURVE[7:]  # a NaN at 1e1 must not count as the minimum
    assert suggest_lr(LRS, losses, "min_div10") == pytest.approx(1.0 / 10)
    with pytest.raises(ValueError, match="same length"):
        suggest_lr(LRS, CURVE[:-1])
    with pytest.raises(ValueError, match="method must be one of"):
        suggest_lr(LRS, CURVE, "best")
    with pytest.raises(ValueError, match="at least 3 points"):
        suggest_lr([1e-3, 1e-2], [1.0, 0.5])


# ------------------------------------------------------------------ lr_find

def test_lr_find_puts_the_model_back_exactly():
    model = tiny_model()
    for p in model.stem.parameters():
        p.requires_grad_(False)
    model.eval()
    model.body.train()  # a mix of modes, which lr_find must keep
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    result = lr_find(model, tiny_loader(), num_iter=15, start_lr=1e-4, end_lr=1.0, device="cpu")

    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # weights and BN statistics
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert isinstance(result, LRFindResult)
    assert 3 <= len(result.lrs) == len(result.losses) <= 15
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert ratios == pytest.approx([(1.0 / 1e-4) ** (1 / 14)] * len(ratios))  # exponential schedule
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    assert result.suggestion == suggest_lr(result.lrs, result.losses)


def test_lr_find_restores_even_when_it_fails():
    model = tiny_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def broken_loss(out, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, tiny_loader(), broken_loss, num_iter=5, device="cpu")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_lr_find_stops_when_the_loss_diverges():
    model = tiny_model()
    result = lr_find(model, tiny_loader(), num_iter=60, start_lr=1e-3, end_lr=1e6, device="cpu")
    assert len(result.lrs) < 60 and result.lrs[-1] < 1e6
    # it stopped because the smoothed loss passed 4x its best, or the next loss was not finite
    finite_stop = result.losses[-1] > 4.0 * min(result.losses)
    assert finite_stop or len(result.raw_losses) == len(result.lrs)


def test_lr_find_plot_returns_a_figure():
    pytest.importorskip("ftlib.plots")
    result = lr_find(tiny_model(), tiny_loader(), num_iter=8, device="cpu")
    fig = result.plot()
    assert fig.axes and fig.axes[0].get_xscale() == "log"


def test_lr_find_needs_something_to_train():
    model = tiny_model()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        lr_find(model, tiny_loader(), num_iter=5, device="cpu")


def _range_test_by_hand(model, data, start_lr, end_lr, num_iter, smooth=0.05, diverge=4.0):
    """The plain loop lesson 05 shows: exponential LR, bias-corrected smoothed loss, stop on divergence."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=start_lr, momentum=0.9)
    batches = (b for _ in range(num_iter) for b in data)  # the loader, again and again
    lrs, losses, average, lowest = [], [], 0.0, math.inf
    model.train()
    for step in range(num_iter):
        lr = start_lr * (end_lr / start_lr) ** (step / (num_iter - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not math.isfinite(loss.item()):
            break
        average = (1 - smooth) * average + smooth * loss.item()
        losses.append(average / (1 - (1 - smooth) ** (step + 1)))
        lrs.append(lr)
        lowest = min(lowest, losses[-1])
        if losses[-1] > diverge * lowest:
            break
    return lrs, losses


@pytest.mark.parametrize("end_lr", [1.0, 1e4])  # a curve that ends by itself, and one that diverges
def test_lr_find_is_the_plain_loop_of_lesson_05(end_lr):
    import copy
    model = tiny_model()
    model.stem.requires_grad_(False)
    by_hand = _range_test_by_hand(copy.deepcopy(model), tiny_loader(), 1e-4, end_lr, 30)
    found = lr_find(model, tiny_loader(), num_iter=30, start_lr=1e-4, end_lr=end_lr, device="cpu")
    assert found.lrs == pytest.approx(by_hand[0], rel=1e-12)
    assert found.losses == pytest.approx(by_hand[1], rel=1e-6)
    if end_lr > 1e3:
        assert len(found.lrs) < 30  # it stopped on divergence, like the loop
