"""Lesson 03's exercises: feature extraction.

q1 builds a feature extractor with a new head, q2 writes accuracy over samples (not batches),
q3 builds the preprocessing that matches the pretrained weights.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import WeightsEnum

from ..device import eval_mode
from ..models import classifier_path, stages
from .checks import (as_number, check_gradients, check_trainable, example_input, expect_family, expect_module,
                     transform_parts)
from .core import CodeRaised, Exercise, ExerciseSet, Incorrect, call_student

__all__ = ["check_head", "check_accuracy_fn", "check_transforms", "lesson03"]


# --- the model's head ---------------------------------------------------------------------

def check_head(model: nn.Module, num_classes: int, in_features: int | None = None) -> str:
    """The head (last stage) ends in an `nn.Linear(in_features, num_classes)` and the model
    maps a (2, 3, 32, 32) batch to (2, num_classes) logits; the model's train/eval flags are
    given back afterwards. Lesson 03."""
    where = classifier_path(expect_module(model))
    linears = [m for m in list(stages(model).values())[-1].modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise Incorrect(f"the head ({where}) holds no nn.Linear layer: replace it with "
                        f"nn.Linear(number of features, {num_classes}).")
    fc = linears[-1]
    if fc.out_features != num_classes:
        tip = (f" 1000 is ImageNet's classifier, still in place: assign the new layer to {where}."
               if fc.out_features == 1000 else "")
        raise Incorrect(f"your head outputs {fc.out_features} classes but the data set has {num_classes}: "
                        f"replace {where} with nn.Linear({fc.in_features}, {num_classes}).{tip}")
    if in_features is not None and fc.in_features != in_features:
        raise Incorrect(f"your head takes {fc.in_features} features, but the backbone gives {in_features}: "
                        f"read the number from the old layer ({where}.in_features) before replacing it.")
    with eval_mode(model), torch.no_grad():
        try:
            out = model(example_input(model))
        except RuntimeError as err:
            raise Incorrect(f"a forward pass through your model fails ({err}): the head's in_features "
                            f"must equal the number of features the backbone gives.") from None
    if tuple(out.shape) != (2, num_classes):
        raise Incorrect(f"a batch of 2 images gives logits of shape {tuple(out.shape)}, expected (2, {num_classes}).")
    _not_logits(out.double())
    return f"the head is nn.Linear({fc.in_features}, {fc.out_features}) and the logits have shape (N, {num_classes})."


def _not_logits(out: torch.Tensor) -> None:
    """Raise when the model's outputs are probabilities or log-probabilities, not logits:
    nn.CrossEntropyLoss, the loss the lessons use, applies log-softmax itself."""
    rows = out.sum(1)
    if (out >= 0).all() and (out <= 1).all() and torch.allclose(rows, torch.ones_like(rows), atol=1e-4):
        raise Incorrect("your model's outputs are probabilities (each row sums to 1): the head ends in a softmax. "
                        "nn.CrossEntropyLoss applies log-softmax itself and expects raw logits: drop the softmax.")
    exp_rows = out.exp().sum(1)
    if (out <= 0).all() and torch.allclose(exp_rows, torch.ones_like(exp_rows), atol=1e-4):
        raise Incorrect("your model's outputs are log-probabilities: the head ends in a log_softmax. "
                        "nn.CrossEntropyLoss applies log-softmax itself and expects raw logits: drop it.")


def _one_linear_layer(model: nn.Module) -> None:
    """Raise when the head holds more than the one nn.Linear the task asks for (an MLP, or a
    norm layer next to it); parameter-free modules (Dropout, Flatten) are fine."""
    head = list(stages(model).values())[-1]
    learned = [m for m in head.modules() if any(True for _ in m.parameters(recurse=False))]
    linears = [m for m in learned if isinstance(m, nn.Linear)]
    if len(linears) > 1:
        sizes = " -> ".join([str(linears[0].in_features)] + [str(m.out_features) for m in linears])
        raise Incorrect(f"your head is an MLP of {len(linears)} linear layers ({sizes}): the task asks for one linear "
                        f"layer on the 512 pooled features, nn.Linear(512, 2). A linear probe keeps the pretrained "
                        f"features as they are; hidden layers are new weights to train from scratch.")
    others = [type(m).__name__ for m in learned if not isinstance(m, nn.Linear)]
    if others:
        raise Incorrect(f"your head holds {', '.join(others)} besides its linear layer: the task asks for one "
                        f"nn.Linear(512, 2) on the pooled features, nothing else that learns.")


# --- accuracy over samples ----------------------------------------------------------------

_RIGHT_FIRST = torch.tensor([1, 1, 0, 0, 1, 1, 1, 0, 1, 0], dtype=torch.bool)


def _probe_network() -> nn.Module:
    """A seeded 6 -> 16 -> 3 network with BatchNorm and dropout, handed over in eval mode."""
    with torch.random.fork_rng():  # the student's global seed stays as it was
        torch.manual_seed(303)
        model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    gen = torch.Generator().manual_seed(304)
    with torch.no_grad():
        model[1].running_mean.copy_(0.3 * torch.randn(16, generator=gen))
        model[1].running_var.copy_(0.5 + 1.5 * torch.rand(16, generator=gen))
    return model.eval()


def _accuracy_probes() -> list[tuple[nn.Module, DataLoader, torch.Tensor]]:
    """(model, loader, right) triples: a fresh seeded small network per loader, handed over in
    train mode (as after a training loop), and inputs whose labels agree with its eval-mode
    predictions where `right` is True. The first: 10 samples in batches of 4, 4, 2, right 2, 3
    and 1 times (6 / 10 over samples, 0.583 per batch); then 23 in batches of 5 and 37 in
    batches of 8, each with a short last batch (never of 1 sample, which BatchNorm cannot take
    in train mode)."""
    gen = torch.Generator().manual_seed(3030)
    probes = []
    for n, batch in ((10, 4), (23, 5), (37, 8)):
        model = _probe_network()
        x = torch.randn(n, 6, generator=gen)
        right = _RIGHT_FIRST if n == 10 else torch.rand(n, generator=gen) < 0.3 + 0.4 * len(probes) / 2
        with torch.no_grad():
            preds = model(x).argmax(1)
        labels = torch.where(right, preds, (preds + 1 + (torch.arange(n) % 2)) % 3)
        probes.append((model.train(), DataLoader(TensorDataset(x, labels), batch_size=batch, shuffle=False), right))
    return probes


def _watch(model: nn.Module) -> tuple[dict[str, int], list[Any]]:
    """Count the model's forward passes, and those in which its BatchNorm or dropout layers ran
    in train mode (the result of a missing model.eval()); returns (counts, hook handles)."""
    counts = {"calls": 0, "train_mode": 0}

    def seen(module: nn.Module, args: Any) -> None:
        counts["train_mode"] += int(module.training)

    handles = [model.register_forward_pre_hook(lambda *_: counts.__setitem__("calls", counts["calls"] + 1))]
    handles += [m.register_forward_pre_hook(seen) for m in model.modules()
                if isinstance(m, (nn.BatchNorm1d, nn.Dropout))]
    return counts, handles


_FORGOT_EVAL = ("your function ran the model in train mode: it never calls model.eval(). The check network "
                "(handed over in train mode, as after a training loop) has dropout and BatchNorm, which in "
                "train mode drop random units and normalise with each batch's own statistics, so its "
                "predictions change from call to call{got}. Call model.eval() before the loop (and wrap it in "
                "torch.no_grad()).")


def _accuracy_mistake(got: float, right: float, per_batch: float, sizes: list[int], calls: int) -> str:
    """The message for a wrong accuracy `got` on a loader with batches of `sizes`."""
    shape = f"{sum(sizes)} samples in batches of {', '.join(map(str, sizes[:-1]))} and {sizes[-1]}"
    if math.isclose(got, per_batch, abs_tol=1e-4):
        return (f"you returned {got:.3f}, the mean of the per-batch accuracies. The last batch holds only "
                f"{sizes[-1]} samples but counts as much as a full batch: add up the correct predictions over all "
                f"batches and divide by the number of samples.")
    if math.isclose(got, 100 * right, abs_tol=1e-4):
        return f"you returned {got:g}, a percentage: return a fraction in [0, 1]."
    if got > 1:
        return (f"you returned {got:.3f}, more than 1: divide the number of correct predictions by the "
                f"number of samples (len(loader.dataset)), not by the number of batches.")
    if math.isclose(got, right * sum(sizes) / (sizes[0] * len(sizes)), abs_tol=1e-6):
        return (f"you returned {got:.3f}: you divided by batch size x number of batches ({sizes[0]} x {len(sizes)}), "
                f"but the last batch holds only {sizes[-1]} samples: divide by the number of samples seen.")
    if math.isclose(got, 1 - right, abs_tol=1e-6):
        return f"you returned {got:.3f}, the error rate: count the predictions that equal the label."
    never = " Your function never called the model: run it on each batch." if calls == 0 else ""
    return (f"you returned {got:.3f} on a check set of {shape}, expected {right:.3f}: count the samples "
            f"whose argmax over the logits equals the label, and divide by the number of samples.{never}")


def check_accuracy_fn(accuracy: Callable[[nn.Module, DataLoader], float]) -> str:
    """`accuracy(model, loader)` returns the fraction of samples classified right, in [0, 1],
    with the model in eval mode.

    Runs it with a seeded small network (BatchNorm and dropout, handed over in train mode) on
    three loaders whose last batch is short, so the typical mistakes give other numbers: the
    mean of per-batch accuracies, a percentage, a missing model.eval() (the BatchNorm and
    dropout layers run in train mode), a constant, a function that never calls the model.
    The global RNG is left as it was. Lesson 03.
    """
    call = "accuracy(model, loader)"
    for model, loader, right_mask in _accuracy_probes():
        sizes = [len(chunk) for chunk in right_mask.split(loader.batch_size)]  # iterating would draw a seed
        counts, handles = _watch(model)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(3031)
                got = as_number(call_student(call, accuracy, model, loader), call)
        finally:
            for h in handles:
                h.remove()
        right = right_mask.float().mean().item()
        if counts["train_mode"]:
            wrong = f" (you returned {got:.3f} where eval mode gives {right:.3f})" if not math.isclose(
                got, right, abs_tol=1e-6) else ""
            raise Incorrect(_FORGOT_EVAL.format(got=wrong))
        per_batch = sum(chunk.float().mean().item() for chunk in right_mask.split(loader.batch_size)) / len(sizes)
        if not math.isclose(got, right, abs_tol=1e-6):
            raise Incorrect(_accuracy_mistake(got, right, per_batch, sizes, counts["calls"]))
        if counts["calls"] == 0:
            raise Incorrect(f"you returned {got:.3f} without calling the model: run model(x) on each batch "
                            f"and compare the argmax with the labels.")
    first = _RIGHT_FIRST.float().mean().item()
    return f"accuracy over the 10 samples of the check set: {first:.3f}, and right on loaders of 23 and 37 samples."


# --- preprocessing that matches the weights -----------------------------------------------

def _test_image() -> torch.Tensor:
    """A smooth, asymmetric uint8 (3, 300, 400) image: gradients and a wave pattern."""
    y = torch.linspace(0, 1, 300)[:, None].expand(300, 400)
    x = torch.linspace(0, 1, 400)[None, :].expand(300, 400)
    wave = (torch.sin(12 * x) * torch.cos(9 * y) + 1) / 2
    return (torch.stack([x, y, wave]) * 255).round().to(torch.uint8)


def _test_images() -> list[torch.Tensor]:
    """The wave image, then seeded smooth random uint8 images of other shapes: portrait
    (3, 400, 300), square (3, 256, 256) and one smaller than the crop (3, 180, 210), which
    the pipeline must scale up."""
    gen = torch.Generator().manual_seed(3033)
    images = [_test_image()]
    for h, w in ((400, 300), (256, 256), (180, 210)):
        coarse = torch.rand(1, 3, h // 30 + 2, w // 30 + 2, generator=gen)
        smooth = nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0]
        images.append((smooth.clamp(0, 1) * 255).round().to(torch.uint8))
    return images


def _reference(weights: Any) -> Callable:
    """The weights' own preprocessing: `weights.transforms()`, or `weights` if it is a transform."""
    if isinstance(weights, WeightsEnum) or callable(getattr(weights, "transforms", None)):
        return weights.transforms()
    if callable(weights):
        return weights
    raise TypeError(f"expected torchvision weights (e.g. ResNet18_Weights.IMAGENET1K_V1) or their "
                    f"transform, got {type(weights).__name__}.")


def _run_both(pipeline: Callable, reference: Callable, image: torch.Tensor, seed: int = 3034) -> tuple[Any, Any]:
    """Run both on `image`: as a uint8 tensor, or as a PIL image if the pipeline needs one.
    The RNG is seeded, so a random pipeline gives the same output for the same seed."""
    from PIL import Image
    shape = tuple(image.shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return pipeline(image.clone()), reference(image)
        except Exception as tensor_error:  # e.g. a v1 ToTensor, which takes PIL images only
            pil = Image.fromarray(image.permute(1, 2, 0).numpy())
            try:
                return pipeline(pil), reference(pil)
            except Exception:
                raise CodeRaised(f"my_transform(image) on a uint8 {shape} image tensor (and on the same "
                                 f"image as a PIL image)", tensor_error) from None


def _close(a: list[float] | None, b: list[float] | None) -> bool:
    return (a is not None and b is not None and len(a) == len(b)
            and all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(a, b)))


def _normalize_of(t: Any) -> tuple[list[float], list[float]] | None:
    """(mean, std) of the last Normalize-like step of a pipeline, or None if it has none."""
    norms = [p for p in transform_parts(t) if hasattr(p, "mean") and hasattr(p, "std")]
    return (list(norms[-1].mean), list(norms[-1].std)) if norms else None


def _pixel_problem(pipeline: Callable, reference: Callable, got: torch.Tensor) -> str:
    """Why the output differs from the reference when the shapes agree."""
    mean, std = _normalize_of(reference) or (None, None)
    want = (f"mean={[round(m, 3) for m in mean]}, std={[round(s, 3) for s in std]}" if mean
            else "the weights' mean and std")
    if got.max() > 20:
        return ("values reach {:.0f}: the image was never scaled to [0, 1]. Convert with "
                "v2.ToDtype(torch.float32, scale=True) (scale=True divides by 255) before Normalize.".format(got.max()))
    if _normalize_of(pipeline) is None:
        return f"your pipeline has no Normalize: these weights expect inputs standardised with {want}."
    n_mean, n_std = _normalize_of(pipeline)
    if _close(n_mean, std) and _close(n_std, mean):
        return f"Normalize has mean and std swapped: use {want}."
    if mean and not (_close(n_mean, mean) and _close(n_std, std)):
        return (f"your Normalize uses mean={n_mean}, std={n_std}; these weights were trained with {want} "
                f"(weights.transforms() shows them).")
    squash = [p for p in transform_parts(pipeline) if "Resize" in type(p).__name__
              and isinstance(getattr(p, "size", None), (list, tuple)) and len(p.size) == 2]
    if squash:
        return (f"Resize({list(squash[0].size)}) squashes the image to a square; the weights resize the short side, "
                f"then center-crop.")
    resizes = [p for p in transform_parts(pipeline) if "Resize" in type(p).__name__]
    want = getattr(reference, "resize_size", None)
    sizes = [p.size[0] if isinstance(p.size, (list, tuple)) else p.size for p in resizes if hasattr(p, "size")]
    if want and sizes and sizes[0] != want[0]:
        return (f"your Resize takes the short side to {sizes[0]} px, the weights' to {want[0]} px before the "
                f"{reference.crop_size[0]} px center crop: the crop then holds a different part of the image.")
    modes = [getattr(p, "interpolation", None) for p in resizes]
    if modes and modes[0] is not None and "BILINEAR" not in str(modes[0]).upper():
        return (f"your Resize uses {str(modes[0]).split('.')[-1]} interpolation; the weights' uses bilinear "
                f"(the default of v2.Resize).")
    return ("the size and normalisation agree but the pixels differ: resize the short side and center-crop "
            "as the weights do, with bilinear interpolation.")


def _compare(pipeline: Callable, reference: Callable, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's and the reference's output on `image`; raises for a wrong type, dtype,
    shape or values, naming the mistake."""
    got, expected = _run_both(pipeline, reference, image)
    if not isinstance(got, torch.Tensor):
        raise Incorrect(f"your pipeline returns a {type(got).__name__}, not a tensor: convert the image "
                        f"(v2.ToImage(), then v2.ToDtype(torch.float32, scale=True)) and Normalize it.")
    if not got.is_floating_point():
        raise Incorrect(f"your pipeline returns {got.dtype} values; the model needs floats in the weights' "
                        f"scale: add v2.ToDtype(torch.float32, scale=True) and then v2.Normalize(...).")
    size = f"a {tuple(image.shape)} image"
    if got.shape != expected.shape:
        sizes = (f": resize the short side to {reference.resize_size[0]}, then center-crop "
                 f"{reference.crop_size[0]}" if hasattr(reference, "crop_size") else "")
        raise Incorrect(f"for {size} your pipeline gives shape {tuple(got.shape)}, the weights' own gives "
                        f"{tuple(expected.shape)}{sizes}.")
    diff = (got.float() - expected.float()).abs()
    if diff.mean() > 0.01 or diff.max() > 0.1:
        raise Incorrect(f"for {size}: " + _pixel_problem(pipeline, reference, got))
    return got, expected


def check_transforms(pipeline: Callable, weights: Any) -> str:
    """`pipeline` prepares images as the weights expect: on four uint8 test images (landscape
    (3, 300, 400), portrait, square and one smaller than the crop; a PIL image if the pipeline
    only takes those) it gives the same output shape, a float dtype and the same values (mean
    absolute difference <= 0.01, largest <= 0.1) as `weights.transforms()`, and it is not
    random (evaluation preprocessing gives one output per image). Diagnoses: no float
    conversion, no scaling to [0, 1], Normalize missing, swapped or with other values, a
    squashing Resize, a wrong crop size, random transforms.

    weights: a torchvision weights enum member, an object with a `.transforms()` method,
    or the reference transform itself. Lesson 03.
    """
    if not callable(pipeline):
        raise TypeError(f"expected a transform (e.g. a v2.Compose), got {type(pipeline).__name__}.")
    reference = _reference(weights)
    images = _test_images()
    outs = [_run_both(pipeline, reference, images[0], seed)[0] for seed in (1, 2, 3)]
    if all(isinstance(o, torch.Tensor) for o in outs) and any(
            o.shape != outs[0].shape or not torch.equal(o, outs[0]) for o in outs[1:]):
        random = [type(t).__name__ for t in transform_parts(pipeline) if type(t).__name__.startswith("Random")]
        names = f" ({', '.join(random)})" if random else ""
        raise Incorrect(f"your pipeline gives different outputs for the same image{names}: preprocessing for "
                        f"a pretrained model is deterministic (resize, center-crop, scale, normalise); random "
                        f"transforms belong in the training augmentation.")
    for image in images:
        got, _ = _compare(pipeline, reference, image)
    return (f"your pipeline gives the same {tuple(got.shape)} float tensor as the weights' own transforms, "
            f"on {len(images)} images of different shapes.")


# --- the exercises ------------------------------------------------------------------------

def _l03_head(model: nn.Module) -> str:
    expect_family(model, "resnet")
    _one_linear_layer(model)
    summary = check_head(model, num_classes=2, in_features=512)
    summary += " " + check_trainable(model, ["head"])
    check_gradients(model, ["head"])
    return summary


def _l03_transforms(pipeline: Callable, weights: Any = None) -> str:
    from torchvision.models import ResNet18_Weights
    return check_transforms(pipeline, ResNet18_Weights.IMAGENET1K_V1 if weights is None else weights)


lesson03 = ExerciseSet(
    "03",
    q1=Exercise(
        title="Lesson 03, exercise 1: a feature extractor with a new head",
        task="Take a resnet18, freeze its whole backbone and give it a new head for our 2 classes: "
             "a linear layer on the 512 pooled features. Only the head may train.",
        usage="ex.q1.check(model)",
        checker=_l03_head,
        hints=("Freeze first: a loop `for p in model.parameters(): p.requires_grad = False`. "
               "A layer created afterwards starts with requires_grad=True.",
               "On a ResNet the head is `model.fc`; `model.fc.in_features` tells you the 512."),
        solution_code="""
from torch import nn

# model: a resnet18 (pretrained)
for p in model.parameters():
    p.requires_grad = False                             # freeze everything ...
model.fc = nn.Linear(model.fc.in_features, 2)          # ... then add the new head (trainable)
""",
    ),
    q2=Exercise(
        title="Lesson 03, exercise 2: accuracy over samples",
        task="Write `accuracy(model, loader)` that returns the fraction of samples (in [0, 1]) whose "
             "predicted class (argmax of the logits) equals the label, with the model in eval mode. Beware "
             "the last batch, which can be shorter than the others. The checker's model has dropout and "
             "BatchNorm and comes in train mode, as after a training loop.",
        usage="ex.q2.check(accuracy)",
        checker=check_accuracy_fn,
        hints=("Call model.eval() first (dropout and BatchNorm behave differently in train mode), then keep "
               "two running totals over the loop: the number of correct predictions and the number of "
               "samples seen.",
               "The mean of per-batch accuracies over-weights a short last batch: divide the total "
               "correct by the total number of samples, once, after the loop."),
        solution_code="""
import torch

def accuracy(model, loader):
    device = next(model.parameters()).device
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        for x, y in loader:
            preds = model(x.to(device)).argmax(dim=1).cpu()
            correct += (preds == y).sum().item()
            seen += len(y)
    return correct / seen
""",
    ),
    q3=Exercise(
        title="Lesson 03, exercise 3: preprocessing that matches the weights",
        task="Build with torchvision.transforms.v2 the pipeline that prepares a uint8 image tensor "
             "the way resnet18's ImageNet weights expect (compare `weights.transforms()`): resize, crop, "
             "scale to floats, normalise. Pass your weights as the second argument if you use others.",
        usage="ex.q3.check(my_transform)",
        checker=_l03_transforms,
        hints=("Print `ResNet18_Weights.IMAGENET1K_V1.transforms()`: it lists the resize size, the crop "
               "size, the mean and the std.",
               "v2.Resize(256) resizes the short side (Resize((224, 224)) would squash the image); "
               "v2.ToDtype(torch.float32, scale=True) divides by 255."),
        solution_code="""
import torch
from torchvision.transforms import v2

my_transform = v2.Compose([
    v2.Resize(256),                                  # short side to 256
    v2.CenterCrop(224),
    v2.ToDtype(torch.float32, scale=True),           # uint8 0..255 -> float 0..1
    v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
""",
    ),
)
