"""`ftlib.doctor()` / `python -m ftlib doctor`: can the course run here? Used in lesson 00.

It checks versions, the device, torchvision's compiled ops, the caches and the network,
prints one line per check and a verdict, and returns False (exit status 1) when the
course cannot run. This module imports torch and torchvision only inside the checks, so
it still works, and explains, when those imports are what is broken.
"""

from __future__ import annotations

import importlib
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from ..config import data_dir, is_offline

__all__ = ["Check", "run_checks", "doctor", "torchvision_problem", "main"]

PINNED = "torch==2.14.1 torchvision==0.29.1"
PACKAGES = ["numpy", "PIL", "matplotlib", "sklearn", "tqdm", "ipywidgets"]
NETWORK_PROBE = ("download.pytorch.org", 443)


@dataclass
class Check:
    """One line of the report. `fatal` problems stop the course; the others are warnings."""
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True


def torchvision_problem() -> str | None:
    """None when torchvision imports and its compiled ops run; else what is wrong and the fix."""
    try:
        import torch
        import torchvision
        from torchvision.ops import nms
        nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    except Exception as err:  # noqa: BLE001  (any failure here means the same fix)
        text = f"{type(err).__name__}: {err}".splitlines()[0]
        if "torchvision::nms" in text or "operator" in text:
            return (f"torchvision's compiled ops do not load ({text}). torch and torchvision come "
                    f"from different builds, e.g. the preinstalled CPU wheel torch 2.13.0+cpu with "
                    f"torchvision from the package index. Fix: `make install`, or "
                    f"`pip install {PINNED}` in this environment.")
        return f"torch/torchvision do not import ({text}). Fix: `make install`, or `pip install {PINNED}`."
    return None


def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{platform.python_version()} ({sys.executable})",
                 "Use Python 3.11 or newer (the course is tested on 3.11, 3.12 and 3.13).")


def _torch() -> Check:
    problem = torchvision_problem()
    if problem:
        return Check("torch + torchvision", False, problem.split(" Fix:")[0], "Fix:" + problem.split(" Fix:")[1])
    import torch
    import torchvision
    return Check("torch + torchvision", True, f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                 "compiled ops load")


def _packages() -> Check:
    found, missing = [], []
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
            found.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            missing.append(name)
    return Check("other packages", not missing, ", ".join(found) + (f"; MISSING: {', '.join(missing)}" if missing else ""),
                 "pip install -r requirements.txt  (or `make install`)")


def _device() -> Check:
    try:
        from ..device import describe_device, get_device
        return Check("device", True, describe_device(get_device()), fatal=False)
    except Exception as err:  # noqa: BLE001
        return Check("device", False, str(err), "Fix torch first (see above).", fatal=False)


def _folder_summary(folder: Path, pattern: str = "*") -> str:
    if not folder.exists():
        return f"{folder} (empty: not created yet)"
    items = sorted(p.name for p in folder.glob(pattern))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shown = ", ".join(items[:6]) + (f", … ({len(items)} in all)" if len(items) > 6 else "")
    return f"{folder}: {size / 2**20:.0f} MiB [{shown or 'nothing yet'}]"


def _caches() -> Check:
    """Where data and weights are cached, and whether new files can be saved there."""
    folders = [("data", data_dir(), "FTLIB_DATA", "the offline stand-ins")]
    try:
        import torch
        weights = Path(torch.hub.get_dir()) / "checkpoints"
        detail = f"data {_folder_summary(data_dir())}; weights {_folder_summary(weights, '*.pth')}"
        folders.append(("weights", weights, "TORCH_HOME", "the course's offline weights"))
    except Exception:  # noqa: BLE001  (torch broken: reported above)
        detail = f"data {_folder_summary(data_dir())}"
    from .download import writable_problem
    blocked = [(what, var, instead, problem) for what, folder, var, instead in folders
               if (problem := writable_problem(folder))]
    if not blocked:
        return Check("caches", True, detail, fatal=False)
    said = "; ".join(f"{what} cache: {problem}, so files already there are read but nothing new is saved "
                     f"(what is missing falls back to {instead})" for what, _, instead, problem in blocked)
    fix = " and ".join(f"{var}=<a folder you can write>" for _, var, _, _ in blocked)
    return Check("caches", False, f"{detail}. {said}",
                 f"set {fix} before starting Jupyter (e.g. `export FTLIB_DATA=~/ftlib-data`), copying "
                 f"the shared cache there if you want its files", fatal=False)


def _course_weights() -> Check:
    """The offline world's backbone: present, and matching the checksum in its json."""
    fix = "Restore it with `git checkout -- ftlib/weights`, or rebuild: python -m data_scripts.pretrain_backbone"
    try:
        from .download import file_checksum
        from ..pretrained import get_weights
        info = get_weights("resnet18", "offline", verbose=False)
        ok = file_checksum(info.file) == info.meta["sha256"]
    except Exception as err:  # noqa: BLE001  (missing file, bad json, broken torch: all need the fix)
        return Check("course weights", False, str(err).splitlines()[0], fix, fatal=False)
    state = "checksum ok" if ok else "CHECKSUM MISMATCH"
    return Check("course weights", ok, f"{info.file.name} ({info.file.stat().st_size / 2**20:.0f} MiB), {state}",
                 fix, fatal=False)


def _network(probe: tuple[str, int] = NETWORK_PROBE, timeout: float = 3.0) -> Check:
    if is_offline():
        return Check("network", True, "not checked: FTLIB_OFFLINE=1 forces the offline world", fatal=False)
    try:
        socket.create_connection(probe, timeout=timeout).close()
        return Check("network", True, f"{probe[0]} reachable: real data and weights can be downloaded", fatal=False)
    except OSError as err:
        return Check("network", False, f"{probe[0]} unreachable ({err}); lessons use the offline world "
                     "unless data and weights were pre-fetched",
                     "Online elsewhere? Run `python -m data_scripts.fetch` there and copy the caches "
                     "(see README, 'Offline classroom').", fatal=False)


def run_checks(network: bool = True) -> list[Check]:
    """All checks, in report order. `network=False` skips the network probe."""
    checks: list[Callable[[], Check]] = [_python, _torch, _packages, _device, _caches, _course_weights]
    if network:
        checks.append(_network)
    return [check() for check in checks]


def doctor(network: bool = True, file: TextIO | None = None) -> bool:
    """Print the environment report and a verdict; return True when the course can run."""
    out = file or sys.stdout
    results = run_checks(network=network)
    for c in results:
        mark = "ok  " if c.ok else ("FAIL" if c.fatal else "warn")
        print(f"[{mark}] {c.name}: {c.detail}", file=out)
        if not c.ok and c.fix:
            print(f"       fix: {c.fix}", file=out)
    fatal = [c for c in results if not c.ok and c.fatal]
    warnings = [c for c in results if not c.ok and not c.fatal]
    if fatal:
        print(f"VERDICT: NOT READY: {len(fatal)} problem(s) to fix: {', '.join(c.name for c in fatal)}.", file=out)
    else:
        world = "offline (stand-ins and course weights)" if is_offline() or warnings else "real when data and weights are present"
        print(f"VERDICT: READY. World: {world}." + (f" {len(warnings)} warning(s)." if warnings else ""), file=out)
    return not fatal


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m ftlib doctor [--no-network]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "doctor":
        print("usage: python -m ftlib doctor [--no-network]", file=sys.stderr)
        return 2
    return 0 if doctor(network="--no-network" not in args) else 1
