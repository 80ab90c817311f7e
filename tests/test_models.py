"""Tests for ftlib.models (heads) and ftlib.pretrained (loading): heads, weights choice, offline weights, errors.

No test touches the network: `no_network` makes any download or probe fail the test, and
TORCH_HOME points at an empty temporary folder.
"""

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import models as tvm

from ftlib import pretrained
from ftlib.models import ARCHS, replace_head
from ftlib.pretrained import WeightsUnavailableError, get_weights, load_model, model_zoo_table


@pytest.fixture(autouse=True)
def no_network(tmp_path, monkeypatch):
    """Empty torch hub cache, no FTLIB_OFFLINE, and any network access fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the test touched the network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("FTLIB_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def hub_file(tmp_path: Path, weights: tvm.WeightsEnum) -> Path:
    """Where torch's hub cache keeps `weights`, worked out from torchvision's URL."""
    return tmp_path / "torch" / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]


# --- heads ------------------------------------------------------------------------------

def last_layer(model: nn.Module) -> nn.Linear:
    """The classifier's last layer, written out per family."""
    if isinstance(model, tvm.ResNet):
        return model.fc
    return model.classifier[-1]


@pytest.mark.parametrize("arch", ARCHS)
def test_random_weights_with_new_head(arch, capsys):
    with torch.device("meta"):  # shapes only: no memory, no time, even for vgg16
        model = load_model(arch, weights=None, num_classes=3)
        out = model.eval()(torch.empty(2, 3, 64, 64))
    assert out.shape == (2, 3)
    assert isinstance(last_layer(model), nn.Linear) and last_layer(model).out_features == 3
    assert model.weights_info.source == "random" and model.weights_info.categories is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and arch in lines[0] and "random" in lines[0]


def test_random_weights_real_forward():
    torch.manual_seed(0)
    model = load_model("resnet18", "random", num_classes=5, verbose=False).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert load_model("mobilenet_v3_small", None, verbose=False).classifier[-1].out_features == 1000


@pytest.mark.parametrize("arch", ARCHS)
def test_replace_head_keeps_in_features(arch):
    with torch.device("meta"):
        model = tvm.get_model(arch)  # 1000 classes
    old = last_layer(model)
    new = replace_head(model, 7)
    assert last_layer(model) is new and new is not old
    assert (new.in_features, new.out_features) == (old.in_features, 7)


def test_replace_head_vit_heads_and_sequential():
    vit = tvm.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=1,
                                hidden_dim=8, mlp_dim=8)
    replace_head(vit, 5)
    assert vit.heads.head.out_features == 5
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    replace_head(seq, 2)
    assert seq(torch.randn(3, 3, 2, 2)).shape == (3, 2)


def test_replace_head_bad_input():
    with pytest.raises(TypeError, match="classifier"):
        replace_head(nn.Conv2d(3, 3, 1), 2)
    with pytest.raises(ValueError, match="positive integer"):
        replace_head(nn.Sequential(nn.Linear(2, 2)), 0)


# --- choosing weights -----------------------------------------------------------------------

def test_weights_names():
    assert get_weights("resnet50", "imagenet").name == "ResNet50_Weights.IMAGENET1K_V2"
    assert get_weights("resnet50", "IMAGENET1K_V1").name == "ResNet50_Weights.IMAGENET1K_V1"
    assert get_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V1").name == "ResNet50_Weights.IMAGENET1K_V1"
    info = get_weights("resnet50", tvm.ResNet50_Weights.IMAGENET1K_V1)
    assert info.source == "imagenet" and len(info.categories) == 1000
    assert info.meta["acc@1"] == tvm.ResNet50_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]


def test_bad_weights_and_arch():
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        get_weights("resnet50", "IMAGENET22K")
    with pytest.raises(ValueError, match="another architecture"):
        get_weights("resnet18", tvm.ResNet50_Weights.IMAGENET1K_V1)
    with pytest.raises(ValueError, match="resnet18, resnet50"):
        load_model("resnet19", verbose=False)


def test_imagenet_from_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FTLIB_OFFLINE", "1")  # a cached file loads even offline
    weights = tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    torch.manual_seed(0)
    source = tvm.mobilenet_v3_small()
    path = hub_file(tmp_path, weights)
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)

    model = load_model("mobilenet_v3_small", "imagenet")
    out = capsys.readouterr().out
    assert "MobileNet_V3_Small_Weights.IMAGENET1K_V1" in out and str(path) in out
    assert torch.equal(model.features[0][0].weight, source.features[0][0].weight)
    assert model.weights_info.file == path and len(model.weights_info.categories) == 1000
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    assert model.weights_info.transforms()(image).shape == (3, 224, 224)


def test_offline_world_without_cached_weights_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model("resnet18", "imagenet", verbose=False)
    message = str(caught.value)
    file_name = tvm.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    for part in (file_name, str(tmp_path / "torch" / "hub" / "checkpoints"),
                 "python -m data_scripts.fetch weights", "weights='offline'"):
        assert part in message


def test_failed_download_is_not_a_bare_url_error(monkeypatch):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsUnavailableError, match="download failed") as caught:
        load_model("resnet18", "imagenet", verbose=False)
    assert isinstance(caught.value.__cause__, urllib.error.URLError)
    assert "data_scripts.fetch weights" in str(caught.value)


# --- offline, course-made weights ------------------------------------------------------------

@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Fake course weights for mobilenet_v3_small (4 pretraining classes, fp16 on disk)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.manual_seed(0)
    state = {k: v.half() if v.is_floating_point() else v
             for k, v in tvm.mobilenet_v3_small(num_classes=4).state_dict().items()}
    pt = folder / "mobilenet_v3_small_offline.pt"
    torch.save(state, pt)
    meta = {"arch": "mobilenet_v3_small", "num_classes": 4, "categories": ["a", "b", "c", "d"],
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize_size": 40, "crop_size": 32,
            "source": "fake fractals", "recipe": "none", "sha256": hashlib.sha256(pt.read_bytes()).hexdigest()}
    (folder / "mobilenet_v3_small_offline.json").write_text(json.dumps(meta))
    monkeypatch.setattr(pretrained, "OFFLINE_WEIGHTS_DIR", folder)
    return folder, state


def test_offline_weights_load_as_float32(offline, capsys):
    _, state = offline
    model = load_model("mobilenet_v3_small", "offline")
    assert "offline" in capsys.readouterr().out
    w = model.features[0][0].weight
    assert w.dtype == torch.float32 and torch.equal(w, state["features.0.0.weight"].float())
    assert torch.equal(model.features[0][1].running_var, state["features.0.1.running_var"].float())
    assert model.classifier[-1].out_features == 4
    assert model.weights_info.categories == ["a", "b", "c", "d"]

    model = load_model("mobilenet_v3_small", "offline", num_classes=3, verbose=False)
    assert model.classifier[-1].out_features == 3
    assert torch.equal(model.features[0][0].weight, state["features.0.0.weight"].float())


def test_offline_dir_argument(offline, monkeypatch, tmp_path):
    folder, _ = offline
    monkeypatch.setattr(pretrained, "OFFLINE_WEIGHTS_DIR", tmp_path / "elsewhere")
    info = get_weights("mobilenet_v3_small", "offline", offline_dir=folder)
    assert info.source == "offline" and info.file == folder / "mobilenet_v3_small_offline.pt"


def test_offline_checksum_mismatch(offline):
    folder, _ = offline
    js = folder / "mobilenet_v3_small_offline.json"
    meta = json.loads(js.read_text())
    meta["sha256"] = "0" * 64
    js.write_text(json.dumps(meta))
    with pytest.raises(WeightsUnavailableError, match="checksum.*pretrain_backbone"):
        load_model("mobilenet_v3_small", "offline", verbose=False)


def test_offline_missing_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "OFFLINE_WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsUnavailableError, match="python -m data_scripts.pretrain_backbone"):
        load_model("resnet18", "offline", verbose=False)


def test_offline_transforms(offline):
    t = get_weights("mobilenet_v3_small", "offline").transforms()
    white = torch.full((3, 48, 60), 255, dtype=torch.uint8)
    x = t(white)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.5) / 0.25))
    magenta = t(Image.new("RGB", (60, 48), (255, 0, 255)))
    assert magenta.shape == (3, 32, 32)
    assert torch.allclose(magenta[1], torch.full((32, 32), (0.0 - 0.5) / 0.25))
    assert torch.allclose(magenta[2], torch.full((32, 32), 2.0))
    assert t(white.expand(2, 3, 48, 60)).shape == (2, 3, 32, 32)


# --- "auto" ----------------------------------------------------------------------------------

def test_auto_is_offline_in_the_offline_world(offline, monkeypatch):
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    assert get_weights("mobilenet_v3_small").source == "offline"
    model = load_model("mobilenet_v3_small", num_classes=2, verbose=False)
    assert model.weights_info.name == "course-offline" and model.classifier[-1].out_features == 2


def test_auto_prefers_cached_imagenet(tmp_path):
    weights = tvm.ResNet18_Weights.IMAGENET1K_V1
    path = hub_file(tmp_path, weights)
    path.parent.mkdir(parents=True)
    path.touch()
    info = get_weights("resnet18")
    assert info.source == "imagenet" and info.file == path


def test_auto_imagenet_when_downloadable(monkeypatch):
    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Answer())
    assert get_weights("resnet18").name == "ResNet18_Weights.IMAGENET1K_V1"


def test_auto_falls_back_to_offline_with_a_note(offline, monkeypatch, capsys):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("name resolution failed")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    assert get_weights("mobilenet_v3_small").source == "offline"
    out = capsys.readouterr().out
    assert "name resolution failed" in out and "offline" in out


# --- model zoo ---------------------------------------------------------------------------

def test_model_zoo_table_matches_torchvision_metadata():
    (row,) = model_zoo_table(["resnet50"])
    meta = tvm.ResNet50_Weights.DEFAULT.meta
    assert row["weights"] == "ResNet50_Weights.IMAGENET1K_V2"
    assert row["params"] == meta["num_params"] == 25_557_032
    assert row["gflops"] == meta["_ops"]
    assert row["acc1"] == meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert round(row["acc1"], 2) == 80.86  # the figure quoted in the course
    assert [r["arch"] for r in model_zoo_table()] == list(ARCHS)
    with pytest.raises(ValueError, match="not a torchvision model"):
        model_zoo_table(["resnet19"])


def test_bad_num_classes():
    with pytest.raises(ValueError, match="positive integer"):
        load_model("resnet18", None, num_classes=0, verbose=False)


# --- damaged and read-only hub caches ----------------------------------------------------------

MOBILE = tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1


def damaged_hub_file(tmp_path: Path) -> Path:
    """A hub-cache weights file cut short, as an interrupted copy onto a lab machine leaves it."""
    path = hub_file(tmp_path, MOBILE)
    path.parent.mkdir(parents=True)
    torch.save(tvm.mobilenet_v3_small().state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def test_damaged_hub_file_is_named_with_the_fix(tmp_path):
    path = damaged_hub_file(tmp_path)
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model("mobilenet_v3_small", "imagenet", verbose=False)
    message = str(caught.value)
    assert str(path) in message and "damaged" in message and "Delete it" in message
    assert "python -m data_scripts.fetch weights" in message and path.exists()


def test_auto_falls_back_from_a_damaged_hub_file_with_one_line(tmp_path, offline, capsys):
    damaged_hub_file(tmp_path)
    model = load_model("mobilenet_v3_small", "auto")
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert model.weights_info.source == "offline" and len(notes) == 1 and "damaged" in notes[0]


def test_read_only_hub_cache_is_read_without_writing(tmp_path, monkeypatch):
    from test_download import make_read_only, snapshot

    torch.manual_seed(0)
    source = tvm.mobilenet_v3_small()
    path = hub_file(tmp_path, MOBILE)
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    make_read_only(monkeypatch, tmp_path / "torch")
    before = snapshot(tmp_path / "torch")
    model = load_model("mobilenet_v3_small", "auto", verbose=False)
    assert torch.equal(model.features[0][0].weight, source.features[0][0].weight)
    assert snapshot(tmp_path / "torch") == before


def test_read_only_hub_cache_without_the_file(tmp_path, monkeypatch, offline, capsys):
    from test_download import make_read_only

    (tmp_path / "torch").mkdir()
    make_read_only(monkeypatch, tmp_path / "torch")
    model = load_model("mobilenet_v3_small", "auto")  # no probe: nothing could be saved anyway
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert model.weights_info.source == "offline" and len(notes) == 1 and "read-only" in notes[0]
    with pytest.raises(WeightsUnavailableError, match="TORCH_HOME=") as caught:
        load_model("mobilenet_v3_small", "imagenet", verbose=False)
    assert "read-only" in str(caught.value)


def test_weights_of_another_architecture_are_explained(tmp_path):
    path = hub_file(tmp_path, MOBILE)
    path.parent.mkdir(parents=True)
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsUnavailableError, match="does not fit mobilenet_v3_small"):
        load_model("mobilenet_v3_small", "imagenet", verbose=False)


def test_damaged_offline_weights_are_explained(offline, monkeypatch):
    folder, _ = offline
    pt = folder / "mobilenet_v3_small_offline.pt"
    pt.write_bytes(pt.read_bytes()[:3000])
    meta = json.loads((folder / "mobilenet_v3_small_offline.json").read_text())
    meta["sha256"] = hashlib.sha256(pt.read_bytes()).hexdigest()  # checksum agrees, content cut
    (folder / "mobilenet_v3_small_offline.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsUnavailableError, match="damaged.*pretrain_backbone"):
        load_model("mobilenet_v3_small", "offline", verbose=False)


@pytest.mark.parametrize("text", ["", "{\"arch\": ", "[1, 2]"], ids=["empty", "truncated", "not-an-object"])
def test_damaged_offline_json_is_explained(offline, text):
    folder, _ = offline
    (folder / "mobilenet_v3_small_offline.json").write_text(text)
    with pytest.raises(WeightsUnavailableError, match="mobilenet_v3_small_offline.json.*(damaged|valid)"):
        get_weights("mobilenet_v3_small", "offline")


def test_offline_weights_path_that_is_a_folder_is_missing_not_a_crash(offline):
    folder, _ = offline
    (folder / "mobilenet_v3_small_offline.pt").unlink()
    (folder / "mobilenet_v3_small_offline.pt").mkdir()
    with pytest.raises(WeightsUnavailableError, match="pretrain_backbone"):
        get_weights("mobilenet_v3_small", "offline")


def test_probe_of_a_refusing_or_hanging_server_gives_a_reason(monkeypatch):
    import socket

    monkeypatch.undo()  # the real urlopen, against 127.0.0.1 only
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(1)  # accepts, never answers
        assert "timed out" in pretrained._download_problem(f"http://127.0.0.1:{hanging.getsockname()[1]}/w.pth",
                                                           timeout=0.3)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # not listening: refused
        assert "refused" in pretrained._download_problem(f"http://127.0.0.1:{closed.getsockname()[1]}/w.pth",
                                                         timeout=0.3)


def test_unreadable_hub_file_says_so(tmp_path, monkeypatch):
    path = hub_file(tmp_path, MOBILE)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(WeightsUnavailableError, match="cannot be read by this user"):
        load_model("mobilenet_v3_small", "imagenet", verbose=False)
