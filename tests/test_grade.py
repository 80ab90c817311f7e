"""python -m ftlib.grade on tiny notebooks the test writes: all solved, none, one wrong, one that
raises half-way, one that never ends. Each runs in its own kernel, in a child process."""

from __future__ import annotations

import csv

import nbformat
import pytest

from ftlib import grade

SETUP = "from ftlib.exercises import lesson01 as ex"
RIGHT = {"q1": 'ex.q1.check("layer3")', "q2": "ex.q2.check(64 * 3 * 7 * 7)",
         "q3": 'ex.q3.check("efficientnet_b0")'}


def _write(folder, name: str, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (SETUP, *cells)]
    nbformat.write(nb, str(folder / name))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    _write(folder, "01_all.ipynb", *RIGHT.values(), "import ftlib.grade\nftlib.grade.RAN_HERE = True")
    _write(folder, "01_none.ipynb", "ex.q1.check(None)", "answer = ...")
    _write(folder, "01_one_wrong.ipynb", RIGHT["q1"], "ex.q2.check(9999)", RIGHT["q3"])
    _write(folder, "01_raises.ipynb", RIGHT["q1"], "1 / 0", RIGHT["q2"], 'print("Correct. q3 passed")')
    _write(folder, "01_endless.ipynb", RIGHT["q1"], "while True:\n    pass", RIGHT["q2"])
    results, runs = grade.grade([folder], timeout_s=90, log=lambda _: None)  # generous: a loaded machine starts kernels slowly
    return folder, results, runs


def _status(results, notebook: str) -> dict[str, str]:
    return {r.exercise: r.status for r in results if r.notebook == notebook}


def test_every_exercise_solved(graded):
    _, results, runs = graded
    assert _status(results, "01_all.ipynb") == {"q1": "passed", "q2": "passed", "q3": "passed"}
    assert runs["01_all.ipynb"] == "ran"


def test_none_solved_is_not_attempted(graded):
    _, results, _ = graded
    assert _status(results, "01_none.ipynb") == {"q1": "not attempted", "q2": "not attempted",
                                                 "q3": "not attempted"}


def test_one_wrong_keeps_the_checkers_message(graded):
    _, results, _ = graded
    assert _status(results, "01_one_wrong.ipynb") == {"q1": "passed", "q2": "wrong", "q3": "passed"}
    wrong = next(r for r in results if r.notebook == "01_one_wrong.ipynb" and r.exercise == "q2")
    assert "9999" in wrong.message or "Not yet" in wrong.message


def test_a_notebook_that_raises_is_graded_for_what_ran_and_printing_passes_nothing(graded):
    _, results, runs = graded
    assert _status(results, "01_raises.ipynb") == {"q1": "passed", "q2": "passed", "q3": "not attempted"}
    assert runs["01_raises.ipynb"].startswith("errors in cells [2]")


def test_an_endless_notebook_is_stopped_and_the_others_still_graded(graded):
    _, results, runs = graded
    assert runs["01_endless.ipynb"].startswith("stopped after 90")
    assert _status(results, "01_endless.ipynb") == {"q1": "passed", "q2": "not attempted", "q3": "not attempted"}
    assert len({r.notebook for r in results}) == 5


def test_table_and_csv(graded, tmp_path):
    _, results, runs = graded
    table = grade.format_table(results, runs)
    assert "01_all.ipynb: 3 of 3 passed" in table and "01_none.ipynb: 0 of 3 passed" in table
    grade.write_csv(results, tmp_path / "grades.csv")
    rows = list(csv.DictReader(open(tmp_path / "grades.csv")))
    assert len(rows) == 15 and set(rows[0]) == {"notebook", "lesson", "exercise", "status", "message"}


def test_nothing_of_the_notebook_runs_in_the_graders_process(graded):
    _, _, runs = graded
    assert runs["01_all.ipynb"] == "ran"  # the cell that sets RAN_HERE did run, in the kernel
    assert not hasattr(grade, "RAN_HERE")


def test_a_bad_path_is_a_clear_error(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing.txt")]) == 2
    assert "neither a notebook" in capsys.readouterr().err
