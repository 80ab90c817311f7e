"""The lesson map, and how long each lesson takes on this machine. Used in lesson 00.

`quick_s` is the time a lesson's quick budget took, offline, on the reference machine
(`pytest --nbval-lax` wall time, kernel start included); None until the lesson passes
there; `full_s` the same for the full budget, None where it was not timed. `REFERENCE` is
that machine and its ResNet-18 training speed (`REFERENCE_FULL` for the full budget's run). Both are read from
`lesson_times.json` beside this file, which `python -m ftlib.bench.lesson_times --write`
(`make times`) measures and writes; nobody edits the numbers by hand. A lesson's time on
another machine is estimated by scaling with that machine's training speed.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Lesson", "LESSONS", "REFERENCE", "REFERENCE_FULL", "TIMES_FILE", "available_lessons",
           "estimate_seconds"]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TIMES_FILE = Path(__file__).with_name("lesson_times.json")


@dataclass(frozen=True)
class Lesson:
    number: str
    title: str
    shows: str
    quick_s: float | None = None  # measured on REFERENCE, quick budget, CPU
    full_s: float | None = None   # measured on REFERENCE_FULL, full budget, CPU

    @property
    def notebook(self) -> Path | None:
        """The lesson's notebook file, or None when it is not written yet."""
        found = sorted(NOTEBOOKS.glob(f"{self.number}_*.ipynb"))
        return found[0] if found else None


def _recorded_times(path: Path = TIMES_FILE) -> dict:
    """{"machine", "date", "train_img_s", "lessons": {number: seconds}} from `path`; no times when it is missing."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        warnings.warn(f"{path} is missing: no lesson times (python -m ftlib.bench.lesson_times --write measures them).",
                      stacklevel=2)
        return {"machine": "not measured", "date": None, "train_img_s": float("nan"), "lessons": {}}


_TIMES = _recorded_times()

# ResNet-18 training speed (images/s) at 64 px, batch 32, fp32 (`ftlib.cost.throughput`), on
# the machine that measured quick_s.
REFERENCE = {"machine": _TIMES["machine"], "date": _TIMES["date"], "train_img_s": _TIMES["train_img_s"]}
_FULL = _TIMES.get("full", {"machine": "not measured", "date": None, "train_img_s": float("nan"), "lessons": {}})
REFERENCE_FULL = {"machine": _FULL["machine"], "date": _FULL["date"], "train_img_s": _FULL["train_img_s"]}

_MAP = [
    ("00", "setup", "environment check, device, the two worlds, time per lesson"),
    ("01", "pretrained models", "conv1 filters, feature maps, ImageNet predictions, model zoo"),
    ("02", "scratch vs pretrained", "accuracy against the number of labels"),
    ("03", "feature extraction vs fine-tuning", "frozen backbone + new head, cached features"),
    ("04", "freezing layers", "which layers to freeze, BatchNorm pitfall"),
    ("05", "learning rates", "LR range test, schedules, discriminative LR"),
    ("06", "overfitting", "augmentation, dropout, weight decay, early stopping"),
    ("07", "gradual unfreezing", "ULMFiT-style unfreezing, catastrophic forgetting"),
    ("08", "classification pipeline", "metrics, imbalance, saving and inference"),
    ("09", "project: medical", "chest X-rays: sensitivity and specificity"),
    ("10", "project: satellite", "EuroSAT land cover"),
    ("11", "project: retail", "product images"),
    ("12", "beyond classification", "fine-tuning a detector"),
]
LESSONS = [Lesson(number, title, shows, quick_s=_TIMES["lessons"].get(number), full_s=_FULL["lessons"].get(number))
           for number, title, shows in _MAP]


def available_lessons() -> list[Lesson]:
    """The lessons whose notebook exists in this checkout."""
    return [lesson for lesson in LESSONS if lesson.notebook is not None]


def estimate_seconds(lesson: Lesson, train_img_s: float, budget: str = "quick") -> float | None:
    """Time of `lesson` on `budget` ("quick" or "full") on a machine that trains at `train_img_s`
    images/s: the reference time scaled by the two speeds. None where it was not measured."""
    if budget not in ("quick", "full"):
        raise ValueError(f"budget must be 'quick' or 'full', got {budget!r}")
    seconds, reference = (lesson.quick_s, REFERENCE) if budget == "quick" else (lesson.full_s, REFERENCE_FULL)
    if seconds is None:
        return None
    return seconds * reference["train_img_s"] / train_img_s
