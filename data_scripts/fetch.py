"""Pre-fetch the real data and the ImageNet weights, or check what is already there.

    python -m data_scripts.fetch                       # what the lessons use (= --lessons; needs network)
    python -m data_scripts.fetch --all                 # everything: all weights, all image sizes
    python -m data_scripts.fetch medical weights       # some of it
    python -m data_scripts.fetch --check               # verify the lessons' set, no network

`--lessons` (the default) fetches only what the lessons load: the ImageNet weights of the
architectures they train (`LESSON_WEIGHTS`) and the PneumoniaMNIST size they read
(`LESSON_MEDICAL_SIZES`), besides the satellite, retail and photo files. `--all` adds every
weights file of the model-zoo table and every published PneumoniaMNIST size. Before anything
is downloaded, each file's size is printed (from the server; "present" when a verified copy
is already there). `--check` verifies the same set that the same options fetch.

Names: medical, satellite, retail, photos (lesson 01), weights, and for lesson 12
pedestrians (Penn-Fudan, about 50 MB) and detector (Faster R-CNN MobileNetV3-Large FPN COCO
weights, 74 MB per torchvision): these two make the default fetch about 125 MB bigger. Penn-Fudan's
publisher gives no checksum: its first download records the SHA-256 it saw, and later runs
verify against that record (see `ftlib/course/pennfudan.py`). Every file is checked
against its publisher's checksum (see `ftlib/course/sources.py`); files already verified
are skipped, so running it twice costs nothing. The three data sets are also decoded once
into the tensor cache, at the size the files hold. An instructor then copies the two folders printed at the end
to each lab machine (same paths, or set FTLIB_DATA and TORCH_HOME there).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ftlib.config import data_dir, weights_dir
from ftlib.datasets import DATASET_NAMES, cache_dataset, fetch_file, tensor_cache_path
from ftlib.course.download import DownloadError, OfflineError, remote_size, verify_file

from ftlib.course.sources import DATASETS, MEDMNIST_SIZES, WEIGHTS, Source, weight_sources
from ftlib.course import pennfudan, sources

__all__ = ["NAMES", "LESSON_WEIGHTS", "LESSON_MEDICAL_SIZES", "Selection", "files_for", "plan", "fetch",
           "check", "main"]

NAMES = ("medical", "satellite", "retail", "photos", "weights", "pedestrians", "detector")
DETECTOR_WEIGHTS = tuple(sources.DETECTOR_WEIGHTS)  # lesson 12: the COCO detector whose box predictor it replaces
DECODE_SIZE = 64  # the tensor cache the lessons read by default
# What the lessons load (tests/test_fetch.py reads every notebook and checks that these cover it).
LESSON_WEIGHTS = ("ResNet18_Weights.IMAGENET1K_V1",)
LESSON_MEDICAL_SIZES = (64,)


@dataclass(frozen=True)
class Selection:
    """Which weights files and which PneumoniaMNIST sizes a run of the command covers."""
    weights: tuple[str, ...] = tuple(WEIGHTS)
    sizes: tuple[int, ...] = MEDMNIST_SIZES


LESSONS = Selection(LESSON_WEIGHTS, LESSON_MEDICAL_SIZES)
EVERYTHING = Selection()


def files_for(name: str, selection: Selection = EVERYTHING) -> list[tuple[Source, Path]]:
    """The sources of `name` and where each one goes (weights: torch's hub cache; the rest: data cache)."""
    if name == "weights":
        return [(s, weights_dir() / s.path) for s in weight_sources(list(selection.weights))]
    if name == "detector":
        return [(s, weights_dir() / s.path) for s in weight_sources(list(DETECTOR_WEIGHTS))]
    if name == "pedestrians":
        source = pennfudan.pennfudan_source()
        return [(source, data_dir() / source.path)]
    sizes = selection.sizes
    files = DATASETS[name]["files"]
    chosen = [files[s] for s in sizes] if name == "medical" else list(files.values())
    return [(s, data_dir() / s.path) for s in chosen]


def _root(name: str) -> Path:
    return weights_dir() if name in ("weights", "detector") else data_dir()


def _size_text(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def plan(names: list[str], selection: Selection) -> int:
    """Print every file of `names` with its size before anything is downloaded; returns the
    bytes still to download (files whose size the server did not give count as 0)."""
    print("To fetch:")
    todo = 0
    for name in names:
        for source, path in files_for(name, selection):
            if path.is_file() and verify_file(path, sha256=source.sha256, md5=source.md5) is None:
                print(f"  present  {name:9s} {path.name} ({_size_text(path.stat().st_size)})")
                continue
            size = remote_size(source.url)
            todo += size or 0
            print(f"  {'download':8s} {name:9s} {path.name} ({_size_text(size) if size else 'size not given'})")
    print(f"About {_size_text(todo)} to download.\n")
    return todo


def _fetch_one(name: str, selection: Selection) -> tuple[int, list[Path]]:
    """Fetch the files of one name; returns (bytes on disk, paths that failed)."""
    total, failed = 0, []
    sizes = selection.sizes
    for source, path in files_for(name, selection):
        try:
            fetch_file(source, _root(name))
            total += path.stat().st_size
            print(f"  ok       {name:9s} {path}")
            if name == "pedestrians":
                note = pennfudan.record_checksum(path)
                if note:
                    print(f"           {note}")
        except OfflineError:
            raise
        except DownloadError as err:
            failed.append(path)
            print(f"  FAILED   {name:9s} {path}\n           {err}")
    if name in DATASET_NAMES and not failed and (name != "medical" or DECODE_SIZE in sizes):
        splits = cache_dataset(name, DECODE_SIZE)
        total += tensor_cache_path(name, DECODE_SIZE).stat().st_size
        print(f"  decoded  {name:9s} {splits.summary()}")
    return total, failed


def fetch(names: list[str], selection: Selection = LESSONS) -> int:
    """Download (or keep) every file of `names`, decode the data sets; 0 when all is well, else 1."""
    total, failed = 0, []
    plan(names, selection)
    try:
        for name in names:
            n_bytes, bad = _fetch_one(name, selection)
            total, failed = total + n_bytes, failed + bad
    except OfflineError as err:
        print(f"\n{err}")
        return 1
    if failed:
        print(f"\n{len(failed)} file(s) failed; run the same command again (downloads resume).")
    else:
        print(f"\nAll files verified: {_size_text(total)} in total.")
    _print_folders()
    return 1 if failed else 0


def check(names: list[str], selection: Selection = LESSONS) -> int:
    """Verify the files of `names` that should be present (no network); 0 when all are there and intact."""
    problems = []
    for name in names:
        for source, path in files_for(name, selection):
            problem = verify_file(path, sha256=source.sha256, md5=source.md5)
            status = "ok" if problem is None else "MISSING" if not path.exists() else "CORRUPT"
            print(f"  {status:8s} {name:9s} {path}" + (f"\n           {problem}" if status == "CORRUPT" else ""))
            if problem:
                problems.append(name)
    if problems:
        wanted = " ".join(dict.fromkeys(problems))
        print(f"\nMissing or corrupt: {wanted}. On a machine with network run "
              f"`python -m data_scripts.fetch {wanted}` (it deletes bad copies and resumes partial ones), "
              f"then copy the folders below to this machine.")
    else:
        print("\nEverything is present and matches the publishers' checksums.")
    _print_folders()
    return 1 if problems else 0


def _print_folders() -> None:
    print("Copy these two folders to lab machines (same paths, or set FTLIB_DATA and TORCH_HOME there):")
    print(f"  data cache       : {data_dir()}")
    print(f"  torch's hub cache: {torch.hub.get_dir()}  (weights in {weights_dir().name}/)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_scripts.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(NAMES)} (default: all of them)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--lessons", action="store_true",
                       help="only what the lessons load (the default): ResNet-18's weights, PneumoniaMNIST at 64 px")
    group.add_argument("--all", action="store_true", help="every weights file and every PneumoniaMNIST size")
    parser.add_argument("--check", action="store_true", help="verify what is present, without network")
    parser.add_argument("--sizes", help=f"PneumoniaMNIST resolutions, e.g. 64,128 (among {MEDMNIST_SIZES})")
    args = parser.parse_args(argv)
    names = args.names or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(f"unknown names {unknown}: use any of {', '.join(NAMES)}")
    selection = EVERYTHING if args.all else LESSONS
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip().isdigit())
        if not sizes or not set(sizes) <= set(MEDMNIST_SIZES):
            parser.error(f"--sizes must be among {MEDMNIST_SIZES}")
        selection = Selection(selection.weights, sizes)
    return (check if args.check else fetch)(names, selection)


if __name__ == "__main__":
    sys.exit(main())
