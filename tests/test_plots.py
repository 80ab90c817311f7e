"""Each plot builds on small inputs, and shows what it claims to show."""

import io
import math
from collections import OrderedDict
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from ftlib.plots import (FREEZE_COLORS, WRONG_COLOR, plot_confusion_matrix, plot_conv1_filters,  # noqa: E402
                         plot_feature_maps, plot_freeze_diagram, plot_history, plot_lr_find, plot_lr_schedule,
                         show_images)


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """The plots are plain Figures: nothing is left open in pyplot (so Jupyter shows each once)."""
    plt.close("all")
    yield
    assert plt.get_fignums() == []


def render(fig: Figure) -> Figure:
    """Draw the figure to PNG bytes, so that errors at drawing time show up too."""
    fig.savefig(io.BytesIO(), format="png")
    return fig


def image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.images]


ROWS = [{"epoch": 1, "train_loss": 1.2, "train_acc": 0.40, "val_loss": 1.0, "val_acc": 0.50},
        {"epoch": 2, "train_loss": 0.8, "train_acc": 0.60, "val_loss": 0.9, "val_acc": None},
        {"epoch": 3, "train_loss": 0.5, "train_acc": 0.80, "val_loss": 1.1, "val_acc": 0.55}]


def test_plot_history_draws_train_and_val_per_epoch():
    for history in (ROWS, SimpleNamespace(rows=ROWS)):
        fig = render(plot_history(history))
        ax_loss, ax_acc = fig.axes
        lines = {line.get_label(): line for line in ax_loss.get_lines()}
        assert list(lines["train"].get_ydata()) == [1.2, 0.8, 0.5]
        assert list(lines["val"].get_xdata()) == [1, 2, 3]
        acc = {line.get_label(): line for line in ax_acc.get_lines()}
        assert list(acc["val"].get_xdata()) == [1, 3]  # the missing value is skipped
        assert ax_acc.get_ylabel() == "accuracy"
    with pytest.raises(ValueError, match="empty"):
        plot_history([])


def test_plot_confusion_matrix_counts_and_row_normalisation():
    cm = torch.tensor([[2, 1], [0, 3]])
    fig = render(plot_confusion_matrix(cm, ["cat", "dog"]))
    ax = image_axes(fig)[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "2", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    fig = render(plot_confusion_matrix(cm, ["cat", "dog"], normalize=True))
    ax = image_axes(fig)[0]
    # rows divided by their totals: (2, 1)/3 and (0, 3)/3
    np.testing.assert_allclose(ax.images[0].get_array(), [[2 / 3, 1 / 3], [0, 1]])
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.33", "0.67", "1.00"]


def test_show_images_marks_wrong_predictions_in_red():
    images = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8)
    labels, preds = [0, 1, 2, 0, 1], [0, 2, 2, 1, 1]  # wrong: image 1 (2 for 1) and image 3 (1 for 0)
    names = ["cat", "dog", "fox"]
    fig = render(show_images(images, labels, preds, class_names=names, ncols=3))
    assert len(fig.axes) == 6 and len(image_axes(fig)) == 5
    axes = image_axes(fig)
    assert axes[1].get_title() == "pred: fox\ntrue: dog"
    assert axes[3].get_title() == "pred: dog\ntrue: cat"
    for i, ax in enumerate(axes):
        wrong = i in (1, 3)
        assert (ax.title.get_color() == WRONG_COLOR) == wrong
        assert all(s.get_visible() == wrong for s in ax.spines.values())
        if wrong:
            assert ax.spines["left"].get_edgecolor() == to_rgba(WRONG_COLOR)
    assert axes[0].get_title() == "cat"
    np.testing.assert_allclose(axes[0].images[0].get_array(), images[0].permute(1, 2, 0).numpy() / 255)


def test_show_images_unnormalises_float_and_grey_images():
    mean, std = [0.5], [0.25]
    raw = torch.tensor([[[0.2, 0.4], [0.6, 0.8]]])  # one grey image (1, 2, 2) in [0, 1]
    normalised = (raw - 0.5) / 0.25
    fig = render(show_images([normalised], labels=[1], mean=mean, std=std))
    ax = image_axes(fig)[0]
    np.testing.assert_allclose(ax.images[0].get_array(), raw[0].numpy(), rtol=1e-6)
    assert ax.images[0].get_cmap().name == "gray"
    assert ax.get_title() == "1"
    with pytest.raises(ValueError, match="labels"):
        show_images(torch.zeros(2, 3, 4, 4), labels=[0])


def test_plot_conv1_filters_scales_each_filter_to_its_range():
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 2, 3))
    fig = render(plot_conv1_filters(model))
    mosaic = np.asarray(image_axes(fig)[0].images[0].get_array())
    # 5 filters -> 3 columns, 2 rows of 3x3 tiles with 1-pixel gaps: 2*4-1 by 3*4-1, RGB
    assert mosaic.shape == (7, 11, 3)
    w = model[0].weight.detach()
    for i in range(5):
        r, c = divmod(i, 3)
        tile = mosaic[r * 4: r * 4 + 3, c * 4: c * 4 + 3]
        expected = w[i].permute(1, 2, 0)
        expected = (expected - expected.min()) / (expected.max() - expected.min())
        np.testing.assert_allclose(tile, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert "5 filters of 3x3" in fig.axes[0].get_title()
    grey = plot_conv1_filters(nn.Sequential(nn.Conv2d(1, 4, 5)))
    assert np.asarray(image_axes(grey)[0].images[0].get_array()).shape == (11, 11)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        plot_conv1_filters(nn.Sequential(nn.Linear(2, 2)))


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
        block=nn.Sequential(nn.Conv2d(6, 10, 3, stride=2, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 2))))


def test_plot_feature_maps_one_row_per_stage_most_active_channels_first():
    model = small_cnn()
    image = torch.randn(3, 8, 8)
    fig = render(plot_feature_maps(model, image, n=4))
    axes = image_axes(fig)
    assert len(axes) == 2 * 4  # stem and block (the head is left out), 4 channels each
    assert axes[0].get_ylabel() == "stem\n6x8x8"
    assert axes[4].get_ylabel() == "block\n10x4x4"
    with torch.no_grad():
        block_out = model.block(model.stem(image[None]))[0]
    best = int(block_out.mean(dim=(1, 2)).argmax())
    np.testing.assert_allclose(axes[4].images[0].get_array(), block_out[best].numpy(), rtol=1e-5)
    fig = plot_feature_maps(model, image, stages=["block"], n=20)  # n larger than the 10 channels
    assert len(image_axes(fig)) == 10
    with pytest.raises(ValueError, match="not feature maps"):
        plot_feature_maps(model, image, stages=["head"])
    with pytest.raises(ValueError, match="no stage named"):
        plot_feature_maps(model, image, stages=["layer1"])


def test_plot_lr_find_marks_the_suggestion_on_a_log_axis():
    lrs, losses = [1e-4, 1e-3, 1e-2, 1e-1], [2.0, 1.8, 1.0, 3.0]
    suggestion = 10 ** -2.5  # halfway between 1e-3 and 1e-2 on the log axis -> loss (1.8 + 1.0)/2 = 1.4
    ax = render(plot_lr_find(lrs, losses, suggestion)).axes[0]
    assert ax.get_xscale() == "log"
    curve, vline, dot = ax.get_lines()
    assert list(curve.get_ydata()) == losses
    assert list(vline.get_xdata()) == [suggestion, suggestion]
    assert dot.get_xdata()[0] == pytest.approx(suggestion)
    assert dot.get_ydata()[0] == pytest.approx(1.4)
    assert "3.2e-03" in dot.get_label()
    assert len(plot_lr_find(lrs, losses).axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="as many"):
        plot_lr_find(lrs, losses[:3])


def test_plot_lr_schedule_accepts_lists_group_dicts_and_named_schedules():
    cosine = [0.5 * (1 + math.cos(math.pi * t / 10)) * 0.1 for t in range(11)]
    step = [0.1 if t < 5 else 0.01 for t in range(11)]
    ax = render(plot_lr_schedule({"cosine": cosine, "step": step})).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"cosine", "step"}
    assert list(lines["step"].get_ydata()) == step
    per_group = [{"stem": 0.001 * f, "head": 0.01 * f} for f in (1.0, 0.5, 0.25)]
    ax = plot_lr_schedule(per_group, log=True).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["head"].get_ydata()) == [0.01, 0.005, 0.0025]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in plot_lr_schedule(step).axes[0].get_lines()] == ["lr"]


def test_plot_freeze_diagram_colours_stages_by_what_trains():
    model = nn.Sequential(OrderedDict(
        stem=nn.Conv2d(3, 4, 3),                                          # 4*3*3*3 + 4 = 112, frozen
        act=nn.ReLU(),                                                    # no parameters
        block=nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8)),       # conv 8*4*9 + 8 = 296 frozen, BN 16 trains
        head=nn.Sequential(nn.Flatten(), nn.Linear(8, 2))))               # 8*2 + 2 = 18, trains
    for p in model.stem.parameters():
        p.requires_grad_(False)
    for p in model.block[0].parameters():
        p.requires_grad_(False)
    fig = render(plot_freeze_diagram(model))
    ax = fig.axes[0]
    boxes = {p.get_gid(): p for p in ax.patches if p.get_gid()}
    expected = {"stem": "frozen", "act": "no parameters", "block": "partly", "head": "trainable"}
    assert list(boxes) == list(expected)
    for name, state in expected.items():
        assert boxes[name].get_facecolor() == to_rgba(FREEZE_COLORS[state]), name
    texts = [t.get_text() for t in ax.texts]
    assert "block\npartly\n16 / 312" in texts
    assert "stem\nfrozen\n0 / 112" in texts
    assert ax.get_title() == "trainable parameters: 34 of 442"  # 16 + 18 of 112 + 312 + 18
