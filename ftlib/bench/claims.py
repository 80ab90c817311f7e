"""`python -m ftlib.bench.claims NOTEBOOK... [--seeds 0 1 2] [--budget quick|full]`: the claim sweep.

A lesson's claims are checked in CI on one seed of the offline world. Students run other
seeds, data and budgets. This command runs each notebook once per sweep seed k, each in a
kernel of its own (the grader's runner, `ftlib.grade.run_notebook`), offline, not strict, so
that one claim not shown does not hide the others. With `FTLIB_SWEEP_SEED=k`, every seed
passed to `ftlib.seed_everything` and `ftlib.load_dataset` moves by 10007·k: other stand-in
images, other subsets, other initialisations and batch orders (k = 0 is the lesson as CI
runs it). Each `ftlib.claim` writes its outcome to a log (`FTLIB_CLAIM_LOG`), and the
command prints one row per claim:

    claim                                                 k=0   k=1   k=2
    the pretrained backbone beats scratch at 10 labels     yes   yes   NO

and, below the table, what was measured where a claim was not shown. `--json FILE` keeps
everything. The exit status is 1 when some claim was not shown in some run, 0 otherwise.
It takes one lesson run per seed: minutes on the quick budget, longer on the full one. It is
a maintainer's tool, run outside `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from ..claims import LOG_ENV
from ..grade import run_notebook

__all__ = ["sweep", "format_sweep", "main"]


def _env(log: Path, seed: int, budget: str) -> dict[str, str]:
    """A student's run (offline, quiet, not strict) on `budget`, shifted by sweep seed `seed`."""
    env = {k: v for k, v in os.environ.items() if k != "FTLIB_STRICT"}
    env.update(FTLIB_OFFLINE="1", FTLIB_BUDGET=budget, FTLIB_QUIET="1", MPLBACKEND="Agg",
               FTLIB_SWEEP_SEED=str(seed))
    env[LOG_ENV] = str(log)
    return env


def _read(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def sweep(notebooks: Sequence[Path], seeds: Sequence[int], budget: str = "quick",
          timeout_s: float = 3600) -> list[dict]:
    """Run every notebook once per seed; one dict per run: notebook, seed, how it ended, claims."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in notebooks:
            for seed in seeds:
                log = Path(tmp) / f"{path.stem}.{seed}.jsonl"
                start = time.perf_counter()
                ended = run_notebook(path.resolve(), log, timeout_s, env=_env(log, seed, budget))
                runs.append({"notebook": path.name, "seed": seed, "budget": budget, "ended": ended,
                             "seconds": round(time.perf_counter() - start, 1), "claims": _read(log)})
                print(f"{path.name} k={seed}: {ended} in {runs[-1]['seconds']:.0f} s", file=sys.stderr)
    return runs


def _cell(records: list[dict]) -> str:
    """One claim in one run: yes, NO, or '-' (never reached); 'NO 1/3' when checked several times."""
    if not records:
        return "-"
    failed = sum(not r["held"] for r in records)
    if not failed:
        return "yes"
    return "NO" if len(records) == 1 else f"NO {failed}/{len(records)}"


def format_sweep(runs: list[dict]) -> str:
    """The table: a block per notebook, a row per claim (in the order the lesson makes them)."""
    lines = []
    for name in dict.fromkeys(r["notebook"] for r in runs):
        mine = [r for r in runs if r["notebook"] == name]
        claims = list(dict.fromkeys(c["message"] for r in mine for c in r["claims"]))
        width = min(90, max([len(m) for m in claims] + [5]))
        lines.append(f"{name} ({mine[0]['budget']} budget)")
        lines.append(f"  {'claim':<{width}}  " + "  ".join(f"k={r['seed']:<4}" for r in mine))
        for message in claims:
            cells = [_cell([c for c in r["claims"] if c["message"] == message]) for r in mine]
            lines.append(f"  {message[:width]:<{width}}  " + "  ".join(f"{c:<6}" for c in cells))
        lines.append("  runs: " + "; ".join(f"k={r['seed']} {r['ended']} ({r['seconds']:.0f} s)" for r in mine))
        for r in mine:
            for c in r["claims"]:
                if not c["held"]:
                    lines.append(f"  not shown, k={r['seed']}: {c['message']}: {c['measured'] or 'no numbers given'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftlib.bench.claims", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="lesson notebooks to sweep")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="sweep seeds k (default 0 1 2)")
    parser.add_argument("--budget", choices=("quick", "full"), default="quick")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one run may take (default 3600)")
    parser.add_argument("--json", type=Path, help="also write every run and claim to this file")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = sweep(args.notebooks, args.seeds, args.budget, args.timeout)
    print(format_sweep(runs))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    shown = all(c["held"] for r in runs for c in r["claims"]) and all(r["ended"] == "ran" for r in runs)
    return 0 if shown else 1


if __name__ == "__main__":
    sys.exit(main())
