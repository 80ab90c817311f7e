"""Lesson 12's real data: the Penn-Fudan pedestrian set, cached and checked like the others.

Penn-Fudan (Wang, Shi, Song and Shen, 2007; the University of Pennsylvania's GRASP lab)
holds 170 street photos with 345 pedestrians, each with an instance mask; torchvision's own
detection tutorial trains on it. The zip is about 50 MB. We know of no licence published
for it, and could not check the publisher's page from the course's offline machines: cite
the paper, and check that your use fits before you share copies.

**Checksum.** The publisher gives none. So the first download records the SHA-256 it saw
in `<data cache>/pennfudan/PennFudanPed.zip.sha256` and says so, and every later fetch and
`--check` verifies the zip against that record (trust on first use: a copy changed later is
caught, a copy that was already wrong on the first day is not). An instructor who copies
the data cache to lab machines copies the record with it.

Boxes come from the masks: the smallest box holding each instance's pixels, label 1
("pedestrian"). Used when lesson 12 runs in the real world.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import data_dir, shift_seed
from ..detection import DetectionSet, DetectionSplits
from .download import file_checksum, safe_extract
from .sources import PENNFUDAN, Source

__all__ = ["PENNFUDAN_URL", "ZIP_PATH", "pennfudan_source", "record_checksum", "pennfudan_folder",
           "boxes_from_mask", "load_pennfudan"]

PENNFUDAN_URL = PENNFUDAN.url
ZIP_PATH = PENNFUDAN.path


def _record_path(root: Path | None = None) -> Path:
    return (root or data_dir()) / (ZIP_PATH + ".sha256")


def pennfudan_source(root: Path | None = None) -> Source:
    """The zip's `Source`: its SHA-256 is the one recorded on the first download, or None
    before that (then any file passes once, and `record_checksum` writes the record)."""
    record = _record_path(root)
    sha = record.read_text().split()[0] if record.is_file() else None
    return replace(PENNFUDAN, sha256=sha)


def record_checksum(zip_path: Path, root: Path | None = None) -> str | None:
    """Write the zip's SHA-256 next to it if no record exists yet; returns a sentence saying
    so (None when a record was already there)."""
    record = _record_path(root)
    if record.is_file():
        return None
    digest = file_checksum(zip_path)
    record.write_text(f"{digest}  PennFudanPed.zip\n")
    return (f"Penn-Fudan's publisher gives no checksum: recorded the SHA-256 of this first download "
            f"({digest[:16]}...) in {record}; later fetches and --check verify against it.")


def pennfudan_folder(root: Path | None = None) -> Path:
    """The extracted `PennFudanPed` folder (PNGImages/, PedMasks/), extracting the verified zip
    on first use. Raises FileNotFoundError with the fetch command when the zip is absent."""
    root = root or data_dir()
    folder = root / "pennfudan" / "PennFudanPed"
    if (folder / "PNGImages").is_dir():
        return folder
    zip_path = root / ZIP_PATH
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path} is missing: run `python -m data_scripts.fetch pedestrians` "
                                f"where there is network, then copy the data cache here.")
    safe_extract(zip_path, root / "pennfudan")
    return folder


def boxes_from_mask(mask: np.ndarray) -> torch.Tensor:
    """(K, 4) float boxes (x1, y1, x2, y2), one per instance id > 0 of an (H, W) mask, in id
    order; x2 and y2 are one past the last pixel, so a one-pixel instance has width 1."""
    ids = [i for i in np.unique(mask) if i > 0]
    boxes = []
    for i in ids:
        ys, xs = np.nonzero(mask == i)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def _read(folder: Path, stem: str, size: int) -> tuple[torch.Tensor, dict]:
    image = Image.open(folder / "PNGImages" / f"{stem}.png").convert("RGB")
    mask = np.array(Image.open(folder / "PedMasks" / f"{stem}_mask.png"))
    boxes = boxes_from_mask(mask)
    w, h = image.size
    image = image.resize((size, size), Image.BILINEAR)   # squares: aspect changes, boxes follow
    boxes = boxes * torch.tensor([size / w, size / h, size / w, size / h])
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    return pixels, {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}


def load_pennfudan(n_train: int, n_test: int, *, size: int = 256, seed: int = 0,
                   root: Path | None = None) -> DetectionSplits:
    """Penn-Fudan as square uint8 images (3, size, size) with boxes scaled to match: a seeded
    shuffle (the sweep offset applies), then n_train images to train and n_test to test
    (fewer when the two ask for more than the 170 there are; a note says so). Lesson 12, real world."""
    folder = pennfudan_folder(root)
    stems = sorted(p.stem for p in (folder / "PNGImages").glob("*.png"))
    if n_train + n_test > len(stems):
        n_train = max(1, len(stems) - n_test)
        print(f"note: Penn-Fudan has {len(stems)} images: {n_test} to test, {n_train} to train.")
    order = torch.randperm(len(stems), generator=torch.Generator().manual_seed(shift_seed(seed))).tolist()
    parts = []
    for chosen in (order[:n_train], order[n_train:n_train + n_test]):
        read = [_read(folder, stems[i], size) for i in chosen]
        parts.append(DetectionSet(torch.stack([im for im, _ in read]), [t for _, t in read], ["pedestrian"]))
    return DetectionSplits(parts[0], parts[1], f"Penn-Fudan pedestrians (real), {size} px squares")
