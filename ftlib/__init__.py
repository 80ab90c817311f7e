"""ftlib: the helper package of the course "Fine-tuning pretrained CNNs, hands on".

Each folder is one kind of thing and each file one idea, readable top to bottom. The
lessons call the modules at the top level; `course/` is the machinery that makes the two
worlds work; `bench/` holds maintainer tools that no lesson imports.

| module                  | idea                                                          | lessons |
| ----------------------- | ------------------------------------------------------------- | ------- |
| **what lessons call**   |                                                               |         |
| `config`                | world, budget, strictness, cache folders (read at call time)  | all     |
| `device`                | device choice (what `device=None` means), seeding, eval mode  | all     |
| `progress`              | progress bars that go quiet under CI                          | all     |
| `claims`                | `claim`: the one way a lesson checks what its text says       | all     |
| `models`                | the stages of each architecture, where the head sits          | 01-12   |
| `pretrained`            | loading a model with ImageNet, course-offline or random weights | 01-12 |
| `freeze`                | freezing by stage, a stage's status, the BatchNorm policy     | 03-07   |
| `features`              | feature extraction, prefix caching, the linear probe          | 01-07   |
| `optim`                 | optimizer groups, the LR range test, the LR sweep             | 05-07   |
| `precision`             | AMP, channels_last, the bf16 CPU fast path                    | 00, 02-12 |
| `train`                 | `fit`, `Stopping` and the `History` it returns                | 02-12   |
| `callbacks`             | early stopping, gradual unfreezing, live plots                | 05-07   |
| `cost`                  | FLOPs, images per second, time per freeze depth, epoch timer  | 00, 03, 04 |
| `metrics`               | accuracy, precision/recall/F1, evaluation, prediction         | 02-12   |
| `checkpoint`            | atomic save, safe load                                        | 08      |
| `deploy`                | a checkpoint with what inference needs; export with torch.export | 08-11 |
| `quality`               | duplicates across splits (a leak), class balance              | 08-11   |
| `strategies`            | the projects' race: probes per stage, five strategies, one budget | 09-11 |
| `data`                  | the in-memory image data set and splits                       | 02-12   |
| `datasets`              | real data sets, the world chooser, your own image folder      | 02-12   |
| `plots`                 | every figure the lessons show                                 | 01-12   |
| `detection`             | a ResNet-18 FPN Faster R-CNN, its box predictor, IoU and AP   | 12      |
| `widgets`               | the freeze explorer and the LR explorer (ipywidgets)          | 04, 05  |
| `exercises/`            | `check()`, `hint()`, `solution()`; one module per lesson      | 01-08, 12 |
| **for instructors**     |                                                               |         |
| `grade`                 | `python -m ftlib.grade`: grade students' notebooks            |         |
| **course machinery**    |                                                               |         |
| `course/`               | the lesson map and measured time per lesson                   | 00      |
| `course/download`       | verified, resumable downloads; safe extraction                |         |
| `course/sources`        | where the real data and weights come from, with checksums     |         |
| `course/standins`       | procedural stand-ins of the three domains (offline world)     |         |
| `course/detection_standin` | the offline detection scenes of lesson 12                  |         |
| `course/pennfudan`      | Penn-Fudan pedestrians, checksum recorded on first download   |         |
| `course/eurosat_split`  | the stored, seeded EuroSAT split                              |         |
| `course/environment`    | the doctor: can the course run here?                          | 00      |
| **maintainer tools**    |                                                               |         |
| `bench/speed`           | `python -m ftlib.bench`: how fast the training paths are      |         |
| `bench/transfer`        | does the offline backbone transfer? scratch, probe, fine-tune |         |
| `bench/lesson_times`    | `python -m ftlib.bench.lesson_times`: time every lesson       |         |
| `bench/gpu_check`       | `make gpu-check`: the CUDA paths, lessons and tests on a GPU  |         |
| `bench/claims`          | `make sweep`: does each claim hold on other seeds and budgets? |         |
| `bench/memory`          | `make memory`: peak memory of each lesson and real-data loader |         |

`import ftlib` gives the names below; the modules hold the rest (`ftlib.plots.show_images`).
"""

from .config import budget, data_dir, is_offline, is_quiet, weights_dir
from .course.environment import doctor, torchvision_problem

_PROBLEM = torchvision_problem()
if _PROBLEM is None:
    from . import detection, exercises, plots, strategies, widgets
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import CLASS_NAMES, DataSplits, TensorImageDataset
    from .datasets import load_dataset, load_image_folder
    from .device import describe_device, get_device, seed_everything
    from .features import (cache_activations, extract_features, linear_head, linear_probe, mlp_head, probe_accuracy,
                           split_model,
                           without_head)
    from .freeze import bn_modes, count_parameters, format_stage_table, freeze, frozen_stages, stage_table, unfreeze
    from .metrics import accuracy, binary_metrics, classification_report, confusion_matrix, evaluate, predict
    from .models import family, stage_names, stages
    from .pretrained import get_weights, load_model, model_zoo_table
    from .optim import lr_find, param_groups, suggest_lr
    from .progress import progress
    from .course.standins import make_standin
    from .cost import throughput
    from .callbacks import Callback, EarlyStopping, GradualUnfreezing
    from .claims import claim
    from .precision import Precision
    from .train import History, Stopping, TrainingDiverged, fit
    from .deploy import Preprocess, export_program, load_for_inference, save_for_inference
    from .quality import find_duplicates, imbalance_ratio
else:
    # torch/torchvision are broken: keep `ftlib.doctor()` usable and explain everything else.
    def __getattr__(name: str):
        raise ImportError(f"ftlib.{name} is unavailable: {_PROBLEM} Run `python -m ftlib doctor` for a full report.")

__version__ = "0.1.0"

__all__ = [
    # settings and environment
    "budget", "data_dir", "is_offline", "is_quiet", "weights_dir", "doctor",
    "describe_device", "get_device", "seed_everything", "progress", "throughput",
    # models and freezing
    "family", "get_weights", "load_model", "model_zoo_table", "stage_names", "stages",
    "bn_modes", "count_parameters", "format_stage_table", "freeze", "frozen_stages", "stage_table", "unfreeze",
    # optimisation and training
    "lr_find", "param_groups", "suggest_lr",
    "Callback", "EarlyStopping", "GradualUnfreezing", "History", "Precision", "Stopping", "TrainingDiverged", "fit",
    "claim",
    "load_checkpoint", "save_checkpoint",
    "Preprocess", "export_program", "load_for_inference", "save_for_inference",
    # features and evaluation
    "cache_activations", "extract_features", "linear_head", "linear_probe", "mlp_head", "probe_accuracy",
    "split_model", "without_head",
    "accuracy", "binary_metrics", "classification_report", "confusion_matrix", "evaluate", "predict",
    # data
    "CLASS_NAMES", "DataSplits", "TensorImageDataset", "load_dataset", "load_image_folder", "make_standin",
    "find_duplicates", "imbalance_ratio",
    # modules
    "detection", "exercises", "plots", "strategies", "widgets",
]
