"""Precision: mixed precision (AMP), channels_last, and the CPU fast path.

`fit(..., precision=...)` takes one of:

| value         | on CUDA                              | on a CPU                                        |
| ------------- | ------------------------------------ | ----------------------------------------------- |
| `"auto"`      | fp16 autocast + GradScaler, channels_last | fp32                                       |
| `"fast"`      | as "auto"                            | bf16 autocast + channels_last where the CPU has native bf16, else fp32 |
| `"fp32"`      | fp32, contiguous                     | fp32                                            |
| `Precision(amp=..., channels_last=..., fast=...)` | each setting by hand |                           |

bf16 keeps fp32's exponent range, so it needs no loss scaling; fp16 does (GradScaler).
Used by `fit`, `evaluate_loss_acc`, the benchmark and lesson 00.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Precision", "cpu_has_native_bf16", "resolve_precision", "autocast", "PRECISIONS"]


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes in bfloat16 natively (x86 flags `avx512_bf16` or `amx_bf16`
    in /proc/cpuinfo). Detected, never assumed: False on other systems, where bf16 would be
    emulated and slower than fp32. The one detector in the project."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Precision:
    """Each precision setting by hand; every field is "auto", True or False.

    amp: autocast (fp16 on CUDA, bf16 on a CPU); "auto" = on CUDA, and on a CPU when the fast
        path is on. channels_last: "auto" = on CUDA, and on a CPU when the fast path is on.
    fast: the CPU fast path (bf16 autocast + channels_last) where `cpu_has_native_bf16()`;
        "auto" uses it silently where available, True warns when the CPU lacks native bf16.
    """
    amp: bool | str = "auto"
    channels_last: bool | str = "auto"
    fast: bool | str = False

    def __post_init__(self) -> None:
        for name in ("amp", "channels_last", "fast"):
            value = getattr(self, name)
            if value not in ("auto", True, False):
                raise ValueError(f"Precision({name}=...) must be 'auto', True or False, got {value!r}")


PRECISIONS = {"auto": Precision(), "fast": Precision(fast="auto"),
              "fp32": Precision(amp=False, channels_last=False, fast=False)}


def _as_precision(precision: str | Precision) -> Precision:
    if isinstance(precision, Precision):
        return precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)} or a Precision(...), got {precision!r}")
    return PRECISIONS[precision]


def _cpu_fast_path(fast: bool | str) -> bool:
    if fast is False:
        return False
    native = cpu_has_native_bf16()
    if fast is True and not native:
        warnings.warn("Precision(fast=True): this CPU has no native bf16 (avx512_bf16 / amx_bf16), "
                      "so training stays in fp32.", stacklevel=5)
    return native


def resolve_precision(device: torch.device, precision: str | Precision) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, channels_last) for `precision` on `device`."""
    p = _as_precision(precision)
    if device.type == "cuda":
        return (torch.float16 if p.amp in ("auto", True) else None), p.channels_last in ("auto", True)
    if device.type != "cpu":
        return None, p.channels_last is True
    use_fast = _cpu_fast_path(p.fast)
    dtype = torch.bfloat16 if (p.amp is True or (use_fast and p.amp == "auto")) else None
    return dtype, p.channels_last is True or (p.channels_last == "auto" and use_fast)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """`torch.autocast` for `dtype` on `device`, or a no-op context when dtype is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
