"""Offline stand-ins: interface, determinism, CI size, and no single pixel statistic gives the class away."""

import inspect

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

import ftlib.course.standins as standins
from data_scripts import pretrain_backbone
from ftlib.data import CLASS_NAMES, DataSplits, TensorImageDataset
from ftlib.course.standins import CI_PER_CLASS, STANDIN_DOMAINS, make_standin

DOMAINS = list(STANDIN_DOMAINS)


@pytest.fixture(scope="module")
def ci_sets() -> dict:
    """Each domain at the CI size, generated once for the module (its generation time is a
    figure of `python -m ftlib.bench`, `standin_generation_s`, not a test)."""
    return {domain: make_standin(domain, seed=0) for domain in DOMAINS}


@pytest.mark.parametrize("domain", DOMAINS)
def test_interface_shapes_dtypes_names(domain):
    data = make_standin(domain, per_class=(3, 2, 4), seed=5)
    k = len(CLASS_NAMES[domain])
    assert isinstance(data, DataSplits) and data.source == "standin" and data.name == domain
    assert data.class_names == CLASS_NAMES[domain]
    for split, n in (("train", 3), ("val", 2), ("test", 4)):
        ds = getattr(data, split)
        assert isinstance(ds, TensorImageDataset)
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (n * k, 3, 64, 64)
        assert ds.labels.dtype == torch.int64
        assert ds.class_counts() == [n] * k
        assert ds.class_names == CLASS_NAMES[domain]
    assert data.train.images.float().std() > 10  # not blank


def test_medical_is_gray_and_others_are_colour():
    med = make_standin("medical", per_class=(2, 0, 0)).train.images
    assert torch.equal(med[:, 0], med[:, 1]) and torch.equal(med[:, 1], med[:, 2])
    sat = make_standin("satellite", per_class=(2, 0, 0)).train.images
    assert not torch.equal(sat[:, 0], sat[:, 2])


@pytest.mark.parametrize("size", [32, 48, 96])
def test_adjustable_size(size):
    data = make_standin("retail", size=size, per_class=(1, 1, 1))
    assert data.train.images.shape == (10, 3, size, size)


@pytest.mark.parametrize("domain", DOMAINS)
def test_deterministic_by_seed(domain):
    a = make_standin(domain, per_class=(3, 1, 2), seed=1)
    b = make_standin(domain, per_class=(3, 1, 2), seed=1)
    c = make_standin(domain, per_class=(3, 1, 2), seed=2)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split).images, getattr(b, split).images)
        assert torch.equal(getattr(a, split).labels, getattr(b, split).labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert not torch.equal(a.train.images, a.test.images[: len(a.train.images)])


def test_test_split_does_not_depend_on_train_size():
    small = make_standin("satellite", per_class=(2, 1, 3), seed=3)
    large = make_standin("satellite", per_class=(7, 1, 3), seed=3)
    assert torch.equal(small.test.images, large.test.images)


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="medical, satellite, retail"):
        make_standin("cats")
    with pytest.raises(ValueError, match="32 or more"):
        make_standin("medical", size=16)
    with pytest.raises(ValueError, match="three non-negative integers"):
        make_standin("medical", per_class=(10, 5))
    with pytest.raises(ValueError, match="three non-negative integers"):
        make_standin("medical", per_class=(10, -1, 5))


@pytest.mark.parametrize("domain", DOMAINS)
def test_ci_size_has_the_ci_counts(ci_sets, domain):
    data = ci_sets[domain]
    k = len(CLASS_NAMES[domain])
    assert [len(data.train), len(data.val), len(data.test)] == [c * k for c in CI_PER_CLASS]


# --- no single pixel statistic separates the classes -----------------------------------------

def _stats(images: torch.Tensor) -> dict:
    x = images.float() / 255
    return {"brightness": x.mean((1, 2, 3))[:, None], "channel_means": x.mean((2, 3)),
            "channel_stds": x.std((2, 3))}


def _nearest_mean_acc(ftr, ytr, fte, yte, k) -> float:
    """Nearest class mean on standardised features, fitted on train, scored on test."""
    sd = ftr.std(0) + 1e-6
    means = torch.stack([ftr[ytr == c].mean(0) for c in range(k)])
    d = (((fte[:, None] - means[None]) / sd) ** 2).sum(-1)
    return (d.argmin(1) == yte).float().mean().item()


def _best_threshold_acc(v, y) -> float:
    """Best accuracy of `v > t` or `v < t` for a binary label over all thresholds t (optimistic)."""
    best = 0.0
    for t in v.unique():
        acc = ((v > t).long() == y).float().mean().item()
        best = max(best, acc, 1 - acc)
    return best


def test_statistic_checks_can_fail():
    """On a set whose classes differ in brightness, the same checks report near-perfect separation."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    images = (torch.rand(200, 3, 8, 8, generator=g) * 60 + 40 + 120 * y.view(-1, 1, 1, 1)).to(torch.uint8)
    s = _stats(images)
    assert _nearest_mean_acc(s["brightness"][:100], y[:100], s["brightness"][100:], y[100:], 2) > 0.95
    assert _best_threshold_acc(s["brightness"][:, 0], y) > 0.95


@pytest.mark.parametrize("domain", DOMAINS)
def test_no_single_pixel_statistic_separates_classes(ci_sets, domain):
    """Bound: each statistic alone stays below 0.70 accuracy for the 2 medical classes and
    below 0.50 for the 10-class domains (chance 0.5 / 0.1; all seven together below 0.70)."""
    data = ci_sets[domain]
    k = len(data.class_names)
    bound = 0.70 if k == 2 else 0.50
    tr, te = _stats(data.train.images), _stats(data.test.images)
    for name in tr:
        acc = _nearest_mean_acc(tr[name], data.train.labels, te[name], data.test.labels, k)
        assert acc < bound, f"{domain}: {name} alone classifies {acc:.2f} of the test set"
    together = _nearest_mean_acc(torch.cat(list(tr.values()), 1), data.train.labels,
                                 torch.cat(list(te.values()), 1), data.test.labels, k)
    assert together < 0.70, f"{domain}: brightness + channel means + stds classify {together:.2f}"
    if k == 2:
        acc = _best_threshold_acc(_stats(data.test.images)["brightness"][:, 0], data.test.labels)
        assert acc < bound, f"{domain}: a brightness threshold classifies {acc:.2f}"


# --- the stand-ins are not drawn by the pretraining formula ------------------------------------

def test_standins_do_not_use_the_pretraining_generator():
    pre_funcs = {f for f in vars(pretrain_backbone).values() if inspect.isfunction(f)}
    stand_funcs = {f for f in vars(standins).values() if inspect.isfunction(f)}
    assert pre_funcs and stand_funcs and not pre_funcs & stand_funcs
    source = inspect.getsource(standins).replace(standins.__doc__, "")  # the docstring names the script
    for word in ("data_scripts", "pretrain_backbone", "chaos", "render_fractals", "dead_leaves", "ifs"):
        assert word not in source.lower(), f"ftlib/course/standins.py mentions {word!r}"


def test_standin_images_differ_from_pretraining_images():
    """Fractal-on-clutter pretraining images are far from every stand-in: compare mean images."""
    classes = pretrain_backbone.make_ifs_classes(8, seed=0)
    pre, _ = pretrain_backbone.pretrain_batch(classes, seed=0, step=0, batch_size=16)
    pre = (pre * 255).round().to(torch.uint8)
    for domain in DOMAINS:
        imgs = make_standin(domain, per_class=(2, 0, 0)).train.images[:16]
        assert not any(torch.equal(p, s) for p in pre for s in imgs)
