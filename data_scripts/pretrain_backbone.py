"""Pretrain the course's offline ResNet-18 on formula-driven images (FractalDB idea, no photos).

    python -m data_scripts.pretrain_backbone            # the shipped build: 1000 classes, 3500 steps, seed 0
    python -m data_scripts.pretrain_backbone --minutes 5 --steps 400   # a quick, weaker build
    make gpu-backbone GPU_OUT=DIR                       # on a GPU machine: a bigger build in one command

Each class is one iterated function system (IFS): 2-4 random contractive affine maps, as
in FractalDB (Kataoka et al. 2020). An image of a class is drawn by the chaos game with
slightly perturbed maps, then placed with a random rotation, scale, shift and flip, coloured
(one colour per map, so the fractal's parts differ), and composited over a "dead leaves"
background of random occluding discs (Baradad et al. 2021) or a plain one, so that the
network also sees edges, occlusion and colour statistics. Grayscale, contrast, blur and
noise augmentations are drawn per image. `Mix` (options `--texture`, `--faint`, `--gray`,
`--blur`, `--gauss-blur`) shifts the mix: a share of images showing the class as a texture of
small strewn copies, a share with faint fractals, more grayscale, softer blur; the card
records it, and a resumed run must keep it. Three batches in four are drawn at half the size
(`--size // 2`): about 2.3 times cheaper, and the filters learn two scales. Batch `step`
is generated from `(seed, step)` alone, so a resumed run makes the same images as an
uninterrupted one.

Writes a checkpoint (`--work-dir`, default `/tmp/ftlib_pretrain`) every `--ckpt-every`
steps and on exit, and resumes from it; at the end (or when `--minutes` runs out) exports
`ftlib/weights/resnet18_offline.pt` (fp16 state_dict) and its `.json` card. Training uses
AdamW, label smoothing, and bf16 autocast with channels_last on CPUs that support it; on a
shared machine pass `--threads 1`. Used once, by the course authors; lessons load the result
with `ftlib.load_model("resnet18", weights="offline")`.

On a GPU (`--device cuda`) the network trains under bf16 autocast, and `--workers` processes draw
the batches (generating them is the slow part there: about 400 images/s per CPU core at the default
mix). `--time-schedule` makes the cosine schedule follow the share of `--minutes` spent, so a
time-capped run still ends at a learning rate near zero. `make gpu-backbone` runs it with settings
for a machine lent for minutes; its weights go to `GPU_OUT`, not to `ftlib/weights`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from ftlib.precision import cpu_has_native_bf16
from ftlib.progress import progress

__all__ = ["Mix", "BatchStream", "make_ifs_classes", "render_fractals", "dead_leaves", "pretrain_batch", "main"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "ftlib" / "weights"
MAX_MAPS = 4


def _sample_maps(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n candidate IFS: matrices (n, 4, 2, 2), shifts (n, 4, 2), probs (n, 4) (0 for unused maps)."""
    mats = torch.rand(n, MAX_MAPS, 2, 2, generator=g) * 2 - 1
    shifts = torch.rand(n, MAX_MAPS, 2, generator=g) * 2 - 1
    n_maps = torch.randint(2, MAX_MAPS + 1, (n,), generator=g)
    used = torch.arange(MAX_MAPS)[None] < n_maps[:, None]
    # Contractive: scale any map whose largest singular value exceeds 0.9 back to a random value in [0.5, 0.9].
    sv = torch.linalg.matrix_norm(mats, ord=2)
    target = 0.5 + 0.4 * torch.rand(n, MAX_MAPS, generator=g)
    mats = mats * torch.where(sv > 0.9, target / sv, torch.ones_like(sv))[..., None, None]
    det = torch.linalg.det(mats).abs() * used
    probs = (det + 0.02 * used) / (det + 0.02 * used).sum(1, keepdim=True)
    return mats, shifts, probs


def _chaos_game(mats: torch.Tensor, shifts: torch.Tensor, probs: torch.Tensor, g: torch.Generator,
                chains: int = 96, steps: int = 48, burn_in: int = 8) -> torch.Tensor:
    """Points of each IFS's attractor: (B, chains * (steps - burn_in), 2) float32."""
    b = mats.shape[0]
    cum = probs.cumsum(1)
    x = torch.rand(b, chains, 2, generator=g) * 2 - 1
    out = []
    for s in range(steps):
        u = torch.rand(b, chains, 1, generator=g)
        k = (u > cum[:, None, :]).sum(-1).clamp(max=MAX_MAPS - 1)        # (B, chains)
        a = torch.gather(mats, 1, k[..., None, None].expand(b, chains, 2, 2))
        t = torch.gather(shifts, 1, k[..., None].expand(b, chains, 2))
        x = (a @ x[..., None])[..., 0] + t
        if s >= burn_in:
            out.append(torch.cat([x, k[..., None].float()], -1))
    return torch.cat(out, 1)


def _splat(points: torch.Tensor, size: int) -> torch.Tensor:
    """Point counts per pixel: points (B, P, 2) in [-1, 1] -> (B, size, size) float32."""
    b = points.shape[0]
    ij = ((points + 1) / 2 * (size - 1)).round().long()
    inside = (ij >= 0).all(-1) & (ij < size).all(-1)
    flat = (ij[..., 1] * size + ij[..., 0]).clamp(0, size * size - 1) + torch.arange(b)[:, None] * size * size
    counts = torch.zeros(b * size * size)
    counts.index_add_(0, flat[inside], torch.ones(int(inside.sum())))
    return counts.view(b, size, size)


def make_ifs_classes(num_classes: int, seed: int, min_fill: float = 0.12, max_fill: float = 0.6) -> dict:
    """`num_classes` IFS, kept only if their attractor fills a sane share of a 32x32 grid.

    Returns {"mats": (K, 4, 2, 2), "shifts": (K, 4, 2), "probs": (K, 4)}, deterministic by seed.
    """
    g = torch.Generator().manual_seed(seed)
    kept = {"mats": [], "shifts": [], "probs": []}
    total = 0
    while total < num_classes:
        mats, shifts, probs = _sample_maps(4 * num_classes, g)
        pts = _normalise(_chaos_game(mats, shifts, probs, g, chains=64, steps=40)[..., :2])
        fill = (_splat(pts, 32) > 0).float().mean((1, 2))
        ok = (fill > min_fill) & (fill < max_fill)
        for key, val in zip(("mats", "shifts", "probs"), (mats, shifts, probs)):
            kept[key].append(val[ok])
        total += int(ok.sum())
    return {k: torch.cat(v)[:num_classes] for k, v in kept.items()}


def _normalise(points: torch.Tensor) -> torch.Tensor:
    """Centre each cloud (B, P, 2) and scale its larger extent to [-1, 1] (robust 1 % quantiles)."""
    lo = points.quantile(0.01, dim=1, keepdim=True)
    hi = points.quantile(0.99, dim=1, keepdim=True)
    centre, half = (lo + hi) / 2, ((hi - lo) / 2).amax(-1, keepdim=True).clamp(min=1e-3)
    return (points - centre) / half


def _scatter(xy: torch.Tensor, g: torch.Generator, copies: int = 16) -> torch.Tensor:
    """Turn each cloud (B, P, 2) in [-1, 1] into `copies` small copies strewn over the image: a fractal texture.

    Point i goes to copy i % copies; each copy gets its own centre, rotation and a scale of 0.12-0.35
    (one scale per image, jittered 20 % per copy).
    """
    b, p, _ = xy.shape
    which = torch.arange(p) % copies
    centre = torch.rand(b, copies, 2, generator=g) * 2.2 - 1.1
    angle = torch.rand(b, copies, generator=g) * 2 * math.pi
    scale = (0.12 + 0.23 * torch.rand(b, 1, generator=g)) * (0.8 + 0.4 * torch.rand(b, copies, generator=g))
    c, s = torch.cos(angle)[:, which], torch.sin(angle)[:, which]
    x, y = xy[..., 0], xy[..., 1]
    out = torch.stack([c * x - s * y, s * x + c * y], -1) * scale[:, which, None]
    return out + centre[:, which]


def render_fractals(classes: dict, labels: torch.Tensor, g: torch.Generator, size: int = 64,
                    texture: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fractal layer for each label: colour (B, 3, size, size) and alpha (B, 1, size, size) in [0, 1].

    Instance variation: maps jittered by N(0, 0.02), rotation up to 45 degrees, scale 0.55-1.0, shift, flip,
    one random colour per map and a random density-to-opacity gain. A share `texture` of the images
    shows the class as a texture of small strewn copies (`_scatter`) instead of one large shape, so
    that the class is also told by local texture, not only by the silhouette.
    """
    b = len(labels)
    mats = classes["mats"][labels] + 0.02 * torch.randn(b, MAX_MAPS, 2, 2, generator=g)
    shifts = classes["shifts"][labels] + 0.02 * torch.randn(b, MAX_MAPS, 2, generator=g)
    pts = _chaos_game(mats, shifts, classes["probs"][labels], g)
    xy, which = _normalise(pts[..., :2]), pts[..., 2].long()
    angle = (torch.rand(b, generator=g) - 0.5) * math.pi / 2
    scale = 0.55 + 0.45 * torch.rand(b, generator=g)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    rot = torch.stack([torch.cos(angle) * flip, -torch.sin(angle), torch.sin(angle) * flip, torch.cos(angle)], -1)
    xy = (xy @ (rot.view(b, 2, 2) * scale[:, None, None]).transpose(1, 2))
    xy = xy + (torch.rand(b, 1, 2, generator=g) * 2 - 1) * (1 - scale[:, None, None]) * 0.8
    if texture > 0:
        strewn = torch.rand(b, 1, 1, generator=g) < texture
        xy = torch.where(strewn, _scatter(xy, g), xy)
    counts = torch.stack([_splat(torch.where((which == m)[..., None], xy, torch.full_like(xy, 9.0)), size)
                          for m in range(MAX_MAPS)], 1)                   # (B, 4, H, W)
    palette = torch.rand(b, MAX_MAPS, 3, generator=g)
    density = counts.sum(1, keepdim=True)
    colour = torch.einsum("bmhw,bmc->bchw", counts, palette) / density.clamp(min=1)
    gain = 0.8 + 2.0 * torch.rand(b, 1, 1, 1, generator=g)
    alpha = 1 - torch.exp(-density * gain)
    return colour, alpha


def dead_leaves(b: int, g: torch.Generator, size: int = 64, leaves: int = 40) -> torch.Tensor:
    """Dead-leaves images (B, 3, size, size) in [0, 1]: discs with power-law radii occluding each other."""
    img = torch.rand(b, 3, 1, 1, generator=g).expand(b, 3, size, size).clone()
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    for _ in range(leaves):
        centre = torch.rand(b, 2, 1, 1, generator=g) * size
        u = torch.rand(b, 1, 1, generator=g)
        radius = 1.5 / (1 - u * (1 - (1.5 / 24) ** 2)) ** 0.5                    # p(r) ~ r^-3 on [1.5, 24]
        inside = ((xx - centre[:, 0]) ** 2 + (yy - centre[:, 1]) ** 2 < radius ** 2)[:, None]
        img = torch.where(inside, torch.rand(b, 3, 1, 1, generator=g), img)
    return img


def _gauss_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (B, C, H, W) with its own Gaussian std `sigma` (B,) in pixels (<= 2); 7x7, separable."""
    t = torch.arange(-3, 4, dtype=img.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    k = k / k.sum(1, keepdim=True)                                            # (B, 7)
    b, c, h, w = img.shape
    x = F.pad(img, (3, 3, 3, 3), mode="replicate").reshape(1, b * c, h + 6, w + 6)
    kk = k.repeat_interleave(c, 0)
    x = F.conv2d(x, kk.view(b * c, 1, 1, 7), groups=b * c)
    return F.conv2d(x, kk.view(b * c, 1, 7, 1), groups=b * c).view(b, c, h, w)


def _augment(img: torch.Tensor, g: torch.Generator, gray_share: float = 0.2, blur_share: float = 0.3,
             gauss: bool = False) -> torch.Tensor:
    """Per image: gray (`gray_share`), contrast/brightness, blur (`blur_share`), Gaussian noise; stays in [0, 1].

    The blur is a 3x3 box, or with `gauss` a Gaussian of std 0.5-2 px (soft edges, as in radiographs).
    """
    b = img.shape[0]
    gray = img.mean(1, keepdim=True).expand_as(img)
    img = torch.where(torch.rand(b, 1, 1, 1, generator=g) < gray_share, gray, img)
    contrast = 0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=g)
    img = (img - 0.5) * contrast + 0.5 + 0.2 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    if gauss:
        blurred = _gauss_blur(img, 0.5 + 1.5 * torch.rand(b, generator=g))
    else:
        blurred = F.avg_pool2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    img = torch.where(torch.rand(b, 1, 1, 1, generator=g) < blur_share, blurred, img)
    img = img + 0.05 * torch.rand(b, 1, 1, 1, generator=g) * torch.randn(img.shape, generator=g)
    return img.clamp(0, 1)


@dataclass(frozen=True)
class Mix:
    """What the pretraining images look like. The defaults are the first (3500-step) build's recipe.

    texture: share of images that show the class as strewn small copies (`_scatter`);
    faint: share of images whose fractal is drawn at 15-50 % opacity, a faint mark on clutter;
    gray, blur: shares of images made grayscale and blurred; gauss: Gaussian blur of 0.5-2 px
    instead of a 3x3 box.
    """
    texture: float = 0.0
    faint: float = 0.0
    gray: float = 0.2
    blur: float = 0.3
    gauss: bool = False


def pretrain_batch(classes: dict, seed: int, step: int, batch_size: int, size: int = 64,
                   mix: Mix = Mix()) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `step` of the pretraining stream: images (B, 3, size, size) float32 in [0, 1], labels (B,) int64.

    Deterministic in (seed, step, mix): a fractal of a random class (one shape, or a texture of
    small copies) over a dead-leaves background (a dimmed one 30 % of the time, a plain dark or
    random colour otherwise), then augmented.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    labels = torch.randint(len(classes["probs"]), (batch_size,), generator=g)
    colour, alpha = render_fractals(classes, labels, g, size, texture=mix.texture)
    if mix.faint > 0:
        opacity = torch.where(torch.rand(batch_size, 1, 1, 1, generator=g) < mix.faint,
                              0.15 + 0.35 * torch.rand(batch_size, 1, 1, 1, generator=g), torch.ones(batch_size, 1, 1, 1))
        alpha = alpha * opacity
    background = dead_leaves(batch_size, g, size)
    plain = torch.rand(batch_size, 3, 1, 1, generator=g) * torch.rand(batch_size, 1, 1, 1, generator=g)
    dim = 0.2 + 0.4 * torch.rand(batch_size, 1, 1, 1, generator=g)
    background = torch.where(torch.rand(batch_size, 1, 1, 1, generator=g) < 0.3,
                             background * dim, plain.expand_as(background))
    return _augment(alpha * colour + (1 - alpha) * background, g, mix.gray, mix.blur, mix.gauss), labels


def _channel_stats(classes: dict, seed: int, size: int, batches: int = 4, mix: Mix = Mix()) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of `batches` 256-image batches (rounded to 3 decimals)."""
    x = torch.cat([pretrain_batch(classes, seed + 7919, s, 256, size, mix)[0] for s in range(batches)])
    return ([round(v, 3) for v in x.mean((0, 2, 3)).tolist()], [round(v, 3) for v in x.std((0, 2, 3)).tolist()])


def _lr_at(step: int, steps: int, lr: float, warmup: int, done: float | None = None) -> float:
    """Linear warm-up then cosine decay to 0, over the steps after warm-up, or over `done`
    (the share of the run already spent, from 0 to 1) when it is given."""
    if step < warmup:
        return lr * (step + 1) / warmup
    done = (step - warmup) / max(1, steps - warmup) if done is None else done
    return 0.5 * lr * (1 + math.cos(math.pi * min(1.0, max(0.0, done))))


def _size_at(step: int, size: int, multiscale: bool) -> int:
    """Three batches in four at half size (multiscale), the fourth at full size."""
    return size if step % 4 == 3 or not multiscale else size // 2


class BatchStream(torch.utils.data.Dataset):
    """Item `step` is batch `step` of the pretraining stream (`pretrain_batch`), so DataLoader
    workers (`batch_size=None`) make the same images, in the same order, as the main process."""

    def __init__(self, classes: dict, seed: int, batch_size: int, size: int, multiscale: bool, mix: Mix, steps: int):
        self.classes, self.seed, self.batch_size, self.size = classes, seed, batch_size, size
        self.multiscale, self.mix, self.steps = multiscale, mix, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return pretrain_batch(self.classes, self.seed, step, self.batch_size,
                              _size_at(step, self.size, self.multiscale), self.mix)


def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, info: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "info": info}, tmp)
    tmp.replace(path)


def export(model: nn.Module, info: dict, out_dir: Path = WEIGHTS_DIR) -> Path:
    """Write `resnet18_offline.pt` (fp16 floating tensors) and `resnet18_offline.json`; returns the .pt path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    pt = out_dir / "resnet18_offline.pt"
    torch.save(state, pt)
    card = dict(info, sha256=hashlib.sha256(pt.read_bytes()).hexdigest())
    (out_dir / "resnet18_offline.json").write_text(json.dumps(card, indent=2) + "\n")
    return pt


def _card(args: argparse.Namespace, step: int, minutes: float, mean: list, std: list, acc: float) -> dict:
    return {
        "arch": "resnet18", "num_classes": args.classes, "categories": None,
        "mean": mean, "std": std, "resize_size": args.size, "crop_size": args.size,
        "source": (f"Supervised pretraining on {args.classes} formula-driven classes: each class is one random "
                   "iterated-function-system fractal (FractalDB idea), drawn with jittered maps, random pose and "
                   "per-map colours over dead-leaves or plain backgrounds; no natural images."),
        "recipe": {"steps": step, "planned_steps": args.steps, "minutes": round(minutes, 1), "seed": args.seed,
                   "lr": args.lr, "batch_size": args.batch_size, "image_count": step * args.batch_size,
                   "multiscale": args.multiscale, "mix": asdict(_mix(args)), "device": args.device,
                   "time_schedule": args.time_schedule,
                   "optimizer": "AdamW, weight decay 0.05, linear warm-up then cosine schedule, label smoothing 0.1",
                   "final_train_acc": round(acc, 3), "script": "python -m data_scripts.pretrain_backbone"},
    }


def _mix(args: argparse.Namespace) -> Mix:
    return Mix(texture=args.texture, faint=args.faint, gray=args.gray, blur=args.blur, gauss=args.gauss_blur)


def _resume(ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, images: dict) -> tuple[int, float]:
    """Load the checkpoint `ckpt` into `model` and `opt` if there is one: (step, minutes spent), else (0, 0.0).

    A checkpoint made with other image settings than `images` is refused (SystemExit)."""
    if not ckpt.exists():
        return 0, 0.0
    state = torch.load(ckpt, map_location="cpu", weights_only=True)   # the optimizer moves its state to the model
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    made_with = state["info"].get("images", images)
    if made_with != images:
        raise SystemExit(f"{ckpt} was made with other image settings ({made_with}), not {images}. "
                         "Pass the same --classes/--texture/--faint/--gray/--blur/--gauss-blur/--seed to resume, "
                         "or --restart (or another --work-dir) to start afresh.")
    step, spent = state["step"], state["info"]["minutes"]
    print(f"resumed from {ckpt} at step {step} ({spent:.1f} min spent)")
    return step, spent


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                loss_fn: nn.Module, use_bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step, under bf16 autocast when `use_bf16`; returns (loss, logits)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        logits = model(x)
        loss = loss_fn(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, logits


def _device_and_bf16(args: argparse.Namespace) -> tuple[torch.device, bool]:
    """The training device (`--device`: cpu, cuda or auto) and whether bf16 autocast is used there."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine has no CUDA GPU that PyTorch can use (try --device cpu)")
    device = torch.device(name)
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    return device, native and not args.fp32


def _batches(args: argparse.Namespace, classes: dict, mix: Mix, start: int, device: torch.device):
    """Batches `start` to `--steps` of the stream, drawn by `--workers` processes (0: this one)."""
    stream = BatchStream(classes, args.seed, args.batch_size, args.size, args.multiscale, mix, args.steps)
    extra = dict(prefetch_factor=4) if args.workers > 0 else {}
    return torch.utils.data.DataLoader(stream, batch_size=None, sampler=range(start, args.steps),
                                       num_workers=args.workers, pin_memory=device.type == "cuda", **extra)


def train(args: argparse.Namespace) -> None:
    """The pretraining loop: resumable, time-capped, checkpointed; exports at the end."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ckpt, (device, use_bf16) = work / "last.pt", _device_and_bf16(args)
    classes, mix = make_ifs_classes(args.classes, args.seed), _mix(args)
    images = dict(asdict(mix), classes=args.classes, seed=args.seed)     # what a resumed run must keep
    mean, std = _channel_stats(classes, args.seed, args.size, args.stats_batches, mix)
    model = resnet18(num_classes=args.classes).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    step, spent = (0, 0.0) if args.restart else _resume(ckpt, model, opt, images)
    m, s = torch.tensor(mean, device=device).view(1, 3, 1, 1), torch.tensor(std, device=device).view(1, 3, 1, 1)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    start, last_ckpt, correct, seen, acc = time.time(), step, torch.zeros((), device=device), 0, 0.0
    minutes = lambda: spent + (time.time() - start) / 60  # noqa: E731
    bar = progress(total=args.steps, initial=step, desc=f"pretrain ({device.type})")
    model.train()
    for x, y in _batches(args, classes, mix, step, device):
        if minutes() >= args.minutes:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = ((x - m) / s).contiguous(memory_format=torch.channels_last)
        done = minutes() / args.minutes if args.time_schedule else None
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, args.steps, args.lr, args.warmup, done)
        loss, logits = _train_step(model, opt, x, y, loss_fn, use_bf16)
        step, seen = step + 1, seen + len(y)
        correct += (logits.argmax(1) == y).sum()             # stays on the device: no wait per step
        bar.update(1)
        if step % 50 == 0:
            acc = float(correct) / seen                           # running train accuracy since the last reset
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.3f}")
            print(f"step {step} loss {loss.item():.3f} acc {acc:.3f} min {minutes():.1f}", flush=True)
        if step % 500 == 0:
            correct, seen = torch.zeros((), device=device), 0
        if step - last_ckpt >= args.ckpt_every:
            _save_checkpoint(ckpt, model, opt, step, {"minutes": minutes(), "images": images})
            torch.save(model.state_dict(), work / f"step{step:06d}.pt")
            last_ckpt = step
    bar.close()
    _save_checkpoint(ckpt, model, opt, step, {"minutes": minutes(), "images": images})
    if not args.no_export:
        pt = export(model, _card(args, step, minutes(), mean, std, acc), Path(args.out_dir))
        print(f"exported {pt} ({pt.stat().st_size / 2**20:.1f} MiB) after {step} steps, {minutes():.1f} min")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3500, help="planned optimizer steps (the cosine schedule's length)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock cap over all runs; stops early and exports")
    p.add_argument("--classes", type=int, default=1000, help="number of IFS classes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--stats-batches", type=int, default=4, help="256-image batches for the mean/std estimate")
    p.add_argument("--work-dir", default="/tmp/ftlib_pretrain")
    p.add_argument("--out-dir", default=str(WEIGHTS_DIR))
    p.add_argument("--threads", type=int, default=max(1, torch.get_num_threads()),
                   help="CPU threads (use fewer than cores when the machine is shared)")
    p.add_argument("--no-multiscale", dest="multiscale", action="store_false",
                   help="every batch at --size (default: 3 of 4 batches at half size, 2.3x faster)")
    p.add_argument("--texture", type=float, default=Mix.texture, help="share of images showing the class as a texture of small copies")
    p.add_argument("--faint", type=float, default=Mix.faint, help="share of images with a faint (15-50 %% opacity) fractal")
    p.add_argument("--gray", type=float, default=Mix.gray, help="share of grayscale images")
    p.add_argument("--blur", type=float, default=Mix.blur, help="share of blurred images")
    p.add_argument("--gauss-blur", action="store_true", help="Gaussian blur of 0.5-2 px instead of a 3x3 box")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="where the network trains")
    p.add_argument("--workers", type=int, default=0, help="processes that draw the batches (0: the main one)")
    p.add_argument("--time-schedule", action="store_true",
                   help="the cosine schedule follows the share of --minutes spent, not of --steps")
    p.add_argument("--no-export", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    train(parse_args(argv))


if __name__ == "__main__":
    main()
