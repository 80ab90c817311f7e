"""Exercises that check themselves: `check()`, `hint()` and `solution()` for each lesson.

A lesson notebook imports its set and passes the answer explicitly:

    >>> from ftlib.exercises import lesson04 as ex
    >>> ex.q1                      # shows the task
    >>> ex.q1.check(model)         # shows "Correct" or what is wrong, and goes on
    >>> ex.q1.hint()               # hint 1; ex.q1.hint(2) shows the next one
    >>> ex.q1.solution()           # the code of one right answer
    >>> ex.q1.verify(model)        # the same check, silent: a summary, or `Incorrect` is raised

The modules, read in this order:

- `core`: `Incorrect`, `show`, `Exercise` (`verify` and `check`) and `ExerciseSet`.
- `checks`: the checkers several lessons share (`check_trainable`, `check_lrs`) and small helpers.
- `lesson01`: what a pretrained model knows: stage shapes, conv1's parameters, the model zoo.
- `lesson02`: scratch vs pretrained: a class-balanced subset, reading the label curve.
- `lesson03`: feature extraction: a new head, accuracy over samples, matching preprocessing.
- `lesson04`: freezing layers: which stages train, frozen BatchNorm, counting parameters.
- `lesson05`: learning rates: discriminative LRs, and under OneCycleLR.
- `lesson06`: overfitting: label-preserving augmentation, weight decay, early stopping.
- `lesson07`: gradual unfreezing: the order of unfreezing, LRs for the unfrozen stages.
- `lesson08`: the pipeline: precision and recall, a confusion matrix, class weights, a safe loader.
- `projects`: what projects 09 to 11 share: the depth decision (`check_depth_choice`).
- `lesson09`: project, chest X-rays: which stages to tune, a threshold for a target sensitivity,
  specificity at it, a class-weighted loss.
- `lesson10`: project, satellite land cover: which stages to tune, augmentation for overhead images.
- `lesson11`: project, retail products: which stages to tune, top-k accuracy, a balanced few-shot subset.
- `lesson12`: detection: a new box predictor, IoU by hand, how many stages to train.

Each lesson module builds its `ExerciseSet` and holds the checkers only that lesson uses.
Here each `lessonNN` is that set, the object a notebook imports; the module itself stays
reachable by its full path (`from ftlib.exercises.lesson04 import check_parameter_count`).
A new lesson is one more module, one import below, its set in `LESSON_SETS` and its names
in `__all__`.
"""

from __future__ import annotations

from ..freeze import stage_status
from .checks import check_lrs, check_trainable
from .core import CodeRaised, Exercise, ExerciseSet, Incorrect, NotAnswered, show
from .lesson01 import (check_conv1_parameters, check_smallest_model, check_stage_with_channels, lesson01,
                       resnet18_stage_shapes)
from .lesson02 import check_balanced_subset, check_labels_to_match, labels_to_match, lesson02
from .lesson03 import check_accuracy_fn, check_head, check_transforms, lesson03
from .lesson04 import check_frozen_batchnorm, check_parameter_count, lesson04
from .lesson05 import lesson05
from .lesson06 import (EARLY_STOP_VAL_LOSSES, RETAIL_MAX_ROTATION, RETAIL_MIN_CROP_SCALE, check_augmentation,
                       check_early_stopping, check_weight_decay, lesson06)
from .lesson07 import check_gradual_unfreezing, lesson07
from .lesson08 import (check_class_weights_fn, check_confusion_matrix_fn, check_plain_loader, check_precision_recall_fn,
                       lesson08)
from .lesson09 import check_class_weights_balanced, check_specificity_fn, check_threshold_fn, lesson09
from .lesson10 import check_confused_pair_fn, check_overhead_augment, check_per_class_accuracy_fn, lesson10
from .lesson11 import check_few_shot_fn, check_most_confused_fn, check_top_k_fn, lesson11
from .projects import check_depth_choice
from .lesson12 import check_box_predictor_fn, check_iou_fn, check_trainable_choice, lesson12

LESSON_SETS = {s.lesson: s for s in (lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08,
                                     lesson09, lesson10, lesson11, lesson12)}
"""Every lesson's exercise set by lesson number ("04"); the grader reads it."""

__all__ = [
    # core
    "Incorrect", "NotAnswered", "CodeRaised", "show", "Exercise", "ExerciseSet", "LESSON_SETS",
    # shared checkers; a stage's state is ftlib.freeze.stage_status
    "stage_status", "check_trainable", "check_lrs",
    # the lessons: each set, then the checkers only it uses
    "lesson01", "resnet18_stage_shapes", "check_stage_with_channels", "check_conv1_parameters",
    "check_smallest_model",
    "lesson02", "check_balanced_subset", "labels_to_match", "check_labels_to_match",
    "lesson03", "check_head", "check_accuracy_fn", "check_transforms",
    "lesson04", "check_parameter_count", "check_frozen_batchnorm",
    "lesson05",
    "lesson06", "RETAIL_MAX_ROTATION", "RETAIL_MIN_CROP_SCALE", "check_augmentation", "check_weight_decay",
    "EARLY_STOP_VAL_LOSSES", "check_early_stopping",
    "lesson07", "check_gradual_unfreezing",
    "lesson08", "check_precision_recall_fn", "check_confusion_matrix_fn", "check_class_weights_fn",
    "check_plain_loader",
    "check_depth_choice",
    "lesson09", "check_threshold_fn", "check_specificity_fn", "check_class_weights_balanced",
    "lesson10", "check_per_class_accuracy_fn", "check_confused_pair_fn", "check_overhead_augment",
    "lesson11", "check_top_k_fn", "check_few_shot_fn", "check_most_confused_fn",
    "lesson12", "check_box_predictor_fn", "check_iou_fn", "check_trainable_choice",
]
