"""ftlib.bench.memory: the peak reading, a lesson's peak from its kernel, a loader's peak in a
fresh process, and the table's verdicts. The full-size measurement is `make memory`."""

from __future__ import annotations

import hashlib
import io
import sys

import nbformat
import numpy as np
import pytest

from ftlib.bench import memory


def test_peak_reading_grows_with_what_the_process_holds():
    import subprocess

    # in a fresh process: this one's peak may already be above anything a test allocates now
    code = ("import numpy as np\nfrom ftlib.bench.memory import peak_rss_mib as p\n"
            "before = p()\nheld = np.ones(300 * 2**20, dtype=np.uint8)\nprint(before, p(), held[-1])")
    before, after, _ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout.split()
    assert float(before) > 10 and float(after) - float(before) > 250, (before, after)


def test_a_lesson_peak_is_read_in_its_own_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nbig = np.ones(200 * 2**20, dtype=np.uint8)\n"
                                          "del big")]
    path = tmp_path / "99_big.ipynb"
    nbformat.write(nb, str(path))
    row = memory.lesson_peak(path, timeout=120)
    assert row["ended"] == "ran" and row["peak_mib"] > 200, row   # held for a moment, then freed: still the peak
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, str(path))
    assert memory.lesson_peak(path, timeout=120)["ended"] == "errors in cells [1]"


def test_a_loader_runs_in_a_fresh_process_against_local_files(tmp_path):
    from ftlib.course.sources import MEDICAL

    arrays = {f"{s}_{k}": (np.full((n, 64, 64), 7, np.uint8) if k == "images" else (np.arange(n) % 2).reshape(-1, 1))
              for s, n in (("train", 40), ("val", 10), ("test", 10)) for k in ("images", "labels")}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (tmp_path / MEDICAL[64].path).parent.mkdir(parents=True)
    (tmp_path / MEDICAL[64].path).write_bytes(buf.getvalue())
    checksums = {MEDICAL[64].path: hashlib.md5(buf.getvalue()).hexdigest()}
    row = memory.loader_peak("medical", "first", (5, 2, 3), tmp_path, checksums, timeout=120)
    assert row["ended"] == "ran" and row["counts"] == [10, 4, 6], row
    assert row["peak_mib"] >= row["imports_mib"] > 10
    assert (tmp_path / "tensors" / "medical-64px.pt").exists()        # the first load wrote the cache
    (tmp_path / "tensors" / "medical-64px.pt").unlink()
    wrong = memory.loader_peak("medical", "bad", None, tmp_path, {MEDICAL[64].path: "0" * 32}, timeout=120)
    assert wrong["peak_mib"] is None and wrong["ended"] != "ran"


def test_the_table_counts_only_counted_rows():
    rows = [{"data set": "retail", "case": "whole", "peak_mib": 2000.0, "counted": False, "ended": "ran"},
            {"notebook": "04_x.ipynb", "peak_mib": 1000.0, "ended": "ran"},
            {"notebook": "05_x.ipynb", "peak_mib": None, "ended": "stopped after 9 s"}]
    table = memory.format_rows(rows, limit_mib=1536).splitlines()
    assert "reference, not counted" in table[1] and "under the limit" in table[2]
    assert "stopped after 9 s" in table[3]
    assert "OVER" in memory.format_rows([{**rows[1], "peak_mib": 1600.0}], limit_mib=1536)


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is Linux's")
def test_peak_is_not_inherited_from_a_big_parent(tmp_path):
    import subprocess

    held = np.ones(300 * 2**20, dtype=np.uint8)
    out = subprocess.run([sys.executable, "-c", "from ftlib.bench.memory import peak_rss_mib as p; print(p())"],
                         capture_output=True, text=True, check=True).stdout
    assert held[0] == 1 and float(out) < memory.peak_rss_mib() - 200   # getrusage would report the parent's 300 MiB
