"""Measuring speed: images per second for training or inference. Used in lessons 00
(time per lesson on this machine), 03 and 04 (cost of frozen vs trainable stages) and
by `python -m ftlib.bench`."""

from __future__ import annotations

import time

import torch
from torch import nn

__all__ = ["throughput"]


def throughput(model: nn.Module, *, image_size: int = 64, batch_size: int = 32, steps: int = 5,
               train: bool = True, device: torch.device | str = "cpu", warmup: int = 1) -> float:
    """Images per second of `model` on random data, after `warmup` untimed steps.

    `train=True` times forward, backward and an SGD step of the trainable parameters
    (frozen stages cost only their forward pass: lesson 04 shows it); `train=False`
    times a no-grad forward in eval mode. The model's weights and mode are restored.
    """
    device = torch.device(device)
    model = model.to(device)
    was_training = model.training
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3) if (train and params) else None
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    model.train(train)

    def step() -> None:
        if opt is None:
            with torch.no_grad():
                model(x)
            return
        opt.zero_grad(set_to_none=True)
        model(x).float().logsumexp(1).mean().backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    model.load_state_dict(saved)
    model.train(was_training)
    return batch_size * steps / elapsed
