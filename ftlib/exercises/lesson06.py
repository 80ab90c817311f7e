"""Lesson 06's exercises: overfitting.

q1 builds a label-preserving augmentation for upright product photos, q2 an AdamW with weight
decay on conv and linear weights only, q3 reads when early stopping ends a run.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torchvision.transforms import v2

from ..optim import NORM_LAYERS
from .checks import expect_module, measure_geometry, transform_parts, whole_number
from .checks import _LOW, _SPAN, _coordinate_image  # the coordinate image lesson 06 measures on
from .core import Exercise, ExerciseSet, Incorrect

__all__ = ["RETAIL_MAX_ROTATION", "RETAIL_MAX_SHEAR", "RETAIL_MIN_CROP_SCALE", "RETAIL_MAX_TRANSLATE",
           "RETAIL_SCALE_RANGE", "RETAIL_MIN_CORRELATION", "RETAIL_MIN_VISIBLE", "measure_geometry", "check_augmentation", "check_weight_decay",
           "EARLY_STOP_VAL_LOSSES", "check_early_stopping", "lesson06"]


# --- augmentation that keeps the labels true ----------------------------------------------

# Transforms that break the label of an upright product photo (Fashion-MNIST and its stand-in):
# shoes and shirts are never shown upside down, and a crop that loses most of the item loses its class.
RETAIL_MAX_ROTATION = 20.0   # degrees
RETAIL_MAX_SHEAR = 20.0      # degrees a shear may slant the product's vertical edges
RETAIL_MIN_CROP_SCALE = 0.4  # fraction of the image area a random crop must keep
RETAIL_MAX_TRANSLATE = 0.2       # fraction of the image size a shift may move the product
RETAIL_SCALE_RANGE = (0.7, 1.3)  # zoom factors an affine transform may draw
RETAIL_MIN_CORRELATION = 0.3     # median correlation of an augmented image with the input (or its mirror)
RETAIL_MIN_VISIBLE = 0.5         # fraction of the central product region that must stay in the frame
_SIZE = 64


def _degrees(t: Any) -> float:
    """The largest absolute angle (degrees) a rotation-like transform may draw."""
    degrees = getattr(t, "degrees", 0)
    values = degrees if isinstance(degrees, (list, tuple)) else [degrees]
    return max(abs(float(v)) for v in values)


_COLOUR_ONLY = {"ColorJitter", "RandomPhotometricDistort", "RandomGrayscale", "Grayscale", "RGB", "RandomInvert",
                "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast", "RandomEqualize",
                "GaussianBlur", "GaussianNoise", "ToDtype", "ConvertImageDtype", "Normalize", "ToImage",
                "ToPureTensor", "Identity", "RandomErasing", "RandomChannelPermutation"}


def _policy_ops(t: Any) -> list[tuple[str, float]]:
    """(op, signed magnitude) pairs an AutoAugment / RandAugment / TrivialAugmentWide / AugMix
    may apply to a 64 px image, at the largest magnitude each op can reach, from its own table."""
    space = getattr(t, "_AUGMENTATION_SPACE", None)
    if not isinstance(space, dict):
        return []
    if isinstance(t, v2.AutoAugment):
        reach = [(op, 10, idx) for policy in t._policies for op, _, idx in policy]
    elif isinstance(t, v2.RandAugment):
        reach = [(op, t.num_magnitude_bins, t.magnitude) for op in space]
    elif isinstance(t, v2.AugMix):
        reach = [(op, t._PARAMETER_MAX, t.severity - 1) for op in space]
    else:  # TrivialAugmentWide: any bin
        bins = getattr(t, "num_magnitude_bins", 31)
        reach = [(op, bins, bins - 1) for op in space]
    ops = {}
    for op, bins, idx in reach:
        magnitudes_fn, signed = space[op]
        magnitudes = magnitudes_fn(bins, _SIZE, _SIZE)
        if idx is None or magnitudes is None or not magnitudes.ndim:
            continue
        m = abs(float(magnitudes[idx]))
        ops[op] = max(ops.get(op, 0.0), m)
    return [(op, sign * m) for op, m in ops.items() for sign in ((1, -1) if space[op][1] else (1,))]


def _measured_policy_problem(t: Any) -> str | None:
    """Apply each geometric op of a policy, at the largest magnitude it reaches, to the
    coordinate image and bound what it does; None when every op keeps the label."""
    name, image = type(t).__name__, _coordinate_image()
    worst = {"rotation": (0.0, ""), "shear": (0.0, ""), "shift": (0.0, "")}
    for op, magnitude in _policy_ops(t):
        try:
            out = t._apply_image_or_video_transform(image, op, magnitude, interpolation=t.interpolation, fill=t._fill)
        except Exception:
            continue
        g = measure_geometry(out)
        if g is None or op.startswith(("Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                                       "AutoContrast", "Equalize", "Invert", "Identity")):
            continue
        moved = _centre_shift(image, out)
        for key, value in (("rotation", g["rotation"]), ("shear", g["shear"]), ("shift", moved)):
            if value > worst[key][0]:
                worst[key] = (value, op)
    if worst["rotation"][0] > RETAIL_MAX_ROTATION + 0.5:
        return (f"{name} rotates by up to {worst['rotation'][0]:.0f} degrees (its Rotate op, measured on a test "
                f"image); products are photographed upright, so keep rotations small (at most "
                f"{RETAIL_MAX_ROTATION:g} degrees): lower its magnitude or list mild transforms yourself.")
    if worst["shear"][0] > RETAIL_MAX_SHEAR + 0.5:
        return (f"{name} shears by up to {worst['shear'][0]:.0f} degrees (its ShearX / ShearY ops, measured on a "
                f"test image), slanting the product's upright edges: keep shears under {RETAIL_MAX_SHEAR:g} degrees "
                f"(lower its magnitude).")
    if worst["shift"][0] > RETAIL_MAX_TRANSLATE + 0.005:
        return (f"{name} shifts the image by up to {worst['shift'][0]:.0%} of its size (its Translate ops, measured "
                f"on a test image), which can push the product out of the frame: keep shifts under "
                f"{RETAIL_MAX_TRANSLATE:.0%}.")
    return None


def _centre_shift(image: torch.Tensor, out: torch.Tensor) -> float:
    """The largest shift along x or y, as a fraction of the size, of a same-size output: where
    the output's centre pixel came from in the input."""
    v = out.double()
    sx, sy = (v[0] - _LOW) / _SPAN, (v[1] - _LOW) / _SPAN
    h, w = out.shape[1:]
    rows = [(i, j) for i in range(h // 2 - 8, h // 2 + 8) for j in range(w // 2 - 8, w // 2 + 8)
            if float(v[:, i, j].min()) > 10]
    if not rows:
        return 1.0
    dx = sum(float(sx[i, j]) - j / (w - 1) for i, j in rows) / len(rows)
    dy = sum(float(sy[i, j]) - i / (h - 1) for i, j in rows) / len(rows)
    return max(abs(dx), abs(dy))


def _bounds_problem(label: str, measured: list[dict[str, float]], samples: int) -> str | None:
    """What one transform's measured geometry breaks (rotation, shear, zoom, product in frame), or None."""
    low, high = RETAIL_SCALE_RANGE[0], 1 / math.sqrt(RETAIL_MIN_CROP_SCALE)
    rot = max(g["rotation"] for g in measured)
    if rot > 90 - 1:
        what = "upside down" if rot > 135 else "on its side"
        return (f"{label} turns the product {what} (measured on a test image of known orientation: up to "
                f"{rot:.0f} degrees, a vertical flip reads as 180): catalogue photos are upright. Keep "
                f"RandomHorizontalFlip and small rotations only.")
    if rot > RETAIL_MAX_ROTATION + 2:
        return (f"{label} rotates the product by up to {rot:.0f} degrees (measured on a test image); products "
                f"are photographed upright, so keep rotations at most {RETAIL_MAX_ROTATION:g} degrees.")
    shear = max(g["shear"] for g in measured)
    if shear > RETAIL_MAX_SHEAR + 2:
        return (f"{label} shears the image by up to {shear:.0f} degrees (measured on a test image), slanting the "
                f"product's upright edges: keep shears at most {RETAIL_MAX_SHEAR:g} degrees.")
    zooms = [g["zoom"] for g in measured]
    if max(zooms) > high * 1.05 or min(zooms) < low * 0.95:
        z = max(zooms) if max(zooms) > high * 1.05 else min(zooms)
        return (f"{label} zooms by a factor of {z:.2f} (measured on a test image): the product is cut off or "
                f"shrinks to a speck. Keep zooms between {low:g} and {high:.2f} (a crop keeping "
                f"{RETAIL_MIN_CROP_SCALE:.0%} of the area).")
    visible = min(g["visible"] for g in measured)
    if visible < RETAIL_MIN_VISIBLE:
        return (f"{label} moves the product out of the frame: in one of {samples} samples only {visible:.0%} of "
                f"the central region of a test image stays in view (at least {RETAIL_MIN_VISIBLE:.0%} must).")
    return None


def _measured_problem(parts: list[Any], samples: int = 32) -> str | None:
    """Run each geometric transform of the pipeline (each policy op by op) on the coordinate
    image `samples` times, seeded, and bound the rotation (a vertical flip reads as 180
    degrees), shear, zoom and how much of the product stays in the frame; None when all keep
    the label. Transforms known to change only colours are skipped; so is a transform whose
    outputs cannot be decoded."""
    image = _coordinate_image()
    for t in parts:
        name = type(t).__name__
        if callable(getattr(t, "_apply_image_or_video_transform", None)) and hasattr(t, "_AUGMENTATION_SPACE"):
            problem = _measured_policy_problem(t)
            if problem:
                return problem
            continue
        if name in _COLOUR_ONLY:
            continue
        label = name if name not in ("function", "Lambda", "builtin_function_or_method") else "a transform of yours"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(66)
            try:
                measured = [measure_geometry(t(image.clone())) for _ in range(samples)]
            except Exception:
                continue
        measured = [g for g in measured if g is not None]
        if not measured:
            continue
        problem = _bounds_problem(label, measured, samples)
        if problem:
            return problem
    return None


def _affine_problem(t: Any) -> str | None:
    """Why a RandomAffine's shift, zoom or shear breaks the label, or None."""
    translate, scale = getattr(t, "translate", None), getattr(t, "scale", None)
    if translate is not None and max(translate) > RETAIL_MAX_TRANSLATE:
        return (f"RandomAffine shifts by up to {max(translate):.0%} of the image size, which can push the product "
                f"out of the frame: use translate of at most {RETAIL_MAX_TRANSLATE}.")
    low, high = RETAIL_SCALE_RANGE
    if scale is not None and (min(scale) < low or max(scale) > high):
        return (f"RandomAffine zooms by {min(scale):g} to {max(scale):g}: the product shrinks to a speck or is "
                f"cut off. Keep scale within ({low}, {high}).")
    shear = getattr(t, "shear", None)
    if shear is not None and max(abs(float(v)) for v in shear) > RETAIL_MAX_SHEAR:
        return (f"RandomAffine shears by up to {max(abs(float(v)) for v in shear):g} degrees, slanting the product's "
                f"upright edges: keep shear at most {RETAIL_MAX_SHEAR:g} degrees.")
    return None


def _retail_label_problem(parts: list[Any]) -> str | None:
    """Why a transform in `parts` makes a retail image lie about its label, or None."""
    for t in parts:
        name = type(t).__name__
        if name == "RandomVerticalFlip" and getattr(t, "p", 1) > 0:
            return ("RandomVerticalFlip turns shoes and shirts upside down, which no catalogue photo shows: the "
                    "augmented images no longer look like their class. Keep RandomHorizontalFlip, drop the vertical one.")
        if name in ("RandomRotation", "RandomAffine") and _degrees(t) > RETAIL_MAX_ROTATION:
            return (f"{name} draws angles up to {_degrees(t):g} degrees; products are photographed upright, so "
                    f"keep rotations small (at most {RETAIL_MAX_ROTATION:g} degrees).")
        problem = _affine_problem(t) if name == "RandomAffine" else None
        if problem:
            return problem
        scale = getattr(t, "scale", None)
        if name == "RandomResizedCrop" and scale is not None and min(scale) < RETAIL_MIN_CROP_SCALE:
            return (f"RandomResizedCrop may keep only {min(scale):.0%} of the image, which can cut the product "
                    f"away; use scale=({RETAIL_MIN_CROP_SCALE}, 1.0) or more.")
    return None


def _retail_image() -> torch.Tensor:
    """A seeded uint8 (3, 64, 64) test image: a bright box on a dark background, with noise."""
    g = torch.Generator().manual_seed(6)
    image = torch.randint(0, 60, (3, 64, 64), generator=g, dtype=torch.uint8)
    image[:, 12:52, 20:44] = 200
    return image


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / ((a.norm() * b.norm()) + 1e-12))


def _output_problem(outputs: list[torch.Tensor], image: torch.Tensor, names: list[str]) -> str | None:
    """Why the sampled outputs are not usable training images of the same product, or None:
    a dtype other than uint8 or float, float values outside [0, 1] without a Normalize, or
    outputs that no longer resemble the input (median correlation with it or its mirror)."""
    out = outputs[0]
    if not (out.dtype == torch.uint8 or out.is_floating_point()):
        return f"your pipeline returns {out.dtype} images: keep them uint8, or float in [0, 1]."
    if out.is_floating_point() and "Normalize" not in names:
        low, high = min(float(o.min()) for o in outputs), max(float(o.max()) for o in outputs)
        if not math.isfinite(low + high) or low < -1e-3 or high > 1 + 1e-3:
            tip = " (ToDtype without scale=True keeps 0..255)" if high > 2 else ""
            return (f"your float images hold values from {low:.3g} to {high:.3g}, outside [0, 1]{tip}: "
                    f"use v2.ToDtype(torch.float32, scale=True).")
    scale = 255.0 if out.is_floating_point() and "Normalize" not in names else 1.0
    mirror = image.flip(-1)
    scores = sorted(max(_correlation(o * scale, image), _correlation(o * scale, mirror)) for o in outputs)
    median = scores[len(scores) // 2]
    if median < RETAIL_MIN_CORRELATION:
        return (f"your augmented images barely resemble the input: their median correlation with it is {median:.2f} "
                f"(a mild, label-preserving pipeline keeps it above {RETAIL_MIN_CORRELATION}). Use milder "
                f"transforms: the product must stay recognisable.")
    return None


def check_augmentation(pipeline: Callable) -> str:
    """A train-time augmentation for 64 px retail images (upright products): it returns a
    (3, 64, 64) tensor for a uint8 (3, 64, 64) image, is random (different outputs on the same
    image), and keeps the label.

    Keeping the label is judged twice. The settings of the transforms it can read (inside
    Compose / RandomApply / RandomChoice): no vertical flip, no rotation over
    RETAIL_MAX_ROTATION degrees, no shear over RETAIL_MAX_SHEAR, no crop keeping under
    RETAIL_MIN_CROP_SCALE of the area, no affine shift over RETAIL_MAX_TRANSLATE or zoom outside
    RETAIL_SCALE_RANGE. Then the geometry each transform applies, measured on a test image that
    encodes every pixel's position (`measure_geometry`): rotation (a vertical flip reads as 180
    degrees), shear, zoom and how much of the product stays in the frame, for 32 seeded samples
    of each transform, including plain functions and Lambdas, and op by op, at their largest
    magnitude, for AutoAugment / RandAugment / TrivialAugmentWide / AugMix. Transforms that only
    change colours are not measured; several mild transforms are bounded one by one, not
    together. Sampled outputs of the whole pipeline must be uint8, or float in [0, 1] (any range
    after a Normalize), and keep a median correlation of at least RETAIL_MIN_CORRELATION with
    the input or its mirror. Lesson 06.
    """
    if not callable(pipeline):
        raise TypeError(f"expected a transform (e.g. a v2.Compose), got {type(pipeline).__name__}.")
    parts = transform_parts(pipeline)
    problem = _retail_label_problem(parts) or _measured_problem(parts)
    if problem:
        raise Incorrect(problem)
    image = _retail_image()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            outputs = [pipeline(image.clone()) for _ in range(8)]
        except Exception as error:
            raise Incorrect(f"your pipeline fails on a uint8 (3, 64, 64) image tensor "
                            f"({type(error).__name__}: {error}).") from None
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        raise Incorrect(f"your pipeline returns a {type(outputs[0]).__name__}, not a tensor: keep the image a "
                        f"tensor (v2 transforms accept uint8 tensors directly).")
    if any(tuple(o.shape) != (3, 64, 64) for o in outputs):
        raise Incorrect(f"your pipeline turns a (3, 64, 64) image into {tuple(outputs[0].shape)}: every image of a "
                        f"batch must keep the model's input size; give RandomResizedCrop size=64.")
    if all(torch.equal(outputs[0], o) for o in outputs[1:]):
        raise Incorrect("your pipeline gave the same output 8 times: that is preprocessing, not augmentation. "
                        "Add random transforms (RandomHorizontalFlip, RandomResizedCrop, ColorJitter, ...).")
    names = [type(t).__name__ for t in transform_parts(pipeline)]
    problem = _output_problem(outputs, image, names)
    if problem:
        raise Incorrect(problem)
    return f"a random, label-preserving pipeline for upright products: {', '.join(names)}."


# --- weight decay, but not on norms and biases --------------------------------------------

def _owners(model: nn.Module) -> dict[int, tuple[str, bool]]:
    """{id(parameter): (qualified name, exempt from weight decay)}: norm-layer and bias parameters are
    exempt, as in `ftlib.optim.param_groups`."""
    owners = {}
    for module_name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            exempt = isinstance(module, NORM_LAYERS) or pname == "bias"
            owners[id(p)] = (f"{module_name}.{pname}".lstrip("."), exempt)
    return owners


def _decoupled(optimizer: torch.optim.Optimizer) -> bool:
    """True for AdamW, and for Adam with decoupled_weight_decay=True (the same update)."""
    if type(optimizer) is torch.optim.AdamW:
        return True
    return type(optimizer) is torch.optim.Adam and all(g.get("decoupled_weight_decay", False)
                                                      for g in optimizer.param_groups)


def _decay_per_step(optimizer: torch.optim.Optimizer) -> list[float]:
    """What one step of the optimizer does to each of its parameters when every gradient is 0,
    measured on copies: the fraction each tensor shrinks by (lr x weight_decay for decoupled
    weight decay, 0 without decay). Adam's L2 term instead moves every weight by about lr, its
    sign, so the fraction varies from tensor to tensor."""
    groups, copies = [], []
    for g in optimizer.param_groups:
        clones = [p.detach().clone().requires_grad_(True) for p in g["params"]]
        for c in clones:
            c.grad = torch.zeros_like(c)
        copies += clones
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": clones})
    before = [c.detach().clone() for c in copies]
    type(optimizer)(groups).step()
    out = []
    for old, new in zip(before, copies):
        energy = float((old.double() ** 2).sum())
        out.append(float(((old.double() - new.detach().double()) * old.double()).sum()) / energy if energy else 0.0)
    return out


def _decay_by_parameter(optimizer: torch.optim.Optimizer, model: nn.Module,
                        owners: dict[int, tuple[str, bool]]) -> dict[int, float]:
    """{id(parameter): its group's weight_decay}; Incorrect for a foreign, doubled or missing parameter."""
    seen: dict[int, float] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in owners:
                raise Incorrect("the optimizer holds parameters that are not in this model: build it from the model "
                                "you pass to check().")
            if id(p) in seen:
                raise Incorrect(f"{owners[id(p)][0]} is in two groups: give each parameter exactly one group.")
            seen[id(p)] = float(group.get("weight_decay", 0.0))
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise Incorrect(f"{len(missing)} trainable parameters are in no group (e.g. {missing[0]}): the optimizer "
                        f"would never update them.")
    return seen


def check_weight_decay(optimizer: Any, model: nn.Module, weight_decay: float = 0.05, lr: float = 1e-3) -> str:
    """`optimizer` is AdamW (decoupled weight decay) holding every trainable parameter of `model`
    once, at learning rate `lr`; conv and linear weights get `weight_decay`, norm-layer and bias
    parameters get 0.

    Judged by the settings and by what one step does: on copies of the parameters with zero
    gradients, the weights must shrink by lr x weight_decay and the norm and bias parameters
    not at all. Typical wrong answers it names: Adam (L2, not decoupled) or SGD, decay on
    every parameter, no decay anywhere, a weight decay given in percent, another lr,
    parameters left out or in two groups. Lesson 06.
    """
    model = expect_module(model, "check(optimizer, model)")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"expected a torch optimizer, got {type(optimizer).__name__}.")
    if type(optimizer) is torch.optim.Adam and not _decoupled(optimizer):
        raise Incorrect("this is Adam: with Adam, weight_decay is an L2 term added to the gradient and then "
                        "rescaled by Adam's per-parameter step sizes, so it barely regularises weights with large "
                        "gradients. Use torch.optim.AdamW, which decays the weights directly.")
    if not _decoupled(optimizer):
        raise Incorrect(f"this is {type(optimizer).__name__}: the task asks for torch.optim.AdamW, Adam with "
                        f"decoupled weight decay (the weights shrink directly, apart from the adaptive step).")
    owners = _owners(model)
    seen = _decay_by_parameter(optimizer, model, owners)
    decayed = [owners[i][0] for i, wd in seen.items() if owners[i][1] and wd > 0]
    if decayed:
        raise Incorrect(f"{len(decayed)} norm-layer or bias parameters get weight decay (e.g. {decayed[0]}): they "
                        f"set scales and offsets, not features, and shrinking them toward 0 only hurts. Put them in "
                        f"a group with weight_decay=0.")
    wrong = [(owners[i][0], wd) for i, wd in seen.items() if not owners[i][1] and not math.isclose(wd, weight_decay)]
    if wrong:
        percent = (f" {wrong[0][1]:g} looks like a percentage: weight_decay is a fraction, "
                   f"{weight_decay:g} for 5 %." if math.isclose(wrong[0][1], 100 * weight_decay) else "")
        raise Incorrect(f"{wrong[0][0]} has weight_decay={wrong[0][1]:g}; conv and linear weights should get "
                        f"{weight_decay:g} (pass it in their group's dict).{percent}")
    lrs = sorted({float(g["lr"]) for g in optimizer.param_groups if g["params"]})
    if any(not math.isclose(v, lr, rel_tol=1e-6) for v in lrs):
        raise Incorrect(f"the optimizer's learning rate is {', '.join(f'{v:g}' for v in lrs)}; the task asks for "
                        f"lr={lr:g} in every group (AdamW's default is 1e-3, so leave it or pass lr={lr:g}).")
    order = [id(p) for g in optimizer.param_groups for p in g["params"]]
    for i, shrink in zip(order, _decay_per_step(optimizer)):
        name, exempt = owners[i]
        want = 0.0 if exempt else lr * weight_decay
        if not math.isclose(shrink, want, rel_tol=0.02, abs_tol=1e-9):
            raise Incorrect(f"one step of your optimizer with zero gradients shrinks {name} by {shrink:.3g} of its "
                            f"size, where decoupled weight decay gives lr x weight_decay = {want:.3g}: build a plain "
                            f"torch.optim.AdamW from the two groups.")
    n_decay = sum(1 for i in seen if not owners[i][1])
    return (f"AdamW: {n_decay} weight tensors decay at {weight_decay:g}; "
            f"{len(seen) - n_decay} norm and bias tensors are left alone.")


# --- reading early stopping ---------------------------------------------------------------

EARLY_STOP_VAL_LOSSES = (1.20, 0.95, 0.81, 0.84, 0.79, 0.83, 0.88, 0.91, 0.70)


def _early_stop_reference(losses: tuple[float, ...], patience: int) -> tuple[int, int]:
    """(epoch after which training stops, best epoch), both 1-based, for val losses `losses`."""
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, loss in enumerate(losses, start=1):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return len(losses), best_epoch


def _epoch(answer: Any, what: str) -> int:
    """An epoch number of any integer type; a loss value or another fraction is named."""
    try:
        return whole_number(answer, what)
    except Incorrect:
        if isinstance(answer, float) and any(math.isclose(answer, v) for v in EARLY_STOP_VAL_LOSSES):
            raise Incorrect(f"{what} is an epoch number (1 to {len(EARLY_STOP_VAL_LOSSES)}), got {answer:g}, one of "
                            f"the validation losses: give the epoch, not its loss.") from None
        raise


def check_early_stopping(stop_epoch: Any, restored_epoch: Any) -> str:
    """With the validation losses EARLY_STOP_VAL_LOSSES (epochs 1..9) and patience 3: after which
    epoch does early stopping end training, and whose weights does restore_best put back?

    Epochs are whole numbers of any integer type, counted from 1. Typical wrong answers it
    names: 0-based epochs, training to the last epoch, the last epoch's weights, epoch 9's
    loss (never reached), a loss given instead of an epoch. Lesson 06.
    """
    stop, best = _early_stop_reference(EARLY_STOP_VAL_LOSSES, patience=3)
    got_stop, got_best = _epoch(stop_epoch, "stop_epoch"), _epoch(restored_epoch, "restored_epoch")
    if (got_stop, got_best) == (stop - 1, best - 1):
        raise Incorrect(f"({got_stop}, {got_best}) counts epochs from 0: here the first epoch is epoch 1 (the "
                        f"list gives epochs 1 to {len(EARLY_STOP_VAL_LOSSES)}), so add 1 to both.")
    if got_stop == len(EARLY_STOP_VAL_LOSSES):
        raise Incorrect("training never gets to the last epoch: count the epochs without a new best after the "
                        "best one; the third such epoch ends training.")
    if got_stop != stop:
        raise Incorrect(f"training does not stop after epoch {got_stop}: count only epochs whose loss is not a "
                        f"new best, and reset the count whenever a new best appears.")
    if got_best == len(EARLY_STOP_VAL_LOSSES):
        raise Incorrect(f"epoch {got_best}'s loss is the lowest in the list, but training stopped after epoch "
                        f"{stop}: that epoch never runs, so its weights do not exist.")
    if got_best == got_stop:
        raise Incorrect("restore_best does not keep the last epoch's weights: it puts back those of the epoch "
                        "with the lowest validation loss seen before stopping.")
    if got_best != best:
        raise Incorrect(f"epoch {got_best} is not the best one before the stop: look for the lowest validation "
                        f"loss among epochs 1 to {stop}.")
    return f"training stops after epoch {stop} and the weights of epoch {best} come back."


# --- the exercises ------------------------------------------------------------------------

lesson06 = ExerciseSet(
    "06",
    q1=Exercise(
        title="Lesson 06, exercise 1: augmentation that keeps the labels true",
        task="Build a torchvision.transforms.v2 training augmentation for the retail domain (64 px photos of "
             "upright garments, shoes and bags): random, so that each epoch sees new versions, but never "
             "producing an image that no longer looks like its class. It takes and returns a (3, 64, 64) "
             "uint8 tensor (normalisation comes after it).",
        usage="ex.q1.check(train_augment)",
        checker=check_augmentation,
        hints=("Ask of each transform: could a photo in the catalogue look like this? A mirrored sneaker, yes; an "
               "upside-down one, no.",
               "v2.RandomResizedCrop(64, scale=(0.6, 1.0)), v2.RandomHorizontalFlip(), a small "
               "v2.RandomRotation(10) and a v2.ColorJitter all keep the label."),
        solution_code="""
from torchvision.transforms import v2

train_augment = v2.Compose([
    v2.RandomResizedCrop(64, scale=(0.6, 1.0), antialias=True),  # zoom in a little, keep the item
    v2.RandomHorizontalFlip(),                                   # a mirrored shoe is still a shoe
    v2.RandomRotation(10),                                       # small tilts only
    v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
])
""",
    ),
    q2=Exercise(
        title="Lesson 06, exercise 2: weight decay, but not on norms and biases",
        task="Build a torch.optim.AdamW for all trainable parameters of `model` with lr=1e-3 and weight decay "
             "0.05 on conv and linear weights, and no weight decay on BatchNorm parameters and biases.",
        usage="ex.q2.check(optimizer, model)",
        checker=check_weight_decay,
        hints=("Make two lists while looping over `model.named_modules()` and each module's "
               "`named_parameters(recurse=False)`: BatchNorm parameters and any parameter named 'bias' go to "
               "the no-decay list.",
               "Pass two groups: AdamW([{'params': decay, 'weight_decay': 0.05}, "
               "{'params': no_decay, 'weight_decay': 0.0}], lr=1e-3)."),
        solution_code="""
import torch
from torch import nn

decay, no_decay = [], []
for module in model.modules():
    for name, p in module.named_parameters(recurse=False):
        if not p.requires_grad:
            continue
        if isinstance(module, nn.BatchNorm2d) or name == "bias":
            no_decay.append(p)
        else:
            decay.append(p)
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                               {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
""",
    ),
    q3=Exercise(
        title="Lesson 06, exercise 3: read early stopping",
        task="A run's validation losses, epochs 1 to 9, are "
             f"{', '.join(f'{v:.2f}' for v in EARLY_STOP_VAL_LOSSES)}. With EarlyStopping(patience=3) "
             "(min_delta 0) and restore_best=True: after which epoch does training stop, and the weights "
             "of which epoch does the model end with?",
        usage="ex.q3.check(stop_epoch, restored_epoch)",
        checker=check_early_stopping,
        hints=("Walk the list: keep the best loss so far and a counter of epochs since it; a new best resets "
               "the counter to 0.",
               "Training stops when the counter reaches 3; the epochs after that are never run, so their "
               "losses do not matter."),
        solution_code="""
stop_epoch = 8       # bests at epochs 1, 2, 3 and 5; epochs 6, 7, 8 do not improve on 0.79
restored_epoch = 5   # the lowest validation loss seen (0.79); epoch 9's 0.70 never happens
""",
    ),
)
