"""The lesson-12 stand-in: exact boxes, labels 1..3, deterministic, no colour shortcut; and
Penn-Fudan's reader and first-use checksum on a tiny fake copy (no network)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ftlib.course import pennfudan
from ftlib.course.detection_standin import DETECTION_CLASSES, draw_scene, make_detection_standin


def test_scenes_have_exact_boxes_inside_the_image_and_labels_from_one():
    data = make_detection_standin(24, 8, size=96, seed=1)
    assert data.train.images.shape == (24, 3, 96, 96) and data.train.images.dtype == torch.uint8
    assert data.class_names == DETECTION_CLASSES
    for t in data.train.targets + data.test.targets:
        b = t["boxes"]
        assert 1 <= len(b) <= 4 and t["labels"].dtype == torch.int64
        assert (b[:, 2:] > b[:, :2]).all() and b.min() >= 0 and b.max() <= 96
        assert set(t["labels"].tolist()) <= {1, 2, 3}
    labels = torch.cat([t["labels"] for t in data.train.targets])
    assert set(labels.tolist()) == {1, 2, 3}


def test_the_stand_in_is_deterministic_and_the_test_split_does_not_depend_on_the_train_size():
    a, b = make_detection_standin(3, 2, size=64, seed=5), make_detection_standin(6, 2, size=64, seed=5)
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.train.images, b.train.images[:3])
    assert not torch.equal(a.test.images, make_detection_standin(3, 2, size=64, seed=6).test.images)


def test_objects_are_drawn_where_their_boxes_are():
    g = torch.Generator().manual_seed(0)
    image, target = draw_scene(g, 128)
    assert image.shape == (3, 128, 128)
    x1, y1, x2, y2 = target["boxes"][0].round().int().tolist()
    assert x2 - x1 >= 10 and y2 - y1 >= 10


def test_mean_colour_per_class_is_about_the_same():
    data = make_detection_standin(90, 1, size=96, seed=0)
    per_class = {c: [] for c in (1, 2, 3)}
    for im, t in zip(data.train.images, data.train.targets):
        for (x1, y1, x2, y2), c in zip(t["boxes"].round().int().tolist(), t["labels"].tolist()):
            per_class[c].append(im[:, y1:y2, x1:x2].float().mean((1, 2)) / 255)
    means = torch.stack([torch.stack(v).mean(0) for v in per_class.values()])
    assert (means.max(0).values - means.min(0).values).max() < 0.08


def _fake_pennfudan(root, n=4):
    folder = root / "PennFudanPed"
    (folder / "PNGImages").mkdir(parents=True)
    (folder / "PedMasks").mkdir()
    for i in range(n):
        Image.fromarray(np.full((40, 60, 3), 30 * i, np.uint8)).save(folder / "PNGImages" / f"P{i}.png")
        mask = np.zeros((40, 60), np.uint8)
        mask[5:20, 10:20], mask[10:30, 30:45] = 1, 2
        Image.fromarray(mask).save(folder / "PedMasks" / f"P{i}_mask.png")
    zpath = root / "PennFudanPed.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in folder.rglob("*.png"):
            z.write(p, p.relative_to(root))
    return zpath


def test_boxes_from_mask():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:4, 3:7] = 1
    mask[9, 9] = 2
    assert pennfudan.boxes_from_mask(mask).tolist() == [[3, 2, 7, 4], [9, 9, 10, 10]]


def test_penn_fudan_records_its_checksum_on_first_use_and_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "cache"))
    made = _fake_pennfudan(tmp_path / "src")
    dest = tmp_path / "cache" / pennfudan.ZIP_PATH
    dest.parent.mkdir(parents=True)
    dest.write_bytes(made.read_bytes())
    assert pennfudan.pennfudan_source().sha256 is None
    note = pennfudan.record_checksum(dest)
    assert "gives no checksum" in note and pennfudan.record_checksum(dest) is None
    from ftlib.course.download import file_checksum, verify_file
    source = pennfudan.pennfudan_source()
    assert source.sha256 == file_checksum(dest) and verify_file(dest, sha256=source.sha256) is None
    dest.write_bytes(made.read_bytes() + b"changed")
    assert verify_file(dest, sha256=source.sha256) is not None     # a changed copy is caught
    dest.write_bytes(made.read_bytes())
    splits = pennfudan.load_pennfudan(3, 1, size=32)
    assert splits.train.images.shape == (3, 3, 32, 32) and splits.class_names == ["pedestrian"]
    box = splits.train.targets[0]["boxes"][0]
    assert box.tolist() == pytest.approx([10 * 32 / 60, 5 * 32 / 40, 20 * 32 / 60, 20 * 32 / 40])


def test_the_fetch_command_downloads_penn_fudan_and_records_what_it_saw(tmp_path, monkeypatch, capsys):
    """`python -m data_scripts.fetch pedestrians`, served from 127.0.0.1: the first run records
    the SHA-256 and says so; a later run verifies against the record and keeps the file."""
    import threading
    from dataclasses import replace
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from functools import partial

    from data_scripts import fetch

    made = _fake_pennfudan(tmp_path / "src")
    handler = partial(SimpleHTTPRequestHandler, directory=str(made.parent))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/PennFudanPed.zip"
        monkeypatch.setattr(pennfudan, "PENNFUDAN", replace(pennfudan.PENNFUDAN, url=url))
        monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "cache"))
        monkeypatch.delenv("FTLIB_OFFLINE", raising=False)
        assert fetch.fetch(["pedestrians"]) == 0
        out = capsys.readouterr().out
        assert "gives no checksum: recorded the SHA-256" in out
        assert fetch.check(["pedestrians"]) == 0 and fetch.fetch(["pedestrians"]) == 0
        assert "recorded" not in capsys.readouterr().out
        assert pennfudan.load_pennfudan(2, 2, size=16).test.images.shape == (2, 3, 16, 16)
    finally:
        httpd.shutdown()


def test_the_world_chooser_takes_penn_fudan_when_it_is_there_and_the_stand_in_offline(tmp_path, monkeypatch, capsys):
    from ftlib.detection import load_detection_data

    monkeypatch.setenv("FTLIB_DATA", str(tmp_path / "cache"))
    dest = tmp_path / "cache" / pennfudan.ZIP_PATH
    dest.parent.mkdir(parents=True)
    dest.write_bytes(_fake_pennfudan(tmp_path / "src").read_bytes())
    monkeypatch.delenv("FTLIB_OFFLINE", raising=False)
    real = load_detection_data(2, 1, size=16)
    assert real.class_names == ["pedestrian"] and real.train.images.shape[-1] == 32
    monkeypatch.setenv("FTLIB_OFFLINE", "1")
    offline = load_detection_data(2, 1, size=32)
    assert offline.class_names == DETECTION_CLASSES and "stand-in" in capsys.readouterr().out
