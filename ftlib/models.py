"""Models: named stages for each torchvision family, and where the classifier head sits.

A *stage* is a group of layers that the lessons freeze, unfreeze or give their own
learning rate as one unit. `stages(model)` lists them from input to output, and running
them one after the other gives exactly `model(x)`:

    >>> m = torchvision.models.resnet18(num_classes=3)
    >>> list(stages(m))
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    >>> torch.nn.Sequential(stages(m))(x) == m(x)   # same numbers

The containers returned hold references to the model's own modules: freezing a stage
freezes the model. Used in lessons 01 (feature maps), 04 (freezing), 05 and 07
(layer-wise learning rates) and by prefix caching (lesson 03). Loading a model with its
weights is `ftlib.pretrained`.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision import models as tvm

__all__ = ["stages", "stage_names", "family", "ARCHS", "replace_head", "classifier_path", "check_num_classes"]


def family(model: nn.Module) -> str:
    """The architecture family: `"resnet"`, `"mobilenet"`, `"efficientnet"`, `"convnext"`,
    `"vgg"` or `"sequential"`. Raises `TypeError` for anything else."""
    kinds = [(tvm.ResNet, "resnet"), (tvm.MobileNetV3, "mobilenet"), (tvm.MobileNetV2, "mobilenet"),
             (tvm.EfficientNet, "efficientnet"), (tvm.ConvNeXt, "convnext"), (tvm.VGG, "vgg"),
             (nn.Sequential, "sequential")]
    for cls, name in kinds:
        if isinstance(model, cls):
            return name
    raise TypeError(f"ftlib knows the stages of torchvision ResNet, MobileNet, EfficientNet, "
                    f"ConvNeXt, VGG and nn.Sequential models, not {type(model).__name__}.")


def _resnet(m: tvm.ResNet) -> list[tuple[str, nn.Module]]:
    return [("stem", nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)),
            ("layer1", m.layer1), ("layer2", m.layer2), ("layer3", m.layer3), ("layer4", m.layer4),
            ("head", nn.Sequential(m.avgpool, nn.Flatten(1), m.fc))]


def _blocks_then_head(m: nn.Module, block: str) -> list[tuple[str, nn.Module]]:
    """MobileNet / EfficientNet: features[0] is the stem, features[-1] a 1x1 conv."""
    feats = list(m.features)
    out = [("stem", feats[0])]
    out += [(f"{block}{i}", f) for i, f in enumerate(feats[1:-1], start=1)]
    out += [("conv_head", feats[-1]), ("head", nn.Sequential(m.avgpool, nn.Flatten(1), m.classifier))]
    return out


def _convnext(m: tvm.ConvNeXt) -> list[tuple[str, nn.Module]]:
    f = m.features  # stem, stage, downsample, stage, downsample, stage, downsample, stage
    return [("stem", f[0]), ("stage1", f[1]), ("stage2", nn.Sequential(f[2], f[3])),
            ("stage3", nn.Sequential(f[4], f[5])), ("stage4", nn.Sequential(f[6], f[7])),
            ("head", nn.Sequential(m.avgpool, m.classifier))]


def _vgg(m: tvm.VGG) -> list[tuple[str, nn.Module]]:
    blocks, current = [], []
    for layer in m.features:  # a block ends at each max-pool
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    out = [(f"block{i}", b) for i, b in enumerate(blocks, start=1)]
    return out + [("head", nn.Sequential(m.avgpool, nn.Flatten(1), m.classifier))]


def stages(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """The model's stages, input to output, as an ordered `{name: module}` dict.

    ResNet: stem, layer1..layer4, head. MobileNet: stem, block1..blockN, conv_head, head.
    EfficientNet: stem, stage1..stage7, conv_head, head. ConvNeXt: stem, stage1..stage4,
    head. VGG: block1..block5, head. An `nn.Sequential` model: its children by name.
    The last stage is always the classifier head, named `"head"` (or the last child).
    """
    kind = family(model)
    if kind == "resnet":
        parts = _resnet(model)
    elif kind == "mobilenet":
        parts = _blocks_then_head(model, "block")
    elif kind == "efficientnet":
        parts = _blocks_then_head(model, "stage")
    elif kind == "convnext":
        parts = _convnext(model)
    elif kind == "vgg":
        parts = _vgg(model)
    else:
        parts = list(model.named_children())
    return OrderedDict(parts)


def stage_names(model: nn.Module) -> list[str]:
    """The stage names of `model`, input to output (see `stages`)."""
    return list(stages(model))


ARCHS = ("resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
         "efficientnet_b0", "convnext_tiny", "vgg16")
"""The architectures `ftlib.load_model` builds (their stages are known to `stages`)."""


def check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer (the number of classes), "
                         f"not {num_classes!r}.")


def _classifier_slot(model: nn.Module) -> tuple[nn.Module, str, str]:
    """(parent module, child name, path as a student writes it) of the final classifier layer.

    The one place that knows where each family keeps its classifier: `replace_head`, the
    checkers' messages and `classifier_path` read it.
    """
    if isinstance(getattr(model, "fc", None), nn.Module):  # ResNet (also once a student replaced it)
        return model, "fc", "model.fc"
    for attr in ("heads", "classifier"):
        parent = getattr(model, attr, None)
        if isinstance(parent, nn.Sequential) and len(parent) > 0:
            return parent, list(parent.named_children())[-1][0], f"model.{attr}[-1]"
    if isinstance(model, nn.Sequential) and len(model) > 0:
        return model, list(model.named_children())[-1][0], "the last layer (model[-1])"
    raise TypeError(f"Cannot find the classifier of {type(model).__name__}: expected `fc`, "
                    "`classifier[-1]`, `heads[-1]` or an nn.Sequential ending in nn.Linear.")


def classifier_path(model: nn.Module) -> str:
    """Where the final classifier layer sits, as code: "model.fc", "model.classifier[-1]", ..."""
    return _classifier_slot(model)[2]


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the final classifier layer for a fresh `nn.Linear(in_features, num_classes)`.

    ResNet: `model.fc`; MobileNet, EfficientNet, ConvNeXt, VGG: `model.classifier[-1]`;
    ViT: `model.heads[-1]`; an `nn.Sequential` ending in a Linear: its last layer. The new
    layer is on the old one's device and dtype. Returns it. Used in lessons 03 and 08.
    """
    check_num_classes(num_classes)
    parent, name, _ = _classifier_slot(model)
    old = getattr(parent, name)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"The last classifier layer is {type(old).__name__}, not nn.Linear.")
    new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, name, new)
    return new
