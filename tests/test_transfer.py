"""Transfer benchmark pieces on tiny inputs, and the shipped offline weights file."""

import hashlib
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from ftlib.bench.transfer import _batches, domain_transfer, stage_features, to_inputs, train_classifier, transfer_benchmark
from ftlib.features import extract_features, probe_accuracy, without_head
from ftlib.metrics import evaluate

WEIGHTS = Path(__file__).resolve().parent.parent / "ftlib" / "weights"
JSON_KEYS = {"arch", "num_classes", "categories", "mean", "std", "resize_size", "crop_size", "source", "recipe", "sha256"}


def _blobs(n: int, k: int, d: int, seed: int, spread: float = 3.0):
    """k well-separated Gaussian clusters in d dimensions: (features (n, d), labels (n,))."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * spread
    y = torch.arange(n) % k
    return centres[y] + torch.randn(n, d, generator=g), y


class _FixedLogits(nn.Module):
    """Ignores pixel values: returns row i of `logits` for the i-th image (index in channel 0, pixel 0)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()]


def test_to_inputs_by_hand():
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1)
    out = to_inputs(images, mean=[0.0, 0.5, 0.2], std=[1.0, 0.5, 0.1])
    assert out.dtype == torch.float32
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_accuracy_counts_right_answers_over_short_batches():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    x = torch.arange(5).float().view(5, 1, 1, 1).expand(5, 3, 2, 2).contiguous()
    labels = torch.tensor([0, 1, 1, 1, 1])  # predictions 0, 1, 0, 1, 0 -> 2 wrong of 5
    assert evaluate(_FixedLogits(logits), _batches(x, labels, batch_size=2)).accuracy == pytest.approx(3 / 5)


def test_extract_features_is_pooled_layer4_and_keeps_the_head():
    torch.manual_seed(0)
    model = resnet18(num_classes=3).eval()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    head = model.fc
    feats, labels = extract_features(without_head(model), _batches(x, y, batch_size=1), device="cpu")
    m = model
    with torch.no_grad():
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        expected = m.layer4(m.layer3(m.layer2(m.layer1(h)))).mean((2, 3))
    assert feats.shape == (2, 512) and torch.allclose(feats, expected, atol=1e-5) and torch.equal(labels, y)
    assert model.fc is head
    with torch.no_grad():
        expected2 = m.layer2(m.layer1(h)).mean((2, 3))
    only2, _ = stage_features(model, _batches(x, y), ("layer2",), device="cpu")
    assert torch.allclose(only2["layer2"], expected2, atol=1e-5)
    # one pass, both stages, in the order asked for; batches of one give the same numbers
    both, labels = stage_features(model, _batches(x, y, batch_size=1), ("layer4", "layer2"), device="cpu")
    assert list(both) == ["layer4", "layer2"] and torch.equal(labels, y)
    assert torch.allclose(both["layer2"], expected2, atol=1e-5) and torch.allclose(both["layer4"], expected, atol=1e-5)
    assert model.fc is head and not model.training
    with pytest.raises(ValueError, match="no stage named"):
        stage_features(model, _batches(x, y), ("layer9",), device="cpu")


def test_probe_separable_vs_random_labels():
    xtr, ytr = _blobs(200, 4, 16, seed=0)
    xte, yte = _blobs(200, 4, 16, seed=0)
    assert probe_accuracy((xtr, ytr), (xte + 0.1 * torch.randn_like(xte), yte)) > 0.95
    shuffled = ytr[torch.randperm(200, generator=torch.Generator().manual_seed(1))]
    assert probe_accuracy((xtr, shuffled), (xte, yte)) < 0.6


def test_train_classifier_learns_and_is_deterministic():
    x, y = _blobs(64, 2, 12, seed=3)
    x = x.view(64, 3, 4, 1)  # one pixel wide: the random flips leave these inputs as they are

    def run():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
        return train_classifier(model, x, y, epochs=5, lr=0.05, batch_size=16, weight_decay=0.0, seed=0, device="cpu")

    a, b = run(), run()
    assert evaluate(a, _batches(x, y), device="cpu").accuracy > 0.9
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not a.training
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(a, x, y, epochs=0, lr=0.1)


def test_random_flips_depend_on_the_seed_only():
    from ftlib.bench.transfer import _RandomFlips
    items = [(torch.arange(4.0).view(1, 1, 4) + i, i) for i in range(64)]
    a, labels = _RandomFlips(0)(items)
    b, _ = _RandomFlips(0)(items)
    c, _ = _RandomFlips(1)(items)
    flipped = a[:, 0, 0, 0] > a[:, 0, 0, -1]
    assert torch.equal(a, b) and not torch.equal(a, c) and 16 < int(flipped.sum()) < 48
    assert torch.equal(labels, torch.arange(64)) and torch.equal(a[~flipped], torch.stack([x for x, _ in items])[~flipped])


def test_backbone_lr_zero_trains_only_the_head():
    torch.manual_seed(0)
    model = resnet18(num_classes=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    train_classifier(model, x, y, epochs=1, lr=0.01, backbone_lr=0.0, batch_size=4, weight_decay=0.0, device="cpu")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"fc.weight", "fc.bias"}


def test_domain_transfer_tiny_run_reports_all_numbers():
    torch.manual_seed(0)
    result = domain_transfer("medical", lambda k: resnet18(num_classes=k), [0.5] * 3, [0.25] * 3,
                             per_class=3, test_per_class=2, steps=1)
    assert set(result) >= {"scratch_acc", "probe_acc", "finetune_acc", "chance"}
    assert result["chance"] == 0.5 and result["train_images"] == 6 and result["test_images"] == 4
    for key in ("scratch_acc", "probe_acc", "finetune_acc"):
        assert 0.0 <= result[key] <= 1.0
    assert list(result["probe_acc_by_layer"]) == ["layer1", "layer2", "layer3", "layer4"]
    assert result["probe_acc_by_layer"]["layer4"] == result["probe_acc"]


def test_scratch_inputs_use_the_stand_ins_own_statistics_not_the_weights(monkeypatch):
    import ftlib.bench.transfer as transfer
    seen, original = [], transfer.train_classifier

    def recording(model, inputs, labels, **kw):
        seen.append(inputs.clone())
        return original(model, inputs, labels, **kw)

    monkeypatch.setattr(transfer, "train_classifier", recording)
    run = lambda mean, std, norm: domain_transfer("medical", lambda k: resnet18(num_classes=k), mean, std,  # noqa: E731
                                                  per_class=3, test_per_class=2, steps=1, scratch_norm=norm)
    run([0.5] * 3, [0.25] * 3, "own")
    run([0.1] * 3, [0.9] * 3, "own")
    scratch_a, tuned_a, scratch_b, tuned_b = seen
    assert torch.equal(scratch_a, scratch_b) and not torch.equal(tuned_a, tuned_b)
    assert scratch_a.mean((0, 2, 3)).abs().max() < 1e-4 and (scratch_a.std((0, 2, 3)) - 1).abs().max() < 1e-3
    seen.clear()
    run([0.1] * 3, [0.9] * 3, "weights")
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], tuned_b)   # scratch sees what fine-tuning sees
    with pytest.raises(ValueError, match="scratch_norm"):
        run([0.5] * 3, [0.25] * 3, "imagenet")


def test_benchmark_refuses_large_label_counts_and_no_seeds():
    with pytest.raises(ValueError, match="small data"):
        transfer_benchmark(per_class=100)
    with pytest.raises(ValueError, match="seeds"):
        transfer_benchmark(seeds=())


def test_benchmark_rows_average_seeds_and_keep_each_gain():
    from ftlib.bench.transfer import _average
    runs = [{"scratch_acc": 0.8, "probe_acc": 0.7, "finetune_acc": 0.9, "chance": 0.5, "train_images": 100,
             "test_images": 600, "epochs": 50, "seconds": 10.0, "probe_acc_by_layer": {"layer1": 0.6, "layer4": 0.7}},
            {"scratch_acc": 0.7, "probe_acc": 0.8, "finetune_acc": 0.85, "chance": 0.5, "train_images": 100,
             "test_images": 600, "epochs": 50, "seconds": 12.0, "probe_acc_by_layer": {"layer1": 0.8, "layer4": 0.8}}]
    row = _average(runs, (3, 4))
    assert row["scratch_acc"] == 0.75 and row["probe_acc"] == 0.75 and row["finetune_acc"] == 0.875
    assert row["probe_acc_by_layer"] == {"layer1": 0.7, "layer4": 0.75}
    assert row["gain_by_seed"] == {3: 0.1, 4: 0.15}
    assert row["chance"] == 0.5 and row["test_images"] == 600 and row["seconds"] == 22.0


# --- the shipped weights --------------------------------------------------------------------

def test_offline_weights_file_small_and_checksummed():
    pt, js = WEIGHTS / "resnet18_offline.pt", WEIGHTS / "resnet18_offline.json"
    assert pt.stat().st_size <= 25 * 2**20, f"{pt} is {pt.stat().st_size / 2**20:.1f} MiB (limit 25)"
    card = json.loads(js.read_text())
    assert JSON_KEYS <= set(card)
    assert card["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert card["arch"] == "resnet18" and len(card["mean"]) == 3 and len(card["std"]) == 3


def test_offline_weights_are_fp16_resnet18_with_pretraining_head():
    state = torch.load(WEIGHTS / "resnet18_offline.pt", map_location="cpu", weights_only=True)
    card = json.loads((WEIGHTS / "resnet18_offline.json").read_text())
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert state["fc.weight"].shape == (card["num_classes"], 512)
    model = resnet18(num_classes=card["num_classes"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


# --- the pretraining script's pieces (tiny settings) ---------------------------------------------

def test_pretrain_batches_depend_only_on_seed_and_step():
    from data_scripts.pretrain_backbone import make_ifs_classes, pretrain_batch
    classes = make_ifs_classes(6, seed=0)
    assert classes["mats"].shape == (6, 4, 2, 2) and torch.allclose(classes["probs"].sum(1), torch.ones(6))
    a, ya = pretrain_batch(classes, seed=1, step=7, batch_size=5, size=32)
    b, yb = pretrain_batch(classes, seed=1, step=7, batch_size=5, size=32)
    c, _ = pretrain_batch(classes, seed=1, step=8, batch_size=5, size=32)
    assert a.shape == (5, 3, 32, 32) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, c)


def test_pretrain_texture_mode_strews_small_copies_and_stays_deterministic():
    from data_scripts.pretrain_backbone import Mix, _scatter, make_ifs_classes, pretrain_batch
    cloud = torch.rand(3, 320, 2) * 2 - 1
    strewn = _scatter(cloud, torch.Generator().manual_seed(0), copies=16)
    assert strewn.shape == cloud.shape
    # each copy is at most 0.35 * 1.2 * sqrt(2) across from its centre: copies are small, spread out
    for copy in range(16):
        part = strewn[:, copy::16]
        assert (part.amax(1) - part.amin(1)).max() <= 2 * 0.35 * 1.2 * 2 ** 0.5 + 1e-5
    assert strewn.std(1).min() > 0.3                          # the copies cover the image, not one spot
    classes = make_ifs_classes(4, seed=0)
    shape, _ = pretrain_batch(classes, seed=0, step=3, batch_size=6, size=32, mix=Mix())
    tex_a, ya = pretrain_batch(classes, seed=0, step=3, batch_size=6, size=32, mix=Mix(texture=1.0))
    tex_b, yb = pretrain_batch(classes, seed=0, step=3, batch_size=6, size=32, mix=Mix(texture=1.0))
    assert torch.equal(tex_a, tex_b) and torch.equal(ya, yb) and not torch.equal(shape, tex_a)
    assert 0 <= tex_a.min() and tex_a.max() <= 1


def test_pretrain_gaussian_blur_keeps_flat_images_and_softens_by_each_images_sigma():
    from data_scripts.pretrain_backbone import _gauss_blur
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(_gauss_blur(flat, torch.tensor([0.5, 2.0])), flat, atol=1e-6)
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2).float().expand(2, 3, 16, 16)
    out = _gauss_blur(checker, torch.tensor([0.5, 2.0]))
    assert out[0].std() > 2 * out[1].std() > 0              # the wider blur removes more of the pattern
    assert torch.allclose(out.mean((1, 2, 3)), checker.mean((1, 2, 3)), atol=0.02)


def test_pretrain_script_resumes_and_exports(tmp_path):
    from data_scripts.pretrain_backbone import main
    common = ["--classes", "3", "--batch-size", "4", "--size", "32", "--warmup", "1", "--threads", "1", "--stats-batches", "1",
              "--work-dir", str(tmp_path / "work"), "--out-dir", str(tmp_path / "out")]
    main(["--steps", "2", *common])
    assert torch.load(tmp_path / "work" / "last.pt", weights_only=True)["step"] == 2
    with pytest.raises(SystemExit, match="--restart"):           # other images than the checkpoint's
        main(["--steps", "3", "--texture", "0.5", *common])
    main(["--steps", "3", *common])                       # resumes at step 2, runs one more
    card = json.loads((tmp_path / "out" / "resnet18_offline.json").read_text())
    pt = tmp_path / "out" / "resnet18_offline.pt"
    assert card["recipe"]["steps"] == 3 and card["num_classes"] == 3
    assert card["recipe"]["mix"] == {"texture": 0.0, "faint": 0.0, "gray": 0.2, "blur": 0.3, "gauss": False}
    main(["--steps", "1", "--restart", "--texture", "0.5", "--faint", "0.4", "--gray", "0.6", "--gauss-blur", *common])
    card = json.loads((tmp_path / "out" / "resnet18_offline.json").read_text())
    assert card["recipe"]["steps"] == 1
    assert card["recipe"]["mix"] == {"texture": 0.5, "faint": 0.4, "gray": 0.6, "blur": 0.3, "gauss": True}
    assert card["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    state = torch.load(pt, weights_only=True)
    assert state["fc.weight"].dtype == torch.float16 and state["fc.weight"].shape == (3, 512)
