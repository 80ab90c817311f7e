"""python -m data_scripts.fetch: the lessons' set covers what the notebooks load, the plan
prints each size before downloading, and --check checks the set the same options fetch."""

from __future__ import annotations

import json
import re
from pathlib import Path

from torchvision.models import get_model_weights

from data_scripts import fetch
from ftlib.course import sources

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")


def test_the_lessons_set_holds_the_weights_of_every_architecture_a_lesson_loads():
    archs = {m for nb in NOTEBOOKS for m in re.findall(r"load_model\(\s*[\"']([a-z0-9_]+)[\"']", _code(nb))}
    assert "resnet18" in archs
    for arch in archs:
        default = f"{get_model_weights(arch).__name__}.{get_model_weights(arch).DEFAULT.name}"
        assert default in fetch.LESSON_WEIGHTS, f"a lesson loads {arch}; add {default} to LESSON_WEIGHTS"
    assert set(fetch.LESSON_WEIGHTS) <= set(sources.WEIGHTS)


def test_the_lessons_read_pneumoniamnist_only_at_the_sizes_fetched():
    for nb in NOTEBOOKS:
        for call in re.findall(r"load_dataset\(\s*[\"']medical[\"'][^)]*\)", _code(nb)):
            size = re.search(r"size\s*=\s*(\d+)", call)
            assert (int(size.group(1)) if size else 64) in fetch.LESSON_MEDICAL_SIZES, (nb.name, call)


def test_the_default_is_the_lessons_set_and_all_is_everything(monkeypatch):
    seen = []
    monkeypatch.setattr(fetch, "fetch", lambda names, selection: seen.append((names, selection)) or 0)
    monkeypatch.setattr(fetch, "check", lambda names, selection: seen.append(("check", selection)) or 0)
    assert fetch.main([]) == 0 and fetch.main(["--lessons"]) == 0 and fetch.main(["--check"]) == 0
    assert seen[0] == (list(fetch.NAMES), fetch.LESSONS) and seen[1] == seen[0] and seen[2] == ("check", fetch.LESSONS)
    assert fetch.main(["--all", "medical", "--sizes", "28,64"]) == 0
    assert seen[3] == (["medical"], fetch.Selection(tuple(sources.WEIGHTS), (28, 64)))
    assert len(fetch.files_for("weights", fetch.LESSONS)) == 1
    assert len(fetch.files_for("medical", fetch.LESSONS)) == 1 and len(fetch.files_for("medical")) == 4


def test_the_plan_prints_each_size_before_anything_is_downloaded(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path))
    monkeypatch.setattr(fetch, "remote_size", lambda url: 3 * 2**20 if "64" in url else None)
    present = fetch.files_for("retail", fetch.LESSONS)[0]
    monkeypatch.setattr(fetch, "verify_file", lambda path, **_: None if path == present[1] else "missing")
    present[1].parent.mkdir(parents=True)
    present[1].write_bytes(b"x" * 2048)
    assert fetch.plan(["medical", "retail"], fetch.LESSONS) == 3 * 2**20
    out = capsys.readouterr().out
    assert "download medical   pneumoniamnist_64.npz (3.0 MiB)" in out
    assert f"present  retail    {present[1].name} (0.0 MiB)" in out and "size not given" in out
    assert "About 3.0 MiB to download." in out
