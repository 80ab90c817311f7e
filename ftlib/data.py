"""Data: the in-memory image data set type every loader returns, and the splits container.

Images are decoded once and kept as uint8 tensors (N, C, H, W), so an epoch is never
bound by JPEG decoding; a torchvision transforms v2 pipeline runs per item. Real data
sets and the offline stand-ins both return a `DataSplits`. Used from lesson 02 on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import Dataset

__all__ = ["TensorImageDataset", "DataSplits", "CLASS_NAMES"]


class TensorImageDataset(Dataset):
    """uint8 images `(N, C, H, W)` with int64 labels `(N,)`; `transform` runs per item.

    Without a transform an item is `(image float32 in [0, 1], label)`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                 transform: Callable | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.class_names, self.transform = list(class_names), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]
        image = self.transform(image) if self.transform else image.float() / 255
        return image, int(self.labels[i])

    def with_transform(self, transform: Callable | None) -> "TensorImageDataset":
        """The same images (shared memory) with another transform."""
        return TensorImageDataset(self.images, self.labels, self.class_names, transform)

    def subset(self, per_class: int, seed: int = 0) -> "TensorImageDataset":
        """At most `per_class` images of each class, drawn with `seed`, in a seeded order."""
        g = torch.Generator().manual_seed(seed)
        keep = []
        for c in range(len(self.class_names)):
            idx = (self.labels == c).nonzero().flatten()
            keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
        order = torch.cat(keep)
        order = order[torch.randperm(len(order), generator=g)]
        return TensorImageDataset(self.images[order], self.labels[order], self.class_names, self.transform)

    def class_counts(self) -> list[int]:
        """Number of images per class, in class order."""
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()


@dataclass
class DataSplits:
    """train / val / test splits of one data set, with where it came from.

    `source` is `"real"` or `"standin"`; `description` names the data set, its licence and
    image size, and is what the lessons print.
    """
    name: str
    source: str
    description: str
    class_names: list[str]
    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: which data set, which world, split sizes."""
        sizes = ", ".join(f"{k} {len(getattr(self, k))}" for k in ("train", "val", "test"))
        shape = "x".join(str(s) for s in self.train.images.shape[1:])
        return f"{self.name} [{self.source}] {self.description}: {sizes}; {len(self.class_names)} classes; images {shape}"


# Class names shared by each real data set and its offline stand-in (same order, same labels).
CLASS_NAMES: dict[str, list[str]] = {
    # PneumoniaMNIST (MedMNIST v2): label 0 normal, 1 pneumonia.
    "medical": ["normal", "pneumonia"],
    # EuroSAT RGB, in torchvision's (alphabetical folder) order.
    "satellite": ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                  "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"],
    # Fashion-MNIST (Zalando product images, MIT licence), in its label order.
    "retail": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
