"""`python -m ftlib.bench --quick --json PATH`: how fast ftlib's training paths are, as ratios.

Every number is a ratio of two things measured side by side in the same run, on the same
model and data, so a busy or slow machine changes both sides alike. Timed runs of the two
sides alternate (A, B, A, B, ...) and the median of each side is used.

| key                        | what it measures                                              |
| -------------------------- | ------------------------------------------------------------- |
| `fit_vs_bare_loop`         | throughput of `fit` / a plain PyTorch loop (fp32, fast path off) |
| `cached_probe_speedup`     | per-epoch time: head on the frozen backbone / head on cached features |
| `cached_probe_acc_delta`   | |test accuracy difference| of those two heads after the same epochs |
| `prefix_cache_speedup`     | per-epoch time, stages up to layer2 frozen: plain / prefix-cached |
| `prefix_cache_flop_ceiling` | the same ratio counted in FLOPs: the most caching can give     |
| `..._layer3`               | the same two, with stem..layer3 frozen (4 of 6 stages)          |
| `cpu_fast_path_speedup`    | throughput of `fit(precision="fast")` / a plain fp32 loop       |
| `..._by_batch`, `..._one_thread` | the same at batch 32, 64 and 128, and on one thread: how it scales |
| `fast_path_profile`        | torch profiler, 3 steps of each side, per step: ms per step, ms in convolutions, the top other operators |
| `fast_path_conv_speedup`   | fp32 convolution time / fast-path convolution time, from that profile |
| `fast_path_ceiling`        | fp32 step / fast-path convolutions: the speed-up if nothing but the convolutions took time |
| `fast_path_acc_delta`      | mean paired test-accuracy difference, fast path - fp32: the course backbone fine-tuned on the retail stand-in, same start and batches, `parity_steps` steps, `parity_seeds` seeds (`..._se`: its standard error) |
| `..._precise_bn`           | the same difference with each model's batch-norm statistics recomputed on the training images |
| `achieved_gflops_ratio`    | training GFLOP/s of `fit` (fp32) / fp32 matmul GFLOP/s (the best of 256, 512, 1024) |
| `conv3x3_bf16_vs_fp32`     | bf16 / fp32 speed of ResNet-18's own 3x3 convolutions at 64 px (one per stage, forward, time-weighted): the ceiling of the fast path |
| `fast_gflops_ratio_bf16`   | training GFLOP/s of the fast path / bf16 matmul GFLOP/s: how much of the chip's bf16 it uses |
| `standin_generation_s`     | {domain: wall seconds} to draw each stand-in at the CI size (reported, not judged) |
| `transfer`                 | per stand-in, mean of 3 seeds: scratch, linear-probe and fine-tune |
|                            | accuracy, chance, each seed's gain, the probe of each stage's output |
| `meets_targets`            | {key: target met} for every key that has a target (below)       |

| target                     | met when                                                        |
| -------------------------- | --------------------------------------------------------------- |
| each key of `TARGETS`      | the ratio is at least (a `..._delta`: at most) its target        |
| `fast_path_acc_delta`      | within 1 point of zero, or within two standard errors of zero     |
| `prefix_cache_speedup`, `prefix_cache_speedup_layer3` | at least `PREFIX_CEILING_SHARE` (0.8) of its `prefix_cache_flop_ceiling`: caching saves at most the frozen prefix's FLOPs, so it is judged against them |
| `transfer_gain_<stand-in>` | fine-tuning the offline backbone beats scratch by at least `TRANSFER_GAIN_TARGET` (5 points) on that stand-in |
| `transfer_gain_mean`       | and by at least `TRANSFER_MEAN_GAIN_TARGET` (7 points) on average over the stand-ins |

Lessons 03 and 04 quote these numbers.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..cost import training_step_flops
from ..course.standins import CI_PER_CLASS, STANDIN_DOMAINS, make_standin
from ..features import cache_activations, extract_features, split_model, without_head
from ..freeze import freeze, unfreeze
from ..metrics import accuracy
from ..pretrained import load_model
from ..precision import Precision, cpu_has_native_bf16
from ..train import fit, train_step

__all__ = ["run", "main", "SIZES", "TARGETS"]

# Workload per mode: images in the training set, test images, image size, batch, timed repeats.
# ResNet-18 at 64 px in batches of 64: on the 2-core reference machine it trains at 169 img/s
# in fp32 and 332 img/s with bf16 autocast.
SIZES = {
    "quick": dict(n_train=384, n_test=320, size=64, batch=64, repeats=3, epochs=3, standin_per_class=CI_PER_CLASS,
                  parity_seeds=5, parity_steps=200, parity_per_class=50),
    "full": dict(n_train=1280, n_test=1000, size=64, batch=64, repeats=5, epochs=5, standin_per_class=CI_PER_CLASS,
                 parity_seeds=5, parity_steps=300, parity_per_class=100),
}
TARGETS = {"fit_vs_bare_loop": 0.95, "cached_probe_speedup": 10.0, "cached_probe_acc_delta": 0.01,
           "cpu_fast_path_speedup": 2.0}
PREFIX_CEILING_SHARE = 0.8  # prefix caching reaches at least 80 % of its FLOP ceiling (stem..layer2, stem..layer3)
TRANSFER_GAIN_TARGET = 0.05  # fine-tuning the offline backbone beats scratch by >= 5 points on each stand-in
TRANSFER_MEAN_GAIN_TARGET = 0.07  # ... and by >= 7 points on average over the stand-ins
QUIET = dict(quiet=True, device="cpu")
PROBE_LR = 1e-2  # Adam: the pooled features are large and unnormalised; SGD at 0.05 diverges on them


def _data(n: int, size: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable synthetic images: each class has its own mean colour pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, 3, size, size, generator=g)
    labels = torch.arange(n) % classes
    images = 0.6 * patterns[labels] + torch.randn(n, 3, size, size, generator=g)
    return images, labels


def _standin(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Retail stand-in images, preprocessed for the course backbone: a learnable task, so that
    accuracy comparisons mean something (train x, y, test x, y)."""
    splits = make_standin("retail", size=64, per_class=(per_class, 0, per_class), seed=seed)
    prep = _pretrained_backbone(10).weights_info.transforms()
    pack = lambda ds: (torch.stack([prep(img) for img in ds.images]), ds.labels)  # noqa: E731
    return (*pack(splits.train), *pack(splits.test))


def _loader(x: torch.Tensor, y: torch.Tensor, batch: int, seed: int | None = None) -> DataLoader:
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=seed is not None, generator=g)


def _alternate(a: Callable[[], float], b: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Median seconds of a() and b(), run alternately after one untimed warm-up each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(a())
        tb.append(b())
    return statistics.median(ta), statistics.median(tb)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _bare_epoch(model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer) -> None:
    """The plain PyTorch loop `fit` is compared with."""
    model.train()
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


def _resnet(classes: int) -> nn.Module:
    return load_model("resnet18", weights=None, num_classes=classes, verbose=False)


def _fast_vs_bare(model: nn.Module, fast_model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
                  repeats: int) -> tuple[float, float]:
    """(epoch seconds of the bare fp32 loop, of `fit(precision=Precision(fast=True))`) at `batch`,
    alternated; each model keeps its own SGD state from call to call."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fast_opt = torch.optim.SGD(fast_model.parameters(), lr=0.01, momentum=0.9)
    batches = _loader(x, y, batch)
    bare = lambda: _timed(lambda: _bare_epoch(model, batches, opt))  # noqa: E731
    fast = lambda: _timed(lambda: fit(fast_model, batches, None, 1, fast_opt, precision=Precision(fast=True), **QUIET))  # noqa: E731
    return _alternate(bare, fast, repeats)


def bench_fit_overhead(cfg: dict) -> dict:
    """`fit` vs the bare loop, fp32 on both sides; also `fit(precision="fast")` vs the bare fp32 loop,
    at the workload's batch size and at 32 and 128, and at the workload's batch on one thread.

    The fast path gains more with larger batches: autocast makes the bf16 copies of the
    weights once per step, and the fp32 optimizer step costs the same on both sides.
    """
    x, y = _data(cfg["n_train"], cfg["size"], 10, seed=0)
    model = _resnet(10)
    fast_model = copy.deepcopy(model)  # the fast path turns its model channels_last: keep the two apart
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = _loader(x, y, cfg["batch"])
    bare = lambda: _timed(lambda: _bare_epoch(model, loader, opt))  # noqa: E731
    plain = lambda: _timed(lambda: fit(model, loader, None, 1, opt, precision="auto", **QUIET))  # noqa: E731
    t_bare, t_fit = _alternate(bare, plain, cfg["repeats"])
    out = {"fit_vs_bare_loop": t_bare / t_fit, "bare_img_s": len(x) / t_bare, "fit_img_s": len(x) / t_fit}
    if not cpu_has_native_bf16():
        return {**out, "cpu_fast_path_speedup": None, "fast_path_note": "this CPU has no native bf16: fast path not used"}
    by_batch = {}
    for batch in sorted({cfg["batch"], 32, 128}, reverse=True):
        t_bare, t_fast = _fast_vs_bare(model, fast_model, x, y, batch, cfg["repeats"])
        by_batch[batch] = t_bare / t_fast
        if batch == cfg["batch"]:
            out.update(cpu_fast_path_speedup=t_bare / t_fast, fast_img_s=len(x) / t_fast)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # how the two sides scale with threads: the same comparison on one thread
        t_bare, t_fast = _fast_vs_bare(model, fast_model, x, y, cfg["batch"], cfg["repeats"])
    finally:
        torch.set_num_threads(threads)
    return {**out, "cpu_fast_path_speedup_by_batch": by_batch, "cpu_fast_path_speedup_one_thread": t_bare / t_fast}


CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward")  # their totals hold every conv's time


def _fast_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    """One step of the CPU fast path, as `fit` takes it (`ftlib.train.train_step`): channels_last
    input, bf16 autocast."""
    train_step(model, x.contiguous(memory_format=torch.channels_last), y, F.cross_entropy, opt,
               autocast_dtype=torch.bfloat16)


def _bare_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    _bare_epoch(model, [(x, y)], opt)


def _step_profile(step: Callable[[], None], steps: int, top: int = 5) -> dict:
    """Milliseconds per step of `step()` under the torch profiler (after two warm-up steps): the
    whole step, its convolutions (forward and backward), and the `top` other operators by self time."""
    from torch.profiler import ProfilerActivity, profile
    step(), step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    conv = sum(e.cpu_time_total for e in events if e.key in CONV_OPS) / 1e3 / steps
    others = sorted((e for e in events if e.key not in CONV_OPS and e.key.startswith("aten::")),
                    key=lambda e: -e.self_cpu_time_total)[:top]
    return {"step_ms": 1e3 * wall, "conv_ms": conv,
            "top_other_ms": {e.key: e.self_cpu_time_total / 1e3 / steps for e in others}}


def bench_fast_path_profile(cfg: dict, steps: int = 3) -> dict:
    """Where the fast path's step goes, against fp32's (torch profiler, workload's batch): the
    convolutions' speed-up in bf16, and the ceiling that sets, the speed-up the fast path would
    reach if everything but its convolutions took no time (fp32 step / fast-path convolutions)."""
    x, y = _data(cfg["batch"], cfg["size"], 10, seed=0)
    model = _resnet(10)
    fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fast_opt = torch.optim.SGD(fast_model.parameters(), lr=0.01, momentum=0.9)
    fp32 = _step_profile(lambda: _bare_step(model, x, y, opt), steps)
    fast = _step_profile(lambda: _fast_step(fast_model, x, y, fast_opt), steps)
    return {"fast_path_profile": {"fp32": fp32, "fast": fast, "steps": steps, "batch": cfg["batch"]},
            "fast_path_conv_speedup": fp32["conv_ms"] / fast["conv_ms"],
            "fast_path_conv_share": fast["conv_ms"] / fast["step_ms"],
            "fast_path_ceiling": fp32["step_ms"] / fast["conv_ms"]}


def _precise_bn(model: nn.Module, x: torch.Tensor, batch: int = 100) -> nn.Module:
    """A float32 copy of `model` whose batch-norm statistics are recomputed over all of `x` (an equal
    average of its batches) instead of the running average of the last training steps."""
    twin = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format)
    for layer in twin.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None  # None: a cumulative average over every batch seen
    twin.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            twin(x[i:i + batch])
    return twin.eval()


def _fine_tune_accuracy(data: tuple, fast: bool, seed: int, steps: int, batch: int) -> tuple[float, float]:
    """Test accuracy of the course backbone fine-tuned for exactly `steps` SGD steps of `batch`
    images (seeded: the same start and batches for both precisions), fp32 or the fast path; and
    the same after its batch-norm statistics are recomputed on the training images (`_precise_bn`)."""
    x, y, xt, yt = data
    torch.manual_seed(seed)
    model = _pretrained_backbone(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.utils.data.RandomSampler(range(len(x)), num_samples=steps * batch,
                                           generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, sampler=order)
    fit(model, loader, None, 1, opt, precision=Precision(fast=fast), **QUIET)
    with torch.no_grad():
        return accuracy(model.eval()(xt), yt), accuracy(_precise_bn(model, x)(xt), yt)


def _paired(fast: list[float], fp32: list[float]) -> tuple[float, float]:
    """(mean, standard error) of the paired differences fast - fp32."""
    diffs = [f - a for f, a in zip(fast, fp32)]
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    return statistics.fmean(diffs), se


def bench_fast_path_parity(cfg: dict) -> dict:
    """Accuracy parity, paired: for each seed, the same fine-tune (same start, batches and steps)
    in fp32 and with the fast path; the mean paired difference (fast - fp32), its standard
    error, and whether it is within 1 point or within two standard errors of zero.

    The pairs share a start, not a path: any rounding difference sends the two runs apart, so a
    difference has about the spread of two unpaired runs. Much of that spread is the batch-norm
    running averages, which follow the last few batches; `..._precise_bn` gives the difference with
    those statistics recomputed on all the training images, as a second reading (the target is
    judged on the plain one, the model `fit` returns)."""
    seeds, steps, batch = cfg["parity_seeds"], cfg["parity_steps"], 32
    data = _standin(cfg["parity_per_class"], seed=1)
    fp32, fp32_bn = zip(*[_fine_tune_accuracy(data, False, seed, steps, batch) for seed in range(seeds)])
    fast, fast_bn = zip(*[_fine_tune_accuracy(data, True, seed, steps, batch) for seed in range(seeds)])
    mean, se = _paired(fast, fp32)
    mean_bn, se_bn = _paired(fast_bn, fp32_bn)
    return {"fp32_acc": list(fp32), "fast_acc": list(fast), "fast_path_acc_delta": mean, "fast_path_acc_delta_se": se,
            "fp32_acc_precise_bn": list(fp32_bn), "fast_acc_precise_bn": list(fast_bn),
            "fast_path_acc_delta_precise_bn": mean_bn, "fast_path_acc_delta_precise_bn_se": se_bn,
            "fast_path_parity": {"seeds": seeds, "steps": steps, "batch": batch, "test_images": len(data[2]),
                                 "fp32_mean": statistics.fmean(fp32), "fast_mean": statistics.fmean(fast),
                                 "within_1_point": abs(mean) <= 0.01, "within_2_se": abs(mean) <= 2 * se}}


def _train_head(head: nn.Module, loader: DataLoader, epochs: int, lr: float = 0.05, adam: bool = False) -> float:
    """Seconds per epoch of training `head` (SGD, or Adam) on `loader`."""
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if adam else torch.optim.SGD(params, lr=lr, momentum=0.9)
    history = fit(head, loader, None, epochs, opt, **QUIET)
    return statistics.median(history["time_s"])


def _pretrained_backbone(classes: int) -> nn.Module:
    """The course's offline backbone when present (the probe needs useful features), else random."""
    try:
        return load_model("resnet18", weights="offline", num_classes=classes, verbose=False)
    except Exception:  # noqa: BLE001  (weights not built: the timing still holds)
        return _resnet(classes)


def bench_cached_probe(cfg: dict) -> dict:
    """Linear probe of the course backbone on the retail stand-in: frozen backbone re-run every
    epoch vs trained once on cached features."""
    x, y, xt, yt = _standin(cfg["n_train"] // 10, seed=3)
    batch = min(cfg["batch"], 32)  # enough steps for the head to learn in a few epochs
    model = _pretrained_backbone(10)
    freeze(model)
    unfreeze(model, last=1)
    fc0 = copy.deepcopy(model.fc.state_dict())

    torch.manual_seed(0)
    t_full = _train_head(model, _loader(x, y, batch, seed=0), cfg["epochs"], lr=PROBE_LR, adam=True)
    with torch.no_grad():
        acc_full = accuracy(model.eval()(xt), yt)

    start = time.perf_counter()
    feats, labels = extract_features(without_head(model), _loader(x, y, batch), device="cpu")
    t_extract = time.perf_counter() - start
    head = nn.Linear(feats.shape[1], 10)
    head.load_state_dict(fc0)
    torch.manual_seed(0)
    t_cached = _train_head(head, _loader(feats, labels, batch, seed=0), cfg["epochs"], lr=PROBE_LR, adam=True)
    test_feats, _ = extract_features(without_head(model), _loader(xt, yt, batch), device="cpu")
    with torch.no_grad():
        acc_cached = accuracy(head.eval()(test_feats), yt)
    return {"cached_probe_speedup": t_full / t_cached, "cached_probe_acc_delta": abs(acc_full - acc_cached),
            "probe_epoch_s": t_full, "cached_probe_epoch_s": t_cached, "feature_extraction_s": t_extract,
            "probe_acc": acc_full, "cached_probe_acc": acc_cached, "probe_chance": 0.1}


def prefix_flop_ceiling(model: nn.Module, upto: str, size: int, batch: int = 8) -> float:
    """The best speed-up prefix caching can give, by operation count: FLOPs of a training step
    with the stages up to `upto` frozen / FLOPs of a training step of the stages after it."""
    x = torch.randn(batch, 3, size, size)
    prefix, rest = split_model(model, upto)
    with torch.no_grad():
        boundary = prefix(x)
    return _training_flops(model, x) / _training_flops(rest, boundary)


def bench_prefix_cache(cfg: dict, upto: str = "layer2") -> dict:
    """Stages frozen up to `upto` (layer2: stem, layer1, layer2, half of the six): an epoch of
    plain `fit` vs an epoch of training the rest on cached activations (alternated, medians),
    with the operation-count ceiling of that ratio."""
    x, y = _data(cfg["n_train"], cfg["size"], 10, seed=5)
    model = _pretrained_backbone(10)
    freeze(model, upto=upto)
    ceiling = prefix_flop_ceiling(model, upto, cfg["size"])
    twin = copy.deepcopy(model)
    start = time.perf_counter()
    cached = cache_activations(twin, _loader(x, y, cfg["batch"]), upto=upto, device="cpu")
    t_cache = time.perf_counter() - start
    _, rest = split_model(twin, upto)

    plain_loader = _loader(x, y, cfg["batch"], seed=0)
    cached_loader = DataLoader(cached, batch_size=cfg["batch"], shuffle=True, generator=torch.Generator().manual_seed(0))
    t_plain, t_rest = _alternate(lambda: _train_head(model, plain_loader, 1),
                                 lambda: _train_head(rest, cached_loader, 1), cfg["repeats"])
    suffix = "" if upto == "layer2" else f"_{upto}"
    return {f"prefix_cache_speedup{suffix}": t_plain / t_rest, f"prefix_cache_flop_ceiling{suffix}": ceiling,
            f"prefix_plain_epoch_s{suffix}": t_plain, f"prefix_cached_epoch_s{suffix}": t_rest,
            f"prefix_caching_s{suffix}": t_cache, f"frozen_stages{suffix}": f"stem..{upto}"}


def _gflops(work: Callable[[], object], flops: float, seconds: float) -> float:
    """GFLOP/s of `work()` (`flops` each), run again and again for at least `seconds` after two
    untimed calls: a fixed handful of repeats is too short to read on a busy 2-core machine."""
    work(), work()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        count += 1
    return flops * count / (time.perf_counter() - start) / 1e9


def matmul_gflops(n: int = 1024, dtype: torch.dtype = torch.float32, seconds: float = 0.5) -> float:
    """GFLOP/s of an n x n matrix product on the CPU (2 n^3 floating-point operations each)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return _gflops(lambda: a @ b, 2 * n**3, seconds)


MATMUL_SIZES = (256, 512, 1024)
STAGE_CONVS = {"layer1": (64, 16), "layer2": (128, 8), "layer3": (256, 4), "layer4": (512, 2)}
"""ResNet-18's 3x3 convolutions at 64 px: (channels, map size) in each stage."""


def best_matmul_gflops(dtype: torch.dtype = torch.float32, sizes: Sequence[int] = MATMUL_SIZES) -> tuple[float, dict]:
    """(the best GFLOP/s, {n: GFLOP/s}) of n x n products over `sizes`: the chip's reference, since
    one size alone can under-report it."""
    by_size = {n: matmul_gflops(n, dtype, seconds=0.5) for n in sizes}
    return max(by_size.values()), by_size


def conv_gflops(dtype: torch.dtype, batch: int = 64, seconds: float = 0.5) -> dict[str, float]:
    """{stage: GFLOP/s} of the forward pass of one 3x3 convolution of each ResNet-18 stage at 64 px
    (`STAGE_CONVS`), channels_last, batch `batch`: what the chip gives the operation training is made of."""
    out = {}
    for stage, (c, size) in STAGE_CONVS.items():
        x = torch.randn(batch, c, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
        out[stage] = _gflops(lambda: F.conv2d(x, w, padding=1), 2 * batch * size * size * c * c * 9, seconds)
    return out


def bench_conv_ceiling() -> dict:
    """bf16 against fp32 on the convolutions themselves: each stage's ratio, and the ratio of one
    convolution of every stage in a row (the time-weighted mean): the most bf16 can speed up a
    training step made of such convolutions, whatever else is done."""
    fp32, bf16 = conv_gflops(torch.float32), conv_gflops(torch.bfloat16)
    flops = {stage: c * c * size * size for stage, (c, size) in STAGE_CONVS.items()}  # proportional to each stage's FLOPs
    seconds = lambda rates: sum(flops[k] / rates[k] for k in flops)  # noqa: E731
    return {"conv3x3_fp32_gflops": fp32, "conv3x3_bf16_gflops": bf16,
            "conv3x3_bf16_vs_fp32_by_stage": {k: bf16[k] / fp32[k] for k in fp32},
            "conv3x3_bf16_vs_fp32": seconds(fp32) / seconds(bf16)}


def _training_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one training step (forward + backward) on a batch shaped like `x` (`training_step_flops`)."""
    return training_step_flops(model, x.shape)


def training_flops_per_image(model: nn.Module, size: int, batch: int = 8) -> float:
    """FLOPs of one training step (forward + backward) per image (`ftlib.cost.training_step_flops`)."""
    return training_step_flops(model, (batch, 3, size, size)) / batch


def bench_gflops(cfg: dict, fit_img_s: float, fast_img_s: float | None = None) -> dict:
    """Training GFLOP/s of fp32 `fit` (and of the fast path) against the matmul GFLOP/s of the
    same precision, measured in the same run: the share of the chip that training uses."""
    flops = training_flops_per_image(_resnet(10), cfg["size"])
    achieved = flops * fit_img_s / 1e9
    fp32, fp32_by_size = best_matmul_gflops()
    out = {"achieved_gflops_ratio": achieved / fp32, "fit_training_gflops": achieved, "matmul_fp32_gflops": fp32,
           "matmul_fp32_gflops_by_size": fp32_by_size, "training_gflop_per_image": flops / 1e9}
    if cpu_has_native_bf16():
        bf16, bf16_by_size = best_matmul_gflops(torch.bfloat16)
        out.update(matmul_bf16_gflops=bf16, matmul_bf16_vs_fp32=bf16 / fp32, matmul_bf16_gflops_by_size=bf16_by_size,
                   **bench_conv_ceiling())
        if fast_img_s:
            out.update(fast_training_gflops=flops * fast_img_s / 1e9, fast_gflops_ratio_bf16=flops * fast_img_s / 1e9 / bf16)
    return out


def standin_generation_s(per_class: tuple[int, int, int] = CI_PER_CLASS) -> dict:
    """{"standin_generation_s": {domain: wall seconds}}: the time to draw each stand-in at
    `per_class` (train, val, test images per class; the CI size by default). Reported, not judged."""
    seconds = {domain: round(_timed(lambda: make_standin(domain, per_class=per_class, seed=0)), 3)
               for domain in STANDIN_DOMAINS}
    return {"standin_generation_s": seconds}


def run(mode: str = "quick", transfer: bool = True, log: Callable[[str], None] = print,
        sizes: dict | None = None) -> dict:
    """Every measurement of the benchmark, as one JSON-ready dict (see the module docstring).

    `sizes` overrides the workload of `mode` (the tests use a tiny one)."""
    cfg = {**SIZES[mode], **(sizes or {})}
    result: dict = {"mode": mode, "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                               "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                                               "native_bf16": cpu_has_native_bf16()},
                    "workload": {**cfg, "model": "resnet18"}}
    for name, step in [("fit overhead and CPU fast path", lambda: bench_fit_overhead(cfg)),
                       ("fast path profile", lambda: bench_fast_path_profile(cfg) if cpu_has_native_bf16() else {}),
                       ("fast path accuracy, paired seeds", lambda: bench_fast_path_parity(cfg) if cpu_has_native_bf16() else {}),
                       ("cached linear probe", lambda: bench_cached_probe(cfg)),
                       ("prefix caching", lambda: bench_prefix_cache(cfg)),
                       ("prefix caching, 4 of 6 stages frozen", lambda: bench_prefix_cache(cfg, upto="layer3")),
                       ("stand-in generation", lambda: standin_generation_s(cfg.get("standin_per_class", CI_PER_CLASS)))]:
        start = time.perf_counter()
        result.update(step())
        log(f"  {name}: {time.perf_counter() - start:.0f} s")
    result.update(bench_gflops(cfg, result["fit_img_s"], result.get("fast_img_s")))
    if transfer:
        from .transfer import transfer_benchmark
        start = time.perf_counter()
        result["transfer"] = transfer_benchmark(quick=mode == "quick")
        log(f"  transfer: {time.perf_counter() - start:.0f} s")
    result["meets_targets"] = _meets_targets(result)
    return result


def _meets_targets(result: dict) -> dict[str, bool]:
    """{key: target met} for each key of TARGETS present, each prefix-cache speed-up against
    its FLOP ceiling, `transfer_gain_<domain>` per stand-in and `transfer_gain_mean`."""
    met = {k: (result[k] <= t if k.endswith("delta") else result[k] >= t)
           for k, t in TARGETS.items() if result.get(k) is not None}
    parity = result.get("fast_path_parity")
    if parity:
        met["fast_path_acc_delta"] = parity["within_1_point"] or parity["within_2_se"]
    for key in ("prefix_cache_speedup", "prefix_cache_speedup_layer3"):
        if result.get(key) is not None and result.get(_ceiling_key(key)) is not None:
            met[key] = result[key] >= PREFIX_CEILING_SHARE * result[_ceiling_key(key)]
    gains = {domain: _gain(row) for domain, row in result.get("transfer", {}).items()}
    met.update({f"transfer_gain_{domain}": gain >= TRANSFER_GAIN_TARGET for domain, gain in gains.items()})
    if gains:
        met["transfer_gain_mean"] = _mean_gain(gains.values()) >= TRANSFER_MEAN_GAIN_TARGET
    return met


def _ceiling_key(key: str) -> str:
    """prefix_cache_speedup[_layer3] -> prefix_cache_flop_ceiling[_layer3]."""
    return key.replace("speedup", "flop_ceiling")


def _gain(row: dict) -> float:
    """Fine-tuning minus training from scratch, in accuracy (0.1 = 10 points), to 4 decimals."""
    return round(row["finetune_acc"] - row["scratch_acc"], 4)


def _mean_gain(gains) -> float:
    """The average of the stand-ins' gains, to 4 decimals."""
    gains = list(gains)
    return round(sum(gains) / len(gains), 4)


def _target_text(result: dict, key: str) -> str:
    """How the report shows `key`'s target and whether it was met ("" for a key without one)."""
    met = "ok" if result["meets_targets"].get(key) else "MISSED"
    if key == "fast_path_acc_delta" and key in result["meets_targets"]:
        return f"|delta| <= 0.01 or <= 2 se {met}"
    if key in TARGETS:
        return ("<= " if key.endswith("delta") else ">= ") + f"{TARGETS[key]:g} {met}"
    if key.startswith("prefix_cache_speedup") and key in result["meets_targets"]:
        ceiling = result[_ceiling_key(key)]
        return f">= {PREFIX_CEILING_SHARE:g} x ceiling = {PREFIX_CEILING_SHARE * ceiling:.3f} {met}"
    return ""


def _transfer_lines(result: dict) -> list[str]:
    """The report's lines for the transfer table: each stand-in, its seeds, its stage probes, the mean gain."""
    lines, transfer = [], result.get("transfer", {})
    for domain, row in transfer.items():
        mark = "ok" if result["meets_targets"].get(f"transfer_gain_{domain}") else "MISSED"
        lines.append(f"transfer {domain:<25} " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                           if isinstance(v, float))
                     + f", gain {_gain(row):+.3f}  >= {TRANSFER_GAIN_TARGET:g} {mark}")
        if row.get("gain_by_seed"):
            lines.append(f"  gain by seed {'':<19} " + ", ".join(f"{k}: {v:+.3f}" for k, v in row["gain_by_seed"].items()))
        by_layer = row.get("probe_acc_by_layer", {})
        lines.append(f"  probe by stage {'':<17} " + ", ".join(f"{k} {v:.3f}" for k, v in by_layer.items()))
    if transfer:
        mark = "ok" if result["meets_targets"].get("transfer_gain_mean") else "MISSED"
        mean = _mean_gain(_gain(row) for row in transfer.values())
        lines.append(f"transfer mean gain {'':<15} {mean:+.3f}  >= {TRANSFER_MEAN_GAIN_TARGET:g} {mark}")
    return lines


def _report(result: dict) -> str:
    lines = [f"{'key':<34} {'value':>8}  target"]
    for key in ["fit_vs_bare_loop", "cached_probe_speedup", "cached_probe_acc_delta", "prefix_cache_speedup",
                "prefix_cache_flop_ceiling", "prefix_cache_speedup_layer3", "prefix_cache_flop_ceiling_layer3",
                "cpu_fast_path_speedup", "cpu_fast_path_speedup_one_thread", "fast_path_conv_speedup",
                "fast_path_conv_share", "fast_path_ceiling", "fast_path_acc_delta", "fast_path_acc_delta_se",
                "fast_path_acc_delta_precise_bn", "fast_path_acc_delta_precise_bn_se", "achieved_gflops_ratio",
                "matmul_bf16_vs_fp32", "conv3x3_bf16_vs_fp32", "fast_gflops_ratio_bf16"]:
        value = result.get(key)
        shown = "n/a" if value is None else f"{value:.3f}"
        lines.append(f"{key:<34} {shown:>8}  {_target_text(result, key)}".rstrip())
    generation = result.get("standin_generation_s", {})
    if generation:
        lines.append(f"{'standin_generation_s':<34} " + ", ".join(f"{k} {v:.1f} s" for k, v in generation.items()))
    return "\n".join(lines + _transfer_lines(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftlib.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workload on 2 CPU cores: about 2 minutes of speed ratios, 5 to 15 of fast-path parity (5 paired seeds of 200 steps) and 10 of transfer (3 seeds); --no-transfer skips the transfer")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--no-transfer", action="store_true", help="skip the transfer benchmark of the stand-ins")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    result = run("quick" if args.quick else "full", transfer=not args.no_transfer)
    print(_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0

