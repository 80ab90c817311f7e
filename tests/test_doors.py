"""The ways into the course that this machine cannot run end to end: conda / Binder
(environment.yml) and the package metadata. What can be checked here is checked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]

# Package names looked up on conda-forge (its feedstocks and anaconda.org/conda-forge):
# pytorch-cpu is an output of conda-forge/pytorch-cpu-feedstock (its recipe's meta.yaml).
ON_CONDA_FORGE = {"python", "pytorch-cpu", "torchvision", "numpy", "pillow", "matplotlib",
                  "scikit-learn", "tqdm", "ipywidgets", "jupyterlab", "ipykernel", "pytest",
                  "nbval", "pip"}
CONDA_TO_PIP = {"pytorch-cpu": "torch"}


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _conda_specs(env: dict) -> dict[str, str]:
    """{conda name: version spec} of the conda dependencies ('' when none is given)."""
    specs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
            specs[name] = spec.strip()
    return specs


def _pip_lines(env: dict) -> list[str]:
    return next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep)


def test_environment_yml_parses_and_names_only_conda_forge_packages():
    env = _environment()
    assert env["channels"] == ["conda-forge"]
    unknown = set(_conda_specs(env)) - ON_CONDA_FORGE
    assert not unknown, f"not checked on conda-forge: {sorted(unknown)}"


def test_the_pip_list_is_valid_requirements_file_input_with_the_local_package():
    """conda writes the pip list to a requirements file: an option such as --no-deps stops
    pip there ("Invalid requirement"). repo2docker needs the local `-e .` to install the
    environment after copying the repository."""
    lines = _pip_lines(_environment())
    assert "-e ." in lines
    for line in lines:
        if line == "-e .":
            continue
        assert not line.startswith("-"), f"pip option in environment.yml's pip list: {line!r}"
        Requirement(line)  # raises on anything pip would not read as a requirement


def test_conda_lower_bounds_and_python_match_the_package_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = _conda_specs(_environment())
    python = specs["python"].lstrip("=")
    assert python in SpecifierSet(project["requires-python"]), (python, project["requires-python"])
    required = {Requirement(r).name: Requirement(r).specifier for r in project["dependencies"]}
    for conda_name, spec in specs.items():
        pip_name = CONDA_TO_PIP.get(conda_name, conda_name)
        if pip_name in required:
            assert SpecifierSet(spec) == required[pip_name], f"{conda_name}: conda {spec}, pip {required[pip_name]}"


def test_the_licence_is_declared_the_way_current_setuptools_expects():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "CC BY 4.0" in (ROOT / "notebooks" / "LICENSE.md").read_text()


def test_ftlib_device_overrides_the_choice_and_a_bad_value_says_what_to_use(monkeypatch):
    import pytest
    import torch

    from ftlib import get_device

    monkeypatch.setenv("FTLIB_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("meta") == torch.device("meta")        # an explicit choice still wins
    monkeypatch.setenv("FTLIB_DEVICE", "gpu0")
    with pytest.raises(ValueError, match="'cpu', 'cuda'"):
        get_device()
    monkeypatch.delenv("FTLIB_DEVICE")
    assert get_device().type in ("cpu", "cuda", "mps")
