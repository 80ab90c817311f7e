"""The offline stand-in for lesson 12: scenes of a few object classes with exact boxes.

Each image is a cluttered background (smooth coloured noise and distractors: bars, blobs,
squares and thin lines) with 1 to 4 objects of three classes, told apart by their shape only:

| class      | shape                                          |
| ---------- | ---------------------------------------------- |
| `ring`     | an elliptical ring with a hole                 |
| `cross`    | a plus sign, arms of random length and width   |
| `triangle` | a filled triangle, apex up                     |

Every object and every distractor takes its colour from the same distribution, and half of
the objects are striped, so no colour statistic tells the classes apart, nor objects from
clutter. Objects vary in position and size (10 to 48 px on a 128 px image, so some are
small), may overlap each other (box IoU at most 0.25), and thin bars drawn last occlude some
of them. Boxes are exact: they come from the drawing's geometry and cover the whole object,
hidden parts included. Nothing here draws fractals or uses iterated function systems, the
formula the offline backbone was pretrained on (`data_scripts/pretrain_backbone.py`).
Deterministic by seed. Used when lesson 12 runs offline.
"""

from __future__ import annotations

import torch

from ..detection import DetectionSet, DetectionSplits, box_iou
from .standins import _blur, _fbm

__all__ = ["DETECTION_CLASSES", "make_detection_standin", "draw_scene"]

DETECTION_CLASSES = ["ring", "cross", "triangle"]


def _colour(g: torch.Generator) -> torch.Tensor:
    """A random saturated-or-dull RGB colour (3, 1, 1) in [0, 1]: one distribution for everything."""
    return torch.rand(3, 1, 1, generator=g) ** (0.5 + torch.rand(1, generator=g))


def _soft(d: torch.Tensor) -> torch.Tensor:
    """Coverage of a pixel from its signed distance d (px) to a shape's edge: 1 inside, 0 outside."""
    return torch.sigmoid(-d / 0.6)


def _rect_d(y, x, cy, cx, hh, hw):
    return torch.maximum((y - cy).abs() - hh, (x - cx).abs() - hw)


def _ring(y, x, cy, cx, h, w, g):
    ry, rx = h / 2, w / 2
    r = torch.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    thickness = 0.25 + 0.2 * float(torch.rand(1, generator=g))   # as a share of the radius
    return _soft(((r - (1 - thickness / 2)).abs() - thickness / 2) * min(ry, rx))


def _cross(y, x, cy, cx, h, w, g):
    arm = 0.22 + 0.16 * float(torch.rand(1, generator=g))
    return _soft(torch.minimum(_rect_d(y, x, cy, cx, h / 2, w * arm / 2), _rect_d(y, x, cy, cx, h * arm / 2, w / 2)))


def _triangle(y, x, cy, cx, h, w, g):
    top, bottom = cy - h / 2, cy + h / 2
    slope = (w / 2) / h                     # half-width grows by `slope` per pixel down
    side = ((x - cx).abs() - slope * (y - top)) / (1 + slope ** 2) ** 0.5
    return _soft(torch.maximum(torch.maximum(top - y, y - bottom), side))


_SHAPES = {1: _ring, 2: _cross, 3: _triangle}


def _texture(g: torch.Generator, y, x, colour: torch.Tensor) -> torch.Tensor:
    """Plain colour, or stripes of the colour and a second one (half the time)."""
    if torch.rand(1, generator=g) < 0.5:
        return colour
    angle, period = float(torch.rand(1, generator=g)) * 3.1416, 3 + 4 * float(torch.rand(1, generator=g))
    phase = torch.sin((x * torch.cos(torch.tensor(angle)) + y * torch.sin(torch.tensor(angle))) * 6.283 / period)
    return torch.where(phase > 0, colour, _colour(g))


def _paint(canvas, mask, paint):
    return canvas * (1 - mask) + paint * mask


def _clutter(g: torch.Generator, canvas, y, x, size: int):
    """Distractors: blobs, squares, long bars and thin lines, none of them a class's shape."""
    for _ in range(int(torch.randint(4, 9, (1,), generator=g))):
        cy, cx = (torch.rand(2, generator=g) * size).tolist()
        kind = int(torch.randint(0, 4, (1,), generator=g))
        s = 6 + 24 * float(torch.rand(1, generator=g))
        if kind == 0:   # blob
            mask = _soft((torch.sqrt((y - cy) ** 2 + ((x - cx) * 0.6) ** 2) - s / 2))
        elif kind == 1:   # square
            mask = _soft(_rect_d(y, x, cy, cx, s / 2, s / 2))
        else:   # a long bar (kind 2) or a thin line (kind 3), at any angle
            a = float(torch.rand(1, generator=g)) * 3.1416
            c, si = torch.cos(torch.tensor(a)), torch.sin(torch.tensor(a))
            u, v = (x - cx) * c + (y - cy) * si, -(x - cx) * si + (y - cy) * c
            mask = _soft(torch.maximum(u.abs() - 2 * s, v.abs() - (s / 5 if kind == 2 else 0.7)))
        canvas = _paint(canvas, mask, _texture(g, y, x, _colour(g)))
    return canvas


def draw_scene(g: torch.Generator, size: int = 128) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One scene: (image uint8 (3, size, size), target dict with boxes (K, 4) and labels (K,))."""
    t = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(t, t, indexing="ij")
    base = torch.stack([_fbm(g, 1, size)[0] for _ in range(3)])
    canvas = (0.45 + 0.12 * base + 0.25 * (torch.rand(3, 1, 1, generator=g) - 0.5)).clamp(0, 1)
    canvas = _clutter(g, canvas, y, x, size)
    boxes, labels = [], []
    for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
        for _try in range(20):
            s = size * (0.1 + 0.32 * float(torch.rand(1, generator=g)) ** 1.3)
            h, w = s, s * (0.7 + 0.6 * float(torch.rand(1, generator=g)))
            cy = h / 2 + 1 + (size - h - 2) * float(torch.rand(1, generator=g))
            cx = w / 2 + 1 + (size - w - 2) * float(torch.rand(1, generator=g))
            box = torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])
            if not boxes or box_iou(box, torch.stack(boxes)).max() <= 0.25:
                break
        else:
            continue
        label = int(torch.randint(1, 4, (1,), generator=g))
        mask = _SHAPES[label](y, x, cy, cx, h, w, g)
        canvas = _paint(canvas, mask, _texture(g, y, x, _colour(g)))
        boxes.append(box[0])
        labels.append(label)
    for _ in range(int(torch.randint(0, 3, (1,), generator=g))):   # occluders, drawn last
        cy, cx = (torch.rand(2, generator=g) * size).tolist()
        vertical = bool(torch.rand(1, generator=g) < 0.5)
        hh, hw = (size * 0.3, 1.5 + 2 * float(torch.rand(1, generator=g)))[:: 1 if vertical else -1]
        canvas = _paint(canvas, _soft(_rect_d(y, x, cy, cx, hh, hw)), _colour(g))
    canvas = _blur(canvas[None], 0.6)[0] + 0.02 * torch.randn(3, size, size, generator=g)
    image = (canvas.clamp(0, 1) * 255).round().to(torch.uint8)
    return image, {"boxes": torch.stack(boxes), "labels": torch.tensor(labels, dtype=torch.int64)}


def _draw_set(seed: int, n: int, size: int) -> DetectionSet:
    g = torch.Generator().manual_seed(seed)
    scenes = [draw_scene(g, size) for _ in range(n)]
    return DetectionSet(torch.stack([im for im, _ in scenes]), [t for _, t in scenes], list(DETECTION_CLASSES))


def make_detection_standin(n_train: int = 64, n_test: int = 64, *, size: int = 128, seed: int = 0) -> DetectionSplits:
    """Train and test scenes drawn from separate seeded streams, so the test images do not depend
    on n_train. Images uint8 (3, size, size); see the module for what is drawn. Lesson 12."""
    train = _draw_set(2 * seed, n_train, size)
    test = _draw_set(2 * seed + 1, n_test, size)
    return DetectionSplits(train, test, f"offline stand-in: shapes on clutter, {size} px")
