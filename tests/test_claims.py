"""ftlib.claim: strict runs fail on a claim the run does not show; a student's run goes on."""

import pytest

import ftlib
from ftlib.claims import ClaimNotShown, claim


def test_a_shown_claim_is_true_in_both_modes(monkeypatch, capsys):
    for strict in ("1", ""):
        monkeypatch.setenv("FTLIB_STRICT", strict)
        assert claim(0.9 > 0.8, "pretrained beats scratch") is None
    assert capsys.readouterr().out == ""


def test_strict_run_raises_like_an_assert(monkeypatch):
    monkeypatch.setenv("FTLIB_STRICT", "1")
    with pytest.raises(AssertionError, match="pretrained beats scratch") as err:
        claim(0.7 > 0.8, "pretrained beats scratch", measured="pretrained 0.700, scratch 0.800")
    assert isinstance(err.value, ClaimNotShown)
    assert "pretrained 0.700, scratch 0.800" in str(err.value)


def test_students_run_explains_and_goes_on(monkeypatch, capsys):
    monkeypatch.delenv("FTLIB_STRICT", raising=False)
    shown = ftlib.claim(0.7 > 0.8, "pretrained beats scratch", measured="pretrained 0.700, scratch 0.800",
                        causes="another seed; the quick budget's few steps")
    assert shown is None
    out = capsys.readouterr().out
    assert "did not show the claim: pretrained beats scratch" in out
    assert "Measured: pretrained 0.700, scratch 0.800" in out
    assert "another seed; the quick budget's few steps" in out
    assert "goes on" in out


def test_students_run_without_causes_still_says_what_can_cause_it(monkeypatch, capsys):
    monkeypatch.setenv("FTLIB_STRICT", "0")
    assert claim(False, "the gap narrows") is None
    assert "What can cause this:" in capsys.readouterr().out


def test_the_test_suite_is_strict():
    """conftest.py sets the one signal; nbval's kernels inherit it."""
    from ftlib.config import is_strict

    assert is_strict()


def _notebook(path, source: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, str(path))


@pytest.mark.parametrize("strict, fails", [(None, True), ("0", False)])
def test_nbval_kernels_inherit_the_strict_signal(tmp_path, strict, fails):
    """A notebook whose claim is not shown fails under the repository's conftest.py (as CI runs
    it), and goes on when FTLIB_STRICT=0 says otherwise."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copy(Path(__file__).resolve().parents[1] / "conftest.py", tmp_path / "conftest.py")
    _notebook(tmp_path / "lesson.ipynb", 'import ftlib\nftlib.claim(1 > 2, "one is more than two")\nprint("went on")')
    env = {k: v for k, v in os.environ.items() if k != "FTLIB_STRICT"}
    if strict is not None:
        env["FTLIB_STRICT"] = strict
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                          "-p", "no:cacheprovider", "lesson.ipynb"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert (run.returncode != 0) == fails, run.stdout[-2000:]
    if fails:
        assert "one is more than two" in run.stdout
