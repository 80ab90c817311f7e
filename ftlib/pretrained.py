"""Loading a model with its weights: ImageNet, the course's offline weights, or random.

Three kinds of weights, one call:
  "imagenet"  torchvision's ImageNet weights, cached in torch's hub cache ($TORCH_HOME)
  "offline"   the course's own weights, pretrained on synthetic images (ftlib/weights/)
  None        random initialisation ("random" means the same)
and "auto", which picks the first that works (see `get_weights`). Used in every lesson.
"""

from __future__ import annotations

import json
import pickle
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models import WeightsEnum
from torchvision.transforms import v2

from .config import is_offline, is_quiet, weights_dir
from .course.download import file_checksum, writable_problem
from .models import ARCHS, check_num_classes, replace_head

__all__ = ["OFFLINE_WEIGHTS_DIR", "WeightsInfo", "WeightsUnavailableError",
           "get_weights", "load_model", "model_zoo_table"]

OFFLINE_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Folder of the course-made weights: `<arch>_offline.pt` and `<arch>_offline.json`."""

FETCH_COMMAND = "python -m data_scripts.fetch weights"
PRETRAIN_COMMAND = "python -m data_scripts.pretrain_backbone"
_OFFLINE_KEYS = ("arch", "num_classes", "categories", "mean", "std", "resize_size", "crop_size",
                 "source", "recipe", "sha256")


class WeightsUnavailableError(RuntimeError):
    """The requested weights are not on disk and cannot be downloaded, or fail their checksum.

    The message always says how to get them (pre-fetch, rebuild) or what to use instead.
    """


@dataclass
class WeightsInfo:
    """Which weights a model carries and how its input images must be prepared.

    arch: the torchvision architecture, e.g. `"resnet18"`.
    name: e.g. `"ResNet18_Weights.IMAGENET1K_V1"`, `"course-offline"` or `"random"`.
    source: `"imagenet"`, `"offline"` or `"random"`.
    categories: the class names of the task the weights were trained on (1000 ImageNet
        names, the offline pretraining classes, or None). After `load_model(...,
        num_classes=k)` they describe the old head, not the new one.
    meta: facts about the weights: num_params, GFLOPS (at 224 px) and acc@1 / acc@5 (%,
        ImageNet-1K top-1 / top-5) for ImageNet; num_classes, source, recipe, sha256 offline.
    file: where the weights are (or would be) on disk; None for random weights.
    preprocessing: mean, std, resize_size, crop_size, for offline and random weights.
    Used in lesson 01 (what a pretrained model knows) and every lesson that loads a model.
    """

    arch: str
    name: str
    source: str
    categories: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    torchvision_weights: WeightsEnum | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # short: 1000 category names would flood a notebook cell
        n = "None" if self.categories is None else f"<{len(self.categories)} names>"
        return (f"WeightsInfo(arch={self.arch!r}, name={self.name!r}, source={self.source!r}, "
                f"categories={n}, meta={self.meta!r}, file={self.file})")

    def transforms(self) -> Callable[[Any], torch.Tensor]:
        """The evaluation preprocessing the weights expect: resize, centre crop, scale to
        [0, 1], normalise. Takes a PIL image or a uint8 (C, H, W) tensor (also a batch
        (N, C, H, W)) and returns float32 (C, crop, crop). ImageNet weights use
        torchvision's own `weights.transforms()`."""
        if self.torchvision_weights is not None:
            return self.torchvision_weights.transforms()
        p = self.preprocessing
        return v2.Compose([v2.ToImage(), v2.Resize(p["resize_size"], antialias=True),
                           v2.CenterCrop(p["crop_size"]), v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(p["mean"], p["std"]), v2.ToPureTensor()])


def _check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}. load_model knows: {', '.join(ARCHS)}.")
    return arch


def _label(w: WeightsEnum) -> str:
    """`ResNet18_Weights.IMAGENET1K_V1` (the alias DEFAULT resolves to the real member)."""
    return f"{type(w).__name__}.{w.name}"


def _cache_file(w: WeightsEnum) -> Path:
    """Where torch's hub cache keeps this weights file (`$TORCH_HOME/hub/checkpoints/<name>`)."""
    return weights_dir() / Path(urlparse(w.url).path).name


def _torchvision_weights(arch: str, weights: str | WeightsEnum) -> WeightsEnum:
    """Resolve "imagenet", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1" or an enum member."""
    enum = tvm.get_model_weights(arch)
    names = [n for n in enum.__members__ if n != "DEFAULT"]
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum):
            raise ValueError(f"{_label(weights)} belong to another architecture; {arch} takes "
                             f"{enum.__name__}: {', '.join(names)}.")
        return weights
    if not isinstance(weights, str):
        raise TypeError(f"weights must be a string, a torchvision weights enum or None, not "
                        f"{type(weights).__name__}.")
    if weights == "imagenet":
        return enum.DEFAULT
    name = weights.removeprefix(enum.__name__ + ".")
    if name in enum.__members__:
        return enum[name]
    raise ValueError(f"Unknown weights {weights!r} for {arch}. Use 'auto', 'imagenet', 'offline', "
                     f"None (random) or one of {enum.__name__}: {', '.join(names)}.")


def _imagenet_info(arch: str, w: WeightsEnum) -> WeightsInfo:
    metrics = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
    meta = {"num_params": w.meta.get("num_params"), "GFLOPS": w.meta.get("_ops"),
            "acc@1": metrics.get("acc@1"), "acc@5": metrics.get("acc@5"),
            "file_size_MB": w.meta.get("_file_size")}
    categories = w.meta.get("categories")
    return WeightsInfo(arch, _label(w), "imagenet", list(categories) if categories else None,
                       meta, _cache_file(w), torchvision_weights=w)


def _random_info(arch: str) -> WeightsInfo:
    """Random weights keep the architecture's usual ImageNet preprocessing (no download needed)."""
    t = tvm.get_model_weights(arch).DEFAULT.transforms()
    prep = {"mean": list(t.mean), "std": list(t.std), "resize_size": list(t.resize_size),
            "crop_size": list(t.crop_size)}
    return WeightsInfo(arch, "random", "random", preprocessing=prep)


def _offline_missing(arch: str, pt: Path, js: Path) -> str:
    return (f"The course's offline weights for {arch} are missing: expected {pt} and {js}. "
            f"Build them with `{PRETRAIN_COMMAND}`, or use ImageNet weights instead: "
            f"load_model({arch!r}, weights='imagenet') (pre-fetch them with `{FETCH_COMMAND}` "
            f"where there is network).")


def _offline_info(arch: str, folder: Path | None) -> WeightsInfo:
    folder = Path(folder) if folder is not None else OFFLINE_WEIGHTS_DIR
    pt, js = folder / f"{arch}_offline.pt", folder / f"{arch}_offline.json"
    if not (pt.is_file() and js.is_file()):
        raise WeightsUnavailableError(_offline_missing(arch, pt, js))
    try:
        meta = json.loads(js.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsUnavailableError(f"{js} cannot be read ({_first_line(err)}): it is damaged. Restore it "
                                      f"with `git checkout -- {js.name}` in ftlib/weights, or rebuild it "
                                      f"with `{PRETRAIN_COMMAND}`.") from err
    meta = meta if isinstance(meta, dict) else {}
    missing = [k for k in _OFFLINE_KEYS if k not in meta]
    if missing or meta["arch"] != arch:
        raise WeightsUnavailableError(f"{js} is not a valid description of {arch} offline weights "
                                      f"(missing keys {missing}, arch {meta.get('arch')!r}). "
                                      f"Rebuild them with `{PRETRAIN_COMMAND}`.")
    prep = {k: meta[k] for k in ("mean", "std", "resize_size", "crop_size")}
    facts = {k: meta[k] for k in ("num_classes", "source", "recipe", "sha256")}
    return WeightsInfo(arch, "course-offline", "offline", meta["categories"], facts, pt, prep)


def _download_problem(url: str, timeout: float = 5.0) -> str | None:
    """None when `url` answers a HEAD request within `timeout` seconds, else the reason."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except (OSError, HTTPException, ValueError) as err:  # URLError, timeouts and SSL errors are OSErrors
        return f"{type(err).__name__}: {err}"


def _auto_info(arch: str, folder: Path | None, verbose: bool) -> WeightsInfo:
    """Offline world: course weights. Else ImageNet when cached or downloadable, else course weights."""
    if is_offline():
        return _offline_info(arch, folder)
    w = tvm.get_model_weights(arch).DEFAULT
    if _cache_file(w).exists():
        return _imagenet_info(arch, w)
    problem = writable_problem(weights_dir()) or _download_problem(w.url)
    if problem is None:
        return _imagenet_info(arch, w)
    if verbose:
        print(f"note: {arch}: ImageNet weights {_cache_file(w).name} are not in {weights_dir()} and "
              f"cannot be downloaded ({problem}); using the course's offline weights instead.")
    return _offline_info(arch, folder)


def get_weights(arch: str, weights: str | WeightsEnum | None = "auto", *,
                offline_dir: Path | None = None, verbose: bool = True) -> WeightsInfo:
    """Describe the weights `load_model` would use, without loading them.

    weights: "imagenet" (the architecture's torchvision DEFAULT weights), a member name such
    as "IMAGENET1K_V1" (or "ResNet50_Weights.IMAGENET1K_V1", or the enum member itself),
    "offline" (course-made weights in `offline_dir`, default `OFFLINE_WEIGHTS_DIR`), None or
    "random", or "auto": offline when `FTLIB_OFFLINE=1`; else ImageNet when the file is in
    torch's hub cache or the download server answers (5 s timeout); else offline, with a
    printed note saying why. Used in lessons 00 and 01.
    """
    _check_arch(arch)
    if weights is None or weights == "random":
        return _random_info(arch)
    if weights == "offline":
        return _offline_info(arch, offline_dir)
    if weights == "auto":
        return _auto_info(arch, offline_dir, verbose)
    return _imagenet_info(arch, _torchvision_weights(arch, weights))


def _imagenet_missing(info: WeightsInfo, why: str) -> str:
    folder = info.file.parent
    return (f"ImageNet weights {info.name} (file {info.file.name}) are not in the torch hub cache "
            f"{folder} and {why}. Either pre-fetch them where there is network with "
            f"`{FETCH_COMMAND}` and copy the folder {folder} to the same place here (or point "
            f"TORCH_HOME at the copy), or use the course's offline weights: "
            f"load_model({info.arch!r}, weights='offline').")


def _read_imagenet_state(info: WeightsInfo) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict from torch's hub cache, downloading it first when allowed."""
    if info.file.is_file():
        return _load_file(info.file, _damaged_hub_file), f"from the torch hub cache {info.file}"
    if is_offline():
        raise WeightsUnavailableError(_imagenet_missing(info, "FTLIB_OFFLINE=1 forbids downloading them"))
    problem = writable_problem(info.file.parent)
    if problem:
        raise WeightsUnavailableError(_imagenet_missing(info, f"cannot be downloaded there ({problem}); "
                                                        f"set TORCH_HOME=<a folder you can write>"))
    try:
        state = torch.hub.load_state_dict_from_url(
            info.torchvision_weights.url, progress=not is_quiet(), check_hash=True,
            map_location="cpu", weights_only=True)
    except (OSError, HTTPException) as err:  # URLError, timeouts, SSL and disk errors
        raise WeightsUnavailableError(_imagenet_missing(info, f"the download failed ({err})")) from err
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:  # the new file is damaged
        raise WeightsUnavailableError(_damaged_hub_file(info.file, err)) from err
    return state, f"downloaded to {info.file}"


def _damaged_hub_file(path: Path, err: BaseException) -> str:
    return (f"The weights file {path} is damaged ({_first_line(err)}), e.g. an interrupted copy or "
            f"download. Delete it, then re-fetch it with `{FETCH_COMMAND}` where there is network "
            f"(or copy it again from the classroom's shared cache).")


def _damaged_offline_file(path: Path, err: BaseException) -> str:
    return (f"The course weights file {path} is damaged ({_first_line(err)}). Restore it with "
            f"`git checkout -- {path.name}` in ftlib/weights, or rebuild it with `{PRETRAIN_COMMAND}`.")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else 'unreadable'}"


def _load_file(path: Path, explain: Callable[[Path, BaseException], str]) -> dict[str, torch.Tensor]:
    """torch.load a state dict on the CPU; a damaged or unreadable file raises WeightsUnavailableError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as err:
        raise WeightsUnavailableError(f"{path} cannot be read by this user ({err.strerror}). Ask whoever "
                                      f"set up the shared cache to make it readable (chmod a+r), or copy "
                                      f"it to a cache of your own (TORCH_HOME).") from err
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as err:
        raise WeightsUnavailableError(explain(path, err)) from err
    if not isinstance(state, dict):
        raise WeightsUnavailableError(explain(path, TypeError(f"holds a {type(state).__name__}, not a state dict")))
    return state


def _read_offline_state(info: WeightsInfo) -> tuple[dict[str, torch.Tensor], str]:
    """The verified course-made state dict, floating tensors cast to float32."""
    expected, actual = info.meta["sha256"], file_checksum(info.file)
    if actual != expected:
        raise WeightsUnavailableError(
            f"{info.file} fails its checksum (sha256 {actual[:12]}..., the json says "
            f"{expected[:12]}...): the file is damaged or belongs to another build. "
            f"Rebuild it with `{PRETRAIN_COMMAND}`.")
    state = _load_file(info.file, _damaged_offline_file)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, f"from {info.file} ({info.meta['source']})"

def _read_state(info: WeightsInfo, auto: bool, offline_dir: Path | None, verbose: bool):
    """(info, state dict, where) for `info`; under "auto", unreadable ImageNet weights give way
    to the course's offline weights, with one printed line saying why."""
    if info.source == "offline":
        return (info, *_read_offline_state(info))
    try:
        return (info, *_read_imagenet_state(info))
    except WeightsUnavailableError as err:
        if not auto:
            raise
        if verbose:
            print(f"note: {info.arch}: {str(err).split('. ')[0]}; using the course's offline weights instead.")
        offline = _offline_info(info.arch, offline_dir)
        return (offline, *_read_offline_state(offline))


def _describe(info: WeightsInfo, where: str, num_classes: int | None) -> str:
    """The one line `load_model` prints, e.g. "resnet18: ImageNet weights ... ; new 3-class head"."""
    what = {"imagenet": f"ImageNet weights {info.name} {where}",
            "offline": f"course-made offline weights {where}",
            "random": "random initialisation (no pretrained weights)"}[info.source]
    if num_classes is None and info.source != "random":
        return f"{info.arch}: {what}; pretrained {_pretrained_classes(info)}-class head"
    return f"{info.arch}: {what}; new {num_classes or 1000}-class head"


def _pretrained_classes(info: WeightsInfo) -> int:
    """Outputs of the head the weights were trained with (1000 for ImageNet)."""
    if info.source == "offline":
        return int(info.meta["num_classes"])
    return len(info.categories) if info.categories else 1000


def load_model(arch: str, weights: str | WeightsEnum | None = "auto", num_classes: int | None = None,
               *, offline_dir: Path | None = None, verbose: bool = True) -> nn.Module:
    """A torchvision model with the requested weights, on the CPU, in training mode.

    arch: one of `ARCHS`. weights: see `get_weights` ("auto", "imagenet", "IMAGENET1K_V1",
    an enum member, "offline", None / "random"). num_classes: replace the head with a fresh
    `nn.Linear` for that many classes (see `replace_head`); None keeps the pretrained head
    (1000 ImageNet classes in lesson 01). The model carries `model.weights_info` (a
    `WeightsInfo`: `.transforms()`, `.categories`). With `verbose`, prints one line saying
    which weights were used and where they came from. Raises `WeightsUnavailableError`
    when the weights are neither on disk nor downloadable. Used in every lesson.

        >>> model = load_model("resnet18", "imagenet", num_classes=3)
        >>> x = model.weights_info.transforms()(image)       # (3, 224, 224) float32
    """
    if num_classes is not None:
        check_num_classes(num_classes)
    info = get_weights(arch, weights, offline_dir=offline_dir, verbose=verbose)
    if info.source == "random":
        extra = {} if num_classes is None else {"num_classes": num_classes}
        model, where = tvm.get_model(arch, weights=None, **extra), ""
    else:
        info, state, where = _read_state(info, weights == "auto", offline_dir, verbose)
        model = tvm.get_model(arch, weights=None, num_classes=_pretrained_classes(info))
        try:
            model.load_state_dict(state)
        except RuntimeError as err:  # e.g. a file of another architecture under this name
            raise WeightsUnavailableError(f"{info.file} does not fit {arch} ({_first_line(err)[:300]}). "
                                          f"Delete it and fetch or rebuild it.") from err
        if num_classes is not None:
            replace_head(model, num_classes)
    model.weights_info = info
    if verbose:
        print(_describe(info, where, num_classes))
    return model


def model_zoo_table(archs: Sequence[str] = ARCHS) -> list[dict[str, Any]]:
    """One row per architecture, from torchvision's metadata of its DEFAULT ImageNet weights
    (nothing is downloaded): arch, weights, params (count), gflops (per 224 px image),
    acc1 and acc5 (ImageNet-1K top-1 / top-5, %), file_mb (download size). Any torchvision
    classification architecture works, not only `ARCHS`. Used in lesson 01 (choosing a model).
    """
    rows = []
    for arch in archs:
        try:
            w = tvm.get_model_weights(arch).DEFAULT
        except (ValueError, KeyError) as err:
            raise ValueError(f"{arch!r} is not a torchvision model with weights "
                             f"(e.g. {', '.join(ARCHS)}).") from err
        metrics = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
        rows.append({"arch": arch, "weights": _label(w), "params": w.meta.get("num_params"),
                     "gflops": w.meta.get("_ops"), "acc1": metrics.get("acc@1"),
                     "acc5": metrics.get("acc@5"), "file_mb": w.meta.get("_file_size")})
    return rows
