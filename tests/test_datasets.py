"""ftlib.datasets: bad input in image folders, the real loaders on tiny fake archives in the
publishers' formats (served on 127.0.0.1 or placed in the cache), the stored EuroSAT split,
and the world choice. No outside network: urlopen is blocked unless a test serves files itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import struct
import sys
import types
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ftlib.course import eurosat_split, sources
from ftlib import datasets as ds
from ftlib.data import CLASS_NAMES, DataSplits, TensorImageDataset
from ftlib.course.download import OfflineError
from test_download import FakeServer, make_read_only, snapshot


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Own data cache per test, quiet bars, offline unless a test says otherwise."""
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("FTLIB_QUIET", "1")
    monkeypatch.setenv("FTLIB_OFFLINE", "1")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- converting images ---------------------------------------------------------------------------


def pixels(path, size=None) -> np.ndarray:
    return ds.load_image(path, size).permute(1, 2, 0).numpy()


def test_grayscale_and_16_bit_become_rgb(tmp_path):
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8), "L").save(tmp_path / "gray.png")
    assert pixels(tmp_path / "gray.png").tolist() == [[[0] * 3, [100] * 3, [255] * 3]]
    Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    # 16-bit to 8-bit by hand: v / 257 -> 0, 1, 128, 255 (not clipped at 255 for v > 255)
    assert pixels(tmp_path / "deep.png").tolist() == [[[0] * 3, [1] * 3, [128] * 3, [255] * 3]]


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.array([[[200, 20, 40, 255], [200, 20, 40, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = pixels(tmp_path / "a.png")
    assert got[0, 0].tolist() == [200, 20, 40]          # opaque: the colour itself
    assert got[0, 1].tolist() == [255, 255, 255]        # transparent: white
    assert np.abs(got[0, 2].astype(int) - 127).max() <= 1  # half black on white: 255 * (1 - 128/255)


def test_palette_and_cmyk_become_rgb(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 250, 240, 230] + [0] * 762)
    palette.putdata([0, 1])
    palette.save(tmp_path / "p.png")
    assert pixels(tmp_path / "p.png").tolist() == [[[10, 20, 30], [250, 240, 230]]]
    palette.save(tmp_path / "pt.png", transparency=0)  # index 0 transparent -> white
    assert pixels(tmp_path / "pt.png").tolist() == [[[255, 255, 255], [250, 240, 230]]]
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putdata([(0, 255, 255, 0), (0, 0, 0, 255)])  # pure red, pure black
    cmyk.save(tmp_path / "c.tif")
    assert pixels(tmp_path / "c.tif").tolist() == [[[255, 0, 0], [0, 0, 0]]]


def test_load_image_crops_to_a_square_and_resizes(tmp_path):
    Image.new("RGB", (40, 20), (9, 99, 199)).save(tmp_path / "wide.png")
    image = ds.load_image(tmp_path / "wide.png", 8)
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8)
    assert image[:, 4, 4].tolist() == [9, 99, 199]


# --- a student's folder ----------------------------------------------------------------------------


def make_folder(root, counts: dict[str, int], colours=None) -> None:
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = colours[name] if colours else (k * 60, i * 10, 100)
            Image.new("RGB", (12, 10), colour).save(root / name / f"{i}.png")


def truncated(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((48, 48), 60).convert("RGB").save(buf, fmt)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def test_image_folder_splits_per_class(tmp_path):
    make_folder(tmp_path / "imgs", {"cats": 10, "dogs": 5})
    splits = ds.load_image_folder(tmp_path / "imgs", size=8, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert splits.class_names == ["cats", "dogs"]
    # by hand: cats 10 -> val 2, test 2, train 6; dogs 5 -> val 1, test 1, train 3
    assert [splits.train.class_counts(), splits.val.class_counts(), splits.test.class_counts()] == \
        [[6, 3], [2, 1], [2, 1]]
    assert splits.train.images.shape == (9, 3, 8, 8) and splits.train.images.dtype == torch.uint8
    seen = torch.cat([splits.train.images, splits.val.images, splits.test.images])[:, 1, 0, 0]  # i * 10
    assert sorted(seen.tolist()) == sorted([i * 10 for i in range(10)] + [i * 10 for i in range(5)])
    again = ds.load_image_folder(tmp_path / "imgs", size=8, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert torch.equal(again.val.images, splits.val.images)


def test_corrupt_images_are_named_and_skipped(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root, {"a": 3, "b": 3})
    (root / "a" / "cut.jpg").write_bytes(truncated("JPEG"))
    (root / "b" / "cut.png").write_bytes(truncated("PNG"))
    (root / "b" / "text.jpg").write_bytes(b"this is not an image")
    with pytest.warns(UserWarning, match="Skipped 3 unreadable") as record:
        splits = ds.load_image_folder(root, size=8, val_fraction=0.0)
    message = str(record[0].message)
    assert all(name in message for name in ["cut.jpg", "cut.png", "text.jpg"])
    assert splits.train.class_counts() == [3, 3] and len(splits.extra["skipped"]) == 3


def test_strict_raises_listing_every_bad_file(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root, {"a": 2, "b": 2})
    (root / "a" / "cut.jpg").write_bytes(truncated("JPEG"))
    (root / "b" / "cut.png").write_bytes(truncated("PNG"))
    with pytest.raises(ValueError, match="2 image") as info:
        ds.load_image_folder(root, strict=True)
    assert "cut.jpg" in str(info.value) and "cut.png" in str(info.value)


@pytest.mark.parametrize("layout, expected", [
    ({"a": 2, "empty": 0}, "no images"),
    ({"only": 3}, "only one class"),
    ({}, "no class folders"),
])
def test_folder_layout_errors(tmp_path, layout, expected):
    root = tmp_path / "imgs"
    root.mkdir()
    make_folder(root, layout)
    with pytest.raises(ValueError, match=expected):
        ds.load_image_folder(root)


def test_class_with_only_corrupt_images_is_an_error(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root, {"good": 2})
    (root / "bad").mkdir()
    (root / "bad" / "x.png").write_bytes(truncated("PNG"))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable image"):
        ds.load_image_folder(root)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="one sub-folder per class"):
        ds.load_image_folder(tmp_path / "nowhere")


def test_train_and_val_folders_are_read_as_splits_not_classes(tmp_path):
    root = tmp_path / "chest"
    make_folder(root / "train", {"normal": 3, "pneumonia": 2})
    make_folder(root / "val", {"normal": 1, "pneumonia": 2})
    splits = ds.load_image_folder(root, size=8)
    assert splits.class_names == ["normal", "pneumonia"]  # not ["train", "val"]
    assert splits.train.class_counts() == [3, 2] and splits.val.class_counts() == [1, 2]
    assert len(splits.test) == 0 and "train/val/test folders" in splits.description


def test_split_folders_mixed_with_classes_point_at_train(tmp_path):
    root = tmp_path / "mixed"
    make_folder(root / "train", {"a": 2, "b": 2})
    make_folder(root / "val", {"a": 1, "b": 1})
    make_folder(root, {"c": 2})
    with pytest.raises(ValueError, match="Point load_image_folder at .*train"):
        ds.load_image_folder(root)


def test_val_split_with_an_unknown_class_is_refused(tmp_path):
    root = tmp_path / "chest"
    make_folder(root / "train", {"a": 2, "b": 2})
    make_folder(root / "val", {"a": 1, "zebra": 1})
    with pytest.raises(ValueError, match="zebra"):
        ds.load_image_folder(root)


def test_hidden_folders_and_files_are_skipped_and_counted(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root, {"cats": 2, "dogs": 2})
    for hidden in (root / "cats" / ".ipynb_checkpoints", root / "dogs" / ".thumbnails"):
        hidden.mkdir()
        Image.new("RGB", (12, 10), (1, 2, 3)).save(hidden / "0-checkpoint.png")
    Image.new("RGB", (12, 10)).save(root / "cats" / "._0.png")
    with pytest.warns(UserWarning, match="Skipped 3 hidden file"):
        splits = ds.load_image_folder(root, size=8, val_fraction=0.0)
    assert splits.train.class_counts() == [2, 2] and len(splits.extra["hidden"]) == 3
    assert "3 hidden skipped" in splits.description


def test_12_bit_xray_in_a_16_bit_png_keeps_its_grey_levels(tmp_path):
    ramp = np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)  # 12-bit values, 4096 levels
    Image.fromarray(ramp).save(tmp_path / "xray.png")
    assert Image.open(tmp_path / "xray.png").mode == "I;16"
    got = pixels(tmp_path / "xray.png")[..., 0]
    assert len(np.unique(got)) == 256 and got.min() == 0 and got.max() == 255  # not 17 levels


def test_float_image_in_0_1_is_not_black(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(values, "F").save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    assert pixels(tmp_path / "f.tif")[0, :, 0].tolist() == [0, 64, 128, 255]
    Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32), "F").save(tmp_path / "f8.tif")
    assert pixels(tmp_path / "f8.tif")[0, :, 0].tolist() == [0, 100, 255]  # 0..255 floats stay


def test_load_image_explains_empty_missing_and_folder(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(OSError, match="empty"):
        ds.load_image(tmp_path / "empty.png")
    with pytest.raises(FileNotFoundError):
        ds.load_image(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        ds.load_image(tmp_path)


def test_image_folder_given_a_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        ds.load_image_folder(tmp_path / "a.png")


# --- the real loaders on fake publisher files -------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def fake_medmnist(n=(6, 4, 4), px=28, seed=0) -> tuple[bytes, dict]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, px, px), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 2).astype(np.uint8).reshape(-1, 1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue(), arrays


def test_medical_from_a_served_npz(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("FTLIB_OFFLINE")
    data, arrays = fake_medmnist()
    server = FakeServer({"/pneumoniamnist.npz": data})
    try:
        monkeypatch.setitem(sources.MEDICAL, 28, sources.Source(
            "medmnist/pneumoniamnist.npz", server.url("/pneumoniamnist.npz"), md5=md5(data)))
        splits = ds.load_dataset("medical", "auto", size=28)
        assert len(server.requests) == 1
        assert splits.source == "real" and splits.class_names == CLASS_NAMES["medical"]
        assert "PneumoniaMNIST" in splits.description and "CC BY 4.0" in splits.description
        for split in ("train", "val", "test"):
            part = getattr(splits, split)
            assert part.images.shape == (len(arrays[f"{split}_images"]), 3, 28, 28)
            for c in range(3):
                assert np.array_equal(part.images[:, c].numpy(), arrays[f"{split}_images"])
            assert part.labels.tolist() == arrays[f"{split}_labels"].reshape(-1).tolist()
        assert "medical [real]" in capsys.readouterr().out
        ds.load_dataset("medical", "real", size=28)  # second time: from the tensor cache
        assert len(server.requests) == 1 and ds.tensor_cache_path("medical", 28).exists()
    finally:
        server.close()


def test_medical_uses_the_next_published_size_and_resizes(monkeypatch, tmp_path, no_network):
    data, arrays = fake_medmnist(px=64)
    source = sources.Source("medmnist/pneumoniamnist_64.npz", "http://127.0.0.1:9/x", md5=md5(data))
    monkeypatch.setitem(sources.MEDICAL, 64, source)
    (tmp_path / "cache" / "medmnist").mkdir(parents=True)
    (tmp_path / "cache" / source.path).write_bytes(data)  # placed by an instructor: no network needed
    splits = ds.load_dataset("medical", "auto", size=32)  # 32 px -> the 64 px release, resized
    assert splits.source == "real" and splits.train.images.shape == (6, 3, 32, 32)
    assert "64 px release, resized to 32 px" in splits.description


def test_corrupt_cached_file_is_not_used(monkeypatch, tmp_path, no_network, capsys):
    data, _ = fake_medmnist()
    source = sources.Source("medmnist/pneumoniamnist.npz", "http://127.0.0.1:9/x", md5=md5(data))
    monkeypatch.setitem(sources.MEDICAL, 28, source)
    (tmp_path / "cache" / "medmnist").mkdir(parents=True)
    (tmp_path / "cache" / source.path).write_bytes(data[:-10])  # damaged copy
    with pytest.raises(OfflineError):
        ds.load_dataset("medical", "real", size=28)
    assert not (tmp_path / "cache" / source.path).exists()


def fake_eurosat_zip(per_class: int = 4) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, name in enumerate(CLASS_NAMES["satellite"]):
            for i in range(1, per_class + 1):
                jpg = io.BytesIO()
                Image.new("RGB", (64, 64), (k * 25, 255 - k * 25, 128)).save(jpg, "JPEG", quality=95)
                zf.writestr(f"2750/{name}/{name}_{i}.jpg", jpg.getvalue())
    return buf.getvalue()


def test_satellite_from_a_cached_zip_with_the_stored_split_rule(monkeypatch, tmp_path, no_network):
    data = fake_eurosat_zip()
    source = sources.Source("eurosat/EuroSAT.zip", "http://127.0.0.1:9/x", md5=md5(data))
    monkeypatch.setattr(sources, "SATELLITE", source)
    small = {name: {"train": [1, 4], "val": [2], "test": [3]} for name in CLASS_NAMES["satellite"]}
    monkeypatch.setattr(eurosat_split, "read_split", lambda: small)
    (tmp_path / "cache" / "eurosat").mkdir(parents=True)
    (tmp_path / "cache" / source.path).write_bytes(data)
    splits = ds.load_dataset("satellite", "real", size=32)
    assert splits.class_names == CLASS_NAMES["satellite"] and "EuroSAT" in splits.description
    assert splits.train.class_counts() == [2] * 10 and splits.test.class_counts() == [1] * 10
    assert splits.val.images.shape == (10, 3, 32, 32)
    colour = splits.val.images[3, :, 16, 16].int()  # class 3: (75, 180, 128), JPEG keeps it within a few levels
    assert (colour - torch.tensor([75, 180, 128])).abs().max() <= 4
    assert (tmp_path / "cache" / "eurosat" / "2750" / "Forest" / "Forest_1.jpg").exists()  # torchvision's layout


def test_stored_eurosat_split_is_complete_disjoint_and_seeded():
    stored = eurosat_split.read_split()
    assert sum(len(ids) for c in stored.values() for ids in c.values()) == 27000
    for name, count in sources.EUROSAT_COUNTS.items():
        parts = stored[name]
        everything = parts["train"] + parts["val"] + parts["test"]
        assert sorted(everything) == list(range(1, count + 1))  # each image exactly once
        assert (len(parts["train"]), len(parts["val"])) == (count * 3 // 5, count // 5)
    assert stored == eurosat_split.make_split(seed=0)  # the documented rule reproduces the file


def idx_file(magic: int, array: np.ndarray) -> bytes:
    """The big-endian idx format of (Fashion-)MNIST, gzipped, written by hand."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_retail_from_served_idx_files(monkeypatch, tmp_path):
    monkeypatch.delenv("FTLIB_OFFLINE")
    monkeypatch.setattr(ds, "RETAIL_VAL_PER_CLASS", 1)
    rng = np.random.default_rng(1)
    train_x, test_x = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    train_y, test_y = np.arange(30) % 10, np.arange(10)
    files = {"train-images-idx3-ubyte.gz": idx_file(2051, train_x),
             "train-labels-idx1-ubyte.gz": idx_file(2049, train_y),
             "t10k-images-idx3-ubyte.gz": idx_file(2051, test_x),
             "t10k-labels-idx1-ubyte.gz": idx_file(2049, test_y)}
    server = FakeServer({f"/{k}": v for k, v in files.items()})
    try:
        for name, data in files.items():
            monkeypatch.setitem(sources.RETAIL, name, sources.Source(f"FashionMNIST/raw/{name}", server.url(f"/{name}"),
                                                                     md5=md5(data)))
        splits = ds.load_dataset("retail", "auto", size=28)
    finally:
        server.close()
    assert splits.source == "real" and splits.class_names == CLASS_NAMES["retail"]
    assert splits.val.class_counts() == [1] * 10 and splits.train.class_counts() == [2] * 10
    assert torch.equal(splits.test.images[:, 2], torch.as_tensor(test_x, dtype=torch.uint8))
    rebuilt = torch.cat([splits.train.images, splits.val.images])[:, 0].reshape(20 + 10, -1)
    assert sorted(map(tuple, rebuilt.tolist())) == sorted(map(tuple, train_x.reshape(30, -1).tolist()))


def test_one_cache_serves_every_size_and_a_subset_is_chosen_before_resizing(monkeypatch, tmp_path, no_network):
    data, arrays = fake_medmnist(n=(40, 10, 10), px=64)
    source = sources.Source("medmnist/pneumoniamnist_64.npz", "http://127.0.0.1:9/x", md5=md5(data))
    monkeypatch.setitem(sources.MEDICAL, 64, source)
    (tmp_path / "cache" / "medmnist").mkdir(parents=True)
    (tmp_path / "cache" / source.path).write_bytes(data)
    whole = ds.fetch_dataset("medical", 48)
    cache = ds.tensor_cache_path("medical", 48)
    assert cache == ds.tensor_cache_path("medical", 64) and cache.name == "medical-64px.pt"
    assert torch.load(cache, weights_only=True)["train_images"].shape[-1] == 64  # kept at the release's size
    picked = ds.fetch_dataset("medical", 48, per_class=(3, 2, None), seed=5)
    assert picked.train.class_counts() == [3, 3] and picked.val.class_counts() == [2, 2] and len(picked.test) == 10
    # the same images as resizing everything, then drawing the subset with the same seed
    assert torch.equal(picked.train.images, whole.train.subset(3, 5).images)
    assert picked.train.images.shape[1:] == (3, 48, 48) and picked.train.images.is_contiguous()
    native = ds.cache_dataset("medical", 48)
    assert native.train.images.shape[1:] == (3, 64, 64) and "resized" not in native.description


# --- choosing the world ------------------------------------------------------------------------------


@pytest.fixture
def fake_standins(monkeypatch):
    """A stand-in module that records its calls (the real one is tested on its own)."""
    calls = []

    def make_standin(domain, *, size=64, per_class=(4, 2, 2), seed=0):
        calls.append((domain, size, per_class, seed))
        names = CLASS_NAMES[domain]
        part = lambda n: TensorImageDataset(torch.zeros(n * len(names), 3, size, size, dtype=torch.uint8),  # noqa: E731
                                            torch.arange(len(names)).repeat(n), names)
        return DataSplits(domain, "standin", "fake stand-in", names, part(per_class[0]), part(per_class[1]),
                          part(per_class[2]))

    monkeypatch.setitem(sys.modules, "ftlib.course.standins", types.SimpleNamespace(make_standin=make_standin))
    return calls


def test_auto_uses_the_standin_offline(fake_standins, no_network, capsys):
    splits = ds.load_dataset("satellite", "auto", size=16, seed=5, per_class=(3, 1, 1))
    assert splits.source == "standin" and fake_standins == [("satellite", 16, (3, 1, 1), 5)]
    assert "satellite [standin]" in capsys.readouterr().out


def test_auto_falls_back_when_there_is_no_network(monkeypatch, fake_standins, capsys):
    monkeypatch.delenv("FTLIB_OFFLINE")

    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    splits = ds.load_dataset("medical", "auto", size=16)
    out = capsys.readouterr().out
    assert splits.source == "standin" and "unavailable" in out and "medical [standin]" in out


def test_real_offline_names_the_offline_world_and_the_fetch_command(no_network):
    with pytest.raises(OfflineError) as info:
        ds.load_dataset("retail", "real")
    assert "offline world" in str(info.value) and "python -m data_scripts.fetch" in str(info.value)


def test_auto_uses_real_data_already_in_the_cache_even_offline(monkeypatch, tmp_path, no_network, fake_standins):
    data, _ = fake_medmnist()
    monkeypatch.setitem(sources.MEDICAL, 28, sources.Source("medmnist/m.npz", "http://127.0.0.1:9/x", md5=md5(data)))
    (tmp_path / "cache" / "medmnist").mkdir(parents=True)
    (tmp_path / "cache" / "medmnist" / "m.npz").write_bytes(data)
    splits = ds.load_dataset("medical", size=28, per_class=(2, 1, None))
    assert splits.source == "real" and not fake_standins
    assert splits.train.class_counts() == [2, 2] and splits.val.class_counts() == [1, 1]
    assert len(splits.test) == 4


@pytest.fixture
def medmnist_in_cache(monkeypatch, tmp_path):
    """A fake PneumoniaMNIST npz placed in the data cache, as an instructor's copy would be."""
    data, _ = fake_medmnist()
    monkeypatch.setitem(sources.MEDICAL, 28, sources.Source("medmnist/m.npz", "http://127.0.0.1:9/x", md5=md5(data)))
    (tmp_path / "cache" / "medmnist").mkdir(parents=True)
    (tmp_path / "cache" / "medmnist" / "m.npz").write_bytes(data)
    return tmp_path / "cache"


def test_read_only_cache_is_read_without_writing(monkeypatch, medmnist_in_cache, no_network, capsys):
    ds.load_dataset("medical", "real", size=28)  # builds the tensor cache while writable
    make_read_only(monkeypatch, medmnist_in_cache)
    before = snapshot(medmnist_in_cache)
    assert ds.load_dataset("medical", "real", size=28).train.images.shape == (6, 3, 28, 28)
    assert snapshot(medmnist_in_cache) == before


def test_read_only_cache_with_only_source_files_decodes_in_memory(monkeypatch, medmnist_in_cache, no_network, capsys):
    make_read_only(monkeypatch, medmnist_in_cache)
    before = snapshot(medmnist_in_cache)
    splits = ds.load_dataset("medical", "real", size=28)
    out = capsys.readouterr().out
    assert splits.source == "real" and "cannot save the decoded tensors" in out and "FTLIB_DATA=" in out
    assert snapshot(medmnist_in_cache) == before


def test_needed_write_to_a_read_only_cache_falls_back_or_explains(monkeypatch, tmp_path, fake_standins, capsys):
    monkeypatch.delenv("FTLIB_OFFLINE")
    data, _ = fake_medmnist()
    server = FakeServer({"/m.npz": data})
    try:
        monkeypatch.setitem(sources.MEDICAL, 28, sources.Source("medmnist/m.npz", server.url("/m.npz"), md5=md5(data)))
        (tmp_path / "cache").mkdir()
        make_read_only(monkeypatch, tmp_path / "cache")
        splits = ds.load_dataset("medical", "auto", size=28)
        lines = [line for line in capsys.readouterr().out.splitlines() if "unavailable" in line]
        assert splits.source == "standin" and len(lines) == 1 and "read-only" in lines[0]
        with pytest.raises(ds.CacheNotWritableError, match="FTLIB_DATA="):
            ds.load_dataset("medical", "real", size=28)
        assert server.requests == [] and snapshot(tmp_path / "cache") == {}
    finally:
        server.close()


def _damage_tensor_cache() -> None:
    cache = ds.tensor_cache_path("medical", 28)
    cache.write_bytes(cache.read_bytes()[:200])  # an interrupted copy


def test_damaged_tensor_cache_is_rebuilt_from_the_source_files(medmnist_in_cache, no_network, capsys):
    first = ds.load_dataset("medical", "real", size=28)
    _damage_tensor_cache()
    again = ds.load_dataset("medical", "real", size=28)
    out = capsys.readouterr().out
    assert "medical-28px.pt is damaged" in out and "rebuilding" in out
    assert torch.equal(again.train.images, first.train.images)
    assert torch.load(ds.tensor_cache_path("medical", 28), weights_only=True)["train_images"].shape == (6, 3, 28, 28)


def test_damaged_tensor_cache_in_a_read_only_cache_is_rebuilt_in_memory(monkeypatch, medmnist_in_cache,
                                                                         no_network, capsys):
    first = ds.load_dataset("medical", "real", size=28)
    _damage_tensor_cache()
    make_read_only(monkeypatch, medmnist_in_cache)
    before = snapshot(medmnist_in_cache)
    again = ds.load_dataset("medical", "real", size=28)
    out = capsys.readouterr().out
    assert "rebuilding" in out and "cannot save the decoded tensors" in out
    assert torch.equal(again.val.images, first.val.images) and snapshot(medmnist_in_cache) == before


def test_damaged_tensor_cache_without_sources_explains_or_falls_back(medmnist_in_cache, no_network,
                                                                     fake_standins, capsys):
    ds.load_dataset("medical", "real", size=28)
    _damage_tensor_cache()
    (medmnist_in_cache / "medmnist" / "m.npz").unlink()
    with pytest.raises(ds.DamagedCacheError) as caught:
        ds.load_dataset("medical", "real", size=28)
    message = str(caught.value)
    assert "medical-28px.pt is damaged" in message and "python -m data_scripts.fetch medical" in message
    assert "PytorchStreamReader" not in message.split("(")[0]
    capsys.readouterr()
    splits = ds.load_dataset("medical", "auto", size=28)
    lines = [line for line in capsys.readouterr().out.splitlines() if "unavailable" in line]
    assert splits.source == "standin" and len(lines) == 1 and "damaged" in lines[0]


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="medical, satellite, retail"):
        ds.load_dataset("cats")
    with pytest.raises(ValueError, match="source"):
        ds.load_dataset("medical", source="internet")


# --- the fetch command ---------------------------------------------------------------------------------


def test_fetch_then_check_retail_and_weights(monkeypatch, tmp_path, capsys):
    from data_scripts import fetch

    monkeypatch.delenv("FTLIB_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(ds, "RETAIL_VAL_PER_CLASS", 1)
    arrays = {"train-images-idx3-ubyte.gz": (2051, np.zeros((20, 28, 28))), "train-labels-idx1-ubyte.gz":
              (2049, np.arange(20) % 10), "t10k-images-idx3-ubyte.gz": (2051, np.ones((10, 28, 28))),
              "t10k-labels-idx1-ubyte.gz": (2049, np.arange(10))}
    files = {f"/{k}": idx_file(*v) for k, v in arrays.items()}
    weights = b"pretend these are resnet weights"
    files["/resnet-" + hashlib.sha256(weights).hexdigest()[:8] + ".pth"] = weights
    server = FakeServer(files)
    try:
        for name in arrays:
            monkeypatch.setitem(sources.RETAIL, name, sources.Source(
                f"FashionMNIST/raw/{name}", server.url(f"/{name}"), md5=md5(files[f"/{name}"])))
        weight_name = [k for k in files if k.endswith(".pth")][0][1:]
        weight = sources.Source(weight_name, server.url(f"/{weight_name}"), sha256=weight_name[7:15])
        monkeypatch.setattr(fetch, "weight_sources", lambda names=None: [weight])
        assert fetch.main(["retail", "weights"]) == 0
        assert fetch.main(["retail", "weights"]) == 0  # idempotent: nothing downloaded again
        assert len(server.requests) == 5
    finally:
        server.close()
    out = capsys.readouterr().out
    assert str(tmp_path / "cache") in out and str(tmp_path / "torch" / "hub") in out and "MiB in total" in out
    assert (tmp_path / "torch" / "hub" / "checkpoints" / weight_name).read_bytes() == weights
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    assert fetch.main(["retail", "weights", "--check"]) == 0
    (tmp_path / "cache" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"broken")
    (tmp_path / "torch" / "hub" / "checkpoints" / weight_name).unlink()
    assert fetch.main(["retail", "weights", "--check"]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT" in out and "MISSING" in out and "python -m data_scripts.fetch retail weights" in out


def test_fetch_offline_explains_and_fails(no_network, capsys):
    from data_scripts import fetch

    assert fetch.main(["medical"]) == 1
    assert "offline world" in capsys.readouterr().out


def test_photos_from_the_cache_and_offline(monkeypatch, tmp_path, no_network):
    with pytest.raises(OfflineError, match="offline world"):
        ds.load_photos()
    photos = {}
    for i, name in enumerate(["cat.png", "cup.jpg"]):
        buf = io.BytesIO()
        Image.new("RGB", (30, 20), (50 * i, 100, 200)).save(buf, "PNG" if name.endswith("png") else "JPEG")
        (tmp_path / "cache" / "photos").mkdir(parents=True, exist_ok=True)
        (tmp_path / "cache" / "photos" / name).write_bytes(buf.getvalue())
        photos[name] = sources.Source(f"photos/{name}", "http://127.0.0.1:9/x",
                                      sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    monkeypatch.setattr(sources, "PHOTOS", photos)
    images, names = ds.load_photos(size=16)
    assert names == ["cat", "cup"] and images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8
    assert images[0, :, 8, 8].tolist() == [0, 100, 200]
