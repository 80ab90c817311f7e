"""data_scripts.solutions: solved copies of the lessons put each exercise's solution before its
check and drop the placeholder (running them, `python -m ftlib.grade solutions/`, is slow and
lives outside the test suite)."""

from __future__ import annotations

import ast
import json
import re

from data_scripts import solutions
from data_scripts.notebooks import notebook_paths
from ftlib.exercises import LESSON_SETS

MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


def test_every_lesson_gets_every_solution(tmp_path):
    written = solutions.write_solutions(tmp_path)
    lessons = {p.name for p in notebook_paths() if p.name[:2] in LESSON_SETS}
    assert set(written) == lessons
    for name, keys in written.items():
        assert keys == list(LESSON_SETS[name[:2]].exercises), name
        nb = json.loads((tmp_path / name).read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        ast.parse(MAGIC.sub(r"\1pass", code))  # the solved copy is valid Python
        for key in keys:
            solution = LESSON_SETS[name[:2]].exercises[key].solution_code.strip()
            assert code.index(solution) < code.index(f"ex.{key}.check("), (name, key)


def test_a_cell_loses_its_placeholder_and_binds_the_notebooks_names():
    class Exercise:
        usage = "ex.q1.check(model)"
        solution_code = "for p in model.parameters():\n    p.requires_grad = False\n"

    cell = 'ex_model = make()\nanswer = None   # your answer\nex.q1.check(ex_model)'
    solved = solutions.solve_cell(cell, "q1", Exercise())
    assert "answer = None" not in solved
    assert solved.index("ex_model = make()") < solved.index("model = ex_model") < solved.index("ex.q1.check")


def test_a_name_the_solution_defines_is_bound_after_it():
    class Exercise:
        usage = "ex.q2.check(optimizer, model)"
        solution_code = "optimizer = make_optimizer(model)\n"

    solved = solutions.solve_cell("ex.q2.check(optimizer_q2, model_q2)", "q2", Exercise())
    lines = solved.splitlines()
    assert lines.index("model = model_q2") < lines.index("optimizer = make_optimizer(model)") \
        < lines.index("optimizer_q2 = optimizer") < lines.index("ex.q2.check(optimizer_q2, model_q2)")
