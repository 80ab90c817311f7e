"""Maintainer tools that no lesson imports: the speed and transfer benchmarks, and the lesson timer.

| module         | what it measures                                                        |
| -------------- | ----------------------------------------------------------------------- |
| `speed`        | `python -m ftlib.bench`: how fast ftlib's training paths are, as ratios |
| `transfer`     | does the offline backbone transfer? scratch vs probe vs fine-tuning     |
| `lesson_times` | `python -m ftlib.bench.lesson_times`: each lesson's quick-budget time here |
"""

from .speed import SIZES, TARGETS, main, run

__all__ = ["run", "main", "SIZES", "TARGETS"]
