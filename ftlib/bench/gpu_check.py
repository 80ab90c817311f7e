"""`python -m ftlib.bench.gpu_check --json gpu_check.json [--quick]`: the CUDA paths, in one command.

Meant for a GPU machine lent for minutes, without network or Jupyter: it installs nothing and
needs only torch, torchvision, numpy, matplotlib, tqdm and pytest. Each step is guarded (one
failure does not stop the rest) and records its wall time and whether it passed:

| step          | what it runs                                                                 |
| ------------- | ---------------------------------------------------------------------------- |
| `environment` | python / torch / torchvision versions, `torch.cuda.is_available()`, the GPU's name, memory, bf16 support |
| `fit_speed`   | `fit` of a ResNet-18 on random 64 px images, precision "auto" (fp16 AMP + GradScaler + channels_last on CUDA) vs "fp32": images/s of each and their ratio |
| `finetune`    | the course backbone (`load_model("resnet18", weights="offline")`) fine-tuned on the retail stand-in with both precisions: test accuracy of each |
| `notebooks`   | every lesson on the quick budget, and `FULL_LESSON` on the full budget, each as a plain Python script (see `notebook_to_script`) |
| `unit_tests`  | `pytest` on the test files that touch training, precision, features and metrics |

`ftlib.bench.speed` stays on the CPU by design (its ratios are CPU measurements); this check
is its CUDA counterpart. Without CUDA it says so and stops, unless `--allow-cpu`: then every
step runs on the CPU, the two training steps on a tiny workload (they check the code path;
their numbers mean nothing there). The JSON holds {"device", "quick", "steps": {step: {"passed",
"seconds", "error"?, ...}}, "passed"}; a notebook's entry has its budget, time, status and the
tail of its output. The file is rewritten after each step, so a run cut short keeps what it
finished. The exit status is 0 when every step that ran passed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from .lesson_times import NOTEBOOKS, ROOT, _run, default_notebooks, lesson_number

__all__ = ["notebook_to_script", "run_script", "run_notebook", "environment", "fit_speed", "finetune",
           "unit_tests", "run", "main", "SIZES", "FULL_LESSON", "TEST_FILES"]

# Lesson 01 is the cheapest meaningful full-budget run: a frozen backbone's features and a
# linear probe on 300 images per class (quick: about 35 s on 2 CPU cores; full on a GPU: under a minute).
FULL_LESSON = "01"
TEST_FILES = ("test_train.py", "test_features.py", "test_metrics.py", "test_cost.py", "test_freeze.py")
QUICK_TEST_FILES = ("test_train.py",)
# Workload of the training steps: random images for the speed, stand-in images per class for the fine-tune.
SIZES = {
    "full": dict(n_train=2048, size=64, batch=128, epochs=3, per_class=100, finetune_epochs=5),
    "quick": dict(n_train=1024, size=64, batch=128, epochs=2, per_class=50, finetune_epochs=3),
    "cpu": dict(n_train=32, size=32, batch=16, epochs=1, per_class=2, finetune_epochs=1),
}
NOTEBOOK_TIMEOUT_S = 240  # per notebook: a lesson takes under a minute on a GPU, under 2 on 2 CPU cores
CHILD_ENV = {"FTLIB_OFFLINE": "1", "FTLIB_STRICT": "1", "MPLBACKEND": "Agg", "CI": "true"}
MAGIC = re.compile(r"^(\s*)([%!].*)$")

_DISPLAY_STUB = '''"""A stand-in for IPython.display outside Jupyter: everything is printed as text."""


def display(*objs, **kwargs):
    for obj in objs:
        print(getattr(obj, "data", obj))


class _Text:
    def __init__(self, data=None, *args, **kwargs):
        self.data = data

    def __repr__(self):
        return str(self.data)


class Markdown(_Text):
    pass


class HTML(_Text):
    pass


class Image(_Text):
    pass
'''


# --- notebooks as scripts ---------------------------------------------------------------------

def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _neutralise(source: str) -> str:
    """A cell's code with IPython magics made no-ops: a `%%` cell magic comments out the whole
    cell; a `%line` or `!shell` line becomes `pass`, at its own indentation."""
    if source.lstrip().startswith("%%"):
        return "\n".join("# " + line for line in source.splitlines())
    lines = []
    for line in source.splitlines():
        found = MAGIC.match(line)
        lines.append(f"{found.group(1)}pass  # {found.group(2)}" if found else line)
    return "\n".join(lines)


def notebook_to_script(notebook: Path | dict) -> str:
    """The code cells of `notebook` (a path to an .ipynb, or its JSON as a dict), in order,
    as one Python script with IPython magics made no-ops. Read with the `json` module only."""
    data = notebook if isinstance(notebook, dict) else json.loads(Path(notebook).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{notebook}: not a Jupyter notebook (no list of cells); open it in Jupyter to check it.")
    cells = [c for c in data["cells"] if c.get("cell_type") == "code"]
    parts = [f"# --- cell {i} ---\n{_neutralise(_cell_source(c))}\n" for i, c in enumerate(cells, 1)]
    return "\n".join(parts)


def _ipython_missing() -> bool:
    import importlib.util
    return importlib.util.find_spec("IPython") is None


def _write_stub(folder: Path) -> None:
    """A tiny `IPython` package (get_ipython() is None; display prints text) in `folder`."""
    package = folder / "IPython"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Stand-in for IPython outside Jupyter."""\n\n\ndef get_ipython():\n    return None\n')
    (package / "display.py").write_text(_DISPLAY_STUB)


def _child_env(env: dict[str, str], first: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment plus `env`, with `first` and the repository on PYTHONPATH
    (so that ftlib imports in the child even where it is not installed)."""
    child = {**os.environ, **env}
    child["PYTHONPATH"] = os.pathsep.join([*first, str(ROOT), *filter(None, [child.get("PYTHONPATH")])])
    return child


def run_script(script: str, cwd: Path, env: dict[str, str], timeout: float,
               stub_ipython: bool | None = None, tail: int = 3000) -> dict:
    """Run `script` with this Python in a subprocess (in `cwd`, with `env` added), under `timeout`
    seconds. {"passed", "seconds", "returncode" (None after a timeout), "timed_out", "output_tail"}.

    `stub_ipython` (None: when IPython is not installed) puts a printing `IPython.display` on the
    child's PYTHONPATH; script and stub live in a temporary folder, never in the repository."""
    with tempfile.TemporaryDirectory(prefix="ftlib-gpu-check-") as tmp:
        path = Path(tmp) / "script.py"
        # Run in `cwd` with it first on sys.path, as a notebook kernel started there would.
        prologue = f"import os, sys\nos.chdir({str(cwd)!r})\nsys.path.insert(0, {str(cwd)!r})\n"
        path.write_text(prologue + script, encoding="utf-8")
        stub = _ipython_missing() if stub_ipython is None else stub_ipython
        if stub:
            _write_stub(Path(tmp) / "stub")
        child = _child_env(env, (str(Path(tmp) / "stub"),) if stub else ())
        start = time.perf_counter()
        status, output = _run([sys.executable, str(path)], child, timeout)
        seconds = time.perf_counter() - start
    if status is None:
        output += f"\ntimed out after {timeout:g} s"
    return {"passed": status == 0, "seconds": round(seconds, 2), "returncode": status,
            "timed_out": status is None, "output_tail": output[-tail:]}


def run_notebook(notebook: Path, budget: str = "quick", timeout: float = NOTEBOOK_TIMEOUT_S,
                 stub_ipython: bool | None = None) -> dict:
    """Run a lesson's code cells as a script in `notebooks/` on `budget`, offline, strict, quiet
    (`CHILD_ENV`); `run_script`'s dict plus the notebook's name and budget."""
    notebook = Path(notebook)
    row = run_script(notebook_to_script(notebook), notebook.parent, {**CHILD_ENV, "FTLIB_BUDGET": budget},
                     timeout, stub_ipython)
    return {"notebook": notebook.name, "budget": budget, **row}


# --- steps ------------------------------------------------------------------------------------

def environment() -> dict:
    """Versions, and the GPU when there is one: name, memory in GiB, compute capability, bf16."""
    import torchvision
    out = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
           "cuda_available": torch.cuda.is_available(), "cuda_version": torch.version.cuda,
           "cpu_count": os.cpu_count()}
    if out["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        out.update(device_name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported(),
                   device_count=torch.cuda.device_count())
    else:
        out["device_name"] = "no CUDA"
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fit_img_s(precision: str, cfg: dict, device: torch.device) -> float:
    """Images/s of `fit` training a fresh ResNet-18 for cfg["epochs"] epochs (after a warm-up epoch)."""
    from ..train import fit
    from .speed import _data, _loader, _resnet

    torch.manual_seed(0)
    x, y = _data(cfg["n_train"], cfg["size"], 10, seed=0)
    model, loader = _resnet(10), _loader(x, y, cfg["batch"], seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fit(model, loader, None, 1, opt, device=device, precision=precision, quiet=True)
    _sync(device)
    start = time.perf_counter()
    fit(model, loader, None, cfg["epochs"], opt, device=device, precision=precision, quiet=True)
    _sync(device)
    return round(cfg["n_train"] * cfg["epochs"] / (time.perf_counter() - start), 1)


def fit_speed(cfg: dict, device: torch.device) -> dict:
    """`fit` images/s with precision "auto" and "fp32", and auto / fp32 (> 1: AMP pays)."""
    auto, fp32 = _fit_img_s("auto", cfg, device), _fit_img_s("fp32", cfg, device)
    out = {"auto_img_s": auto, "fp32_img_s": fp32, "auto_vs_fp32": round(auto / fp32, 3)}
    if device.type == "cuda":
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def finetune(cfg: dict, device: torch.device) -> dict:
    """Fine-tune the course backbone on the retail stand-in with precision "auto" and "fp32"
    (same seed, data and steps): the test accuracy of each, in [0, 1], and the seconds each took."""
    from ..pretrained import load_model
    from ..train import evaluate_loss_acc, fit
    from .speed import _loader, _standin

    x, y, xt, yt = _standin(cfg["per_class"], seed=0)
    out = {"train_images": len(y), "test_images": len(yt)}
    for precision in ("auto", "fp32"):
        torch.manual_seed(0)
        model = load_model("resnet18", weights="offline", num_classes=10, verbose=False)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        start = time.perf_counter()
        fit(model, _loader(x, y, 32, seed=0), None, cfg["finetune_epochs"], opt, device=device,
            precision=precision, quiet=True)
        _sync(device)
        out[f"{precision}_seconds"] = round(time.perf_counter() - start, 2)
        out[f"{precision}_acc"] = round(evaluate_loss_acc(model, _loader(xt, yt, 64), device=device)[1], 4)
    out["acc_delta"] = round(abs(out["auto_acc"] - out["fp32_acc"]), 4)
    return out


def unit_tests(files: tuple[str, ...] = TEST_FILES, timeout: float = 300) -> dict:
    """`pytest` on `files` of tests/ (nbval and the cache plugin off), offline: passed, output tail."""
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:nbval", "-p", "no:cacheprovider",
               *[str(ROOT / "tests" / name) for name in files]]
    start = time.perf_counter()
    status, output = _run(command, _child_env({"FTLIB_OFFLINE": "1"}), timeout)
    return {"passed": status == 0, "files": list(files), "returncode": status,
            "seconds_pytest": round(time.perf_counter() - start, 2), "output_tail": output[-3000:]}


# --- the whole check --------------------------------------------------------------------------

def _step(result: dict, name: str, work: Callable[[], dict], log: Callable[[str], None],
          save: Callable[[dict], None]) -> None:
    """Run one step, guarded: result["steps"][name] gets its dict, "seconds" and "passed" (False,
    with the error's last lines, when it raised), then `save(result)`. One failing step never
    stops the others, and a run cut short keeps the steps it finished."""
    start = time.perf_counter()
    try:
        row = work()
        row.setdefault("passed", True)
    except Exception as error:  # noqa: BLE001  (recorded, and the next step runs)
        row = {"passed": False, "error": f"{type(error).__name__}: {error}",
               "traceback_tail": "".join(traceback.format_exc())[-2000:]}
    row["seconds"] = round(time.perf_counter() - start, 2)
    result["steps"][name] = row
    log(f"  {name}: {'ok' if row['passed'] else 'FAILED'} in {row['seconds']:.0f} s")
    save(result)


def _notebook_runs(notebooks: list[Path], timeout: float, log: Callable[[str], None]) -> dict:
    """Every lesson on the quick budget, then `FULL_LESSON` on the full one: {"runs": [...], "passed"}."""
    runs = []
    plan = [(nb, "quick") for nb in notebooks] + [(nb, "full") for nb in notebooks if lesson_number(nb) == FULL_LESSON]
    for notebook, budget in plan:
        row = run_notebook(notebook, budget, timeout)
        log(f"    {notebook.name} ({budget}): {'ok' if row['passed'] else 'FAILED'} in {row['seconds']:.0f} s")
        runs.append(row)
    return {"runs": runs, "passed": all(r["passed"] for r in runs)}


def run(quick: bool = False, allow_cpu: bool = False, notebooks: list[Path] | None = None,
        tests: bool = True, notebook_timeout: float = NOTEBOOK_TIMEOUT_S,
        log: Callable[[str], None] = print, save: Callable[[dict], None] = lambda result: None) -> dict:
    """Every step of the check, as one JSON-ready dict (see the module docstring); `save` gets
    the dict after each step (`main` writes the JSON then).

    Without CUDA only `environment` runs, unless `allow_cpu`. `notebooks` None means every lesson;
    [] skips them."""
    cuda = torch.cuda.is_available()
    result: dict = {"device": "cuda" if cuda else "cpu", "quick": quick, "steps": {}, "passed": False}
    steps = result["steps"]
    _step(result, "environment", environment, log, save)
    if not cuda and not allow_cpu:
        result.update(passed=False, note="no CUDA: only the environment was checked (--allow-cpu runs the rest on the CPU)")
        return result
    device = torch.device("cuda" if cuda else "cpu")
    cfg = SIZES["cpu" if not cuda else "quick" if quick else "full"]
    result["workload"] = cfg
    _step(result, "fit_speed", lambda: fit_speed(cfg, device), log, save)
    _step(result, "finetune", lambda: finetune(cfg, device), log, save)
    lessons = default_notebooks(NOTEBOOKS) if notebooks is None else notebooks
    if lessons:
        _step(result, "notebooks", lambda: _notebook_runs(lessons, notebook_timeout, log), log, save)
    if tests:
        _step(result, "unit_tests", lambda: unit_tests(QUICK_TEST_FILES if quick else TEST_FILES), log, save)
    result["passed"] = all(row["passed"] for row in steps.values())
    return result


def summary(result: dict) -> str:
    """A few lines for the terminal: the device, each step's status and time, the key numbers."""
    env = result["steps"].get("environment", {})
    lines = [f"device: {env.get('device_name', '?')} ({env.get('memory_gib', '-')} GiB), torch {env.get('torch')}, "
             f"bf16 {env.get('bf16_supported', '-')}"]
    for name, row in result["steps"].items():
        lines.append(f"{name:<12} {'ok' if row['passed'] else 'FAILED':<7} {row['seconds']:7.1f} s  {row.get('error', '')}".rstrip())
    speed, tune = result["steps"].get("fit_speed", {}), result["steps"].get("finetune", {})
    if "auto_vs_fp32" in speed:
        lines.append(f"fit img/s: auto {speed['auto_img_s']}, fp32 {speed['fp32_img_s']}, ratio {speed['auto_vs_fp32']}")
    if "auto_acc" in tune:
        lines.append(f"fine-tune accuracy: auto {tune['auto_acc']}, fp32 {tune['fp32_acc']}")
    for row in result["steps"].get("notebooks", {}).get("runs", []):
        lines.append(f"  {row['notebook']:<44} {row['budget']:<5} {'ok' if row['passed'] else 'FAILED':<7} {row['seconds']:6.1f} s")
    if result.get("note"):
        lines.append(result["note"])
    lines.append("PASSED" if result["passed"] else "FAILED")
    return "\n".join(lines)


def _write_json(path: Path, result: dict) -> None:
    """Write `result` to `path` whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftlib.bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smaller training steps and only tests/test_train.py")
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA, run the steps on the CPU anyway (tiny workload)")
    parser.add_argument("--no-notebooks", action="store_true", help="skip the lesson notebooks")
    parser.add_argument("--no-tests", action="store_true", help="skip the unit tests")
    parser.add_argument("--notebook", action="append", type=Path, metavar="IPYNB",
                        help="run only this notebook (repeatable); default: every lesson")
    parser.add_argument("--notebook-timeout", type=float, default=NOTEBOOK_TIMEOUT_S, help="seconds per notebook")
    args = parser.parse_args(argv)
    notebooks = [] if args.no_notebooks else args.notebook
    save = (lambda result: _write_json(args.json, result)) if args.json else (lambda result: None)
    result = run(args.quick, args.allow_cpu, notebooks, not args.no_tests, args.notebook_timeout, save=save)
    save(result)
    print(summary(result))
    if args.json:
        print(f"wrote {args.json}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
