"""Every lesson notebook is committed clean and stands on its own.

nbval (in `make test`) executes each notebook top to bottom in a fresh kernel; these
checks cover what execution cannot: committed outputs, the kernel, the Colab cell, and
files that one notebook writes and another reads.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest

from data_scripts import notebooks as nbtools

PATHS = nbtools.notebook_paths()
IDS = [p.name for p in PATHS]

# Calls that write a file; their string-literal arguments are the files a notebook creates.
WRITERS = {"open", "savefig", "save", "save_checkpoint", "write_text", "write_bytes", "to_csv", "dump"}
CELL_MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


def code_of(path: Path) -> str:
    nb = json.loads(path.read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return "\n".join(CELL_MAGIC.sub(r"\1pass", c) for c in cells)


def written_paths(code: str) -> set[str]:
    """String literals passed to a file-writing call, e.g. torch.save(m, "runs/x.pt")."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in WRITERS:
                found |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                          and ("/" in a.value or "." in a.value)}
    return found


def test_there_are_notebooks():
    assert (Path(nbtools.NOTEBOOKS) / "00_setup.ipynb").exists()


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_is_committed_clean(path):
    assert nbtools.problems(json.loads(path.read_text()), path.name) == []


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_parses_and_has_a_title(path):
    ast.parse(code_of(path))  # every code cell is valid Python (magics aside)
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# "), "start with a # title"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_does_not_run_other_notebooks(path):
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert not re.search(r"%run|%store\s+-r|\.ipynb", code), "a notebook must not depend on another one"


def test_no_notebook_reads_what_another_writes():
    codes = {p.name: code_of(p) for p in PATHS}
    for writer, code in codes.items():
        for target in written_paths(code):
            readers = [name for name, other in codes.items() if name != writer and target in other]
            assert not readers, f"{readers} use {target!r}, which {writer} writes; let ftlib create it on demand"


def test_repository_url_is_written_once():
    url = nbtools.repository_url()
    root = Path(nbtools.ROOT)
    tracked = [p for p in root.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
               and p.suffix in {".py", ".md", ".toml", ".yml", ".txt", ".cfg"}]
    holders = [str(p.relative_to(root)) for p in tracked if url in p.read_text(errors="ignore")]
    assert holders == ["pyproject.toml"], holders


def test_written_paths_finds_writes():
    code = 'torch.save(m, "runs/a.pt")\nfig.savefig("plot.png")\nopen("x.txt", "w")\nprint("not/a/write")'
    assert written_paths(code) == {"runs/a.pt", "plot.png", "x.txt"}


def budget_settings(code: str) -> dict[str, set[str]]:
    """The setting names of each budget in a `{"quick": dict(...), "full": dict(...)}` literal."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Dict) and {getattr(k, "value", None) for k in node.keys} == {"quick", "full"}:
            return {k.value: {kw.arg for kw in v.keywords} for k, v in zip(node.keys, node.values)
                    if isinstance(v, ast.Call)}
    return {}


@pytest.mark.parametrize("path", [p for p in PATHS if not p.name.startswith("00_")], ids=lambda p: p.name)
def test_quick_and_full_budgets_set_the_same_things(path):
    # CI only executes the quick budget: a setting that exists in one budget alone would
    # break the full run (on a GPU, with real data) with a KeyError nobody has seen.
    settings = budget_settings(code_of(path))
    assert set(settings) == {"quick", "full"}, f"{path.name}: no budget dict chosen by ftlib.budget()"
    assert settings["quick"] == settings["full"], (
        f"{path.name}: only in one budget: {sorted(settings['quick'] ^ settings['full'])}")


def test_budget_settings_finds_a_missing_key():
    code = 'B = {"quick": dict(a=1, b=2), "full": dict(a=3)}[ftlib.budget()]'
    assert budget_settings(code) == {"quick": {"a", "b"}, "full": {"a"}}


LESSONS = [p for p in PATHS if not p.name.startswith("00_")]


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_checks_its_claims_with_ftlib_claim(path):
    """Claims go through ftlib.claim (strict in tests, explained in a student's run)."""
    assert "ftlib.claim(" in code_of(path)


def catches_a_check(code: str) -> bool:
    """True when a try/except wraps an exercise's check(): the wrapper check() makes unneeded."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Try):
            calls = [n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Call)]
            if any(isinstance(c.func, ast.Attribute) and c.func.attr == "check" for c in calls):
                return True
    return False


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_no_notebook_wraps_exercise_checks(path):
    assert not catches_a_check(code_of(path)), f"{path.name}: ex.qN.check() shows its feedback; drop the try/except"


def test_catches_a_check_finds_a_wrapper():
    assert catches_a_check("try:\n    ex.q1.check(a)\nexcept Exception as e:\n    print(e)")
    assert not catches_a_check("ex.q1.check(a)\ntry:\n    x = 1\nexcept Exception:\n    pass")


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_cells_stay_small_enough_to_read(path):
    """One idea per cell: no code cell over 25 lines, no markdown cell over 250 words."""
    cells = json.loads(path.read_text())["cells"]
    long_code = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and len("".join(c["source"]).splitlines()) > 25]
    long_text = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and len("".join(c["source"]).split()) > 250]
    assert not long_code and not long_text, f"split cells {long_code} (code > 25 lines) and {long_text} (markdown > 250 words)"


def test_colab_install_and_badges_point_at_the_release_tag_not_a_branch():
    tag = nbtools.release_tag()
    assert tag.startswith("v") and tag[1:] == tomllib.loads((Path(nbtools.ROOT) / "pyproject.toml").read_text())["project"]["version"]
    cell = nbtools.colab_cell_source()
    assert f"/archive/refs/tags/{tag}.zip" in cell and "heads" not in cell
    badge = nbtools.colab_badge_source("04_freezing_layers.ipynb")
    assert badge.endswith(f"/blob/{tag}/notebooks/04_freezing_layers.ipynb)")
    readme = (Path(nbtools.ROOT) / "README.md").read_text()
    assert nbtools.readme_badges() in readme and f"/{tag}?urlpath=lab/tree/notebooks" in nbtools.readme_badges()


def test_the_generator_puts_the_badge_after_the_title_once(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": ["# Title"], "metadata": {}},
                    {"cell_type": "code", "source": ["x = 1"], "metadata": {}, "outputs": [], "execution_count": 3}],
          "metadata": {}}
    once = nbtools.clean(json.loads(json.dumps(nb)), "05_x.ipynb")
    twice = nbtools.clean(json.loads(json.dumps(once)), "05_x.ipynb")
    assert once == twice and nbtools.problems(twice, "05_x.ipynb") == []
    assert [c["cell_type"] for c in twice["cells"]] == ["markdown", "markdown", "code", "code"]
    assert "".join(twice["cells"][1]["source"]) == nbtools.colab_badge_source("05_x.ipynb")


def test_the_generator_gives_every_cell_a_unique_id_and_keeps_existing_ones():
    nb = {"cells": [{"cell_type": "markdown", "source": ["# Title"], "metadata": {}},
                    {"cell_type": "markdown", "id": "cell-003", "source": ["text"], "metadata": {}},
                    {"cell_type": "code", "source": ["x = 1"], "metadata": {}, "outputs": [], "execution_count": None},
                    {"cell_type": "code", "source": ["y = 2"], "metadata": {}, "outputs": [], "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    assert any("no id" in p for p in nbtools.problems(nb, "05_x.ipynb"))
    once = nbtools.clean(json.loads(json.dumps(nb)), "05_x.ipynb")
    ids = [c["id"] for c in once["cells"]]
    assert len(set(ids)) == len(ids) and "cell-003" in ids and once["nbformat_minor"] >= 5
    assert nbtools.clean(json.loads(json.dumps(once)), "05_x.ipynb") == once
    assert nbtools.problems(once, "05_x.ipynb") == []
