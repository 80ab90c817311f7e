"""Notebook maintenance: strip outputs; keep every notebook's Colab badge and install cell in sync.

    python -m data_scripts.notebooks            # strip outputs, sync the badge and install cell, in place
    python -m data_scripts.notebooks --check    # report drift, exit 1 (what the hygiene test checks)

The repository URL is written once, in pyproject.toml ([project.urls] Repository), and so is
the release the notebooks point at: the tag `v` + [project] version. Each notebook's second
cell (after its title) is an "Open in Colab" badge for that notebook at that tag, and its first code cell
installs ftlib from that tag's archive on Colab, so that the notebook a student opens and
the ftlib it installs come from the same release, never from a moving branch.

To release (bump): set `version` in pyproject.toml, run this script, commit, tag that
commit `v<version>` and push the tag. Until the tag is pushed, the badges and the Colab
install point at a release that does not exist yet. A fork changes the Repository line and
runs this script.
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
README = ROOT / "README.md"
BADGE_MARKERS = ("<!-- badges -->", "<!-- /badges -->")


def repository_url() -> str:
    """The one place the repository URL is written: pyproject.toml's [project.urls] Repository."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def release_tag() -> str:
    """The tag the badges and the Colab install point at: "v" + pyproject's [project] version."""
    return "v" + tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def colab_badge_source(name: str) -> str:
    """The cell after notebook `name`'s title: a badge that opens it on Colab, at the release tag."""
    link = f"https://colab.research.google.com/github/{_owner_repo()}/blob/{release_tag()}/notebooks/{name}"
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"


def _owner_repo() -> str:
    return repository_url().rstrip("/").removeprefix("https://github.com/")


def readme_badges() -> str:
    """The README's badges: Binder (JupyterLab on the lesson folder) and Colab (lesson 00), at the release tag."""
    binder = f"https://mybinder.org/v2/gh/{_owner_repo()}/{release_tag()}?urlpath=lab/tree/notebooks"
    return (f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder}) "
            + colab_badge_source("00_setup.ipynb").replace("Open in Colab", "Open lesson 00 in Colab"))


def readme_with_badges(text: str) -> str:
    """`text` (the README) with the block between the badge markers set to `readme_badges()`."""
    start, end = BADGE_MARKERS
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"README.md needs one block between {start} and {end}, each on its own line")
    return pattern.sub(lambda _: f"{start}\n{readme_badges()}\n{end}", text)


def colab_cell_source() -> str:
    """The first code cell of every notebook: installs ftlib on Colab, does nothing elsewhere.

    It downloads one archive of the release tag (no git clone) and pip-installs it. ftlib's
    lower bounds admit Colab's own torch, torchvision and ipywidgets, so pip keeps them.
    """
    archive = repository_url().rstrip("/") + f"/archive/refs/tags/{release_tag()}.zip"
    return ("# On Colab, install the course's helper package ftlib (one archive, no git clone).\n"
            "# Everywhere else this cell does nothing: `make lab` has installed it already.\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    %pip install --quiet \"ftlib @ {archive}\"")


def notebook_paths() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb"))


def problems(nb: dict, name: str) -> list[str]:
    """What is wrong with notebook `name`'s committed form (empty list: clean)."""
    found = []
    second = nb["cells"][1] if len(nb["cells"]) > 1 else {}
    if second.get("cell_type") != "markdown" or "".join(second.get("source", [])) != colab_badge_source(name):
        found.append("the cell after the title is not its Open-in-Colab badge (run python -m data_scripts.notebooks)")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if any(c.get("outputs") for c in code):
        found.append("has outputs")
    if any(c.get("execution_count") is not None for c in code):
        found.append("has execution counts")
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        found.append("kernel is not python3")
    if not code or "".join(code[0]["source"]) != colab_cell_source():
        found.append("first code cell is not the Colab install cell (run python -m data_scripts.notebooks)")
    ids = [c.get("id") for c in nb["cells"]]
    if None in ids or len(set(ids)) != len(ids):
        found.append("a cell has no id, or two share one (nbformat 4.5 wants one each; run python -m data_scripts.notebooks)")
    return found


def _set_ids(nb: dict) -> None:
    """Give every cell without an id a stable one (`cell-<position>`), as nbformat 4.5 asks;
    ids already there are kept, so a cell keeps its id when others move."""
    taken = {c["id"] for c in nb["cells"] if c.get("id")}
    for i, cell in enumerate(nb["cells"]):
        if not cell.get("id"):
            new, k = f"cell-{i:03d}", 0
            while new in taken:
                k += 1
                new = f"cell-{i:03d}-{k}"
            cell["id"] = new
            taken.add(new)
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, nb.get("nbformat_minor", 5))


def _set_badge(nb: dict, name: str) -> None:
    badge = {"cell_type": "markdown", "id": "colab-badge", "metadata": {}, "source": [colab_badge_source(name)]}
    nb["cells"] = [c for c in nb["cells"] if not (c["cell_type"] == "markdown" and (
        c.get("id") == "colab-badge" or "colab-badge.svg" in "".join(c.get("source", []))))]
    nb["cells"].insert(min(1, len(nb["cells"])), badge)


def clean(nb: dict, name: str) -> dict:
    """Strip outputs and counts, set the python3 kernel, put the badge after the title and the
    Colab cell first among the code cells, and give every cell an id."""
    _set_badge(nb, name)
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
    _set_ids(nb)
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
            for problem in problems(nb, path.name):
                print(f"{path.name}: {problem}")
                bad += 1
        else:
            write(path, clean(nb, path.name))
    readme = README.read_text()
    if args.check and readme_with_badges(readme) != readme:
        print("README.md: the badges are out of date (run python -m data_scripts.notebooks)")
        bad += 1
    elif not args.check:
        README.write_text(readme_with_badges(readme))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
