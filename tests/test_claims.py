"""ftlib.claim: strict runs fail on a claim the run does not show; a student's run goes on."""

import pytest

import ftlib
from ftlib.claims import ClaimNotShown, claim


def test_a_shown_claim_is_true_in_both_modes(monkeypatch, capsys):
    for strict in ("1", ""):
        monkeypatch.setenv("FTLIB_STRICT", strict)
        assert claim(0.9 > 0.8, "pretrained beats scratch") is True
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
    assert shown is False
    out = capsys.readouterr().out
    assert "did not show the claim: pretrained beats scratch" in out
    assert "Measured: pretrained 0.700, scratch 0.800" in out
    assert "another seed; the quick budget's few steps" in out
    assert "goes on" in out


def test_students_run_without_causes_still_says_what_can_cause_it(monkeypatch, capsys):
    monkeypatch.setenv("FTLIB_STRICT", "0")
    assert claim(False, "the gap narrows") is False
    assert "What can cause this:" in capsys.readouterr().out


def test_the_test_suite_is_strict():
    """conftest.py sets the one signal; nbval's kernels inherit it."""
    from ftlib.config import is_strict

    assert is_strict()
