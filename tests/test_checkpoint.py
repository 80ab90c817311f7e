"""Checkpoints: round trip, atomic writes, weights_only loading, clear errors."""

from __future__ import annotations

import os
import time
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


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Deep copies of both states, to compare bit for bit after a failed load."""
    import copy

    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())


def test_a_wrong_model_is_refused_before_any_tensor_is_copied(tmp_path):
    saved, _ = trained(0)
    path = save_checkpoint(tmp_path / "m.pt", saved)
    # Same stem, a 5-class head: the stem's tensors would fit, the head's do not.
    model = tiny_model(7, classes=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    before = snapshot(model, optimizer)
    with pytest.raises(RuntimeError, match=r"head\.weight: model \(5, 4\), checkpoint \(3, 4\)") as info:
        load_checkpoint(path, model, optimizer)
    assert "num_classes" in str(info.value) and "head.bias" in str(info.value)
    assert_same_state(before[0], model.state_dict())
    assert_same_state(before[1], optimizer.state_dict())

    other = nn.Sequential(nn.Flatten(), nn.Linear(108, 3))  # another architecture: other names
    with pytest.raises(RuntimeError, match="missing from the checkpoint") as info:
        load_checkpoint(path, other)
    assert "not in this model" in str(info.value) and "more" in str(info.value)  # only the first few shown


def test_a_wrong_optimizer_or_none_saved_changes_neither_model_nor_optimizer(tmp_path):
    saved, saved_opt = trained(0)
    path = save_checkpoint(tmp_path / "m.pt", saved, saved_opt)
    model = tiny_model(3)
    grouped = torch.optim.Adam([{"params": model.stem.parameters()}, {"params": model.head.parameters()}])
    before = snapshot(model, grouped)
    with pytest.raises(ValueError, match=r"saved one has 1 parameter group\(s\), this one 2"):
        load_checkpoint(path, model, grouped)
    assert_same_state(before[0], model.state_dict())
    assert_same_state(before[1], grouped.state_dict())

    head_only = torch.optim.Adam(model.head.parameters())
    with pytest.raises(ValueError, match="group 0 holds 6 parameters in the saved one, 2 here"):
        load_checkpoint(path, model, head_only)
    assert_same_state(before[0], model.state_dict())

    bare = save_checkpoint(tmp_path / "bare.pt", saved)  # saved without an optimizer
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(bare, model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert_same_state(before[0], model.state_dict())


def test_optimizer_state_of_other_shapes_is_refused(tmp_path):
    saved, saved_opt = trained(0)
    path = tmp_path / "m.pt"
    state = saved_opt.state_dict()
    state["state"][0]["exp_avg"] = torch.zeros(2, 2)  # the first conv weight is (4, 3, 3, 3)
    torch.save({"format": checkpoint.CHECKPOINT_FORMAT, "model": saved.state_dict(), "optimizer": state,
                "extra": {}}, path)
    model = tiny_model(3)
    optimizer = torch.optim.Adam(model.parameters())
    before = snapshot(model, optimizer)
    with pytest.raises(ValueError, match=r"exp_avg has shape \(2, 2\)"):
        load_checkpoint(path, model, optimizer)
    assert_same_state(before[0], model.state_dict())


def test_a_stale_temporary_file_is_removed_by_the_next_save(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)  # that process has exited
    stale = tmp_path / f".model.pt.tmp-{dead_pid}-0a1b2c3d"
    stale.write_bytes(b"PK half a checkpoint")
    running = tmp_path / f".model.pt.tmp-{os.getpid()}-99aa"  # a save still running: kept
    running.write_bytes(b"PK")
    old_style = tmp_path / ".model.pt.k2j3h4.tmp"
    old_style.write_bytes(b"PK")
    os.utime(old_style, (time.time() - checkpoint.STALE_AFTER_S - 60,) * 2)
    other = tmp_path / f".other.pt.tmp-{dead_pid}-0a1b"  # another checkpoint's: not ours to judge here
    other.write_bytes(b"PK")

    save_checkpoint(tmp_path / "model.pt", tiny_model())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.pt", running.name, other.name])
    load_checkpoint(tmp_path / "model.pt", tiny_model(1))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "other.pt", tiny_model())
    assert not other.exists()  # the load of other.pt cleaned its stale temporary file


def test_temporary_file_name_is_recognisable(tmp_path, monkeypatch):
    seen = []

    def record(obj, f, *args, **kwargs):
        seen.extend(p.name for p in tmp_path.iterdir())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", record)
    with pytest.raises(OSError, match=r"could not write the checkpoint .*model\.pt.*disk space"):
        save_checkpoint(tmp_path / "model.pt", tiny_model())
    assert seen and seen[0].startswith(f".model.pt.tmp-{os.getpid()}-")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_explained(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            save_checkpoint(folder / "m.pt", tiny_model())
    finally:
        folder.chmod(0o700)


def test_a_folder_that_refuses_the_temporary_file_is_explained(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(file, flags, *args, **kwargs):
        if ".tmp-" in str(file):
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(checkpoint.os, "open", refuse)
    with pytest.raises(PermissionError, match=r"folder .* is not writable.*under your home"):
        save_checkpoint(tmp_path / "m.pt", tiny_model())
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_checkpoint(tmp_path, tiny_model())


def test_more_foreign_files_are_explained(tmp_path):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    (tmp_path / "noise.pt").write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator()
                                                            .manual_seed(0), dtype=torch.uint8).tolist()))
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        load_checkpoint(tmp_path / "noise.pt", model)
    (tmp_path / "meta.json").write_text('{"format": "ftlib-checkpoint-v1", "model": {}}')
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        load_checkpoint(tmp_path / "meta.json", model)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="truncated or not a torch checkpoint"):
        load_checkpoint(tmp_path / "empty.pt", model)
    torch.save({"format": checkpoint.CHECKPOINT_FORMAT, "weights": {}}, tmp_path / "odd.pt")  # no "model"
    with pytest.raises(ValueError, match="not written by ftlib.save_checkpoint"):
        load_checkpoint(tmp_path / "odd.pt", model)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_checkpoint(tmp_path, model)
    assert_same_state(before, model.state_dict())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_map_location_without_a_gpu_is_explained(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model())
    with pytest.raises(ValueError, match="no CUDA GPU"):
        load_checkpoint(path, tiny_model(), map_location="cuda")
