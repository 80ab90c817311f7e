"""Maintainer tools that no lesson imports: benchmarks, the lesson timer and the GPU check.

| module         | what it measures                                                        |
| -------------- | ----------------------------------------------------------------------- |
| `speed`        | `python -m ftlib.bench`: how fast ftlib's training paths are, as ratios |
| `transfer`     | does the offline backbone transfer? scratch vs probe vs fine-tuning     |
| `lesson_times` | `python -m ftlib.bench.lesson_times`: each lesson's quick-budget time here |
| `gpu_check`    | `python -m ftlib.bench.gpu_check`: the CUDA paths, lessons and tests on a GPU |
| `claims`       | `python -m ftlib.bench.claims`: do a lesson's claims hold on other seeds and budgets? |
"""

from .speed import SIZES, TARGETS, main, run

__all__ = ["run", "main", "SIZES", "TARGETS"]
