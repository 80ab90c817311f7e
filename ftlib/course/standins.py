"""Offline stand-ins: procedural images for the three project domains, drawn by code.

When the real data sets are absent (CI, a classroom without network) the lessons train on
these. Each generator returns a `DataSplits` with the real data set's class names and
split layout (train / val / test), uint8 images `(N, 3, size, size)`:

| domain      | real data set      | what the stand-in draws                                        |
| ----------- | ------------------ | -------------------------------------------------------------- |
| `medical`   | PneumoniaMNIST     | grayscale chest X-rays: lungs, ribs, spine, heart; pneumonia adds patchy opacities |
| `satellite` | EuroSAT RGB        | 10 land-cover tiles seen from above (fields, forest, roads, houses, water, ...) |
| `retail`    | Fashion-MNIST      | 10 product photos (garments, shoes, bags) on a plain background |

Every image varies in pose, size, colour, texture, exposure and noise, so no single pixel
statistic (mean brightness, channel means, contrast) separates the classes. The drawing
uses smooth noise, ellipses, boxes and stripes; it shares nothing with the fractals the
offline backbone was pretrained on (`data_scripts/pretrain_backbone.py`). Output is
deterministic by seed. Used whenever a lesson runs offline (lessons 02-11).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..data import CLASS_NAMES, DataSplits, TensorImageDataset

__all__ = ["make_standin", "STANDIN_DOMAINS", "CI_PER_CLASS"]

STANDIN_DOMAINS = ("medical", "satellite", "retail")
CI_PER_CLASS = (100, 30, 60)  # train, val, test images per class: the default, and the CI size

# ---------------------------------------------------------------------------------------------
# Drawing primitives. Shapes are (N, H, W) float32 masks in [0, 1]; parameters are (N, 1, 1).


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1]: (y, x), each (1, size, size)."""
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(t, t, indexing="ij")
    return y[None], x[None]


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """n uniform numbers in [lo, hi), shaped (n, 1, 1) to broadcast over an image."""
    return lo + (hi - lo) * torch.rand(n, 1, 1, generator=g)


def _noise(g: torch.Generator, n: int, size: int, cells: int) -> torch.Tensor:
    """Smooth random field (n, size, size), about N(0, 1): a cells x cells grid upsampled bicubically."""
    coarse = torch.randn(n, 1, cells + 3, cells + 3, generator=g)
    fine = F.interpolate(coarse, size=(size + 3 * size // cells,) * 2, mode="bicubic", align_corners=False)
    off = (3 * size // cells) // 2
    return fine[:, 0, off:off + size, off:off + size]


def _fbm(g: torch.Generator, n: int, size: int, cells: tuple[int, ...] = (3, 6, 12, 24)) -> torch.Tensor:
    """Sum of smooth fields at several scales, coarse ones weighted more; (n, size, size), std about 1."""
    field = sum(_noise(g, n, size, c) / (i + 1) for i, c in enumerate(cells))
    return field / field.std(dim=(1, 2), keepdim=True).clamp(min=1e-6)


def _soft(d: torch.Tensor, width: float) -> torch.Tensor:
    """A soft step: 1 where d < 0 (inside), 0 outside, over about `width` units."""
    return torch.sigmoid(-d / width)


def _rotate(y: torch.Tensor, x: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates rotated by `angle` radians (n, 1, 1)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return c * y - s * x, s * y + c * x


def _ellipse(y, x, cy, cx, ry, rx, width=0.03):
    """Soft ellipse mask."""
    return _soft(torch.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) - 1, width / torch.as_tensor(ry).clamp(min=0.05))


def _box(y, x, y0, y1, x0, x1, width=0.02):
    """Soft axis-aligned rectangle mask (use rotated coordinates for a rotated one)."""
    d = torch.maximum(torch.maximum(y0 - y, y - y1), torch.maximum(x0 - x, x - x1))
    return _soft(d, width)


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) with std `sigma` pixels (separable, reflect padding)."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(img.dtype)
    c = img.shape[1]
    img = F.conv2d(F.pad(img, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(img, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Float (N, 3, H, W) in [0, 1] to uint8."""
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _paint(canvas: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Alpha-blend `colour` ((N, 3, 1, 1) or (N, 3, H, W)) over canvas (N, 3, H, W) where mask (N, H, W) is 1."""
    m = mask[:, None]
    return canvas * (1 - m) + colour * m


# ---------------------------------------------------------------------------------------------
# Medical: chest X-ray-like, grayscale. Class 0 normal, 1 pneumonia (PneumoniaMNIST's labels).


def _chest(g: torch.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal chest radiographs: (image (n, size, size) in about [0, 1], lung mask (n, size, size))."""
    y, x = _grid(size)
    y, x = _rotate(y, x, _u(g, n, -0.1, 0.1))
    zoom = _u(g, n, 0.85, 1.05)
    y, x = (y - _u(g, n, -0.06, 0.06)) / zoom, (x - _u(g, n, -0.06, 0.06)) / zoom
    body = _ellipse(y, x, 0.35, 0.0, _u(g, n, 1.3, 1.5), _u(g, n, 0.85, 1.0), 0.06)
    lung_ry, lung_rx, gap = _u(g, n, 0.55, 0.68), _u(g, n, 0.28, 0.36), _u(g, n, 0.36, 0.42)
    lungs = (_ellipse(y, x, -0.1, -gap, lung_ry, lung_rx) + _ellipse(y, x, -0.1, gap, lung_ry, lung_rx)).clamp(max=1)
    lungs = lungs * _soft(y - (_u(g, n, 0.3, 0.45) + 0.35 * x.abs()), 0.05)          # diaphragm domes
    heart = _ellipse(y, x, _u(g, n, 0.18, 0.3), _u(g, n, 0.08, 0.18), _u(g, n, 0.2, 0.28), _u(g, n, 0.24, 0.34), 0.06)
    spine = _soft(x.abs() - _u(g, n, 0.07, 0.11), 0.03)
    rib_phase = (y - _u(g, n, 0.3, 0.55) * x.abs() + 0.35 * x ** 2) / _u(g, n, 0.17, 0.23) + _u(g, n, 0, 1)
    ribs = torch.relu(torch.cos(2 * math.pi * rib_phase)) ** 2 * (x.abs() > 0.1)
    clavicle = _soft((y + 0.7 - 0.3 * x.abs()).abs() - 0.035, 0.02) * _soft(x.abs() - 0.65, 0.05)
    tissue = 0.55 + 0.06 * _fbm(g, n, size) * (1 - 0.6 * lungs)  # healthy lungs: clearer than soft tissue
    img = 0.06 + body * tissue
    img = img - lungs * _u(g, n, 0.32, 0.45) * (1 - heart)
    img = img + 0.12 * heart + 0.22 * spine * body + 0.16 * ribs * body * (0.3 + 0.7 * lungs)
    img = img + 0.2 * clavicle * body + 0.05 * lungs * _noise(g, n, size, 20)  # vessels
    return img, lungs * (1 - heart)


def _opacities(g: torch.Generator, n: int, size: int, lungs: torch.Tensor) -> torch.Tensor:
    """Pneumonia-like patchy consolidation inside the lungs, from faint to dense: (n, size, size) >= 0."""
    y, _ = _grid(size)
    patches = torch.sigmoid((_fbm(g, n, size, (4, 8, 16)) - _u(g, n, -0.5, 0.7)) * 6)
    side = torch.rand(n, 1, 1, generator=g)             # one lung, the other, or both
    x = _grid(size)[1]
    which = torch.where(side < 0.35, (x < 0).float(), torch.where(side < 0.7, (x > 0).float(), torch.ones_like(x)))
    lower = 0.6 + 0.4 * torch.sigmoid((y - _u(g, n, -0.4, 0.2)) * 5)   # mostly lower zones
    return patches * lungs * which * lower * _u(g, n, 0.25, 0.55)


def _medical(g: torch.Generator, label: int, n: int, size: int) -> torch.Tensor:
    """n medical images of class `label`, float (n, 3, size, size) in [0, 1]."""
    img, lungs = _chest(g, n, size)
    if label == 1:
        img = img + _opacities(g, n, size, lungs)
    img = _blur(img[:, None], 0.8)[:, 0]
    gamma, gain, offset = _u(g, n, 0.7, 1.4), _u(g, n, 0.8, 1.2), _u(g, n, -0.12, 0.12)
    img = gain * img.clamp(min=0) ** gamma + offset
    img = img + _u(g, n, 0.01, 0.05) * torch.randn(img.shape, generator=g)
    return img[:, None].expand(n, 3, size, size)


# ---------------------------------------------------------------------------------------------
# Satellite: land-cover tiles seen from above, EuroSAT's 10 classes in its (alphabetical) order.

_GREEN, _DARK_GREEN, _DRY = (0.33, 0.42, 0.24), (0.14, 0.24, 0.13), (0.55, 0.5, 0.36)
_SOIL, _GREY, _WATER = (0.5, 0.4, 0.31), (0.52, 0.52, 0.52), (0.1, 0.18, 0.24)


def _rgb(g: torch.Generator, n: int, base: tuple[float, float, float], jitter: float) -> torch.Tensor:
    """n colours (n, 3, 1, 1) around `base`, each channel moved by up to +-jitter."""
    return (torch.tensor(base).view(1, 3, 1, 1) + jitter * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)).clamp(0, 1)


def _lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per-cell colours: table (n, K, 3), idx (n, H, W) long in [0, K) -> (n, 3, H, W)."""
    n, h, w = idx.shape
    out = table.gather(1, idx.reshape(n, -1, 1).expand(-1, -1, 3))
    return out.view(n, h, w, 3).permute(0, 3, 1, 2)


def _parcels(g: torch.Generator, n: int, size: int, lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    """A rotated grid of rectangular cells (fields, building plots).

    Returns (cell index (n, H, W) long in [0, 256), position inside the cell fu, fv in [0, 1),
    rotated coordinates u, v in about [-1.5, 1.5]), each (n, H, W).
    """
    y, x = _grid(size)
    u, v = _rotate(y, x, _u(g, n, 0, math.pi))
    su, sv = _u(g, n, lo, hi), _u(g, n, lo, hi)
    fu, fv = (u + 1.5 + _u(g, n, 0, 1)) / su, (v + 1.5 + _u(g, n, 0, 1)) / sv
    idx = fu.floor().clamp(0, 15).long() * 16 + fv.floor().clamp(0, 15).long()
    return idx, fu - fu.floor(), fv - fv.floor(), u, v


def _crop_table(g: torch.Generator, n: int, colours: list[tuple[float, float, float]], jitter: float) -> torch.Tensor:
    """(n, 256, 3): each field gets one of `colours`, jittered."""
    pick = torch.randint(len(colours), (n, 256), generator=g)
    return torch.tensor(colours)[pick] + jitter * (2 * torch.rand(n, 256, 3, generator=g) - 1)


def _vegetation(g: torch.Generator, n: int, size: int, base, other, cells=(4, 8, 16, 32), amount=0.5) -> torch.Tensor:
    """Mottled cover (n, 3, H, W): a mix of two colours driven by multi-scale noise, plus fine grain."""
    mix = torch.sigmoid(_fbm(g, n, size, cells) * 1.5 + _u(g, n, -1, 1))[:, None] * amount
    grain = 0.03 * _noise(g, n, size, 32)[:, None]
    return _rgb(g, n, base, 0.06) * (1 - mix) + _rgb(g, n, other, 0.06) * mix + grain


def _sat_annual_crop(g, n, size):
    idx, _, _, u, v = _parcels(g, n, size, 0.35, 0.9)
    table = _crop_table(g, n, [_GREEN, _SOIL, _DRY, (0.45, 0.5, 0.3), (0.6, 0.55, 0.45)], 0.07)
    rows = 0.04 * torch.cos(v * _u(g, n, 40, 70))[:, None]
    return _lookup(table, idx) * (1 + rows) + 0.02 * _noise(g, n, size, 24)[:, None]


def _sat_forest(g, n, size):
    crowns = _vegetation(g, n, size, _DARK_GREEN, (0.1, 0.17, 0.1), (8, 16, 32), 0.7)
    return crowns * (1 + 0.25 * _noise(g, n, size, 32)[:, None])


def _sat_herbaceous(g, n, size):
    return _vegetation(g, n, size, _GREEN, _DRY, (3, 6, 12, 24), 0.8) * (1 + 0.1 * _noise(g, n, size, 24)[:, None])


def _road_mask(g, n, size, width_lo, width_hi, curve=0.0):
    """A band across the tile (straight, or wavy with `curve`), its soft mask (n, H, W) and distance."""
    y, x = _grid(size)
    u, v = _rotate(y, x, _u(g, n, 0, math.pi))
    centre = _u(g, n, -0.5, 0.5) + curve * _u(g, n, 0.3, 1) * torch.sin(u * _u(g, n, 2, 5) + _u(g, n, 0, 6.3))
    dist = (v - centre).abs()
    half = _u(g, n, width_lo, width_hi)
    return _soft(dist - half, 0.02), dist


def _sat_highway(g, n, size):
    ground = _sat_annual_crop(g, n, size) * 0.5 + _sat_herbaceous(g, n, size) * 0.5
    road, dist = _road_mask(g, n, size, 0.03, 0.08)
    verge = _soft(dist - 0.16, 0.03) - road
    img = _paint(ground, verge * 0.6, _rgb(g, n, _DRY, 0.08))
    img = _paint(img, road, _rgb(g, n, (0.55, 0.55, 0.57), 0.15))
    side, _ = _road_mask(g, n, size, 0.01, 0.025)
    return _paint(img, side * (torch.rand(n, 1, 1, generator=g) < 0.5), _rgb(g, n, (0.5, 0.48, 0.45), 0.1))


def _buildings(g, n, size, lo, hi, fill, roofs, jitter):
    """Rectangular roofs, one per plot of a rotated grid: (roof colour (n, 3, H, W), roof mask (n, H, W))."""
    idx, fu, fv, _, _ = _parcels(g, n, size, lo, hi)
    table = _crop_table(g, n, roofs, jitter)
    present = (torch.rand(n, 256, generator=g) < fill).float().gather(1, idx.view(n, -1)).view_as(idx)
    margin = (0.1 + 0.25 * torch.rand(n, 256, 2, generator=g)).gather(1, idx.view(n, -1, 1).expand(-1, -1, 2))
    mu, mv = margin[..., 0].view_as(fu), margin[..., 1].view_as(fv)
    inside = _box(fu, fv, mu, 1 - mu, mv, 1 - mv, 0.04)
    return _lookup(table, idx), present * inside


def _sat_industrial(g, n, size):
    ground = _rgb(g, n, _GREY, 0.08) + 0.05 * _fbm(g, n, size, (4, 8, 16))[:, None]
    roof, mask = _buildings(g, n, size, 0.2, 0.55, 0.7, [(0.7, 0.7, 0.72), (0.5, 0.52, 0.55), (0.8, 0.78, 0.75),
                                                          (0.4, 0.45, 0.5), (0.6, 0.45, 0.4)], 0.08)
    return _paint(ground, mask, roof) + 0.03 * _noise(g, n, size, 32)[:, None]


def _sat_pasture(g, n, size):
    return _vegetation(g, n, size, (0.36, 0.46, 0.26), (0.42, 0.5, 0.3), (2, 4, 8), 0.6)


def _sat_permanent_crop(g, n, size):
    idx, _, _, u, v = _parcels(g, n, size, 0.5, 1.2)
    table = _crop_table(g, n, [(0.4, 0.42, 0.28), (0.5, 0.45, 0.33), (0.35, 0.4, 0.25)], 0.05)
    trees = torch.relu(torch.cos(u * _u(g, n, 45, 75)) * torch.cos(v * _u(g, n, 30, 75)))[:, None]
    return _lookup(table, idx) * (1 - 0.35 * trees) + 0.02 * _noise(g, n, size, 24)[:, None]


def _sat_residential(g, n, size):
    gardens = _vegetation(g, n, size, _GREEN, _DARK_GREEN, (8, 16), 0.5)
    roof, mask = _buildings(g, n, size, 0.08, 0.16, 0.75, [(0.6, 0.35, 0.3), (0.55, 0.5, 0.5),
                                                            (0.7, 0.45, 0.35), (0.45, 0.45, 0.5)], 0.08)
    street, _ = _road_mask(g, n, size, 0.02, 0.04)
    img = _paint(gardens, mask, roof)
    return _paint(img, street, _rgb(g, n, (0.5, 0.5, 0.5), 0.08))


def _sat_river(g, n, size):
    ground = _vegetation(g, n, size, _GREEN, _DARK_GREEN, (4, 8, 16), 0.6)
    water, dist = _road_mask(g, n, size, 0.05, 0.18, curve=0.35)
    bank = _soft(dist - 0.25, 0.05) - water
    img = _paint(ground, bank * 0.5, _rgb(g, n, _DARK_GREEN, 0.05))
    return _paint(img, water, _rgb(g, n, (0.16, 0.24, 0.28), 0.08) + 0.02 * _noise(g, n, size, 16)[:, None])


def _sat_sea_lake(g, n, size):
    y, x = _grid(size)
    water = _rgb(g, n, _WATER, 0.07) * (1 + 0.12 * _fbm(g, n, size, (2, 4, 8))[:, None])
    shore_side = _rotate(y, x, _u(g, n, 0, 2 * math.pi))[0] + 0.15 * _fbm(g, n, size, (3, 6))
    land = _soft(_u(g, n, 0.4, 2.5) - shore_side, 0.05)        # often no shore at all
    return _paint(water, land, _vegetation(g, n, size, _GREEN, _DRY, (4, 8, 16), 0.6))


_SATELLITE = [_sat_annual_crop, _sat_forest, _sat_herbaceous, _sat_highway, _sat_industrial,
              _sat_pasture, _sat_permanent_crop, _sat_residential, _sat_river, _sat_sea_lake]


def _mixed_in(g: torch.Generator, label: int, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real tiles are rarely pure: for half of the n tiles, another class's scene and a soft
    blob mask covering about 15-35 % of the tile; returns (scenes (n, 3, H, W), mask (n, H, W))."""
    other = torch.randint(len(_SATELLITE) - 1, (n,), generator=g)
    other = other + (other >= label).long()                         # any class but `label`
    scenes = torch.zeros(n, 3, size, size)
    for c in other.unique().tolist():
        idx = (other == c).nonzero().flatten()
        scenes[idx] = _SATELLITE[c](g, len(idx), size)
    mask = torch.sigmoid((_fbm(g, n, size, (2, 4)) - _u(g, n, 0.4, 1.0)) * 6)
    return scenes, mask * (torch.rand(n, 1, 1, generator=g) < 0.5)


def _satellite(g: torch.Generator, label: int, n: int, size: int) -> torch.Tensor:
    """n satellite tiles of class `label`, float (n, 3, size, size) in [0, 1].

    The class's scene covers most of the tile; half the tiles also contain a patch of
    another land cover. Then: a random flip, sun/exposure gain, a colour cast (season,
    atmosphere), haze, slight blur and sensor noise, so colour alone does not tell the class.
    """
    img = _SATELLITE[label](g, n, size)
    img = _paint(img, *_mixed_in(g, label, n, size)[::-1])
    img = torch.where(torch.rand(n, 1, 1, 1, generator=g) < 0.5, img.flip(-1), img)
    img = img * _u(g, n, 0.65, 1.35)[:, None] * (1 + 0.1 * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1))
    img = img + _u(g, n, 0.0, 0.15)[:, None] * _rgb(g, n, (0.6, 0.65, 0.75), 0.1)
    img = _blur(img, 0.6)
    return img + 0.015 * torch.randn(img.shape, generator=g)


# ---------------------------------------------------------------------------------------------
# Retail: product photos of Fashion-MNIST's 10 classes, one item on a plain background.
# Shapes are signed distances (< 0 inside) in coordinates y (down) and x in [-1, 1].


def _sd_box(y, x, y0, y1, x0, x1):
    return torch.maximum(torch.maximum(y0 - y, y - y1), torch.maximum(x0 - x, x - x1))


def _sd_limb(y, x, y0, x0, angle, length, half):
    """A straight limb (sleeve, trouser leg, strap) from (y0, x0), pointing down and turned outward by `angle`."""
    c, s = torch.cos(angle), torch.sin(angle)
    along, across = c * (y - y0) + s * (x - x0), -s * (y - y0) + c * (x - x0)
    return torch.maximum(across.abs() - half, torch.maximum(-along, along - length))


def _sd_trapezoid(y, x, y0, y1, w0, w1):
    """Symmetric trapezoid from half-width w0 at y0 to w1 at y1."""
    w = w0 + (w1 - w0) * ((y - y0) / (y1 - y0)).clamp(0, 1)
    return torch.maximum(x.abs() - w, torch.maximum(y0 - y, y - y1))


def _sd_ellipse(y, x, cy, cx, ry, rx):
    return (torch.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) - 1) * torch.minimum(ry, rx)


def _torso(g, n, y, x, top, bottom, sleeve_len, sleeve_angle):
    """Garment body with two sleeves (sleeve_len 0: none) and a neckline cut; returns (sd, half-width)."""
    w = _u(g, n, 0.3, 0.42)
    body = _sd_trapezoid(y, x, top, bottom, w, w + _u(g, n, -0.04, 0.08))
    sleeve = _sd_limb(y, x.abs(), top + 0.08, w - 0.06, sleeve_angle, sleeve_len, _u(g, n, 0.09, 0.13))
    neck = _sd_ellipse(y, x, top, torch.zeros_like(top), _u(g, n, 0.06, 0.14), _u(g, n, 0.1, 0.16))
    return torch.maximum(torch.minimum(body, torch.where(sleeve_len > 0, sleeve, torch.full_like(sleeve, 9.0))), -neck), w


def _tshirt(g, n, y, x):
    sleeve = _u(g, n, 0.0, 0.5) * (torch.rand(n, 1, 1, generator=g) < 0.85)    # none, short or three-quarter
    sd, _ = _torso(g, n, y, x, _u(g, n, -0.7, -0.55), _u(g, n, 0.55, 0.8), sleeve, _u(g, n, 0.5, 1.1))
    return sd, []


def _trouser(g, n, y, x):
    top, w = _u(g, n, -0.9, -0.75), _u(g, n, 0.24, 0.32)
    waist = _sd_box(y, x, top, top + 0.15, -w, w)
    leg = _sd_limb(y, x.abs(), top + 0.1, w - _u(g, n, 0.1, 0.14), _u(g, n, 0.0, 0.1), _u(g, n, 1.5, 1.75), _u(g, n, 0.1, 0.14))
    return torch.minimum(waist, leg), [(_sd_box(y, x, top, top + 0.06, -w, w), 0.75)]


def _pullover(g, n, y, x):
    top, bottom = _u(g, n, -0.7, -0.55), _u(g, n, 0.55, 0.75)
    sd, w = _torso(g, n, y, x, top, bottom, _u(g, n, 0.95, 1.2), _u(g, n, 0.12, 0.35))
    hem = _sd_box(y, x, bottom - 0.1, bottom, -1, 1)
    return sd, [(hem, 0.8)]


def _dress(g, n, y, x):
    top, waist = _u(g, n, -0.8, -0.65), _u(g, n, -0.25, -0.05)
    bodice = _sd_trapezoid(y, x, top, waist, _u(g, n, 0.16, 0.24), _u(g, n, 0.14, 0.2))
    skirt = _sd_trapezoid(y, x, waist, _u(g, n, 0.75, 0.92), _u(g, n, 0.14, 0.2), _u(g, n, 0.35, 0.62))
    strap = _sd_limb(y, x.abs(), top - 0.12, _u(g, n, 0.1, 0.16), _u(g, n, -0.2, 0.2), 0.14, 0.03)
    return torch.minimum(torch.minimum(bodice, skirt), strap), [(_sd_box(y, x, waist - 0.03, waist + 0.03, -1, 1), 0.8)]


def _coat(g, n, y, x):
    top, bottom = _u(g, n, -0.78, -0.62), _u(g, n, 0.75, 0.92)
    sd, w = _torso(g, n, y, x, top, bottom, _u(g, n, 1.05, 1.3), _u(g, n, 0.08, 0.25))
    opening = _sd_box(y, x, top, bottom, -0.015, 0.015)
    lapel = _sd_limb(y, x.abs(), top, torch.zeros_like(top) + 0.02, torch.zeros_like(top) - 0.5, 0.4, 0.02)
    button_r = torch.full_like(top, 0.035)
    buttons = _sd_ellipse(y, x, (y * 5).round() / 5, torch.full_like(top, 0.07), button_r, button_r)  # a column of buttons
    return sd, [(opening, 0.55), (lapel, 0.7), (buttons, 0.45)]


def _shirt(g, n, y, x):
    top, bottom = _u(g, n, -0.72, -0.58), _u(g, n, 0.6, 0.8)
    short = torch.rand(n, 1, 1, generator=g) < 0.3                                 # some shirts have short sleeves
    sleeve = torch.where(short, _u(g, n, 0.25, 0.45), _u(g, n, 0.9, 1.15))
    sd, w = _torso(g, n, y, x, top, bottom, sleeve, torch.where(short, _u(g, n, 0.5, 1.0), _u(g, n, 0.08, 0.3)))
    collar = _sd_limb(y, x.abs(), top - 0.04, torch.zeros_like(top), torch.zeros_like(top) - 0.9, 0.2, 0.05)
    placket = _sd_box(y, x, top, bottom, -0.02, 0.02)
    return torch.minimum(sd, collar), [(collar, 1.12), (placket, 0.85)]


def _sole(g, n, y, x, length):
    return _sd_box(y, x, _u(g, n, 0.28, 0.38), _u(g, n, 0.42, 0.5), -length, length)


def _sandal(g, n, y, x):
    length = _u(g, n, 0.75, 0.92)
    sole = _sole(g, n, y, x, length)
    straps = torch.minimum(_sd_limb(y, x, 0.3, _u(g, n, -0.3, 0.1), _u(g, n, 2.4, 2.9), _u(g, n, 0.35, 0.6), 0.05),
                           _sd_limb(y, x, 0.3, _u(g, n, 0.2, 0.6), _u(g, n, 3.3, 3.8), _u(g, n, 0.3, 0.5), 0.05))
    heel = torch.where(torch.rand(n, 1, 1, generator=g) < 0.5,
                       _sd_box(y, x, 0.2, 0.45, -length, -length + _u(g, n, 0.15, 0.3)), torch.full_like(y * x, 9.0))
    ankle = _sd_limb(y, x, _u(g, n, -0.1, 0.05), -length + 0.1, torch.full_like(length, -1.57), _u(g, n, 0.3, 0.5), 0.04)
    back = _sd_limb(y, x, _u(g, n, -0.1, 0.05), -length + 0.15, torch.full_like(length, 0.0), 0.4, 0.04)
    return torch.minimum(torch.minimum(sole, straps), torch.minimum(heel, torch.minimum(ankle, back))), [(sole, 0.6)]


def _sneaker(g, n, y, x):
    length = _u(g, n, 0.78, 0.92)
    sole = _sole(g, n, y, x, length)
    heel_x = -length * _u(g, n, 0.3, 0.45)
    high = torch.rand(n, 1, 1, generator=g) < 0.3                                  # high-top sneakers
    back = _sd_ellipse(y, x, torch.full_like(length, 0.35), heel_x, torch.where(high, _u(g, n, 0.65, 0.85), _u(g, n, 0.4, 0.55)), length * 0.6)
    toe = _sd_ellipse(y, x, torch.full_like(length, 0.35), length * 0.2, _u(g, n, 0.2, 0.3), length * 0.8)
    upper = torch.maximum(torch.minimum(back, toe), y - 0.35)
    laces = torch.maximum(_sd_box(y, x, -0.1, 0.15, heel_x + 0.3, heel_x + 0.75), torch.sin(x * 40) - 0.3)
    return torch.minimum(sole, upper), [(sole, 1.6), (laces, 1.35)]


def _bag(g, n, y, x):
    top, w = _u(g, n, -0.35, -0.05), _u(g, n, 0.5, 0.75)
    body = _sd_trapezoid(y, x, top, _u(g, n, 0.65, 0.85), w * _u(g, n, 0.8, 1.0), w) - 0.04
    r = _u(g, n, 0.25, 0.45)
    ring = (torch.sqrt((y - top) ** 2 / _u(g, n, 1.0, 2.2) ** 2 + x ** 2) - r).abs() - 0.04
    handle = torch.maximum(ring, y - top)
    flap = _sd_box(y, x, top, top + _u(g, n, 0.15, 0.4), -w * 0.8, w * 0.8)
    return torch.minimum(body, handle), [(flap, 0.8)]


def _ankle_boot(g, n, y, x):
    length = _u(g, n, 0.75, 0.9)
    sole = _sole(g, n, y, x, length)
    foot = torch.maximum(_sd_ellipse(y, x, torch.full_like(length, 0.35), _u(g, n, 0.0, 0.1), _u(g, n, 0.35, 0.45), length), y - 0.35)
    shaft = _sd_box(y, x, _u(g, n, -0.75, -0.3), 0.35, -length + 0.02, _u(g, n, -0.15, 0.1))
    heel = _sd_box(y, x, 0.3, 0.55, -length, -length + _u(g, n, 0.2, 0.3))
    return torch.minimum(torch.minimum(sole, foot), torch.minimum(shaft, heel)), [(sole, 0.55), (heel, 0.6)]


_RETAIL = [_tshirt, _trouser, _pullover, _dress, _coat, _sandal, _shirt, _sneaker, _bag, _ankle_boot]


def _fabric(g: torch.Generator, n: int, size: int, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Item colour and texture (n, 3, H, W): plain, stripes, checks or knit, with folds."""
    base = torch.rand(n, 3, 1, 1, generator=g) * _u(g, n, 0.15, 1.0)[:, None]
    second = base * _u(g, n, 0.4, 0.8)[:, None] + torch.rand(n, 3, 1, 1, generator=g) * 0.3
    kind = torch.randint(4, (n, 1, 1), generator=g)
    freq = _u(g, n, 10, 30)
    stripes = (torch.sin(y * freq) > 0).float()
    checks = ((torch.sin(y * freq) > 0) ^ (torch.sin(x * freq) > 0)).float()
    knit = (torch.sin(x * 60) * 0.5 + 0.5) * 0.3
    pattern = torch.where(kind == 1, stripes, torch.where(kind == 2, checks, torch.where(kind == 3, knit, 0 * x)))
    folds = 0.08 * _fbm(g, n, size, (3, 6, 12))[:, None]
    return (base * (1 - pattern[:, None]) + second * pattern[:, None]) * (1 + folds)


def _retail(g: torch.Generator, label: int, n: int, size: int) -> torch.Tensor:
    """n product photos of class `label`, float (n, 3, size, size) in [0, 1].

    The item is drawn at a random scale, offset, tilt and (for shoes and bags) facing, with
    a random colour and pattern, darker trims, soft shading, on a plain random background.
    """
    y, x = _grid(size)
    y, x = _rotate(y, x, _u(g, n, -0.15, 0.15))
    zoom = _u(g, n, 0.75, 1.05)
    y, x = (y - _u(g, n, -0.08, 0.08)) / zoom, (x - _u(g, n, -0.08, 0.08)) / zoom
    if label in (5, 7, 8, 9):
        x = torch.where(torch.rand(n, 1, 1, generator=g) < 0.5, -x, x)
    sd, details = _RETAIL[label](g, n, y, x)
    px = 2.0 / size / zoom                                        # one pixel in these units
    item = _fabric(g, n, size, y, x)
    for detail_sd, shade in details:
        item = _paint(item, _soft(detail_sd, px), (item * shade).clamp(0, 1))
    item = item * (1 - 0.25 * torch.relu(y)[:, None] * _u(g, n, 0, 1)[:, None])  # light from above
    background = torch.where(torch.rand(n, 1, 1, 1, generator=g) < 0.7, _u(g, n, 0.8, 1.0)[:, None].expand(n, 3, 1, 1),
                             torch.rand(n, 3, 1, 1, generator=g))
    img = _paint(background.expand(n, 3, size, size), _soft(sd, px), item)
    shadow = _soft(sd - 0.06, 0.05) * (1 - _soft(sd, px)) * 0.15
    img = _blur(img * (1 - shadow[:, None]), 0.9)
    return img + 0.01 * torch.randn(img.shape, generator=g)


# ---------------------------------------------------------------------------------------------
# The public entry point.

_DESCRIPTIONS = {
    "medical": "procedural chest-X-ray-like images (stand-in for PneumoniaMNIST)",
    "satellite": "procedural land-cover tiles (stand-in for EuroSAT RGB)",
    "retail": "procedural product images (stand-in for Fashion-MNIST)",
}


def _drawer(domain: str) -> Callable[[torch.Generator, int, int, int], torch.Tensor]:
    return {"medical": _medical, "satellite": _satellite, "retail": _retail}[domain]


def _split(domain: str, counts: int, size: int, seed: int, split: int) -> TensorImageDataset:
    """One split: `counts` images per class, each class drawn from its own seeded generator, shuffled."""
    names = CLASS_NAMES[domain]
    draw = _drawer(domain)
    images, labels = [], []
    for label in range(len(names)):
        g = torch.Generator().manual_seed(((seed * 7 + split) * 101 + label) * 1_000_003 + 17)
        images.append(_to_uint8(draw(g, label, counts, size)) if counts else torch.zeros(0, 3, size, size, dtype=torch.uint8))
        labels.append(torch.full((counts,), label, dtype=torch.int64))
    order = torch.randperm(counts * len(names), generator=torch.Generator().manual_seed(seed * 3 + split))
    return TensorImageDataset(torch.cat(images)[order], torch.cat(labels)[order], names)


def make_standin(domain: str, *, size: int = 64, per_class: tuple[int, int, int] = CI_PER_CLASS,
                 seed: int = 0) -> DataSplits:
    """Procedural stand-in for a project data set: `DataSplits` with `source="standin"`.

    domain: `"medical"`, `"satellite"` or `"retail"`. size: image side in pixels (>= 32).
    per_class: images per class in (train, val, test); the default (100, 30, 60) is the CI
    size. Images are uint8 `(N, 3, size, size)` (medical ones are gray, three equal channels),
    labels int64 with the real data set's class names (`ftlib.data.CLASS_NAMES[domain]`).
    The same seed gives the same bytes; each split and class has its own random stream, so
    the test images do not change when you ask for more training images.
    Used by every lesson when it runs offline; lessons 09-11 show a grid of them.
    """
    if domain not in STANDIN_DOMAINS:
        raise ValueError(f"Unknown stand-in domain {domain!r}: use one of {', '.join(STANDIN_DOMAINS)}.")
    if size < 32:
        raise ValueError(f"size={size} is too small for the stand-ins to show anything: use 32 or more (64 is EuroSAT's size).")
    if len(per_class) != 3 or any(int(c) != c or c < 0 for c in per_class):
        raise ValueError(f"per_class must be three non-negative integers (train, val, test), got {per_class!r}.")
    train, val, test = (_split(domain, int(c), size, seed, i) for i, c in enumerate(per_class))
    desc = f"{_DESCRIPTIONS[domain]}, {size}x{size}, seed {seed}"
    return DataSplits(name=domain, source="standin", description=desc, class_names=list(CLASS_NAMES[domain]),
                      train=train, val=val, test=test, extra={"seed": seed, "per_class": tuple(per_class)})
