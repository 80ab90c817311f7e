"""Tests for ftlib.freeze: trainable counts, stage tables, and the BatchNorm policy.

Expected counts are sums over submodules named in the test (or worked out by hand), never
computed by the code under test.
"""

import copy
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

from ftlib.freeze import (bn_modes, count_parameters, format_stage_table, freeze, frozen_stages,
                          stage_table, unfreeze)


def numel(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def tiny() -> nn.Sequential:
    """conv 3*4*3*3 + 4 = 112, bn 4 + 4 = 8, fc 4*2 + 2 = 10: 130 parameters."""
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(3, 4, 3), bn=nn.BatchNorm2d(4), relu=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 2)))


@pytest.fixture
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3)


# --- trainable counts ---------------------------------------------------------------

def test_tiny_counts_by_hand():
    m = tiny()
    assert count_parameters(m) == 130
    assert freeze(m, upto="bn") == ["conv", "bn"]
    assert count_parameters(m, trainable=True) == 10
    assert count_parameters(m, trainable=False) == 120
    unfreeze(m)
    assert freeze(m, last=2) == ["fc"]  # the last two stages are flat (no parameters) and fc
    assert count_parameters(m, trainable=True) == 120
    unfreeze(m)
    freeze(m, pattern=r"weight$")  # 108 conv + 4 bn + 8 fc weights
    assert count_parameters(m, trainable=True) == 4 + 4 + 2


def test_resnet_freeze_all_then_unfreeze_head_is_a_linear_probe(resnet):
    assert freeze(resnet) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert trainable(resnet) == 0
    assert unfreeze(resnet, last=1) == ["head"]
    assert trainable(resnet) == 512 * 3 + 3  # fc: 512 inputs, 3 classes, with bias


def test_resnet_freeze_upto(resnet):
    m = resnet
    freeze(m, upto="layer2")
    assert trainable(m) == numel(m.layer3, m.layer4, m.fc)
    assert count_parameters(m, trainable=False) == numel(m.conv1, m.bn1, m.layer1, m.layer2)
    assert frozen_stages(m) == ["stem", "layer1", "layer2"]


def test_resnet_unfreeze_last_k(resnet):
    m = resnet
    freeze(m)
    assert unfreeze(m, last=3) == ["layer3", "layer4", "head"]
    assert trainable(m) == numel(m.layer3, m.layer4, m.fc)


def test_resnet_pattern(resnet):
    m = resnet
    freeze(m, pattern=r"^layer4\.")
    assert count_parameters(m, trainable=False) == numel(m.layer4)
    unfreeze(m)
    freeze(m, pattern=r"bn")
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    downsample_bns = [m.layer2[0].downsample[1], m.layer3[0].downsample[1], m.layer4[0].downsample[1]]
    # the downsample BatchNorms are named "downsample.1", so r"bn" misses them
    assert count_parameters(m, trainable=False) == numel(*bns) - numel(*downsample_bns)


def test_mobilenet_stages():
    m = torchvision.models.mobilenet_v3_small(num_classes=3)
    freeze(m)
    assert unfreeze(m, last=2) == ["conv_head", "head"]
    assert trainable(m) == numel(m.features[-1], m.classifier)
    unfreeze(m)
    freeze(m, upto="block3")
    assert count_parameters(m, trainable=False) == numel(*m.features[:4])


def test_stage_table_statuses(resnet):
    m = resnet
    freeze(m, upto="layer1")
    freeze(m, pattern=r"^layer2\.0\.")
    rows = {r["stage"]: r for r in stage_table(m)}
    assert [r["stage"] for r in stage_table(m)] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert rows["stem"]["status"] == "frozen" and rows["stem"]["bn_held"] == 1
    assert rows["layer1"]["frozen"] == numel(m.layer1) and rows["layer1"]["trainable"] == 0
    assert rows["layer2"]["status"] == "partly"
    assert rows["layer2"]["frozen"] == numel(m.layer2[0])
    assert rows["layer2"]["trainable"] == numel(m.layer2[1])
    assert rows["head"] == {"stage": "head", "total": 1539, "trainable": 1539, "frozen": 0,
                            "status": "trainable", "bn_held": 0}
    assert stage_table(tiny())[2]["status"] == "no parameters"  # relu
    text = format_stage_table(m)
    assert "partly" in text and "layer4" in text and f"{numel(m):,}" in text


# --- bad input -------------------------------------------------------------------------

def test_unknown_stage_lists_the_valid_ones(resnet):
    with pytest.raises(ValueError, match="stem, layer1, layer2, layer3, layer4, head"):
        freeze(resnet, upto="layer5")


@pytest.mark.parametrize("kwargs, message", [
    ({"upto": "layer1", "last": 1}, "at most one"),
    ({"only": "head", "pattern": "fc"}, "at most one"),
    ({"last": 0}, "from 1 to 6"),
    ({"last": 7}, "from 1 to 6"),
    ({"pattern": "nothing_like_this"}, "matches no parameter"),
    ({"pattern": "("}, "not a valid regular expression"),
    ({"bn": "frozen"}, "'eval'"),
])
def test_bad_arguments(resnet, kwargs, message):
    with pytest.raises(ValueError, match=message):
        freeze(resnet, **kwargs)


def test_unknown_model_type():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

    with pytest.raises(TypeError, match="nn.Sequential"):
        freeze(Net())


# --- the BatchNorm policy ----------------------------------------------------------------

def bn_state(*modules: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in modules for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)
            for t in (mod.running_mean, mod.running_var, mod.num_batches_tracked)]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def train_a_little(model: nn.Module, steps: int = 2) -> None:
    """Forward passes in training mode (running statistics update without gradients too)."""
    model.eval()
    model.train()  # the call that used to switch frozen BatchNorm layers back on
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(4, 3, 16, 16, generator=gen) * 3 + 1)


def test_frozen_batchnorm_stats_stay_fixed_across_train(resnet):
    m = resnet
    freeze(m, upto="layer2")
    frozen_before, trainable_before = bn_state(m.bn1, m.layer1, m.layer2), bn_state(m.layer3, m.layer4)
    train_a_little(m)
    assert same(bn_state(m.bn1, m.layer1, m.layer2), frozen_before)
    after = bn_state(m.layer3, m.layer4)
    assert not any(torch.equal(x, y) for x, y in zip(after, trainable_before))
    assert m.layer3[0].bn1.training and not m.layer1[0].bn1.training


def test_frozen_batchnorm_normalises_with_running_stats(resnet):
    m = resnet
    freeze(m, upto="layer1")
    prefix = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1)
    x = torch.randn(4, 3, 32, 32)
    m.train()
    in_train_mode = prefix(x)
    m.eval()
    assert torch.allclose(in_train_mode, prefix(x))


def test_bn_train_lets_frozen_stats_update(resnet):
    m = resnet
    freeze(m, upto="layer2", bn="train")
    before = bn_state(m.layer1)
    train_a_little(m)
    assert trainable(m) == numel(m.layer3, m.layer4, m.fc)  # parameters are still frozen
    assert not same(bn_state(m.layer1), before)


def test_unfreeze_releases_batchnorm(resnet):
    m = resnet
    freeze(m)
    assert not any(bn_modes(m).values())
    unfreeze(m, upto="layer1")
    modes = bn_modes(m)
    assert modes["bn1"] and modes["layer1.0.bn2"] and not modes["layer2.0.bn1"]
    assert sum(modes.values()) == 1 + 4  # stem's bn1 and layer1's four BatchNorms
    before = bn_state(m.layer1)
    train_a_little(m)
    assert not same(bn_state(m.layer1), before)


def test_partly_frozen_batchnorm_keeps_training():
    m = tiny()
    freeze(m, pattern=r"bn\.weight")  # bias still trains
    assert bn_modes(m) == {"bn": True}
    freeze(m, pattern=r"bn\.bias")
    assert bn_modes(m) == {"bn": False}


def test_policy_survives_deepcopy(resnet):
    freeze(resnet, upto="layer1")
    m = copy.deepcopy(resnet)
    before = bn_state(m.layer1)
    train_a_little(m)
    assert same(bn_state(m.layer1), before)
    unfreeze(m)
    assert all(bn_modes(m).values())


def test_only_named_stages(resnet):
    m = resnet
    assert freeze(m, only=["layer3", "layer1"]) == ["layer1", "layer3"]
    assert count_parameters(m, trainable=False) == numel(m.layer1, m.layer3)
    assert unfreeze(m, only="layer3") == ["layer3"]
    assert count_parameters(m, trainable=False) == numel(m.layer1)
    with pytest.raises(ValueError, match="'layer7'.*stem, layer1"):
        freeze(m, only=["layer2", "layer7"])


def test_bn_train_policy_holds_through_stage_by_stage_unfreezing(resnet):
    """Lesson 07's gradual arm: freeze(bn="train"), then unfreeze one stage at a time. Every
    BatchNorm layer stays in training mode throughout, frozen stage or not, as in an arm that
    trains everything from the start; the frozen stages' parameters still do not train."""
    m = resnet
    freeze(m, upto="layer1")           # the default policy first: stem and layer1 held in eval
    freeze(m, bn="train")              # everything frozen, every BatchNorm released
    assert all(bn_modes(m).values()) and trainable(m) == 0
    for name in ("head", "layer4", "layer3"):
        unfreeze(m, only=name)
        assert all(bn_modes(m).values())
    assert trainable(m) == numel(m.layer3, m.layer4, m.fc)
    before = bn_state(m.layer2)
    train_a_little(m)
    assert not same(bn_state(m.layer2), before)  # a frozen stage's statistics move, as in the other arms
    assert count_parameters(m, trainable=False) == numel(m.conv1, m.bn1, m.layer1, m.layer2)
