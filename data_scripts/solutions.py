"""Solved copies of the lessons, for instructors: every exercise's solution in its answer cell.

    python -m data_scripts.solutions                 # writes solutions/NN_*.ipynb
    python -m data_scripts.solutions --out DIR       # somewhere else
    python -m ftlib.grade solutions/                 # every exercise: passed

For each exercise, the first code cell that calls `ex.qN.check(...)` gets the exercise's
`solution_code` just before that call, and loses the placeholder line the student fills in
(`answer = None  # your answer`). Where the notebook passes its own names (`ex_model`) and
the solution uses the task's names (`model`), a line binds one to the other: before the
solution for what it reads, after it for what it defines. The copies are outputs, not
sources: they are not committed (`solutions/` is ignored).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from pathlib import Path

from data_scripts.notebooks import ROOT, notebook_paths

__all__ = ["solve_notebook", "solve_cell", "write_solutions", "main"]

CHECK = re.compile(r"\bex\.(q\d+)\.check\(")
PLACEHOLDER = re.compile(r"^\s*[A-Za-z_]\w*(\s*,\s*[A-Za-z_]\w*)*\s*=\s*(None|\.\.\.)(\s*,\s*(None|\.\.\.))*\s*(#.*)?$")


def _call_args(source: str) -> list[ast.expr]:
    """The arguments of the first `ex.qN.check(...)` call in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check":
            return node.args
    return []


def _assigned(code: str) -> set[str]:
    """Names the solution code binds (assignments, functions, imports)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _bindings(usage: str, call_line: str, solution: str) -> tuple[list[str], list[str]]:
    """(lines before the solution, lines after it) that bind the task's names to the notebook's."""
    before, after, defined = [], [], _assigned(solution)
    for task, mine in zip(_call_args(usage), _call_args(call_line.strip())):
        if isinstance(task, ast.Name) and isinstance(mine, ast.Name) and task.id != mine.id:
            if task.id in defined:
                after.append(f"{mine.id} = {task.id}")
            else:
                before.append(f"{task.id} = {mine.id}")
    return before, after


def solve_cell(source: str, key: str, exercise) -> str:
    """`source` with the solution of `exercise` (key "q1") put before its check call."""
    lines = [line for line in source.splitlines() if not PLACEHOLDER.match(line)]
    at = next(i for i, line in enumerate(lines) if f"ex.{key}.check(" in line)
    before, after = _bindings(exercise.usage, lines[at], exercise.solution_code)
    solution = ["# solution (written by data_scripts.solutions)", *before,
                exercise.solution_code.strip(), *after]
    return "\n".join([*lines[:at], *solution, *lines[at:]])


def solve_notebook(nb: dict, exercises: dict) -> tuple[dict, list[str]]:
    """A solved copy of notebook `nb` and the exercise keys it solved, in order."""
    solved, done = copy.deepcopy(nb), []
    for cell in solved["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        for key in CHECK.findall(source):
            if key in exercises and key not in done:
                source = solve_cell(source, key, exercises[key])
                done.append(key)
        cell["source"] = source.splitlines(keepends=True)
    return solved, done


def write_solutions(out: Path, paths: list[Path] | None = None) -> dict[str, list[str]]:
    """Write a solved copy of every lesson that has exercises into `out`; {notebook: keys solved}."""
    from ftlib.exercises import LESSON_SETS

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in paths or notebook_paths():
        lesson = LESSON_SETS.get(path.name[:2])
        if lesson is None:
            continue
        solved, keys = solve_notebook(json.loads(path.read_text()), lesson.exercises)
        missing = [k for k in lesson.exercises if k not in keys]
        if missing:
            raise ValueError(f"{path.name}: no cell calls ex.{missing[0]}.check(...), so its solution has no place")
        (out / path.name).write_text(json.dumps(solved, indent=1, ensure_ascii=False) + "\n")
        written[path.name] = keys
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_scripts.solutions", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "solutions", help="folder for the solved copies")
    args = parser.parse_args(argv)
    written = write_solutions(args.out)
    for name, keys in written.items():
        print(f"{args.out / name}: {', '.join(keys)}")
    print(f"check them with: python -m ftlib.grade {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
