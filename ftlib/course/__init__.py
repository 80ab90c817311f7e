"""The lesson map, and how long each lesson takes on this machine. Used in lesson 00.

`quick_s` is the time nbval measured for the lesson's quick budget, offline, on the
reference machine (2 CPU cores, recorded in `REFERENCE`; `pytest --nbval-lax` wall time,
kernel start included); None until the lesson passes there. A lesson's
time here is estimated by scaling with this machine's measured training speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Lesson", "LESSONS", "REFERENCE", "available_lessons", "estimate_seconds"]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class Lesson:
    number: str
    title: str
    shows: str
    quick_s: float | None = None  # measured on REFERENCE, quick budget, CPU

    @property
    def notebook(self) -> Path | None:
        """The lesson's notebook file, or None when it is not written yet."""
        found = sorted(NOTEBOOKS.glob(f"{self.number}_*.ipynb"))
        return found[0] if found else None


# ResNet-18 training speed at 64 px, batch 32, fp32, on the machine that measured quick_s.
REFERENCE = {"machine": "2-core x86-64 CPU (AVX512-BF16), no GPU; idle, 2026-11-21", "train_img_s": 168.0}

LESSONS = [
    Lesson("00", "setup", "environment check, device, the two worlds, time per lesson", quick_s=8),
    Lesson("01", "pretrained models", "conv1 filters, feature maps, ImageNet predictions, model zoo", quick_s=33),
    Lesson("02", "scratch vs pretrained", "accuracy against the number of labels", quick_s=75),
    Lesson("03", "feature extraction vs fine-tuning", "frozen backbone + new head, cached features", quick_s=36),
    Lesson("04", "freezing layers", "which layers to freeze, BatchNorm pitfall", quick_s=89),
    Lesson("05", "learning rates", "LR range test, schedules, discriminative LR", quick_s=27),
    Lesson("06", "overfitting", "augmentation, dropout, weight decay, early stopping", quick_s=35),
    Lesson("07", "gradual unfreezing", "ULMFiT-style unfreezing, catastrophic forgetting", quick_s=41),
    Lesson("08", "classification pipeline", "metrics, imbalance, saving and inference"),
    Lesson("09", "project: medical", "chest X-rays: sensitivity and specificity"),
    Lesson("10", "project: satellite", "EuroSAT land cover"),
    Lesson("11", "project: retail", "product images"),
    Lesson("12", "beyond classification", "fine-tuning a detector"),
]


def available_lessons() -> list[Lesson]:
    """The lessons whose notebook exists in this checkout."""
    return [lesson for lesson in LESSONS if lesson.notebook is not None]


def estimate_seconds(lesson: Lesson, train_img_s: float) -> float | None:
    """Quick-budget time of `lesson` on a machine that trains at `train_img_s` images/s."""
    if lesson.quick_s is None:
        return None
    return lesson.quick_s * REFERENCE["train_img_s"] / train_img_s
