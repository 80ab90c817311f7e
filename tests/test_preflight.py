"""data_scripts/preflight.py: the disk check `make install` runs before installing PyTorch."""

import importlib.util
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from data_scripts import preflight

SCRIPT = Path(preflight.__file__)
Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def no_torch(monkeypatch):
    """Pretend torch is not installed yet, as in a fresh .venv."""
    real = importlib.util.find_spec
    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))


def test_too_little_space_names_the_numbers_and_the_way_out(no_torch, monkeypatch, tmp_path):
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: Usage(100 * 2**30, 98 * 2**30, 2 * 2**30))
    message = preflight.check(tmp_path, 6.5)
    assert "2.0 GB free" in message and "6.5 GB" in message
    assert "MIN_FREE_GB=0" in message and str(tmp_path.resolve()) in message


def test_enough_space_or_torch_present_or_check_off_passes(no_torch, monkeypatch, tmp_path):
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: Usage(100 * 2**30, 90 * 2**30, 10 * 2**30))
    assert preflight.check(tmp_path, 6.5) is None
    assert preflight.check(tmp_path, 11) is not None
    assert preflight.check(tmp_path, 0) is None
    monkeypatch.undo()                                  # torch is installed in the test environment
    assert importlib.util.find_spec("torch") is not None
    assert preflight.check(tmp_path, 1e9) is None


def test_command_line_exit_codes(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, str(SCRIPT), *a], capture_output=True, text=True)  # noqa: E731
    assert run(str(tmp_path), "0").returncode == 0
    bad = run(str(tmp_path))
    assert bad.returncode == 2 and "usage" in bad.stderr
    free_gb = shutil.disk_usage(tmp_path).free / 2**30
    # This interpreter has torch, so even an impossible requirement passes: the check only guards fresh installs.
    assert run(str(tmp_path), str(free_gb * 10 + 1)).returncode == 0
    # Without site-packages (-S) torch is not found, as in a fresh .venv: now the check bites.
    fresh = subprocess.run([sys.executable, "-S", str(SCRIPT), str(tmp_path), str(free_gb * 10 + 1)],
                           capture_output=True, text=True)
    assert fresh.returncode == 1 and "GB free" in fresh.stderr
