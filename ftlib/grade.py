"""`python -m ftlib.grade NOTEBOOK_OR_FOLDER... [--csv FILE] [--timeout S]`: grade notebooks.

For instructors. Each student's notebook runs in a kernel of its own, in a child process
(nothing of the notebook runs in the grader's process), offline, on the quick budget, with
a time limit. Every exercise of the notebook's lesson ends up in one of four states:

| status          | meaning                                                            |
| --------------- | ------------------------------------------------------------------ |
| `passed`        | the last `check()` of it accepted the answer                       |
| `wrong`         | the last `check()` rejected it; the message says why               |
| `error`         | the student's code raised inside the checker                       |
| `not attempted` | never checked, or checked with the placeholder (`None`, `...`)     |

Results leave the kernel through the exercise system: with `FTLIB_GRADE_LOG` set, each
`check()` appends one JSON line to that file (`ftlib.exercises.core.record`). What the
notebook prints is never read, so printing "Correct" does not pass an exercise. The checks
still run in the student's kernel on the student's objects: a student who edits ftlib can
fool them. The grader is for honest mistakes; INSTRUCTORS.md says more.

A notebook that errors half-way is graded for what ran (later cells still run); one that
runs past the time limit is stopped, kernel included, and graded for what it had checked.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["Result", "grade", "notebooks_in", "run_notebook", "execute_cells", "format_table", "write_csv", "main", "LOG_ENV"]

LOG_ENV = "FTLIB_GRADE_LOG"
STATUSES = ("passed", "wrong", "error", "not attempted")
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Result:
    """One exercise of one notebook: its status and the checker's message."""
    notebook: str
    lesson: str
    exercise: str
    status: str
    message: str = ""


def notebooks_in(paths: Sequence[str | Path]) -> list[Path]:
    """The notebooks named, and those inside the folders named (not in checkpoints), sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither a notebook (.ipynb) nor a folder.")
    return found


def _child_env(log: Path) -> dict[str, str]:
    """The student's run: offline, quick budget, quiet, not strict, results to `log`."""
    env = {k: v for k, v in os.environ.items() if k != "FTLIB_STRICT"}
    env.update(FTLIB_OFFLINE="1", FTLIB_BUDGET="quick", FTLIB_QUIET="1", MPLBACKEND="Agg")
    env[LOG_ENV] = str(log)
    return env


def execute_cells(nb, folder: Path) -> list[int]:
    """Run every cell of the notebook `nb` (in place) in a fresh kernel started in `folder`,
    going on after errors; the indices of the code cells that raised."""
    import nbclient

    client = nbclient.NotebookClient(nb, allow_errors=True, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute()
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and any(o.get("output_type") == "error" for o in c.get("outputs", []))]


def _execute(path: Path) -> int:
    """In the child process: run every cell of `path` in a fresh kernel, going on after errors."""
    import nbformat

    print(json.dumps({"error_cells": execute_cells(nbformat.read(path, as_version=4), path.parent)}))
    return 0


def run_notebook(path: Path, log: Path, timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Run `path` in a child process (and its kernel) for at most `timeout_s`; how it ended.

    `env`: the child's environment; by default a graded student's run (`_child_env(log)`).
    The claim sweep (`ftlib.bench.claims`) passes its own.
    """
    command = [sys.executable, "-m", "ftlib.grade", "--execute", str(path)]
    child = subprocess.Popen(command, env=_child_env(log) if env is None else env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, cwd=path.parent)
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the kernel is in the same session: it goes too
        child.communicate()
        return f"stopped after {timeout_s:g} s"
    if child.returncode != 0:
        last = (err.strip().splitlines() or ["no message"])[-1]
        return f"could not run: {last}"
    errors = json.loads(out.strip().splitlines()[-1])["error_cells"] if out.strip() else []
    return f"errors in cells {errors}" if errors else "ran"


def _lesson_of(path: Path, records: list[dict]) -> str | None:
    """The lesson a notebook belongs to: from its records, else its name ("04_...")."""
    if records:
        return records[-1]["lesson"]
    prefix = path.name[:2]
    return prefix if prefix.isdigit() else None


def _results(path: Path, records: list[dict]) -> list[Result]:
    """One Result per exercise of the lesson; the last record of each exercise counts."""
    from . import exercises

    lesson = _lesson_of(path, records)
    last = {r["exercise"]: r for r in records if r["lesson"] == lesson}
    keys = list(exercises.LESSON_SETS[lesson].exercises) if lesson in exercises.LESSON_SETS else list(last)
    rows = []
    for key in keys:
        record = last.get(key, {"status": "not attempted", "message": ""})
        rows.append(Result(path.name, lesson or "?", key, record["status"], record["message"]))
    return rows


def _read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    records = []
    for line in log.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short when a run was stopped
    return records


def grade(paths: Sequence[str | Path], timeout_s: float = DEFAULT_TIMEOUT_S,
          log: Callable[[str], None] = print) -> tuple[list[Result], dict[str, str]]:
    """Grade every notebook in `paths`: (one Result per exercise, {notebook: how its run ended})."""
    results, runs = [], {}
    for path in notebooks_in(paths):
        with tempfile.TemporaryDirectory() as tmp:
            record_file = Path(tmp) / "results.jsonl"
            log(f"grading {path} ...")
            runs[path.name] = run_notebook(path.resolve(), record_file, timeout_s)
            results += _results(path, _read_log(record_file))
    return results, runs


def format_table(results: Sequence[Result], runs: dict[str, str] | None = None) -> str:
    """Results as an aligned text table, one row per exercise, with a score per notebook."""
    head = ("notebook", "lesson", "exercise", "status", "message")
    rows = [(r.notebook, r.lesson, r.exercise, r.status, r.message.splitlines()[0][:70] if r.message else "")
            for r in results]
    widths = [max(len(str(x)) for x in column) for column in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in (head, *rows)]
    for name in dict.fromkeys(r.notebook for r in results):
        mine = [r for r in results if r.notebook == name]
        passed = sum(r.status == "passed" for r in mine)
        ended = f"; run: {runs[name]}" if runs and name in runs else ""
        lines.append(f"{name}: {passed} of {len(mine)} passed{ended}")
    return "\n".join(lines)


def write_csv(results: Sequence[Result], path: str | Path) -> None:
    """Write the results as CSV with the columns notebook, lesson, exercise, status, message."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Result.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftlib.grade", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--csv", type=Path, help="also write the results to this CSV file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds one notebook may run (default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--execute", action="store_true", help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.execute:
        return _execute(Path(args.paths[0]))
    try:
        results, runs = grade(args.paths, args.timeout)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(results, runs))
    if args.csv:
        write_csv(results, args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
