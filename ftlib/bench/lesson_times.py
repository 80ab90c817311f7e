"""`python -m ftlib.bench.lesson_times [--write] [NOTEBOOK ...]`: how long each lesson takes here.

Runs each lesson notebook (default: every `notebooks/NN_*.ipynb` there is) as CI does: on
the quick budget, offline (`FTLIB_OFFLINE=1 FTLIB_BUDGET=quick CI=true`), with
`pytest --nbval-lax --nbval-current-env`, each in its own process under a timeout. A
lesson's time is that process's wall-clock seconds, kernel start included. It also measures
this machine's ResNet-18 training speed (`ftlib.cost.throughput`: 64 px, batch 32, fp32), the
speed lesson 00 scales the times by, and prints a table.

`--write` stores the numbers in `ftlib/course/lesson_times.json` (the machine, the date,
`train_img_s` and {lesson: seconds}; `ftlib.course` reads it; lessons not run this time
keep their earlier times) and rewrites the README's block between `<!-- lesson-times -->`
and `<!-- /lesson-times -->`. Nothing is written when a lesson fails or times out.
`make times` runs it on every lesson (about 6 minutes on 2 CPU cores).

`--budget full` runs and records the full budget instead, under the JSON's `"full"` key,
with the training speed measured in the same conditions (the same thread count: run both
the speed and the lessons under the same `OMP_NUM_THREADS`). On a CPU that takes up to
about 20 minutes a lesson.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from ..course import TIMES_FILE

__all__ = ["LessonRun", "lesson_number", "default_notebooks", "run_notebook", "train_speed",
           "machine_description", "readme_text", "write_readme", "write_times", "format_table", "main"]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS, README = ROOT / "notebooks", ROOT / "README.md"
ENV = {"FTLIB_OFFLINE": "1", "FTLIB_BUDGET": "quick", "CI": "true"}
BUDGETS = ("quick", "full")
MARKERS = ("<!-- lesson-times -->", "<!-- /lesson-times -->")
TIMEOUT_S = 1800  # per notebook


@dataclass
class LessonRun:
    """One notebook's run: `seconds` of wall-clock time; `passed` False when it failed or timed out."""
    number: str
    notebook: Path
    seconds: float
    passed: bool
    output: str = ""  # the end of pytest's output, kept to show why a run failed


def lesson_number(notebook: Path) -> str:
    """"04" for `04_freezing_layers.ipynb`; a ValueError for a name without the two-digit prefix."""
    found = re.match(r"(\d\d)_", Path(notebook).name)
    if not found:
        raise ValueError(f"{notebook}: a lesson notebook is named NN_title.ipynb, e.g. 04_freezing_layers.ipynb")
    return found.group(1)


def default_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Every lesson notebook in `folder` (`NN_*.ipynb`), in lesson order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def _run(command: list[str], env: dict, timeout: float) -> tuple[int | None, str]:
    """(exit status, or None after a timeout; output). A timed-out run is ended with its whole
    process group, so that the notebook's kernel goes too."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        return None, proc.communicate()[0]


def run_notebook(notebook: Path, timeout: float = TIMEOUT_S, budget: str = "quick") -> LessonRun:
    """Run `notebook` on `budget`, offline, under nbval in its own process; time it."""
    notebook = Path(notebook)
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
               f"--nbval-cell-timeout={max(900, int(timeout))}", "-p", "no:cacheprovider", "-q", str(notebook)]
    start = time.perf_counter()
    status, output = _run(command, {**os.environ, **ENV, "FTLIB_BUDGET": budget}, timeout)
    seconds = time.perf_counter() - start
    if status is None:
        output += f"\ntimed out after {timeout:g} s"
    return LessonRun(lesson_number(notebook), notebook, seconds, status == 0, output[-3000:])


def train_speed(steps: int = 10) -> float:
    """This machine's ResNet-18 training speed in images/s: 64 px, batch 32, fp32, on `get_device()`
    (what lesson 00 measures and `ftlib.course.REFERENCE["train_img_s"]` records)."""
    import torch
    from torchvision.models import resnet18

    from ..cost import throughput

    torch.manual_seed(0)
    return throughput(resnet18(num_classes=10), image_size=64, batch_size=32, steps=steps, device=None)


def machine_description(note: str | None = None, date: str | None = None) -> str:
    """E.g. "2-core x86_64 CPU (AVX512-BF16), no GPU; idle, 2026-11-21": cores, CPU, GPU, then the note and date."""
    import torch

    from ..precision import cpu_has_native_bf16

    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU" + (" (AVX512-BF16)" if cpu_has_native_bf16() else "")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    when = ", ".join(part for part in (note, date) if part)
    return f"{cpu}, {gpu}" + (f"; {when}" if when else "")


def _listed(lessons: dict, keep: str) -> str:
    return ", ".join(f"{number}{keep}{seconds:.0f}{keep}s" for number, seconds in sorted(lessons.items())
                     if seconds is not None)


def readme_text(times: dict, width: int = 96) -> str:
    """The README's sentence about the recorded times (`times` as in lesson_times.json), wrapped at `width`."""
    keep = "\0"  # stands for a space no line may break at ("04 89 s" stays on one line)
    text = (f"Measured quick-budget times, offline, on the reference machine ({times['machine']}): "
            f"{_listed(times['lessons'], keep)}. ")
    full = times.get("full", {})
    if full.get("lessons"):
        text += f"Full budget, offline ({full['machine']}): {_listed(full['lessons'], keep)}. "
    text += ("Lesson 00 scales them to your machine; `make times` measures them again "
             "(`--budget full` for the full budget).")
    return textwrap.fill(text, width=width, break_on_hyphens=False, break_long_words=False).replace(keep, " ")


def write_readme(readme: Path, text: str) -> None:
    """Replace what stands between the README's two lesson-times markers with `text`; the rest stays as it is."""
    content = Path(readme).read_text()
    start, end = MARKERS
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(content)) != 1:
        raise ValueError(f"{readme} needs one block between {start} and {end} (each on its own line)")
    Path(readme).write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", content))


def write_times(path: Path, runs: list[LessonRun], train_img_s: float, machine: str, date: str,
                budget: str = "quick") -> dict:
    """Write lesson_times.json: this run's machine, date and speed, and its lessons' seconds; a
    lesson not run this time keeps its earlier time. The quick budget's numbers sit at the top
    level, the full budget's under `"full"`; the other budget's part stays as it was. Returns
    the whole file's content."""
    path = Path(path)
    whole = json.loads(path.read_text()) if path.exists() else {}
    part = whole.get("full", {}) if budget == "full" else whole
    lessons = {**part.get("lessons", {}), **{run.number: round(run.seconds, 1) for run in runs}}
    fresh = {"machine": machine, "date": date, "train_img_s": round(train_img_s, 1),
             "lessons": dict(sorted(lessons.items()))}
    if budget == "full":
        whole["full"] = fresh
    else:
        whole = {**fresh, **({"full": whole["full"]} if "full" in whole else {})}
    path.write_text(json.dumps(whole, indent=2) + "\n")
    return whole


def format_table(runs: list[LessonRun], train_img_s: float, recorded: dict) -> str:
    """The measured seconds of each lesson beside the recorded ones, and the two training speeds."""
    lines = [f"{'lesson':<7} {'notebook':<44} {'seconds':>8} {'recorded':>9}"]
    for run in runs:
        before = recorded["lessons"].get(run.number)
        shown = f"{run.seconds:8.1f}" if run.passed else f"{'FAILED':>8}"
        lines.append(f"{run.number:<7} {run.notebook.name:<44} {shown} {'-' if before is None else before:>9}")
    lines.append(f"ResNet-18 training speed: {train_img_s:.0f} img/s here, "
                 f"{recorded['train_img_s']:.0f} on the recorded machine ({recorded['machine']})")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ftlib.bench.lesson_times", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="lesson notebooks (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--write", action="store_true", help="write the times to the JSON file and the README")
    parser.add_argument("--budget", choices=BUDGETS, default="quick", help="the budget to run and record (default quick)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per notebook (default %(default)s)")
    parser.add_argument("--note", help="a word on the machine's state for its description, e.g. 'idle'")
    parser.add_argument("--json", type=Path, default=TIMES_FILE, help="default: ftlib/course/lesson_times.json")
    parser.add_argument("--readme", type=Path, default=README, help="default: the repository's README.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the notebooks, print the table; with --write, record the times. Returns the exit status."""
    args = _parse(argv)
    notebooks = args.notebooks or default_notebooks()
    if not notebooks:
        print(f"no lesson notebooks (NN_*.ipynb) in {NOTEBOOKS}", file=sys.stderr)
        return 2
    none = {"lessons": {}, "train_img_s": float("nan"), "machine": "none"}
    recorded = json.loads(args.json.read_text()) if args.json.exists() else none
    if args.budget == "full":
        recorded = recorded.get("full", none)
    speed = train_speed()
    runs = []
    for notebook in notebooks:
        runs.append(run_notebook(notebook, args.timeout, args.budget))
        print(f"{notebook.name}: {runs[-1].seconds:.1f} s{'' if runs[-1].passed else ', FAILED'}", flush=True)
    print(format_table(runs, speed, recorded))
    failed = [run for run in runs if not run.passed]
    for run in failed:
        print(f"\n--- {run.notebook.name} failed:\n{run.output}")
    if failed:
        if args.write:
            print("nothing written: every lesson must pass", file=sys.stderr)
        return 1
    kept = sorted(set(recorded["lessons"]) - {run.number for run in runs})
    if args.write and kept and not 0.85 <= speed / recorded["train_img_s"] <= 1.18:
        print(f"note: lessons {', '.join(kept)} keep times recorded at {recorded['train_img_s']:.0f} img/s and this "
              f"machine trains at {speed:.0f}, so the file mixes two speeds; run every lesson (no notebook "
              "arguments) to record one machine", file=sys.stderr)
    if args.write:
        date = datetime.date.today().isoformat()
        times = write_times(args.json, runs, speed, machine_description(args.note, date), date, args.budget)
        write_readme(args.readme, readme_text(times))
        print(f"wrote {args.json} and the lesson-times block of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
