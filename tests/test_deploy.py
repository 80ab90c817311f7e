"""ftlib.deploy: the inference checkpoint round trip, the preprocessing module, the export and
the standalone script (run in a process where ftlib and torchvision cannot be imported)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import get_model

from ftlib.checkpoint import save_checkpoint
from ftlib.datasets import load_image
from ftlib.deploy import (CLASSIFY_SCRIPT, ImageClassifier, Preprocess, export_program, load_for_inference,
                          save_for_inference)
from ftlib.metrics import predict

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
BLOCKED = ("import runpy, sys; sys.modules['ftlib'] = None; sys.modules['torchvision'] = None; "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return get_model("mobilenet_v3_small", weights=None, num_classes=3).eval()


def uint8(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_preprocess_scales_and_normalises_a_square_image():
    x = uint8(3, 16, 16)
    expected = (x.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    out = Preprocess(16, MEAN, STD)(x)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32 and torch.allclose(out, expected)
    assert torch.allclose(Preprocess(16, MEAN, STD)(x.float() / 255), expected)   # float in [0, 1] too


def test_preprocess_resizes_the_short_side_and_crops_the_centre():
    p = Preprocess(20, MEAN, STD)
    assert p(uint8(2, 3, 30, 50)).shape == (2, 3, 20, 20)
    flat = torch.full((3, 40, 80), 200, dtype=torch.uint8)
    assert torch.allclose(p(flat), p(torch.full((3, 20, 20), 200, dtype=torch.uint8)), atol=1e-5)


def test_preprocess_values_round_trip():
    p = Preprocess(24, MEAN, STD)
    v = p.values()
    assert v["size"] == 24 and v["mean"] == pytest.approx(MEAN) and v["std"] == pytest.approx(STD)
    with pytest.raises(ValueError, match="3 values"):
        Preprocess(24, [0.5], STD)


def test_checkpoint_round_trip_gives_identical_predictions(model, tmp_path):
    prep = Preprocess(32, MEAN, STD)
    path = save_for_inference(tmp_path / "m.pt", model, arch="mobilenet_v3_small", class_names=["a", "b", "c"],
                              preprocess=prep)
    loaded = load_for_inference(path)
    assert loaded.arch == "mobilenet_v3_small" and loaded.class_names == ["a", "b", "c"]
    assert loaded.preprocess.values() == prep.values() and not loaded.model.training
    x = uint8(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(loaded.preprocess(x)), model(prep(x)))
    top = loaded.predict(list(x), k=2)
    assert len(top) == 4 and all(len(t) == 2 and t[0][0] in "abc" for t in top)


def test_notes_travel_with_the_model_and_must_be_plain(model, tmp_path):
    prep = Preprocess(32, MEAN, STD)
    path = save_for_inference(tmp_path / "m.pt", model, arch="mobilenet_v3_small", class_names=["a", "b", "c"],
                              preprocess=prep, notes={"threshold": 0.31, "target_sensitivity": 0.95})
    assert load_for_inference(path).notes == {"threshold": 0.31, "target_sensitivity": 0.95}
    plain = save_for_inference(tmp_path / "p.pt", model, arch="mobilenet_v3_small", class_names=["a", "b", "c"],
                               preprocess=prep)
    assert load_for_inference(plain).notes == {}
    with pytest.raises((TypeError, ValueError)):
        save_for_inference(tmp_path / "bad.pt", model, arch="mobilenet_v3_small", class_names=["a", "b", "c"],
                           preprocess=prep, notes={"f": lambda x: x})
    assert not (tmp_path / "bad.pt").exists()


def test_save_refuses_a_wrong_architecture_or_class_count(model, tmp_path):
    prep = Preprocess(32, MEAN, STD)
    with pytest.raises(ValueError, match="does not fit"):
        save_for_inference(tmp_path / "m.pt", model, arch="mobilenet_v3_small", class_names=["a", "b"], preprocess=prep)
    with pytest.raises(ValueError, match="does not fit"):
        save_for_inference(tmp_path / "m.pt", model, arch="resnet18", class_names=["a", "b", "c"], preprocess=prep)
    assert not (tmp_path / "m.pt").exists()


def test_load_refuses_a_plain_checkpoint(model, tmp_path):
    save_checkpoint(tmp_path / "plain.pt", model, epoch=3)
    with pytest.raises(ValueError, match="not written by save_for_inference"):
        load_for_inference(tmp_path / "plain.pt")


def test_image_classifier_returns_probabilities(model):
    clf = ImageClassifier(Preprocess(32, MEAN, STD), model, ["a", "b", "c"]).eval()
    probs = clf(uint8(5, 3, 32, 32))
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(1), torch.ones(5))


def test_exported_program_runs_without_ftlib_and_matches_the_model(model, tmp_path):
    prep = Preprocess(32, MEAN, STD)
    path = export_program(tmp_path / "m.pt2", model, prep, ["a", "b", "c"])
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(32, 32), (40, 60), (70, 35)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "classify.py").write_text(CLASSIFY_SCRIPT)
    out = subprocess.run([sys.executable, "-c", BLOCKED, str(tmp_path / "classify.py"), str(path), str(folder)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    files = sorted(folder.iterdir())
    expected = predict(model, [load_image(p, 32) for p in files], transform=prep, k=3, device="cpu")
    assert [r["file"] for r in rows] == [p.name for p in files]
    for row, top in zip(rows, expected):
        assert row["class"] == "abc"[top[0][0]]
        assert torch.allclose(torch.tensor(row["probs"]), torch.tensor([dict(top)[i] for i in range(3)]), atol=1e-6)


def test_the_blocked_process_cannot_import_ftlib():
    out = subprocess.run([sys.executable, "-c", "import sys; sys.modules['ftlib'] = None\nimport ftlib"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "ftlib" in out.stderr
