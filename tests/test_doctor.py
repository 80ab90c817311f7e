"""The doctor's cache check: read-only shared caches give a warning that says what happens and the fix."""

from __future__ import annotations

import io

from ftlib.course import environment as doctor_mod
from test_download import make_read_only


def test_writable_caches_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    check = doctor_mod._caches()
    assert check.ok and str(tmp_path / "data") in check.detail


def test_read_only_caches_are_a_warning_with_the_fix(tmp_path, monkeypatch):
    for name in ("data", "torch"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    make_read_only(monkeypatch, tmp_path / "data", tmp_path / "torch")
    check = doctor_mod._caches()
    assert not check.ok and not check.fatal
    assert "data cache" in check.detail and "weights cache" in check.detail and "read-only" in check.detail
    assert "stand-ins" in check.detail and "FTLIB_DATA=<a folder you can write>" in check.fix
    assert "TORCH_HOME=<a folder you can write>" in check.fix

    out = io.StringIO()
    assert doctor_mod.doctor(network=False, file=out) is True  # the course still runs, offline
    text = out.getvalue()
    assert "[warn] caches" in text and "fix: set FTLIB_DATA=" in text and "VERDICT: READY" in text
    assert "warning(s)" in text


def test_only_the_read_only_cache_is_named(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    make_read_only(monkeypatch, tmp_path / "data")
    check = doctor_mod._caches()
    assert not check.ok and "weights cache" not in check.detail and "TORCH_HOME" not in check.fix
