"""`python -m ftlib.bench.memory`: the peak memory of each lesson and of each real-data loader.

Binder gives a notebook about 2 GB of RAM. This command shows whether the course fits:

- **lessons** (`--lessons`): each notebook runs as CI runs it (offline, quick budget, or
  `--budget full`) in a fresh kernel; a last cell, added to a copy, reads the kernel's
  peak resident memory (`getrusage(RUSAGE_SELF).ru_maxrss`).
- **loaders** (`--loaders`): full-size local copies of the real files (Fashion-MNIST's four
  idx files, PneumoniaMNIST's 64 px npz, a EuroSAT zip with all 27,000 tiles), built with
  random pixels in a temporary folder, are loaded with `ftlib.load_dataset(name, "real")`,
  each case in a fresh process: a lesson-sized load the first time (decode, write the tensor
  cache) and again from the cache, and, for reference only, the whole data set at 64 px.
  The checksums the loaders verify are set to the built files'; nothing touches the network.

Each figure is a process's peak resident set, imports included (`import torch` alone is about
500 MiB with PyTorch's CUDA build for Linux). The command prints a table and exits with
status 1 when a run fails or a counted figure is over `--limit` GiB (default 1.5). `make
memory` runs both parts (about 15 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .lesson_times import ENV, _run, default_notebooks

__all__ = ["MARK", "LOADER_CASES", "peak_rss_mib", "build_real_copies", "lesson_peak", "loader_peak", "main"]

MARK = "FTLIB_PEAK_RSS_KIB"
PEAK_CELL = ("from ftlib.bench.memory import peak_rss_mib as _peak\n"
             f"print('{MARK}', int(_peak() * 1024))")
# Images per class (train, val, test), at least what any lesson's full budget loads (lesson 01:
# 300 training images, 06: 200 validation, 04: 500 test).
LESSON_SIZED = (300, 200, 500)
# (case, per_class, counted): what a lesson does, the first time (decode from the source files,
# write the tensor cache) and then; and the whole data set at 64 px, a reference no lesson loads
# (Fashion-MNIST's 70,000 images are 820 MiB at 64 px), so it does not count against the limit.
LOADER_CASES = (("first load, lesson-sized", LESSON_SIZED, True), ("cached, lesson-sized", LESSON_SIZED, True),
                ("cached, whole (reference)", None, False))
MEDMNIST_64 = {"train": 4708, "val": 524, "test": 624}   # PneumoniaMNIST's split sizes
FASHION = {"train": 60000, "t10k": 10000}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (nan where it cannot be read).

    On Linux it is `VmHWM` from /proc/self/status. Not `getrusage().ru_maxrss`: Linux carries
    that figure over from the parent through fork and exec, so a child started by a big process
    would report the parent's peak as its own. Elsewhere `ru_maxrss` it is (bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return kib / 1024


# --- lessons ------------------------------------------------------------------------------------

def _execute_with_peak(path: Path) -> int:
    """In the child process: run `path` in a fresh kernel, then the peak cell; print the JSON result."""
    import nbformat

    from ..grade import execute_cells

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    errors = execute_cells(nb, path.parent)
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    kib = next((int(line.split()[1]) for line in text.splitlines() if line.startswith(MARK)), None)
    print(json.dumps({"error_cells": errors, "peak_kib": kib}))
    return 0


def lesson_peak(notebook: Path, budget: str = "quick", timeout: float = 1800) -> dict:
    """{"notebook", "peak_mib" (None when not measured), "ended"} for one lesson run offline on `budget`."""
    notebook = Path(notebook).resolve()
    env = {**os.environ, **ENV, "FTLIB_BUDGET": budget, "FTLIB_QUIET": "1", "MPLBACKEND": "Agg"}
    status, output = _run([sys.executable, "-m", "ftlib.bench.memory", "--execute", str(notebook)], env, timeout)
    row = {"notebook": notebook.name, "peak_mib": None}
    if status is None:
        return {**row, "ended": f"stopped after {timeout:g} s"}
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {**row, "ended": f"could not run: {(output.strip().splitlines() or ['no output'])[-1]}"}
    peak = None if result["peak_kib"] is None else result["peak_kib"] / 1024
    ended = f"errors in cells {result['error_cells']}" if result["error_cells"] else "ran"
    return {**row, "peak_mib": peak, "ended": ended}


# --- loaders ------------------------------------------------------------------------------------

def _idx(magic: int, array) -> bytes:
    """(Fashion-)MNIST's big-endian idx format, gzipped."""
    import numpy as np

    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes(), compresslevel=1)


def _smooth_tiles(rng, n: int, px: int, channels: int):
    """`n` random images that JPEG and zip compress about as well as photos: 8x8 noise, upscaled."""
    import numpy as np

    coarse = rng.integers(0, 256, (n, 8, 8, channels), dtype=np.uint8)
    return coarse.repeat(px // 8, axis=1).repeat(px // 8, axis=2)


def build_real_copies(folder: Path, seed: int = 0) -> dict[str, dict[str, str]]:
    """Write full-size stand-ins of the real files under `folder` (laid out as the data cache);
    returns {data set: {cache path: md5}} for the loaders to verify against."""
    import numpy as np
    from PIL import Image

    from ..course.eurosat_split import read_split
    from ..course.sources import EUROSAT_COUNTS, MEDICAL, RETAIL, SATELLITE

    rng, files = np.random.default_rng(seed), {}

    def write(name: str, path: str, data: bytes) -> None:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
        files.setdefault(name, {})[path] = hashlib.md5(data).hexdigest()

    for part, n in FASHION.items():
        write("retail", RETAIL[f"{part}-images-idx3-ubyte.gz"].path, _idx(2051, _smooth_tiles(rng, n, 32, 1)[:, :28, :28, 0]))
        write("retail", RETAIL[f"{part}-labels-idx1-ubyte.gz"].path, _idx(2049, np.arange(n) % 10))
    arrays = {}
    for split, n in MEDMNIST_64.items():
        arrays[f"{split}_images"] = _smooth_tiles(rng, n, 64, 1)[..., 0]
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8).reshape(-1, 1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write("medical", MEDICAL[64].path, buf.getvalue())
    assert sum(len(v) for c in read_split().values() for v in c.values()) == sum(EUROSAT_COUNTS.values())
    zipped = folder / SATELLITE.path
    zipped.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED) as zf:
        for name, count in EUROSAT_COUNTS.items():
            for i, tile in enumerate(_smooth_tiles(rng, count, 64, 3), start=1):
                jpg = io.BytesIO()
                Image.fromarray(tile).save(jpg, "JPEG", quality=90)
                zf.writestr(f"2750/{name}/{name}_{i}.jpg", jpg.getvalue())
    files["satellite"] = {SATELLITE.path: hashlib.md5(zipped.read_bytes()).hexdigest()}
    return files


def _loader_child(name: str, per_class: tuple | None, folder: Path, checksums: dict[str, str]) -> int:
    """In the child process: point the sources at the built files, load, print the JSON result."""
    import dataclasses

    from .. import datasets
    from ..course import sources

    imports = peak_rss_mib()
    for table in (sources.MEDICAL, sources.RETAIL):
        for key, source in table.items():
            if source.path in checksums:
                table[key] = dataclasses.replace(source, url="http://127.0.0.1:9/not-used", md5=checksums[source.path])
    if sources.SATELLITE.path in checksums:
        sources.SATELLITE = dataclasses.replace(sources.SATELLITE, url="http://127.0.0.1:9/not-used",
                                                md5=checksums[sources.SATELLITE.path])
    splits = datasets.load_dataset(name, "real", size=64, per_class=per_class)
    held = sum(s.images.numel() for s in (splits.train, splits.val, splits.test)) / 2**20
    print(json.dumps({"peak_mib": peak_rss_mib(), "imports_mib": imports,
                      "images_mib": held, "counts": [len(splits.train), len(splits.val), len(splits.test)]}))
    return 0


def loader_peak(name: str, case: str, per_class: tuple | None, folder: Path, checksums: dict[str, str],
                timeout: float = 1800, counted: bool = True) -> dict:
    """One loader case in a fresh process: {"data set", "case", "peak_mib", "imports_mib", ...}."""
    env = {**os.environ, "FTLIB_DATA": str(folder), "FTLIB_OFFLINE": "1", "FTLIB_QUIET": "1"}
    command = [sys.executable, "-m", "ftlib.bench.memory", "--loader-child", name, json.dumps(per_class),
               str(folder), json.dumps(checksums)]
    status, output = _run(command, env, timeout)
    row = {"data set": name, "case": case, "peak_mib": None, "counted": counted}
    if status != 0:
        return {**row, "ended": (output.strip().splitlines() or ["no output"])[-1]}
    return {**row, **json.loads(output.strip().splitlines()[-1]), "ended": "ran"}


# --- the command --------------------------------------------------------------------------------

def format_rows(rows: list[dict], limit_mib: float) -> str:
    """The table: one line per lesson or loader case, its peak in MiB, and whether it is under the limit."""
    lines = [f"{'what':<52} {'peak MiB':>9}  {'verdict'}"]
    for row in rows:
        what = row.get("notebook") or f"{row['data set']}: {row['case']}"
        peak = row["peak_mib"]
        verdict = row["ended"] if peak is None else ("under" if peak <= limit_mib else "OVER") + " the limit"
        if peak is not None and not row.get("counted", True):
            verdict = "reference, not counted"
        lines.append(f"{what:<52} {'-' if peak is None else f'{peak:9.0f}':>9}  {verdict}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ftlib.bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="lesson notebooks (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--lessons", action="store_true", help="measure the lessons (default: both parts)")
    parser.add_argument("--loaders", action="store_true", help="measure the real-data loaders (default: both parts)")
    parser.add_argument("--budget", choices=("quick", "full"), default="quick", help="the lessons' budget")
    parser.add_argument("--limit", type=float, default=1.5, help="GiB a figure may reach (default %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--execute", type=Path, help=argparse.SUPPRESS)        # the lesson child's job
    parser.add_argument("--loader-child", nargs=4, help=argparse.SUPPRESS)     # the loader child's job
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table (and write --json); 1 when a figure is over the limit or a run failed."""
    args = _parse(argv)
    if args.execute:
        return _execute_with_peak(args.execute)
    if args.loader_child:
        name, per_class, folder, checksums = args.loader_child
        chosen = json.loads(per_class)
        return _loader_child(name, None if chosen is None else tuple(chosen), Path(folder), json.loads(checksums))
    both = not (args.lessons or args.loaders)
    rows: list[dict] = []
    if args.lessons or both:
        for notebook in args.notebooks or default_notebooks():
            rows.append(lesson_peak(notebook, args.budget))
            print(format_rows(rows[-1:], args.limit * 1024).splitlines()[1], flush=True)
    if args.loaders or both:
        with tempfile.TemporaryDirectory(prefix="ftlib-memory-") as tmp:
            checksums = build_real_copies(Path(tmp))
            for name, files in checksums.items():
                for case, per_class, counted in LOADER_CASES:
                    rows.append(loader_peak(name, case, per_class, Path(tmp), files, counted=counted))
                    print(format_rows(rows[-1:], args.limit * 1024).splitlines()[1], flush=True)
    print(format_rows(rows, args.limit * 1024))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    failed = [r for r in rows if r["peak_mib"] is None
              or (r.get("counted", True) and r["peak_mib"] > args.limit * 1024)]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
