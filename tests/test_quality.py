"""ftlib.quality: duplicates across splits and the class balance, on seeded synthetic images."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ftlib.quality import find_duplicates, imbalance_ratio, thumbnails


def images(n: int, seed: int = 0) -> torch.Tensor:
    """n smooth random uint8 images (n, 3, 32, 32): distinct, like photos rather than noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return (torch.nn.functional.interpolate(coarse, size=32, mode="bicubic").clamp(0, 1) * 255).to(torch.uint8)


def resaved(image: torch.Tensor, quality: int = 85, brighter: float = 1.0) -> torch.Tensor:
    """A JPEG copy of a uint8 (3, H, W) image, optionally brighter."""
    array = np.clip(image.permute(1, 2, 0).numpy().astype(np.float32) * brighter, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1)


def test_thumbnails_are_unit_vectors_that_ignore_brightness():
    x = images(3)
    t = thumbnails(x, size=8)
    assert t.shape == (3, 3 * 8 * 8) and torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)
    brighter = thumbnails((x.float() * 0.5 + 20), size=8)
    assert torch.allclose((t * brighter).sum(1), torch.ones(3), atol=1e-5)


def test_a_flat_image_is_similar_to_nothing():
    flat = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    assert thumbnails(flat).abs().sum() == 0
    assert find_duplicates(flat, torch.cat([flat, images(2)])) == []


def test_copies_across_splits_are_found_and_distinct_images_are_not():
    train = images(40, seed=1)
    test = torch.cat([images(20, seed=2), train[3:4], resaved(train[7], 85)[None], resaved(train[9], 90, 0.8)[None]])
    pairs = find_duplicates(test, train)
    assert {(i, j) for i, j, _ in pairs} == {(20, 3), (21, 7), (22, 9)}
    assert pairs[0][:2] == (20, 3) and pairs[0][2] == pytest.approx(1.0, abs=1e-5)  # most similar first


def test_within_one_set_each_pair_once():
    x = images(10)
    x = torch.cat([x, x[2:3], x[5:6]])
    assert [(i, j) for i, j, _ in find_duplicates(x)] in ([(2, 10), (5, 11)], [(5, 11), (2, 10)])


def test_chunks_give_the_same_pairs():
    x = images(30)
    x = torch.cat([x, x[::7]])
    assert find_duplicates(x, chunk=4) == find_duplicates(x)


def test_imbalance_ratio():
    assert imbalance_ratio([10, 20, 5]) == 4.0
    assert imbalance_ratio([3, 3]) == 1.0
    assert imbalance_ratio([4, 0]) == float("inf")
    with pytest.raises(ValueError):
        imbalance_ratio([])


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        thumbnails(torch.zeros(3, 8, 8))
