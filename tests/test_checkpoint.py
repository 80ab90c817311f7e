"""Checkpoints: round trip, atomic writes, weights_only loading, clear errors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import ftlib.checkpoint as checkpoint
from ftlib.checkpoint import load_checkpoint, save_checkpoint


def tiny_model(seed: int = 0, classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        head=nn.Linear(4, classes)))


def trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A model and an Adam optimizer after three steps, so both have non-trivial state."""
    model = tiny_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        x, y = torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if torch.is_tensor(a[key]):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], dict):
            assert_same_state(a[key], b[key])
        else:
            assert a[key] == b[key], key


def test_round_trip_model_optimizer_and_extras(tmp_path):
    model, optimizer = trained(0)
    rows = [{"epoch": 1, "val_acc": 0.5, "lr": {"head": 0.01}}]
    path = save_checkpoint(tmp_path / "runs" / "best.pt", model, optimizer, epoch=3,
                           class_names=["a", "b", "c"], rows=rows, mean=torch.tensor([0.5, 0.4]))
    assert path.is_file()

    fresh, fresh_opt = trained(1)  # different weights and optimizer state
    extras = load_checkpoint(path, fresh, fresh_opt)
    assert_same_state(model.state_dict(), fresh.state_dict())
    assert_same_state(optimizer.state_dict()["state"], fresh_opt.state_dict()["state"])
    assert optimizer.state_dict()["param_groups"] == fresh_opt.state_dict()["param_groups"]
    assert extras["epoch"] == 3 and extras["class_names"] == ["a", "b", "c"] and extras["rows"] == rows
    assert torch.equal(extras["mean"], torch.tensor([0.5, 0.4]))


def test_a_failure_mid_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    old, _ = trained(0)
    save_checkpoint(path, old, epoch=1)

    def half_written(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", half_written)
    new, _ = trained(1)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, new, epoch=2)
    monkeypatch.undo()

    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind
    probe = tiny_model(5)
    assert load_checkpoint(path, probe) == {"epoch": 1}
    assert_same_state(old.state_dict(), probe.state_dict())


CALLS: list[str] = []


def record_call(text: str) -> str:
    CALLS.append(text)
    return text


class Sneaky:
    """Unpickling this would call record_call: arbitrary code."""

    def __reduce__(self):
        return (record_call, ("code ran",))


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "sneaky.pt"
    model = tiny_model()
    torch.save({"format": checkpoint.CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": None,
                "extra": {"note": Sneaky()}}, path)
    CALLS.clear()
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(path, tiny_model(1))
    assert CALLS == []


def test_extras_must_be_plain_and_nothing_is_written_otherwise(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"extra\['score'\] is a float64"):
        save_checkpoint(tmp_path / "x.pt", tiny_model(), score=np.float64(0.5))
    with pytest.raises(TypeError, match=r"extra\['rows'\]\[0\]\['when'\] is a object"):
        save_checkpoint(tmp_path / "x.pt", tiny_model(), rows=[{"when": object()}])
    assert list(tmp_path.iterdir()) == []


def test_missing_truncated_and_foreign_files_are_explained(tmp_path):
    model = tiny_model()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt", model)

    good = save_checkpoint(tmp_path / "good.pt", model)
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt", model)

    (tmp_path / "notes.pt").write_text("not a checkpoint at all")
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        load_checkpoint(tmp_path / "notes.pt", model)

    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="not written by ftlib.save_checkpoint"):
        load_checkpoint(tmp_path / "bare.pt", model)


def test_wrong_model_or_missing_optimizer_state_are_explained(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(classes=3))
    with pytest.raises(RuntimeError, match="does not fit this model"):
        load_checkpoint(path, tiny_model(classes=5))
    model = tiny_model()
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))
