"""The stored, seeded train/val/test split of EuroSAT RGB (which has no official split).

Rule: for each class, in alphabetical order, one `numpy.random.default_rng(seed)` (seed 0)
permutes the image numbers 1..count; the first 60 % go to train, the next 20 % to val, the
rest to test; each list is then sorted. The result is stored in
`ftlib/assets/eurosat_split.json`, so every machine uses the same split even if numpy's generator changes.
`python -m ftlib.eurosat_split` rewrites it. Used by `ftlib.datasets` (satellite).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .sources import EUROSAT_COUNTS

__all__ = ["SPLIT_FILE", "make_split", "read_split"]

SPLIT_FILE = Path(__file__).resolve().parents[1] / "assets" / "eurosat_split.json"
FRACTIONS = (0.6, 0.2, 0.2)


def make_split(counts: dict[str, int] = EUROSAT_COUNTS, seed: int = 0) -> dict[str, dict[str, list[int]]]:
    """{class: {"train": [numbers], "val": [...], "test": [...]}}; file i of class C is C/C_i.jpg."""
    rng = np.random.default_rng(seed)
    split = {}
    for name in sorted(counts):
        order = rng.permutation(np.arange(1, counts[name] + 1))
        n_train, n_val = round(counts[name] * FRACTIONS[0]), round(counts[name] * FRACTIONS[1])
        parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
        split[name] = {k: sorted(int(i) for i in v) for k, v in parts.items()}
    return split


def read_split(path: Path = SPLIT_FILE) -> dict[str, dict[str, list[int]]]:
    """The stored split (see the module docstring for the rule that made it)."""
    return json.loads(Path(path).read_text())["classes"]


def write_split(path: Path = SPLIT_FILE, seed: int = 0) -> None:
    """Write `make_split(seed=seed)` with a header saying how it was made."""
    doc = {"about": "EuroSAT RGB split, made by ftlib/eurosat_split.py: per class (alphabetical), "
                    "numpy.random.default_rng(seed).permutation of 1..count, 60 % train, 20 % val, 20 % test.",
           "seed": seed, "classes": make_split(seed=seed)}
    lines = ",\n".join(f'    "{c}": {json.dumps(s, separators=(",", ":"))}' for c, s in doc["classes"].items())
    header = json.dumps({"about": doc["about"], "seed": seed}, indent=2)[:-2]
    Path(path).write_text(f'{header},\n  "classes": {{\n{lines}\n  }}\n}}\n')


if __name__ == "__main__":
    write_split()
    print(f"wrote {SPLIT_FILE}")
