"""The explorers of lessons 04 and 05: their pure logic, their static fallback, their widgets.

Tiny models (a named nn.Sequential, a ResNet-18 head count) and tiny tensor loaders; no
wall-clock assertions: times are only checked to be positive, and the estimating logic is
checked with injected numbers.
"""

import copy
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from ftlib import widgets  # noqa: E402
from ftlib.freeze import apply_freeze_depth  # noqa: E402
from ftlib.cost import (calibrate_seconds, freeze_table, measure_seconds_per_image,  # noqa: E402
                        training_flops)
from ftlib.freeze import bn_modes  # noqa: E402
from ftlib.optim import format_lr_table, lr_sweep, make_optimizer, parse_lrs  # noqa: E402
from ftlib.plots import plot_lr_sweep  # noqa: E402
from ftlib.train import History  # noqa: E402
from ftlib.widgets import freeze_explorer, lr_explorer, use_static  # noqa: E402


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch):
    """Each test decides the world itself; one thread (tiny models gain nothing from more,
    and on a busy machine threads waiting for each other make them many times slower);
    no figure is left open in pyplot."""
    for name in ("CI", "FTLIB_QUIET", "FTLIB_WIDGETS"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    plt.close("all")
    yield
    torch.set_num_threads(threads)
    assert plt.get_fignums() == []


def tiny_cnn(num_classes: int = 3) -> nn.Sequential:
    """Four named stages; BatchNorm in the first two."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        block1=nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()),
        block2=nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)),
    ))


def loaders(n: int = 24, size: int = 8, classes: int = 3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.arange(n) % classes
    x[:, 0] += y.float()[:, None, None]  # a learnable signal in channel 0
    ds = TensorDataset(x, y)
    return DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=12)


# ---------------------------------------------------------------- freezing: pure logic

def test_apply_freeze_depth_freezes_the_first_k_stages_and_holds_their_batchnorm():
    model = tiny_cnn()
    assert apply_freeze_depth(model, 2) == ["stem", "block1"]
    for name, child in model.named_children():
        expected = name in ("stem", "block1")
        assert all(p.requires_grad != expected for p in child.parameters()), name
    assert bn_modes(model) == {"stem.1": False, "block1.1": False}
    stats = [model.stem[1].running_mean.clone(), model.block1[1].running_mean.clone()]
    model.train()
    model(torch.randn(4, 3, 8, 8) + 3)  # a training-mode forward pass on shifted data
    assert torch.equal(model.stem[1].running_mean, stats[0])  # frozen BatchNorm did not drift
    assert torch.equal(model.block1[1].running_mean, stats[1])

    assert apply_freeze_depth(model, 1) == ["stem"]  # replaces the earlier depth
    assert all(p.requires_grad for p in model.block1.parameters())
    assert bn_modes(model) == {"stem.1": False, "block1.1": True}

    apply_freeze_depth(model, 0)
    assert all(p.requires_grad for p in model.parameters())
    assert bn_modes(model) == {"stem.1": True, "block1.1": True}


@pytest.mark.parametrize("k", [-1, 4, True, 1.0])
def test_apply_freeze_depth_rejects_depths_that_freeze_the_head(k):
    with pytest.raises(ValueError, match="head"):
        apply_freeze_depth(tiny_cnn(), k)


def test_training_flops_match_a_hand_count():
    """Three linear layers on 3x4x4 images. A linear layer costs 2*in*out FLOPs forward, as
    much again for its weight gradient, and as much again for its input gradient when
    something before it trains (the counter does not count bias sums)."""
    model = nn.Sequential(OrderedDict(stem=nn.Sequential(nn.Flatten(), nn.Linear(48, 8)),
                                      mid=nn.Linear(8, 8), head=nn.Linear(8, 3)))
    fwd = 2 * 48 * 8 + 2 * 8 * 8 + 2 * 8 * 3
    expected = [fwd + 2 * 48 * 8 + 2 * (2 * 8 * 8) + 2 * (2 * 8 * 3),   # stem trains: no input grad
                fwd + 2 * 8 * 8 + 2 * (2 * 8 * 3),                        # stem frozen
                fwd + 2 * 8 * 3]                                          # only the head
    assert training_flops(model, image_size=4) == expected
    assert all(p.requires_grad for p in model.parameters())  # the model itself is untouched


def test_calibrate_seconds_fits_a_line_through_two_measurements():
    # b = (12 - 3) / (10 - 2) = 1.125, a = 12 - 11.25 = 0.75
    assert calibrate_seconds([10, 8, 5, 2], {0: 12.0, 3: 3.0}) == pytest.approx([12, 9.75, 6.375, 3])


@pytest.mark.parametrize("flops, measured, expected", [
    ([8, 2], {0: 4.0}, [4, 1]),                # one measurement: proportional
    ([10, 5], {0: 10.0, 1: 2.0}, [10, 5]),     # the line would cross below zero: through zero and t0
    ([10, 5], {0: 2.0, 1: 3.0}, [2.5, 2.5]),   # noise made freezing look slower: the mean
])
def test_calibrate_seconds_stays_positive_and_non_increasing(flops, measured, expected):
    seconds = calibrate_seconds(flops, measured)
    assert seconds == pytest.approx(expected)
    assert all(s > 0 for s in seconds)
    assert all(a >= b for a, b in zip(seconds, seconds[1:]))


def test_calibrate_seconds_rejects_bad_measurements():
    with pytest.raises(ValueError, match="at least one"):
        calibrate_seconds([1.0, 0.5], {})
    with pytest.raises(ValueError, match="> 0"):
        calibrate_seconds([1.0, 0.5], {0: 0.0})


def test_measured_seconds_are_positive_and_non_increasing():
    model = tiny_cnn()
    seconds = measure_seconds_per_image(model, image_size=8, batch_size=4, device="cpu")
    assert len(seconds) == 4
    assert all(s > 0 for s in seconds)
    assert all(a >= b for a, b in zip(seconds, seconds[1:]))
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_table_counts_trainable_parameters_of_a_resnet():
    model = torchvision.models.resnet18(num_classes=3)
    rows = freeze_table(model, epoch_images=100, seconds_per_image=[6.0, 5, 4, 3, 2, 1])
    total = sum(p.numel() for p in model.parameters())
    assert [r["frozen_stages"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[0]["trainable"] == total and rows[0]["trainable_pct"] == pytest.approx(100)
    # stem = conv1 + bn1; counted here from the torchvision attributes, not from ftlib.stages
    stem = sum(p.numel() for m in (model.conv1, model.bn1) for p in m.parameters())
    assert rows[1]["trainable"] == total - stem
    assert rows[5]["trainable"] == 512 * 3 + 3  # only fc trains
    assert rows[5]["frozen"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert rows[5]["trainable_pct"] == pytest.approx(100 * (512 * 3 + 3) / total)
    assert [r["s_per_epoch"] for r in rows] == pytest.approx([600, 500, 400, 300, 200, 100])
    assert all(p.requires_grad for p in model.parameters())  # the model is not touched


def test_freeze_table_checks_the_injected_times():
    with pytest.raises(ValueError, match="one value per freeze depth"):
        freeze_table(tiny_cnn(), seconds_per_image=[1.0, 0.5])


# ---------------------------------------------------------------- freezing: explorer

def test_use_static_rule(monkeypatch):
    assert use_static(True) is True and use_static(False) is False
    assert use_static(None) is True  # pytest is not an IPython kernel
    monkeypatch.setattr(widgets, "in_notebook", lambda: True)
    assert use_static(None) is False
    monkeypatch.setenv("FTLIB_WIDGETS", "0")
    assert use_static(None) is True
    monkeypatch.delenv("FTLIB_WIDGETS")
    monkeypatch.setenv("CI", "true")
    assert use_static(None) is True


def test_freeze_explorer_static_prints_the_table_and_returns_a_figure(capsys):
    model = tiny_cnn()
    fig = freeze_explorer(model, image_size=8, batch_size=4, epoch_images=50, device="cpu", static=True)
    assert isinstance(fig, Figure)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 4 and "trainable" in lines[0]
    head_only = sum(p.numel() for p in model.head.parameters())
    assert f"{head_only:,}" in lines[-1] and "block2" in lines[-1]
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_explorer_slider_updates_summary_and_diagram():
    model = tiny_cnn()
    box = freeze_explorer(model, epoch_images=200, static=False, seconds_per_image=[0.4, 0.3, 0.2, 0.1])
    assert isinstance(box, ipywidgets.VBox)
    slider, summary, diagram = box.children
    assert isinstance(slider, ipywidgets.IntSlider) and (slider.min, slider.max) == (0, 3)
    total = sum(p.numel() for p in model.parameters())
    assert f"{total:,} of {total:,}" in summary.value
    before_html, before_png = summary.value, diagram.outputs[0]["data"]["image/png"]

    slider.value = 2
    trainable = sum(p.numel() for m in (model.block2, model.head) for p in m.parameters())
    assert summary.value != before_html
    assert f"{trainable:,} of {total:,}" in summary.value and "stem, block1" in summary.value
    assert "40.0 s" in summary.value and "2.0x as fast" in summary.value  # 200 x 0.2 s; 0.4 / 0.2
    assert diagram.outputs[0]["data"]["image/png"] != before_png
    assert all(p.requires_grad for p in model.parameters())  # the explorer works on a copy


# ---------------------------------------------------------------- learning rates: pure logic

def test_parse_lrs():
    assert parse_lrs("1e-3, 3e-3 0.01;1e-3") == [1e-3, 3e-3, 1e-2]
    assert parse_lrs("  ") == []
    with pytest.raises(ValueError, match="not a number"):
        parse_lrs("1e-3, fast")
    with pytest.raises(ValueError, match="positive"):
        parse_lrs("-0.1")


def test_make_optimizer_uses_trainable_parameters_only():
    model = tiny_cnn()
    apply_freeze_depth(model, 3)
    opt = make_optimizer(model, 0.05, "sgd")
    assert isinstance(opt, torch.optim.SGD)
    [group] = opt.param_groups
    assert group["lr"] == 0.05 and group["momentum"] == 0.9
    assert {id(p) for p in group["params"]} == {id(p) for p in model.head.parameters()}
    assert isinstance(make_optimizer(model, 1e-3, "adamw"), torch.optim.AdamW)
    with pytest.raises(ValueError, match="sgd"):
        make_optimizer(model, 1e-3, "lion")
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer(model, 1e-3)


def test_lr_sweep_trains_a_fresh_model_per_lr():
    base = tiny_cnn()
    before = copy.deepcopy(base.state_dict())
    calls = []

    def make_model():
        calls.append(1)
        return copy.deepcopy(base)

    train, val = loaders()
    results = lr_sweep(make_model, train, val, [0.3, 0.01], epochs=2, device="cpu")
    assert list(results) == [0.3, 0.01] and len(calls) == 2
    assert all(isinstance(h, History) and len(h) == 2 for h in results.values())
    assert all("val_acc" in h.rows[0] for h in results.values())
    assert results[0.3]["train_loss"] != results[0.01]["train_loss"]
    for key, value in base.state_dict().items():
        assert torch.equal(value, before[key]), key
    # nothing leaks from one run to the next: alone, lr=0.01 gives the same curves
    alone = lr_sweep(make_model, train, val, [0.01], epochs=2, device="cpu")
    assert alone[0.01]["val_loss"] == pytest.approx(results[0.01]["val_loss"])


def test_lr_sweep_refuses_a_make_model_that_returns_the_same_model():
    model = tiny_cnn()
    train, val = loaders()
    with pytest.raises(ValueError, match="new model"):
        lr_sweep(lambda: model, train, val, [0.01, 0.1], epochs=1, device="cpu")
    for bad in ([0.0], [float("nan")], ["1e-3"], []):
        with pytest.raises(ValueError, match="learning rate"):
            lr_sweep(tiny_cnn, train, val, bad, epochs=1, device="cpu")
    assert list(lr_sweep(tiny_cnn, train, val, [np.float32(0.01)], epochs=1, device="cpu")) == [
        pytest.approx(0.01)]


def history(losses, accs, diverged=False):
    rows = [{"epoch": i + 1, "train_loss": l + 0.1, "train_acc": a, "val_loss": l, "val_acc": a}
            for i, (l, a) in enumerate(zip(losses, accs))]
    return History(rows=rows, diverged=diverged)


def test_plot_lr_sweep_overlays_one_curve_per_lr():
    results = {1e-3: history([1.0, 0.8, 0.7], [0.4, 0.5, 0.6]),
               1e-1: history([2.0, 5.0], [0.3, 0.1], diverged=True)}
    fig = plot_lr_sweep(results)
    assert isinstance(fig, Figure)
    ax_acc, ax_loss = fig.axes
    assert [list(line.get_ydata()) for line in ax_acc.lines] == [[0.4, 0.5, 0.6], [0.3, 0.1]]
    assert [t.get_text() for t in ax_acc.get_legend().get_texts()] == ["lr=1e-03", "lr=1e-01 (diverged)"]
    assert ax_loss.get_yscale() == "log"
    table = format_lr_table(results).splitlines()
    assert len(table) == 3 and "diverged" in table[2] and "0.600" in table[1]
    with pytest.raises(ValueError, match="lr_sweep"):
        plot_lr_sweep({})


# ---------------------------------------------------------------- learning rates: explorer

def test_lr_explorer_static_runs_the_sweep_once(capsys):
    train, val = loaders()
    fig = lr_explorer(tiny_cnn, train, val, lrs=(0.01, 0.1), epochs=1, device="cpu", static=True)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].split()[0] == "1e-02" and lines[2].split()[0] == "1e-01"


def test_lr_explorer_button_trains_new_lrs_and_caches_the_rest():
    train, val = loaders()
    calls = []

    def make_model():
        calls.append(1)
        return tiny_cnn()

    box = lr_explorer(make_model, train, val, lrs=(0.01,), epochs=1, device="cpu", static=False)
    assert isinstance(box, ipywidgets.VBox) and calls == []  # nothing trains before Run
    (pick, controls), status, out = box.children[0].children, box.children[1], box.children[2]
    extra, (run, clear) = controls.children[0], controls.children[1].children
    assert isinstance(pick, ipywidgets.SelectMultiple) and pick.value == (0.01,)

    run.click()
    assert len(calls) == 1 and len(out.outputs) == 1 and "1e-02" in status.value
    first_png = out.outputs[0]["data"]["image/png"]

    extra.value = "0.1"
    run.click()
    assert len(calls) == 2  # 0.01 came from the cache
    assert "1e-01" in status.value and out.outputs[0]["data"]["image/png"] != first_png

    extra.value = "0.1, oops"
    run.click()
    assert len(calls) == 2 and "oops" in status.value

    clear.click()
    assert out.outputs == ()

    broken = lr_explorer(lambda: nn.Linear(3, 3), train, val, lrs=(0.01,), epochs=1, device="cpu", static=False)
    broken.children[0].children[1].children[1].children[0].click()  # the model cannot take images
    assert "RuntimeError" in broken.children[1].value and broken.children[2].outputs == ()


def test_lr_explorer_reuses_given_results():
    train, val = loaders()
    done = lr_sweep(tiny_cnn, train, val, [0.01], epochs=1, device="cpu")

    def must_not_train():
        raise AssertionError("make_model was called for an LR that has results")

    fig = lr_explorer(must_not_train, train, val, lrs=(0.01,), epochs=1, static=True, results=done)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 1
    box = lr_explorer(must_not_train, train, val, lrs=(0.01,), epochs=1, static=False, results=done)
    status, out = box.children[1], box.children[2]
    assert len(out.outputs) == 1 and "1e-02" in status.value  # shown before any click
    box.children[0].children[1].children[1].children[0].click()  # Run: nothing new to train
    assert len(out.outputs) == 1
