"""Notebook maintenance: strip outputs and keep every notebook's Colab install cell in sync.

    python -m data_scripts.notebooks            # strip outputs, sync the first cell, in place
    python -m data_scripts.notebooks --check    # report drift, exit 1 (what the hygiene test checks)

The repository URL is written once, in pyproject.toml ([project.urls] Repository); the Colab
cell of each notebook is generated from it, so a fork changes one line and runs this script.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def repository_url() -> str:
    """The one place the repository URL is written: pyproject.toml's [project.urls] Repository."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def colab_cell_source() -> str:
    """The first code cell of every notebook: installs ftlib on Colab, does nothing elsewhere.

    It downloads one archive of the main branch (no git clone) and pip-installs it.
    """
    archive = repository_url().rstrip("/") + "/archive/refs/heads/main.zip"
    return ("# On Colab, install the course's helper package ftlib (one archive, no git clone).\n"
            "# Everywhere else this cell does nothing: `make lab` has installed it already.\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    %pip install --quiet \"ftlib @ {archive}\"")


def notebook_paths() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb"))


def problems(nb: dict) -> list[str]:
    """What is wrong with a notebook's committed form (empty list: clean)."""
    found = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if any(c.get("outputs") for c in code):
        found.append("has outputs")
    if any(c.get("execution_count") is not None for c in code):
        found.append("has execution counts")
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        found.append("kernel is not python3")
    if not code or "".join(code[0]["source"]) != colab_cell_source():
        found.append("first code cell is not the Colab install cell (run python -m data_scripts.notebooks)")
    return found


def clean(nb: dict) -> dict:
    """Strip outputs and counts, set the python3 kernel, and put the Colab cell first."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    nb.setdefault("metadata", {})["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    source = colab_cell_source().splitlines(keepends=True)
    if code and re.search(r"google\.colab", "".join(code[0]["source"])):
        code[0]["source"] = source
        code[0].setdefault("id", "colab-install")
    else:
        first_code = nb["cells"].index(code[0]) if code else len(nb["cells"])
        nb["cells"].insert(first_code, {"cell_type": "code", "id": "colab-install", "metadata": {},
                                        "source": source, "outputs": [], "execution_count": None})
    return nb


def write(path: Path, nb: dict) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report problems, change nothing")
    args = parser.parse_args(argv)
    bad = 0
    for path in notebook_paths():
        nb = json.loads(path.read_text())
        if args.check:
            for problem in problems(nb):
                print(f"{path.name}: {problem}")
                bad += 1
        else:
            write(path, clean(nb))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
