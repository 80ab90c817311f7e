"""Data sets: the three real ones, the offline stand-ins, and a student's own image folder.

`load_dataset("medical" | "satellite" | "retail", source="auto")` returns a `DataSplits`
and prints one line saying which data set and which world it used:

| name        | real data set (licence)                          | split                       |
| ----------- | ------------------------------------------------ | --------------------------- |
| `medical`   | PneumoniaMNIST, MedMNIST v2 (CC BY 4.0)           | official train / val / test |
| `satellite` | EuroSAT RGB via torchvision (MIT)                 | seeded 60/20/20, stored in `ftlib/assets/eurosat_split.json` |
| `retail`    | Fashion-MNIST, Zalando (MIT)                      | official train / test; val = 1,000 per class from train, seed 0 |

`source="auto"` uses the real data when it is in the data cache or can be downloaded,
and the procedural stand-in otherwise (always when `FTLIB_OFFLINE=1`). Real images are
decoded once, at the size the publisher's files hold them, into `data_dir()/tensors`; a load
draws its subset first and resizes only that. Raw files (`ftlib.sources`) are checked against
the publisher's checksum; a read-only cache is only read, a damaged tensor cache rebuilt.

`load_image_folder(root)` reads a student's own images (one folder per class) with the
same checks; `load_image(path)` reads one image. Used from lesson 02 on, and lessons 08-11.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

from .config import data_dir, is_offline, shift_seed
from .data import CLASS_NAMES, DataSplits, TensorImageDataset
from .course.download import (CacheNotWritableError, DownloadError, OfflineError, download,
                              not_writable_error, safe_extract, writable_problem)
from .progress import progress

if TYPE_CHECKING:
    from .course.sources import Source

__all__ = ["load_dataset", "load_image_folder", "load_image", "load_photos", "to_rgb", "fetch_dataset", "cache_dataset",
           "native_size", "fetch_file", "is_cached", "tensor_cache_path", "DamagedCacheError", "DATASET_NAMES", "IMAGE_EXTENSIONS"]

DATASET_NAMES = ("medical", "satellite", "retail")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")
RETAIL_VAL_PER_CLASS, RETAIL_VAL_SEED = 1000, 0
FASHION_PX, EUROSAT_PX = 28, 64  # the size of the images in the publishers' files
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


# --- one image ----------------------------------------------------------------------------------


def _grey_to_uint8(image: Image.Image) -> np.ndarray:
    """Grey values of any depth (16-bit, 32-bit int, float) as uint8 0..255, keeping the levels.

    Floats whose maximum is at most 1 are read as [0, 1]. Everything else is scaled by the
    smallest bit depth (8, 10, 12, 14 or 16 bits) that holds its maximum, so a 12-bit X-ray
    stored in a 16-bit PNG (0..4095) spans 0..255 instead of 0..16; larger values by their maximum.
    """
    values = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0, None)
    top = float(values.max(initial=0.0))
    if image.mode == "F" and top <= 1:
        full = 1.0
    else:
        full = next((2.0 ** b - 1 for b in (8, 10, 12, 14, 16) if top <= 2 ** b - 1), top)
    return np.clip(np.round(values / full * 255), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any PIL image.

    Grayscale is repeated over 3 channels; transparent images (RGBA, LA, palette with
    transparency) are composited on white; 16-bit, 32-bit and float images (`I;16`, `I`,
    `F`) are scaled by their bit depth (see `_grey_to_uint8`: 0..65535 becomes v / 257, a
    12-bit scan 0..4095 becomes v / 16.06, floats in [0, 1] become v * 255) instead of being
    clipped at 255; CMYK, palette and YCbCr images go through PIL's own conversion.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_grey_to_uint8(image)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """One image file as uint8 `(3, H, W)`, upright (EXIF orientation) and in RGB.

    With `size`, the image is center-cropped to a square and resized to `size` x `size`.
    Raises `OSError` (or `SyntaxError`/`ValueError`) for a corrupt or truncated file.
    Lesson 08 uses it for inference on new images.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image file.")
    if path.is_file() and path.stat().st_size == 0:
        raise OSError(f"{path} is empty (0 bytes): copy it again or delete it.")
    with Image.open(path) as image:
        image.load()  # decode everything now: a truncated file fails here
        image = to_rgb(ImageOps.exif_transpose(image))
    if size is not None:
        image = ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


# --- a student's own folder ---------------------------------------------------------------------


SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""Folder names read as a ready-made split (`root/train`, `root/val`, `root/test`)."""


def _images_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files under a class folder, hidden ones skipped): a name starting with "." or
    inside a hidden or tool folder (`.ipynb_checkpoints`, `__MACOSX`) is not an image of the class."""
    found, hidden = [], []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        parts = p.relative_to(folder).parts
        (hidden if any(x.startswith(".") or x == "__MACOSX" for x in parts) else found).append(p)
    return found, hidden


def _class_folders(root: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """({class name: image files}, hidden files skipped), after checking the one-folder-per-class layout."""
    if not root.is_dir():
        what = "a file" if root.is_file() else "missing"
        raise FileNotFoundError(f"{root} is {what}, not a folder. Give the folder that holds one sub-folder per class.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")
    layout = f"Put the images in one sub-folder per class, e.g. {root}/cats/1.jpg and {root}/dogs/1.jpg."
    if not folders:
        raise ValueError(f"{root} has no class folders. {layout}")
    if len(folders) == 1:
        raise ValueError(f"{root} has only one class folder ({folders[0].name!r}); a classifier needs "
                         f"at least two classes. {layout}")
    found = {f.name: _images_in(f) for f in folders}
    empty = [name for name, (files, _) in found.items() if not files]
    if empty:
        raise ValueError(f"Class folder(s) {empty} in {root} have no images (looked for "
                         f"{', '.join(IMAGE_EXTENSIONS)}; hidden folders are skipped). Add images or remove the folder(s).")
    return {name: files for name, (files, _) in found.items()}, [p for _, hidden in found.values() for p in hidden]


def _split_folders(root: Path) -> dict[str, Path]:
    """{"train": root/train, "val": ..., "test": ...} when `root` holds a ready-made split, else {}."""
    if not root.is_dir():
        return {}
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    splits = {SPLIT_FOLDERS[p.name.lower()]: p for p in subs if p.name.lower() in SPLIT_FOLDERS}
    if "train" not in splits or len(splits) < 2:
        return {}
    others = [p.name for p in subs if p.name.lower() not in SPLIT_FOLDERS]
    if others:
        raise ValueError(f"{root} mixes split folders ({', '.join(p.name for p in splits.values())}) with "
                         f"other folders ({', '.join(others)}). Point load_image_folder at {root / 'train'} "
                         f"(one sub-folder per class), or keep only train/, val/ and test/ in {root}.")
    return splits


def _decode_all(files: dict[str, list[Path]], root: Path, size: int, strict: bool):
    """Decode every file; returns images (N, 3, size, size) uint8, labels (N,), bad [(path, reason)]."""
    images, labels, bad = [], [], []
    todo = [(label, path) for label, paths in enumerate(files.values()) for path in paths]
    for label, path in progress(todo, desc="decoding images"):
        try:
            images.append(load_image(path, size))
            labels.append(label)
        except _UNREADABLE as err:
            bad.append((path.relative_to(root), f"{type(err).__name__}: {err}"))
    if bad and strict:
        raise ValueError(f"{len(bad)} image(s) in {root} cannot be read:\n{_list_bad(bad)}\n"
                         f"Delete or replace them, or use strict=False to skip them.")
    if bad:
        warnings.warn(f"Skipped {len(bad)} unreadable image(s) in {root}:\n{_list_bad(bad)}", stacklevel=3)
    return images, torch.tensor(labels, dtype=torch.int64), bad


def _list_bad(bad: list[tuple[Path, str]], limit: int = 20) -> str:
    lines = [f"  {path}: {reason}" for path, reason in bad[:limit]]
    return "\n".join(lines + ([f"  ... and {len(bad) - limit} more"] if len(bad) > limit else []))


def _stratified_split(labels: torch.Tensor, fractions: tuple[float, float], seed: int) -> list[torch.Tensor]:
    """Indices of train, val, test: per class, a seeded shuffle cut at the val and test fractions."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = min(round(len(idx) * fractions[0]), len(idx) - 1)
        n_test = min(round(len(idx) * fractions[1]), len(idx) - 1 - n_val)
        for part, chunk in zip(parts, (idx[n_val + n_test:], idx[:n_val], idx[n_val:n_val + n_test])):
            part.append(chunk)
    return [torch.cat(p).sort().values for p in parts]


def load_image_folder(root: str | Path, *, size: int = 64, val_fraction: float = 0.2,
                      test_fraction: float = 0.0, seed: int = 0, strict: bool = False) -> DataSplits:
    """A student's images, one sub-folder per class, as `DataSplits` of uint8 `(N, 3, size, size)`.

    Every image is decoded before any training: a corrupt or truncated file is named and
    skipped with one warning (or, with `strict=True`, all of them are listed in a
    `ValueError`). Files in hidden folders (`.ipynb_checkpoints`, `__MACOSX`) and hidden
    files are skipped, with a warning that counts them. Grayscale, RGBA, palette, 16-bit,
    float and CMYK images become RGB (`to_rgb`). Each image is center-cropped to a square
    and resized to `size`. Per class, a seeded shuffle puts `val_fraction` in val and
    `test_fraction` in test (empty by default) and always keeps at least one image in train.
    A root holding `train/` and `val/` (and maybe `test/`), each with the class folders, is
    read as that ready-made split instead (the fractions are then unused). Used in lesson 08
    and the projects.
    """
    root = Path(root)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}")
    ready = _split_folders(root)
    if ready:
        return _load_split_folders(root, ready, size, strict)
    whole, bad, hidden = _read_folder(root, size, strict)
    parts = [TensorImageDataset(whole.images[i], whole.labels[i], whole.class_names)
             for i in _stratified_split(whole.labels, (val_fraction, test_fraction), seed)]
    return _folder_splits(root, whole.class_names, parts, size, bad, hidden)


def _read_folder(root: Path, size: int, strict: bool, names: list[str] | None = None):
    """One folder of class folders, decoded: (dataset, unreadable [(path, reason)], hidden files).

    `names` fixes the class order (the val and test folders of a ready-made split follow train's).
    """
    files, hidden = _class_folders(root)
    if names is not None:
        unknown = [n for n in files if n not in names]
        if unknown:
            raise ValueError(f"{root} has class folder(s) {unknown} that the train folder lacks. "
                             f"Every split needs the same class folders.")
        files = {n: files.get(n, []) for n in names}
    if hidden:
        warnings.warn(f"Skipped {len(hidden)} hidden file(s) in {root}, e.g. {hidden[0].relative_to(root)}: "
                      f"files in hidden folders (.ipynb_checkpoints, thumbnails) are copies made by tools, "
                      f"not images of a class.", stacklevel=4)
    images, labels, bad = _decode_all(files, root, size, strict)
    lost = [n for c, n in enumerate(files) if names is None and not (labels == c).any()]
    if lost:
        raise ValueError(f"Class folder(s) {lost} in {root} have no readable image left. Add good images.")
    stacked = torch.stack(images) if images else torch.empty((0, 3, size, size), dtype=torch.uint8)
    return TensorImageDataset(stacked, labels, list(files)), bad, hidden


def _load_split_folders(root: Path, ready: dict[str, Path], size: int, strict: bool) -> DataSplits:
    """`root/train`, `root/val` (and `root/test`) read as the three splits, with train's classes."""
    train, bad, hidden = _read_folder(ready["train"], size, strict)
    parts = [train]
    for split in ("val", "test"):
        if split in ready:
            data, more_bad, more_hidden = _read_folder(ready[split], size, strict, train.class_names)
            parts.append(data)
            bad, hidden = bad + more_bad, hidden + more_hidden
        else:
            parts.append(TensorImageDataset(torch.empty((0, 3, size, size), dtype=torch.uint8),
                                            torch.empty(0, dtype=torch.int64), train.class_names))
    return _folder_splits(root, train.class_names, parts, size, bad, hidden, "its own train/val/test folders")


def _folder_splits(root: Path, names: list[str], parts: list[TensorImageDataset], size: int,
                   bad: list, hidden: list[Path], split: str = "a seeded split") -> DataSplits:
    about = (f"your images in {root}, {size} px, {split}" + (f", {len(bad)} unreadable skipped" if bad else "")
             + (f", {len(hidden)} hidden skipped" if hidden else ""))
    extra = {"skipped": [str(p) for p, _ in bad], "hidden": [str(p) for p in hidden]}
    return DataSplits(root.name, "real", about, names, *parts, extra=extra)


# --- real data: download and decode ------------------------------------------------------------


def _sources():
    from .course import sources
    return sources


def fetch_file(source: Source, root: Path | None = None) -> Path:
    """Download one `ftlib.sources.Source` to `root / source.path` (default root: the data
    cache), trying its mirrors in turn; a file already verified is kept. Returns the path."""
    dest = (root or data_dir()) / source.path
    errors: list[DownloadError] = []
    for url in source.urls:
        try:
            return download(url, dest, md5=source.md5, sha256=source.sha256)
        except (OfflineError, CacheNotWritableError):
            raise
        except DownloadError as err:  # HTTP error, bad checksum, broken connection: try the next mirror
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    raise DownloadError("Every mirror failed:\n" + "\n".join(str(e) for e in errors))


def _medmnist_size(size: int) -> int:
    """The MedMNIST release to read for `size` px: the smallest published one >= size (max 224)."""
    return next((s for s in _sources().MEDMNIST_SIZES if s >= size), _sources().MEDMNIST_SIZES[-1])


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, size, size), antialiased, 2,048 images at a time, each
    chunk written straight into the one output tensor (so the peak holds one resized copy)."""
    if images.shape[-2:] == (size, size):
        return images.contiguous()
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(images), 2048):
        out[start:start + 2048] = TF.resize(images[start:start + 2048], [size, size], antialias=True)
    return out


def _gray_to_rgb(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, 3) -> uint8 (N, 3, H, W)."""
    t = torch.as_tensor(np.asarray(images, dtype=np.uint8))
    return t.unsqueeze(1).expand(-1, 3, -1, -1) if t.ndim == 3 else t.permute(0, 3, 1, 2)


def _build_medical(size: int) -> dict:
    """PneumoniaMNIST from the .npz of the release for `size` px, at the release's size (grey,
    shown as RGB without copying): official splits, labels 0 normal / 1 pneumonia."""
    release = _medmnist_size(size)
    path = fetch_file(_sources().MEDICAL[release])
    with np.load(path) as npz:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
        if missing:
            raise ValueError(f"{path} lacks {missing}: it is not a MedMNIST file. Delete it and fetch again.")
        out = {s: (_gray_to_rgb(npz[f"{s}_images"]),
                   torch.as_tensor(npz[f"{s}_labels"].reshape(-1).astype(np.int64))) for s in SPLITS}
    about = f"PneumoniaMNIST (MedMNIST v2 / MedMNIST+, CC BY 4.0): pediatric chest X-rays, {release} px release"
    return {"splits": out, "description": about}


def _eurosat_folder() -> Path:
    """Download and safely extract EuroSAT.zip to data_dir()/eurosat/2750 (torchvision's layout)."""
    folder = data_dir() / "eurosat" / "2750"
    if folder.is_dir():
        return folder
    archive = fetch_file(_sources().SATELLITE)
    if writable_problem(folder.parent):
        raise not_writable_error(folder, writable_problem(folder.parent))
    staging = folder.parent / ".extracting"
    shutil.rmtree(staging, ignore_errors=True)
    safe_extract(archive, staging)
    found = next((p for p in [staging / "2750", *staging.glob("*/2750")] if p.is_dir()), None)
    if found is None:
        raise ValueError(f"{archive} has no 2750/ folder: it is not the EuroSAT RGB zip. Delete it and fetch again.")
    os.replace(found, folder)
    shutil.rmtree(staging, ignore_errors=True)
    return folder


def _build_satellite() -> dict:
    """EuroSAT RGB through torchvision.datasets.EuroSAT, split by the stored seeded split, at
    the tiles' own 64 px (one decoded copy serves every size)."""
    from torchvision.datasets import EuroSAT

    from .course.eurosat_split import read_split

    folder = _eurosat_folder()
    dataset = EuroSAT(str(data_dir()), download=False)
    if dataset.classes != CLASS_NAMES["satellite"]:
        raise ValueError(f"EuroSAT classes {dataset.classes} differ from {CLASS_NAMES['satellite']}.")
    present = {Path(p).relative_to(folder).as_posix() for p, _ in dataset.samples}
    split, out = read_split(), {}
    for s in SPLITS:
        names = [(c, f"{name}/{name}_{i}.jpg") for c, name in enumerate(dataset.classes) for i in split[name][s]]
        missing = [n for _, n in names if n not in present]
        if missing:
            raise ValueError(f"EuroSAT files listed in the stored split are missing, e.g. {missing[:3]}. "
                             f"Delete {data_dir() / 'eurosat'} and fetch again.")
        images = torch.empty((len(names), 3, EUROSAT_PX, EUROSAT_PX), dtype=torch.uint8)
        for i, (_, n) in enumerate(progress(names, desc=f"decoding EuroSAT {s}")):
            images[i] = load_image(folder / n, EUROSAT_PX)
        out[s] = (images, torch.tensor([c for c, _ in names], dtype=torch.int64))
    about = "EuroSAT RGB (Sentinel-2 land cover, MIT licence): 64 px tiles, seeded 60/20/20 split"
    return {"splits": out, "description": about}


def _fashion_raw() -> Path:
    """Download the 4 Fashion-MNIST .gz files and unpack them where torchvision looks."""
    for source in _sources().RETAIL.values():
        packed = fetch_file(source)
        plain = packed.with_suffix("")  # drop .gz
        if not plain.exists() and writable_problem(plain.parent):
            raise not_writable_error(plain, writable_problem(plain.parent))
        if not plain.exists():
            with gzip.open(packed, "rb") as src, open(str(plain) + ".tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(str(plain) + ".tmp", plain)
    return data_dir()


def _carve_val(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Boolean mask (N,) choosing `per_class` items of each class with a seeded shuffle."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        mask[idx[torch.randperm(len(idx), generator=g)[:per_class]]] = True
    return mask


def _build_retail() -> dict:
    """Fashion-MNIST through torchvision.datasets.FashionMNIST at its own 28 px (grey, shown as
    RGB without copying); val = 1,000 per class of train."""
    from torchvision.datasets import FashionMNIST

    root = _fashion_raw()
    train, test = FashionMNIST(str(root), train=True), FashionMNIST(str(root), train=False)
    labels = train.targets.long()
    is_val = _carve_val(labels, RETAIL_VAL_PER_CLASS, RETAIL_VAL_SEED)
    out = {"train": (_gray_to_rgb(train.data[~is_val]), labels[~is_val]),
           "val": (_gray_to_rgb(train.data[is_val]), labels[is_val]),
           "test": (_gray_to_rgb(test.data), test.targets.long())}
    about = "Fashion-MNIST (Zalando product images, MIT licence): 28 px grayscale as RGB"
    return {"splits": out, "description": about}


def load_photos(size: int = 224) -> tuple[torch.Tensor, list[str]]:
    """Lesson 01's photos (scikit-image samples, CC0 / public domain) as uint8 `(N, 3, size, size)`.

    Center-cropped and resized, ready for an ImageNet model's preprocessing; also returns
    their names ("chelsea", "coffee", ...). Downloaded once into the data cache; raises
    `OfflineError` in the offline world when they were never fetched.
    """
    photos = _sources().PHOTOS
    paths = [fetch_file(source) for source in photos.values()]
    return torch.stack([load_image(p, size) for p in paths]), [Path(name).stem for name in photos]


# --- the tensor cache and the world choice ------------------------------------------------------


def native_size(name: str, size: int) -> int:
    """The size the publisher's files hold the images of `name` at, when `size` px is asked for:
    28 (Fashion-MNIST), 64 (EuroSAT), the MedMNIST release `size` is read from."""
    return {"retail": FASHION_PX, "satellite": EUROSAT_PX}.get(name) or _medmnist_size(size)


def tensor_cache_path(name: str, size: int) -> Path:
    """Where the decoded uint8 tensors of data set `name` are kept for `size` px: at their
    `native_size`, so one file serves every size (each load resizes only what it keeps)."""
    return data_dir() / "tensors" / f"{name}-{native_size(name, size)}px.pt"


def _raw_paths(name: str, size: int) -> list[Path]:
    s = _sources()
    files = {"medical": [s.MEDICAL[_medmnist_size(size)]], "satellite": [s.SATELLITE],
             "retail": list(s.RETAIL.values())}[name]
    return [data_dir() / f.path for f in files]


def is_cached(name: str, size: int = 64) -> bool:
    """True when data set `name` can be loaded at `size` px without network."""
    _check_name(name)
    return tensor_cache_path(name, size).exists() or _sources_present(name, size)


def _sources_present(name: str, size: int) -> bool:
    """True when the publisher's files (or extracted EuroSAT) are in the data cache."""
    extracted = name == "satellite" and (data_dir() / "eurosat" / "2750").is_dir()
    return extracted or all(p.exists() for p in _raw_paths(name, size))


class DamagedCacheError(DownloadError):
    """A file in the data cache is damaged (an interrupted copy) and cannot be rebuilt here."""


_TENSOR_KEYS = tuple(f"{s}_{k}" for s in SPLITS for k in ("images", "labels")) + ("description",)


def _read_tensor_cache(name: str, size: int) -> dict | None:
    """The saved tensors of `name`, or None when there are none or the damaged file can be rebuilt."""
    cache = tensor_cache_path(name, size)
    if not cache.exists():
        return None
    try:
        saved = torch.load(cache, weights_only=True)
        missing = [k for k in _TENSOR_KEYS if k not in saved]
        if not missing:
            return saved
        reason = f"it lacks {missing}"
    except (RuntimeError, EOFError, OSError, TypeError, ValueError, pickle.UnpicklingError) as err:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'cannot be read'}"
    if not _sources_present(name, size):
        raise DamagedCacheError(
            f"The tensor cache {cache} is damaged ({reason}), and the source files to rebuild it are "
            f"not in {data_dir()}. Delete it, then run `python -m data_scripts.fetch {name}` where there "
            f"is network, or copy it again from the machine that prepared the classroom.")
    print(f"note: the tensor cache {cache.name} is damaged ({reason}); rebuilding it from the source files.")
    return None


def _save_tensor_cache(name: str, size: int, saved: dict) -> None:
    """Write the decoded tensors atomically; in a read-only cache say so once and go on without."""
    cache = tensor_cache_path(name, size)
    problem = writable_problem(cache.parent)
    if problem:
        print(f"note: cannot save the decoded tensors to {cache} ({problem}); they are decoded again next "
              f"time. Set FTLIB_DATA=<a folder you can write> to keep them.")
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    torch.save(saved, tmp)
    os.replace(tmp, cache)


def cache_dataset(name: str, size: int = 64) -> DataSplits:
    """The real data set `name` at the size its files hold (`native_size`), from the tensor cache
    or downloaded, decoded and cached (what `data_scripts.fetch` prepares). A damaged cache is
    rebuilt from the source files, a read-only one only read. Raises `OfflineError` (offline
    world), `CacheNotWritableError`, `DamagedCacheError` or `DownloadError`."""
    _check_name(name)
    saved = _read_tensor_cache(name, size)
    if saved is None:
        builders = {"medical": lambda: _build_medical(size), "satellite": _build_satellite, "retail": _build_retail}
        built = builders[name]()
        payload = {f"{s}_{k}": t for s, pair in built["splits"].items() for k, t in zip(("images", "labels"), pair)}
        saved = {**payload, "description": built["description"]}
        _save_tensor_cache(name, size, saved)
    names = CLASS_NAMES[name]
    parts = [TensorImageDataset(saved[f"{s}_images"], saved[f"{s}_labels"], names) for s in SPLITS]
    return DataSplits(name, "real", saved["description"], list(names), *parts)


def fetch_dataset(name: str, size: int = 64, *, per_class: tuple[int, int, int] | None = None,
                  seed: int = 0) -> DataSplits:
    """The real data set `name` at `size` px (`cache_dataset`, then resized), or only
    `per_class=(train, val, test)` images of each class, drawn with `seed`: those are chosen
    first and only they are resized, so a small subset stays small in memory (Fashion-MNIST
    at 64 px whole is 820 MiB). Raises what `cache_dataset` raises."""
    splits = _subset(cache_dataset(name, size), per_class, seed)
    if native_size(name, size) != size:
        splits.description += f", resized to {size} px"
        for s in SPLITS:
            part = getattr(splits, s)
            setattr(splits, s, TensorImageDataset(_resize(part.images, size), part.labels, part.class_names))
    return splits


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown data set {name!r}: choose one of {', '.join(DATASET_NAMES)}.")


def _standin(name: str, size: int, seed: int, per_class: tuple[int, int, int] | None) -> DataSplits:
    from .course.standins import make_standin

    if per_class is None:
        return make_standin(name, size=size, seed=seed)
    return make_standin(name, size=size, per_class=per_class, seed=seed)


def _subset(splits: DataSplits, per_class: tuple[int, int, int] | None, seed: int) -> DataSplits:
    """At most per_class[i] images of each class in split i (None keeps a split whole)."""
    if per_class is None:
        return splits
    for s, n in zip(SPLITS, per_class):
        if n is not None:
            setattr(splits, s, getattr(splits, s).subset(n, seed))
    return splits


def load_dataset(name: str, source: str = "auto", *, size: int = 64, seed: int = 0,
                 per_class: tuple[int, int, int] | None = None) -> DataSplits:
    """Train / val / test of `"medical"`, `"satellite"` or `"retail"` as uint8 `(N, 3, size, size)` images.

    `source`: `"real"` (cached or downloaded now), `"standin"` (procedural, offline), or
    `"auto"`: real when cached, or downloadable and `FTLIB_OFFLINE` is not set; the
    stand-in otherwise. `per_class=(train, val, test)` caps the images per class in each
    split, drawn with `seed`. Prints one line (`DataSplits.summary()`) naming the data set
    and the world. Used by every lesson from 02 on.
    """
    _check_name(name)
    if source not in ("auto", "real", "standin"):
        raise ValueError(f"source must be 'auto', 'real' or 'standin', got {source!r}")
    seed = shift_seed(seed)  # unchanged unless a claim sweep sets FTLIB_SWEEP_SEED
    if source == "auto" and not is_cached(name, size) and is_offline():
        source = "standin"
    if source == "standin":
        splits = _standin(name, size, seed, per_class)
    else:
        try:
            splits = fetch_dataset(name, size, per_class=per_class, seed=seed)
        except DownloadError as err:
            if source == "real":
                raise
            print(f"Real {name} data unavailable ({str(err).splitlines()[0]}); using the offline stand-in.")
            splits = _standin(name, size, seed, per_class)
    print(splits.summary())
    return splits
