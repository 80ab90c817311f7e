"""Maintainer tools that no lesson imports: the speed benchmark and the transfer benchmark.

| module     | what it measures                                                        |
| ---------- | ----------------------------------------------------------------------- |
| `speed`    | `python -m ftlib.bench`: how fast ftlib's training paths are, as ratios |
| `transfer` | does the offline backbone transfer? scratch vs probe vs fine-tuning     |
"""

from .speed import SIZES, TARGETS, main, run

__all__ = ["run", "main", "SIZES", "TARGETS"]
