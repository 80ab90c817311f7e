"""The GPU check without a GPU: the notebook-to-script converter, the script runner (pass, fail,
timeout, the IPython stand-in), ftlib without IPython / ipywidgets / nbformat, and the JSON of a
CPU run. Notebooks are written here as plain JSON (no nbformat)."""

import json
import textwrap
from pathlib import Path

import pytest
import torch

from ftlib.bench import gpu_check

BLOCKED = ("IPython", "ipywidgets", "nbformat", "nbclient", "nbval", "ipykernel")
TINY = dict(n_train=8, size=32, batch=8, epochs=1, per_class=1, finetune_epochs=1)


def _notebook(*cells: str, markdown: str = "A lesson's prose.") -> dict:
    code = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": source.splitlines(keepends=True)} for source in cells]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": [markdown]}, *code]}


def _write(tmp_path: Path, *cells: str) -> Path:
    path = tmp_path / "01_tiny.ipynb"
    path.write_text(json.dumps(_notebook(*cells)))
    return path


def test_converter_keeps_code_cells_in_order_and_neutralises_magics():
    script = gpu_check.notebook_to_script(_notebook(
        'import sys\nif "google.colab" in sys.modules:\n    %pip install --quiet ftlib\nsteps = ["a"]',
        "!ls -la\nsteps.append('b')",
        "%%bash\necho this is a shell cell",
        "%matplotlib inline\nsteps.append('c')"))
    assert "A lesson's prose." not in script and "# echo this is a shell cell" in script
    assert "    pass  # %pip install --quiet ftlib" in script and "pass  # !ls -la" in script
    namespace: dict = {}
    exec(compile(script, "lesson.py", "exec"), namespace)
    assert namespace["steps"] == ["a", "b", "c"]


def test_converter_explains_a_file_that_is_not_a_notebook(tmp_path):
    path = tmp_path / "notes.ipynb"
    path.write_text('["not", "a", "notebook"]')
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        gpu_check.notebook_to_script(path)


def test_runner_passes_in_the_notebook_folder_with_the_lesson_environment(tmp_path):
    path = _write(tmp_path, "import os, pathlib\nprint('budget', os.environ['FTLIB_BUDGET'], os.environ['CI'])",
                  "pathlib.Path('ran.txt').write_text(os.environ['FTLIB_STRICT'])")
    row = gpu_check.run_notebook(path, budget="full", timeout=120)
    assert row["passed"] and row["returncode"] == 0 and not row["timed_out"], row["output_tail"]
    assert row["notebook"] == "01_tiny.ipynb" and row["budget"] == "full"
    assert "budget full true" in row["output_tail"]
    assert (tmp_path / "ran.txt").read_text() == "1"


def test_runner_reports_a_failing_cell(tmp_path):
    row = gpu_check.run_notebook(_write(tmp_path, "x = 1", "assert x == 2, 'the claim does not hold'"), timeout=120)
    assert not row["passed"] and row["returncode"] == 1 and not row["timed_out"]
    assert "AssertionError: the claim does not hold" in row["output_tail"]


def test_runner_ends_a_notebook_past_its_timeout(tmp_path):
    row = gpu_check.run_notebook(_write(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(60)"),
                                 timeout=3)
    assert not row["passed"] and row["timed_out"] and row["returncode"] is None
    assert "timed out after 3 s" in row["output_tail"]


def test_ipython_stand_in_prints_and_lives_outside_the_repository(tmp_path):
    path = _write(tmp_path, "import IPython\nfrom IPython.display import HTML, Markdown, display\n"
                            "display(Markdown('**a table**'), HTML('<b>x</b>'))\nprint('from', IPython.__file__)")
    row = gpu_check.run_notebook(path, timeout=120, stub_ipython=True)
    assert row["passed"], row["output_tail"]
    assert "**a table**" in row["output_tail"] and "<b>x</b>" in row["output_tail"]
    assert "ftlib-gpu-check-" in row["output_tail"] and str(gpu_check.ROOT / "IPython") not in row["output_tail"]


def _blocker(folder) -> dict[str, str]:
    """A sitecustomize that makes IPython, ipywidgets, nbformat ... fail to import in the child."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError(f"No module named {{name!r}} (blocked by the test)")
                return None
        sys.meta_path.insert(0, _Blocker())
    """))
    return {"PYTHONPATH": str(folder), "FTLIB_OFFLINE": "1", "CI": "true", "MPLBACKEND": "Agg", "FTLIB_STRICT": ""}


LESSON_LIKE = """
for name in ("IPython", "ipywidgets", "nbformat"):
    try:
        __import__(name)
        raise SystemExit(f"{name} imported: the blocker does not work")
    except ImportError:
        pass
import ftlib
from ftlib.exercises import lesson01 as ex
assert not ftlib.config.in_notebook() and ftlib.widgets.use_static()
ftlib.claim(1 + 1 == 2, "one and one make two")
ftlib.claim(False, "a claim this run does not show", measured="0.4")
ex.q1.check(None)
print("bar", sum(ftlib.progress(range(4), desc="steps")))
print("lesson done")
"""


def test_ftlib_and_a_lesson_run_without_ipython_ipywidgets_or_nbformat(tmp_path):
    row = gpu_check.run_script(LESSON_LIKE, tmp_path, _blocker(tmp_path / "block"), timeout=300, stub_ipython=False)
    assert row["passed"], row["output_tail"]
    out = row["output_tail"]
    assert "a claim this run does not show" in out and "Not answered yet" in out
    assert "bar 6" in out and out.rstrip().endswith("lesson done")


def test_without_cuda_only_the_environment_is_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = gpu_check.run(quick=True, notebooks=[], tests=False, log=lambda _: None)
    assert set(result["steps"]) == {"environment"} and result["device"] == "cpu"
    assert result["steps"]["environment"]["device_name"] == "no CUDA" and not result["passed"]
    assert "no CUDA" in result["note"] and "--allow-cpu" in result["note"]


def test_a_failing_step_is_recorded_and_the_next_steps_still_run_and_each_is_saved(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def broken(cfg, device):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(gpu_check, "fit_speed", broken)
    monkeypatch.setattr(gpu_check, "finetune", lambda cfg, device: {"auto_acc": 0.5, "fp32_acc": 0.5})
    saved = []
    result = gpu_check.run(quick=True, allow_cpu=True, notebooks=[], tests=False, log=lambda _: None,
                           save=lambda r: saved.append(list(r["steps"])))
    assert saved == [["environment"], ["environment", "fit_speed"], ["environment", "fit_speed", "finetune"]]
    assert result["steps"]["fit_speed"]["passed"] is False
    assert result["steps"]["fit_speed"]["error"] == "RuntimeError: CUDA error: out of memory"
    assert result["steps"]["finetune"]["passed"] and not result["passed"]
    assert "FAILED" in gpu_check.summary(result)


def test_cpu_run_writes_every_key_to_the_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(gpu_check.SIZES, "cpu", TINY)
    path = tmp_path / "gpu_check.json"
    status = gpu_check.main(["--quick", "--allow-cpu", "--no-notebooks", "--no-tests", "--json", str(path)])
    result = json.loads(path.read_text())
    assert status == 0 and result["passed"] and result["device"] == "cpu" and result["quick"] is True
    assert set(result["steps"]) == {"environment", "fit_speed", "finetune"}
    assert all(row["passed"] and row["seconds"] >= 0 for row in result["steps"].values())
    env = result["steps"]["environment"]
    assert env["torch"] == torch.__version__ and env["cuda_available"] is False
    speed, tune = result["steps"]["fit_speed"], result["steps"]["finetune"]
    assert speed["auto_img_s"] > 0 and speed["fp32_img_s"] > 0
    assert speed["auto_vs_fp32"] == pytest.approx(speed["auto_img_s"] / speed["fp32_img_s"], rel=0.01)
    assert 0 <= tune["auto_acc"] <= 1 and 0 <= tune["fp32_acc"] <= 1 and tune["test_images"] == 10
    assert "wrote" in capsys.readouterr().out and not list(tmp_path.glob("*.tmp"))


def test_unit_test_step_reports_pass_and_failure(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    (tmp_path / "test_bad.py").write_text("def test_bad():\n    assert 1 == 2\n")
    good = gpu_check.unit_tests((str(tmp_path / "test_ok.py"),), timeout=120)
    bad = gpu_check.unit_tests((str(tmp_path / "test_bad.py"),), timeout=120)
    assert good["passed"] and "1 passed" in good["output_tail"]
    assert not bad["passed"] and "1 failed" in bad["output_tail"]


def test_notebook_step_runs_each_lesson_quick_and_the_full_lesson_again(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "fit_speed", lambda cfg, device: {"auto_img_s": 2.0, "fp32_img_s": 1.0, "auto_vs_fp32": 2.0})
    monkeypatch.setattr(gpu_check, "finetune", lambda cfg, device: {"auto_acc": 0.5, "fp32_acc": 0.5})
    lesson = _write(tmp_path, "import os\nprint('budget', os.environ['FTLIB_BUDGET'])")
    other = tmp_path / "02_broken.ipynb"
    other.write_text(json.dumps(_notebook("raise RuntimeError('lesson 02 broke')")))
    path = tmp_path / "check.json"
    status = gpu_check.main(["--allow-cpu", "--no-tests", "--notebook", str(lesson), "--notebook", str(other),
                             "--json", str(path)])
    runs = json.loads(path.read_text())["steps"]["notebooks"]["runs"]
    assert status == 1 and [(r["notebook"], r["budget"], r["passed"]) for r in runs] == [
        ("01_tiny.ipynb", "quick", True), ("02_broken.ipynb", "quick", False), ("01_tiny.ipynb", "full", True)]
    assert "budget full" in runs[2]["output_tail"] and "lesson 02 broke" in runs[1]["output_tail"]
