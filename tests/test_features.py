"""Feature extraction and prefix caching: same numbers as running the frozen part every time."""

import copy
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ftlib.features import (cache_activations, extract_features, global_pool, linear_head, mlp_head,
                            split_model, without_head)


def tiny_net(seed: int = 0) -> nn.Sequential:
    """A resnet-like toy: stem, two conv blocks with BatchNorm, a pooling head; 3 classes."""
    torch.manual_seed(seed)

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    return nn.Sequential(OrderedDict(
        stem=block(3, 8), block1=block(8, 8), block2=block(8, 16),
        head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))))


def toy_data(n: int = 24, size: int = 8) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g))


def seeded_loader(dataset, seed: int = 7) -> DataLoader:
    """Shuffled, batches of 5 (the last one short), the same order for the same seed."""
    return DataLoader(dataset, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(seed))


def plain_training(forward, params, loader, epochs: int = 3) -> list[float]:
    """A bare SGD loop, written here so that it is independent of ftlib.train."""
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(forward(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def train_uncached(model: nn.Sequential, upto: str, prefix_mode_eval: bool = True) -> list[float]:
    """Freeze the stages up to `upto`, put them in eval mode, train the whole model on images."""
    prefix, _ = split_model(model, upto)
    for p in prefix.parameters():
        p.requires_grad_(False)
    model.train()
    prefix.train(not prefix_mode_eval)
    params = [p for p in model.parameters() if p.requires_grad]
    return plain_training(model, params, seeded_loader(toy_data()))


def train_cached(model: nn.Sequential, upto: str) -> list[float]:
    """Cache the activations at `upto` once, then train only the rest on them."""
    prefix, rest = split_model(model, upto)
    for p in prefix.parameters():
        p.requires_grad_(False)
    cached = cache_activations(model, DataLoader(toy_data(), batch_size=5), upto)
    rest.train()
    return plain_training(rest, list(rest.parameters()), seeded_loader(cached))


def test_cached_and_uncached_training_give_the_same_result():
    uncached, cached = tiny_net(), tiny_net()
    before = copy.deepcopy(uncached.state_dict())
    losses_uncached = train_uncached(uncached, "block1")
    losses_cached = train_cached(cached, "block1")
    assert len(losses_uncached) == 3 * 5  # 3 epochs of 5 batches (24 samples, batch 5)
    torch.testing.assert_close(losses_cached, losses_uncached, rtol=1e-5, atol=1e-6)
    # every weight and BatchNorm statistic agrees, the trained rest and the untouched prefix
    for key, value in uncached.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # the frozen prefix, BatchNorm running stats included, did not move; the rest did
    for key in before:
        moved = not torch.equal(before[key], uncached.state_dict()[key])
        assert moved == (key.startswith("block2") or key.startswith("head")), key


def test_prefix_batchnorm_in_train_mode_breaks_the_equivalence():
    # The pitfall the cache relies on: a "frozen" prefix whose BatchNorm still uses batch
    # statistics computes something else than the cached (eval-mode) activations.
    uncached, cached = tiny_net(), tiny_net()
    losses_uncached = train_uncached(uncached, "block1", prefix_mode_eval=False)
    losses_cached = train_cached(cached, "block1")
    assert abs(losses_uncached[0] - losses_cached[0]) > 1e-3


def test_cache_activations_shape_dtype_and_warning():
    model = tiny_net()
    loader = DataLoader(toy_data(n=6), batch_size=4)
    with pytest.warns(UserWarning, match="require grad"):
        cache_activations(model, loader, "stem")
    for p in model.parameters():
        p.requires_grad_(False)
    full = cache_activations(model, loader, "block1")
    half = cache_activations(model, loader, "block1", dtype=torch.float16)
    assert full.tensors[0].shape == (6, 8, 8, 8) and full.tensors[1].dtype == torch.int64
    assert half.tensors[0].dtype == torch.float16
    assert half.tensors[0].nbytes * 2 == full.tensors[0].nbytes
    x, y = half[0]
    assert x.dtype == torch.float32 and int(y) == int(toy_data(n=6).tensors[1][0])
    torch.testing.assert_close(x, full[0][0], atol=1e-2, rtol=1e-2)
    with pytest.raises(ValueError, match="stages of this model"):
        cache_activations(model, loader, "layer9")


def test_split_model_composes_back_to_the_model():
    model = torchvision.models.resnet18(num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    prefix, rest = split_model(model, "layer2")
    assert list(prefix.named_children())[-1][0] == "layer2"
    assert [name for name, _ in rest.named_children()] == ["layer3", "layer4", "head"]
    assert prefix.layer1 is model.layer1  # shares the model's modules
    with torch.no_grad():
        torch.testing.assert_close(rest(prefix(x)), model(x))


def test_extract_features_equals_a_direct_forward_of_the_backbone():
    model = torchvision.models.resnet18(num_classes=3)
    model.train()
    images = torch.randn(7, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    loader = DataLoader(TensorDataset(images, labels), batch_size=3)
    features, out_labels = extract_features(without_head(model), loader)
    assert features.shape == (7, 512) and features.dtype == torch.float32
    assert out_labels.tolist() == labels.tolist()
    assert model.training and model.layer1[0].bn1.training  # mode restored
    # the same thing written out by hand: every layer before avgpool, eval mode, then the spatial mean
    model.eval()
    with torch.no_grad():
        x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
        x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
        expected = x.mean(dim=(2, 3))
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)
    # and the pooled features are what the model's own head sees
    with torch.no_grad():
        torch.testing.assert_close(model.fc(features), model(images), rtol=1e-4, atol=1e-5)


def test_global_pool_and_heads():
    maps = torch.randn(4, 6, 3, 5)
    torch.testing.assert_close(global_pool(maps), maps.sum(dim=(2, 3)) / 15)
    vectors = torch.randn(4, 6)
    assert global_pool(vectors) is vectors
    with pytest.raises(ValueError, match="N, C, H, W"):
        global_pool(torch.randn(4, 6, 3))
    head = linear_head(6, 2)
    linear = head[-1]
    torch.testing.assert_close(head(maps), maps.mean(dim=(2, 3)) @ linear.weight.T + linear.bias)
    assert head(vectors).shape == (4, 2)
    mlp = mlp_head(6, 2, hidden=10, dropout=0.3).eval()
    dropouts = [m for m in mlp.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.3
    torch.testing.assert_close(mlp(maps), mlp(maps.mean(dim=(2, 3))))
    assert sum(p.numel() for p in mlp.parameters()) == (6 * 10 + 10) + (10 * 2 + 2)


def test_without_head_of_a_sequential_drops_the_last_stage():
    model = tiny_net()
    backbone = without_head(model)
    assert [name for name, _ in backbone.named_children()] == ["stem", "block1", "block2"]
    features, _ = extract_features(backbone, DataLoader(toy_data(n=4), batch_size=4))
    assert features.shape == (4, 16)


# ---------------------------------------------------------------- the linear probe

def _probe_data(classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(240, 12, generator=g) * 4 + 2
    y = (x[:, :classes - 1] > 2).sum(1) if classes > 2 else (x[:, 0] + x[:, 1] > 4).long()
    return x, y.long()


@pytest.mark.parametrize("classes, standardize", [(2, True), (3, True), (3, False)])
def test_linear_probe_matches_sklearn_on_raw_features(classes, standardize):
    from sklearn.linear_model import LogisticRegression

    from ftlib.features import linear_probe

    x, y = _probe_data(classes)
    mean, std = (x.mean(0), x.std(0)) if standardize else (torch.zeros(12), torch.ones(12))
    reference = LogisticRegression(max_iter=2000).fit(((x - mean) / std).numpy(), y.numpy())
    head = linear_probe(x, y, standardize=standardize)
    assert isinstance(head, nn.Linear) and head.out_features == max(classes, 2)
    want = torch.tensor(reference.predict_proba(((x - mean) / std).numpy()), dtype=torch.float32)
    with torch.no_grad():
        got = head(x).softmax(1)
    assert torch.allclose(got, want, atol=1e-4)


def test_linear_probe_class_weight_raises_the_recall_of_a_rare_class():
    from ftlib.features import linear_probe

    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.zeros(190), torch.ones(10)]).long()          # 19 to 1
    x = torch.randn(200, 4, generator=g) + y[:, None] * 1.2            # overlapping classes
    recall = {}
    for weight in (None, "balanced"):
        with torch.no_grad():
            pred = linear_probe(x, y, class_weight=weight)(x).argmax(1)
        recall[weight] = float((pred[y == 1] == 1).float().mean())
    assert recall["balanced"] > recall[None] + 0.3


def test_probe_accuracy_is_the_test_fraction_and_survives_non_finite_features():
    from ftlib.features import probe_accuracy

    x, y = _probe_data(3)
    acc = probe_accuracy((x[:160], y[:160]), (x[160:], y[160:]))
    assert 0.8 < acc <= 1.0
    broken = x.clone()
    broken[:5] = float("nan")
    assert 0.0 <= probe_accuracy((broken[:160], y[:160]), (broken[160:], y[160:])) <= 1.0
