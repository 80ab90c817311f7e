"""Tiny seeded models and data shared by the training and optimisation tests."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def tiny_model(seed: int = 0) -> nn.Sequential:
    """Three stages (stem, body, head): conv+BN, conv+BN+pool, linear."""
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        body=nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        head=nn.Linear(8, 3)))


def tiny_data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, 8, 8) images and 3-class labels; the label's channel is brighter: learnable."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    x[torch.arange(n), y] += 1.0
    return x, y


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 8) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)
