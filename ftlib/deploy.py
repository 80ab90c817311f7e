"""Deploying a trained classifier: a checkpoint with everything inference needs, and an export.

- `Preprocess(size, mean, std)`: the evaluation preprocessing as a module built from three
  plain values, so a checkpoint can store it as numbers and rebuild it exactly.
- `save_for_inference(path, model, arch=..., class_names=..., preprocess=...)` writes the
  weights, the architecture name, the class names and the preprocessing values with
  `save_checkpoint` (atomic); `load_for_inference(path)` builds a fresh model from them and
  loads the weights with `weights_only=True`, so opening a file cannot run its code.
- `export_program(path, model, preprocess, class_names)` saves preprocessing, network and
  class names with `torch.export`, a file that `torch.export.load` runs with torch alone;
  `CLASSIFY_SCRIPT` is a standalone script that classifies a folder of images with it.

    >>> save_for_inference("runs/model.pt", model, arch="resnet18", class_names=names, preprocess=prep)
    >>> loaded = load_for_inference("runs/model.pt")
    >>> loaded.predict("new_image.jpg", k=3)       # [[(class, probability), ...]]

Used in lesson 08 and the projects (09-11).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from .checkpoint import _check_model_fits, _model_mismatches, _read, save_checkpoint
from .device import resolve_device
from .metrics import ImageInput, predict

__all__ = ["Preprocess", "ImageClassifier", "InferenceModel", "preprocess_for", "save_for_inference",
           "load_for_inference", "export_program", "CLASSIFY_SCRIPT", "INFERENCE_FORMAT"]

INFERENCE_FORMAT = "ftlib-inference-v1"


class Preprocess(nn.Module):
    """Images to a network's input: uint8 in 0..255 (or float in [0, 1]) `(3, H, W)` or
    `(N, 3, H, W)` -> float32 `(3, size, size)` or `(N, 3, size, size)`, normalised.

    An image that is not `size` x `size` has its short side resized to `size` (bilinear,
    antialiased) and is centre-cropped to a square. Then `(x - mean) / std` per channel. Only
    torch operations, so `torch.export` can capture it; `values()` gives the three plain
    values a checkpoint stores.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each (R, G, B), std above 0; got {mean}, {std}")
        self.size = int(size)
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        single = images.dim() == 3
        x = images.unsqueeze(0) if single else images
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        h, w = x.shape[-2], x.shape[-1]
        if h != self.size or w != self.size:
            short = min(h, w)
            nh, nw = max(self.size, (h * self.size + short // 2) // short), max(self.size, (w * self.size + short // 2) // short)
            x = F.interpolate(x, size=[nh, nw], mode="bilinear", align_corners=False, antialias=True)
            top, left = (nh - self.size) // 2, (nw - self.size) // 2
            x = x[:, :, top:top + self.size, left:left + self.size]
        x = (x - self.mean) / self.std
        return x.squeeze(0) if single else x

    def values(self) -> dict:
        """`{"size": int, "mean": [3 floats], "std": [3 floats]}`: what a checkpoint stores."""
        return {"size": self.size, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def extra_repr(self) -> str:
        v = self.values()
        return f"size={v['size']}, mean={[round(m, 4) for m in v['mean']]}, std={[round(s, 4) for s in v['std']]}"


def preprocess_for(weights_info) -> Preprocess:
    """The `Preprocess` of a model's pretrained weights (`model.weights_info`): their crop size,
    mean and std. For torchvision's ImageNet weights that is 224 px; the course's offline weights 64 px."""
    if weights_info.torchvision_weights is not None:
        t = weights_info.torchvision_weights.transforms()
        return Preprocess(t.crop_size[0], t.mean, t.std)
    p = weights_info.preprocessing
    crop = p["crop_size"][0] if isinstance(p["crop_size"], (list, tuple)) else p["crop_size"]
    return Preprocess(crop, p["mean"], p["std"])


class ImageClassifier(nn.Module):
    """Preprocessing, network and class names in one module: images in, probabilities out.

    `forward(images)`: uint8 `(N, 3, H, W)` -> softmax probabilities `(N, C)` float32.
    `class_names[i]` names output i. This is what `export_program` saves.
    """

    def __init__(self, preprocess: Preprocess, net: nn.Module, class_names: Sequence[str]) -> None:
        super().__init__()
        self.preprocess, self.net = preprocess, net
        self.class_names: List[str] = [str(n) for n in class_names]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(images)).softmax(dim=1)


@dataclass
class InferenceModel:
    """What `load_for_inference` returns: the model (eval mode), its preprocessing, the class
    names, the architecture name and the plain `notes` saved with it (a decision threshold, say)."""
    model: nn.Module
    preprocess: Preprocess
    class_names: list[str]
    arch: str
    notes: dict = field(default_factory=dict)

    def predict(self, inputs: ImageInput | Sequence[ImageInput], k: int = 1,
                device: torch.device | str | None = None) -> list[list[tuple[str, float]]]:
        """`ftlib.predict` with this model's preprocessing and class names: file paths, PIL
        images or uint8 tensors in; one list of `k` (class, probability) pairs per image out."""
        return predict(self.model, inputs, transform=self.preprocess, class_names=self.class_names, k=k, device=device)


def _fresh(arch: str, num_classes: int) -> nn.Module:
    try:
        return tvm.get_model(arch, weights=None, num_classes=num_classes)
    except ValueError as err:
        raise ValueError(f"{arch!r} is not a torchvision architecture ({err}).") from None


def save_for_inference(path: str | os.PathLike, model: nn.Module, *, arch: str, class_names: Sequence[str],
                       preprocess: Preprocess, notes: dict | None = None) -> Path:
    """Write what inference needs to `path` (atomically, see `save_checkpoint`); returns the path.

    The weights (`model.state_dict()`), `arch` (the torchvision name, e.g. "resnet18"),
    `class_names` (output i is `class_names[i]`) and `preprocess.values()` (size, mean, std).
    `notes`: plain values that belong with the model (numbers, strings, lists, dicts), such as
    the decision threshold chosen on the validation split; `load_for_inference` returns them.
    Raises ValueError before writing when `torchvision.models.get_model(arch,
    num_classes=len(class_names))` would not fit these weights: another architecture, or
    another number of classes.
    """
    names = [str(n) for n in class_names]
    problems = _model_mismatches(_fresh(arch, len(names)).state_dict(), model.state_dict())
    if problems:
        raise ValueError(f"a {arch} with {len(names)} classes does not fit this model's weights "
                         f"({len(problems)} tensors differ, e.g. {problems[0]}): check arch and class_names.")
    return save_checkpoint(path, model, format=INFERENCE_FORMAT, arch=arch, class_names=names,
                           preprocessing=preprocess.values(), notes=dict(notes or {}))


def load_for_inference(path: str | os.PathLike, device: torch.device | str | None = "cpu") -> InferenceModel:
    """A fresh model built from a file of `save_for_inference`, in eval mode, on `device`
    (default the CPU; None means `get_device()`), with its `Preprocess` and class names.

    Only tensors and plain values are read (`torch.load(weights_only=True)`); nothing in the
    file can run code. Raises ValueError for a file that is not such a checkpoint.
    """
    path = Path(path).expanduser()
    payload = _read(path, "cpu")
    extra = payload["extra"]
    if extra.get("format") != INFERENCE_FORMAT:
        raise ValueError(f"{path} was not written by save_for_inference (it has no architecture, class "
                         "names and preprocessing); load it with ftlib.load_checkpoint into a model you build.")
    model = _fresh(extra["arch"], len(extra["class_names"]))
    _check_model_fits(path, model, payload["model"])
    model.load_state_dict(payload["model"])
    p = extra["preprocessing"]
    model.to(resolve_device(device)).eval()
    return InferenceModel(model, Preprocess(p["size"], p["mean"], p["std"]), list(extra["class_names"]), extra["arch"],
                          dict(extra.get("notes", {})))


def export_program(path: str | os.PathLike, model: nn.Module, preprocess: Preprocess,
                   class_names: Sequence[str]) -> Path:
    """Save `ImageClassifier(preprocess, model, class_names)` with `torch.export`; returns the path.

    The file (`.pt2`) holds the graph and the weights; `torch.export.load(path).module()` runs
    it with torch alone (no ftlib, no torchvision). It takes uint8 images `(N, 3, size, size)`,
    any batch size N, and returns probabilities `(N, C)`; images of another size are refused,
    so resize them first (`ftlib.datasets.load_image(path, size)`, or `CLASSIFY_SCRIPT`'s
    Pillow code). The class names and the preprocessing values are stored beside the graph as
    `about.json` (read it with `torch.export.load(path, extra_files={"about.json": ""})`). A copy of `model`
    is exported, on the CPU, in eval mode; `model` itself is not changed.
    """
    import copy
    import json

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged = ImageClassifier(copy.deepcopy(preprocess).cpu(), copy.deepcopy(model).cpu(), class_names).eval()
    example = torch.zeros(2, 3, preprocess.size, preprocess.size, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(packaged, (example,), dynamic_shapes={"images": {0: batch}})
    about = {"class_names": packaged.class_names, "preprocessing": preprocess.values()}
    torch.export.save(program, path, extra_files={"about.json": json.dumps(about)})
    return path


CLASSIFY_SCRIPT = '''\
"""Classify every image in a folder with a model saved by ftlib.export_program (torch.export).

Usage: python classify.py MODEL.pt2 FOLDER
Prints one JSON line per image: {"file", "class", "probs"}. Needs torch and Pillow only.
"""
import json
import sys
from pathlib import Path

import torch
from PIL import Image, ImageOps


def read_square(path, size):
    """uint8 (3, size, size): upright, RGB, centre-cropped to a square and resized (bicubic)."""
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    rgb = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BICUBIC)
    pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return pixels.reshape(size, size, 3).permute(2, 0, 1)


def main(model_file, folder):
    extra = {"about.json": ""}
    model = torch.export.load(model_file, extra_files=extra).module()
    about = json.loads(extra["about.json"])
    names, size = about["class_names"], about["preprocessing"]["size"]
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = torch.stack([read_square(p, size) for p in files])
    with torch.no_grad():
        probs = model(images)
    for path, p in zip(files, probs):
        print(json.dumps({"file": path.name, "class": names[int(p.argmax())], "probs": p.tolist()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
'''
"""The standalone script the lesson writes to a file and runs in a process without ftlib."""
