"""Data quality: duplicate images across splits (a leak), and how balanced the classes are.

A copy of a training image in the test split is a leak: the model is scored on an image it
has learned, and the test accuracy is too high. Copies are rarely byte-for-byte equal; a
re-saved JPEG or a resized version differs in every pixel. `find_duplicates` compares small
thumbnails instead, each with its own mean brightness removed and scaled to length 1, so a
copy that is re-encoded, resized, or brighter or darker still scores close to 1.

    >>> pairs = find_duplicates(splits.test.images, splits.train.images)
    >>> [(i, j, round(s, 3)) for i, j, s in pairs[:3]]     # test index, train index, similarity
    >>> imbalance_ratio(splits.train.class_counts())       # largest class / smallest class

Pure computation on uint8 tensors, no plotting. Used in lesson 08 and the projects.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["thumbnails", "find_duplicates", "imbalance_ratio", "DUPLICATE_THRESHOLD"]

DUPLICATE_THRESHOLD = 0.99
"""Similarity (cosine of 32 px colour thumbnails) from which two images count as copies. On the
retail stand-ins the closest pairs of distinct images reached 0.985, and copies re-saved as JPEG
(quality 85 to 95, resized or not) scored 0.994 or more; check it on your own data."""


def thumbnails(images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """One unit vector per image: (N, 3, H, W) uint8 or float -> (N, 3 * size * size) float32.

    Each image is averaged down to `size` x `size` pixels, its mean value is subtracted and the
    result is scaled to length 1, so the dot product of two thumbnails is a similarity in
    [-1, 1] that ignores a change of overall brightness or contrast. A flat image (one colour)
    becomes the zero vector, similar to nothing.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    small = F.adaptive_avg_pool2d(images.float(), size).flatten(1)
    centred = small - small.mean(dim=1, keepdim=True)
    return centred / centred.norm(dim=1, keepdim=True).clamp(min=1e-6)


def find_duplicates(images: torch.Tensor, others: torch.Tensor | None = None, *,
                    threshold: float = DUPLICATE_THRESHOLD, size: int = 32,
                    chunk: int = 1024) -> list[tuple[int, int, float]]:
    """Pairs of images whose thumbnails' similarity is at least `threshold`, most similar first.

    `images`, `others`: (N, C, H, W) and (M, C, H, W), uint8 or float, the same C. With
    `others`, each pair `(i, j, similarity)` is image i of `images` and image j of `others`
    (e.g. test against train: a leak); without it, pairs within `images` with i < j.
    Exact copies score 1.0 (up to rounding). Mirrored or rotated copies are not found.
    The comparison runs `chunk` rows at a time, so memory stays at chunk x M floats.
    """
    a = thumbnails(images, size)
    b = a if others is None else thumbnails(others, size)
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(a), chunk):
        sims = a[start:start + chunk] @ b.T                      # (chunk, M)
        if others is None:  # keep i < j only
            rows = torch.arange(start, start + len(sims))[:, None]
            sims = sims.masked_fill(torch.arange(len(b))[None, :] <= rows, -2.0)
        i, j = (sims >= threshold).nonzero(as_tuple=True)
        pairs += [(start + int(r), int(c), float(sims[r, c])) for r, c in zip(i, j)]
    return sorted(pairs, key=lambda p: -p[2])


def imbalance_ratio(counts: Sequence[int]) -> float:
    """The largest class count divided by the smallest: 1.0 is perfectly balanced.

    `counts`: images per class (e.g. `dataset.class_counts()`); a class with no image gives inf.
    """
    counts = [int(c) for c in counts]
    if not counts:
        raise ValueError("no classes to count")
    return float("inf") if min(counts) == 0 else max(counts) / min(counts)
