"""Config, device, seeding, progress and the doctor."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ftlib
from ftlib import config
from ftlib.course import environment as doctor_mod

ROOT = Path(__file__).resolve().parents[1]


def test_budget_reads_environment_at_call_time(monkeypatch):
    monkeypatch.setenv("FTLIB_BUDGET", "full")
    assert config.budget() == "full"
    monkeypatch.setenv("FTLIB_BUDGET", "quick")
    assert config.budget() == "quick"
    monkeypatch.delenv("FTLIB_BUDGET")
    assert config.budget() == ("full" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("FTLIB_BUDGET", "huge")
    with pytest.raises(ValueError, match="quick' or 'full"):
        config.budget()


def test_offline_and_quiet_flags(monkeypatch):
    for value, expected in [("1", True), ("true", True), ("0", False), ("", False)]:
        monkeypatch.setenv("FTLIB_OFFLINE", value)
        assert config.is_offline() is expected
    monkeypatch.delenv("FTLIB_QUIET", raising=False)
    monkeypatch.setenv("CI", "true")
    assert config.is_quiet()
    monkeypatch.delenv("CI")
    assert not config.is_quiet()


def test_data_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "d"))
    assert config.data_dir() == tmp_path / "d"
    monkeypatch.delenv("FTLIB_DATA")
    assert config.data_dir() == Path.home() / ".cache" / "ftlib" / "data"


def test_data_dir_expands_home_and_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FTLIB_DATA", "~/data")
    assert config.data_dir() == tmp_path / "home" / "data"
    assert "~" not in config.data_dir().parts
    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    monkeypatch.setenv("FTLIB_DATA", "$SCRATCH/ftlib")
    assert config.data_dir() == tmp_path / "scratch" / "ftlib"
    monkeypatch.setenv("FTLIB_DATA", "   ")  # blank is unset
    assert config.data_dir() == tmp_path / "home" / ".cache" / "ftlib" / "data"


def test_seed_everything_makes_runs_repeatable():
    g1 = ftlib.seed_everything(3)
    a, ga = torch.rand(4), torch.randperm(10, generator=g1)
    g2 = ftlib.seed_everything(3)
    b, gb = torch.rand(4), torch.randperm(10, generator=g2)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    ftlib.seed_everything(4)
    assert not torch.equal(a, torch.rand(4))
    assert isinstance(g1, torch.Generator)


def test_get_device_and_override():
    expected = "cuda" if torch.cuda.is_available() else None
    dev = ftlib.get_device()
    if expected:
        assert dev.type == "cuda"
    assert ftlib.get_device("cpu") == torch.device("cpu")
    assert "CPU" in ftlib.describe_device(torch.device("cpu"))


def test_progress_is_quiet_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert ftlib.progress(range(3)).disable
    monkeypatch.delenv("CI")
    monkeypatch.delenv("FTLIB_QUIET", raising=False)
    assert not ftlib.progress(range(3)).disable


def test_doctor_reports_ready_here(monkeypatch):
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    out = io.StringIO()
    assert ftlib.doctor(file=out) is True
    text = out.getvalue()
    for expected in ("python", "torch", "compiled ops load", "device", "caches", "FTLIB_OFFLINE=1", "VERDICT: READY"):
        assert expected in text, text


def test_doctor_names_the_torchvision_ops_case(monkeypatch):
    import torchvision.ops

    def broken(*args, **kwargs):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(torchvision.ops, "nms", broken)
    out = io.StringIO()
    assert doctor_mod.doctor(network=False, file=out) is False
    text = out.getvalue()
    assert "2.13.0+cpu" in text and "torch==2.14.1 torchvision==0.29.1" in text
    assert "VERDICT: NOT READY" in text


def test_doctor_network_check_reports_unreachable(monkeypatch):
    monkeypatch.delenv("FTLIB_OFFLINE", raising=False)
    check = doctor_mod._network(probe=("127.0.0.1", 9), timeout=0.5)  # discard port: nothing listens
    assert not check.ok and not check.fatal and "data_scripts.fetch" in check.fix


def _run_with_broken_torchvision(tmp_path: Path, code: list[str]) -> subprocess.CompletedProcess:
    """Run python with a fake torchvision that fails the way a mismatched build does."""
    fake = tmp_path / "fake" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    env = dict(os.environ, PYTHONPATH=f"{fake.parent}{os.pathsep}{ROOT}", FTLIB_OFFLINE="1")
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_doctor_cli_exits_nonzero_when_torchvision_is_broken(tmp_path):
    result = _run_with_broken_torchvision(tmp_path, ["-m", "ftlib", "doctor"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "compiled ops do not load" in result.stdout and "NOT READY" in result.stdout


def test_import_explains_a_broken_torchvision(tmp_path):
    code = textwrap.dedent("""
        import ftlib
        try:
            ftlib.get_device
        except ImportError as err:
            print("IMPORTERROR", err)
    """)
    result = _run_with_broken_torchvision(tmp_path, ["-c", code])
    assert "IMPORTERROR" in result.stdout and "python -m ftlib doctor" in result.stdout, result.stderr


def test_doctor_cli_usage():
    assert doctor_mod.main(["nonsense"]) == 2


def test_doctor_checks_the_course_weights(monkeypatch, tmp_path):
    from ftlib import pretrained
    assert doctor_mod._course_weights().ok, "the repository's offline weights should verify"
    monkeypatch.setattr(pretrained, "OFFLINE_WEIGHTS_DIR", tmp_path)  # an empty folder: weights missing
    check = doctor_mod._course_weights()
    assert not check.ok and not check.fatal and "pretrain_backbone" in check.fix


def test_the_package_docstring_lists_every_module_once():
    """The layout table in ftlib/__init__.py names each module, so a reader finds where a thing lives."""
    import ftlib

    package = ROOT / "ftlib"
    modules = set()
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).with_suffix("")
        if rel.name in ("__init__", "__main__"):
            if rel.parent != Path(".") and rel.name == "__init__":
                modules.add(f"{rel.parent.as_posix()}/")
            continue
        if rel.parts[0] == "exercises":
            continue  # one row for the package: its own docstring lists the lesson modules
        modules.add(rel.as_posix())
    doc = ftlib.__doc__
    missing = sorted(m for m in modules if f"`{m}`" not in doc)
    assert not missing, f"ftlib's docstring does not list {missing}"
