"""ftlib: the helper package of the course "Fine-tuning pretrained CNNs, hands on".

Flat modules, one idea each, readable top to bottom:

| module       | idea                                             | lessons |
| ------------ | ------------------------------------------------ | ------- |
| `config`     | world, budget, cache folders (environment)      | all     |
| `device`     | device choice and seeding                         | all     |
| `progress`   | progress bars that go quiet under CI              | all     |
| `environment`| the doctor: environment check                              | 00      |
| `models`     | loading models and their named stages             | 01-12   |
"""

from .config import budget, data_dir, is_offline, is_quiet, weights_dir
from .environment import doctor, torchvision_problem

_PROBLEM = torchvision_problem()
if _PROBLEM is None:
    from .device import describe_device, get_device, seed_everything
    from .models import family, stage_names, stages
    from .progress import progress
else:
    # torch/torchvision are broken: keep `ftlib.doctor()` usable and explain everything else.
    def __getattr__(name: str):
        raise ImportError(f"ftlib.{name} is unavailable: {_PROBLEM} Run `python -m ftlib doctor` for a full report.")

__version__ = "0.1.0"

__all__ = [
    "budget", "data_dir", "is_offline", "is_quiet", "weights_dir",
    "describe_device", "get_device", "seed_everything",
    "doctor",
    "family", "stage_names", "stages",
    "progress",
]
