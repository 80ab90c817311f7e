"""`python -m ftlib.bench.lesson_times` on tiny notebooks written here (never on the real lessons),
and `ftlib.course` reading the recorded times."""

import dataclasses
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from ftlib import course
from ftlib.bench import lesson_times

ROOT = Path(__file__).resolve().parent.parent


def _notebook(path: Path, *cells: str) -> Path:
    """A notebook of code cells, committed-style (no outputs)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def copies(tmp_path):
    """Copies of the recorded times and of the README, for --write to change."""
    times, readme = tmp_path / "lesson_times.json", tmp_path / "README.md"
    shutil.copy(course.TIMES_FILE, times)
    shutil.copy(ROOT / "README.md", readme)
    return times, readme


def test_lesson_numbers_and_default_notebooks(tmp_path):
    assert lesson_times.lesson_number(Path("notebooks/04_freezing_layers.ipynb")) == "04"
    with pytest.raises(ValueError, match="NN_title"):
        lesson_times.lesson_number(Path("scratch.ipynb"))
    for name in ("01_b.ipynb", "00_a.ipynb", "notes.ipynb", "1_x.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in lesson_times.default_notebooks(tmp_path)] == ["00_a.ipynb", "01_b.ipynb"]


def test_write_times_and_only_the_marked_readme_block(tmp_path, copies, monkeypatch, capsys):
    times, readme = copies
    before_json, before_readme = json.loads(times.read_text()), readme.read_text()
    nb = _notebook(tmp_path / "00_tiny.ipynb", "import os\nx = 1 + 1", "assert x == 2 and os.environ['FTLIB_BUDGET'] == 'quick'")
    monkeypatch.setattr(lesson_times, "train_speed", lambda: 84.0)   # half the recorded machine's speed
    assert lesson_times.main(["--write", "--note", "busy", "--json", str(times), "--readme", str(readme), str(nb)]) == 0
    out = capsys.readouterr().out
    assert "00_tiny.ipynb" in out and "84 img/s here" in out          # the table
    written = json.loads(times.read_text())
    assert set(written) == {"machine", "date", "train_img_s", "lessons"} and written["train_img_s"] == 84.0
    assert written["machine"].endswith(f"; busy, {written['date']}") and "-core" in written["machine"]
    assert 0 < written["lessons"]["00"] < 300
    assert {k: v for k, v in written["lessons"].items() if k != "00"} == \
        {k: v for k, v in before_json["lessons"].items() if k != "00"}   # lessons not run keep their times
    start, end = lesson_times.MARKERS
    after = readme.read_text()
    head, _, rest = before_readme.partition(start)
    _, _, tail = rest.partition(end)
    assert after.startswith(head + start) and after.endswith(end + tail)    # nothing outside the block changed
    block = after[len(head + start):len(after) - len(end + tail)]
    assert block == "\n" + lesson_times.readme_text(written) + "\n"
    assert f"00 {written['lessons']['00']:.0f} s" in block and "; busy, " in block


def test_a_failing_notebook_writes_nothing(tmp_path, copies, monkeypatch, capsys):
    times, readme = copies
    before = times.read_text(), readme.read_text()
    nb = _notebook(tmp_path / "03_broken.ipynb", "x = 1", "raise RuntimeError('lesson claim not shown')")
    monkeypatch.setattr(lesson_times, "train_speed", lambda: 100.0)
    assert lesson_times.main(["--write", "--json", str(times), "--readme", str(readme), str(nb)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "lesson claim not shown" in captured.out
    assert "nothing written" in captured.err
    assert (times.read_text(), readme.read_text()) == before


def test_a_notebook_past_its_timeout_fails(tmp_path):
    nb = _notebook(tmp_path / "05_slow.ipynb", "import time\ntime.sleep(60)")
    run = lesson_times.run_notebook(nb, timeout=2)
    assert not run.passed and "timed out after 2 s" in run.output


def test_readme_needs_exactly_one_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Course\n\nno markers here\n")
    with pytest.raises(ValueError, match="lesson-times"):
        lesson_times.write_readme(readme, "x")
    readme.write_text("a\n<!-- lesson-times -->\nold\ntext\n<!-- /lesson-times -->\nb\n")
    lesson_times.write_readme(readme, "new")
    assert readme.read_text() == "a\n<!-- lesson-times -->\nnew\n<!-- /lesson-times -->\nb\n"


def test_readme_text_keeps_each_time_on_one_line():
    times = {"machine": "2-core x86-64 CPU, no GPU; 2026-11-21", "lessons": {f"{i:02d}": 10 + i for i in range(12)}}
    text = lesson_times.readme_text(times, width=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert all(f"{i:02d} {10 + i} s" in text for i in range(12))


def test_course_reads_the_recorded_times():
    recorded = json.loads(course.TIMES_FILE.read_text())
    assert course.REFERENCE["train_img_s"] == recorded["train_img_s"] and course.REFERENCE["machine"] == recorded["machine"]
    by_number = {lesson.number: lesson for lesson in course.LESSONS}
    for number, seconds in recorded["lessons"].items():
        assert by_number[number].quick_s == seconds
    lesson = by_number["04"]
    assert course.estimate_seconds(lesson, course.REFERENCE["train_img_s"] / 2) == pytest.approx(2 * lesson.quick_s)
    unmeasured = dataclasses.replace(lesson, quick_s=None)                 # a lesson not measured yet
    assert course.estimate_seconds(unmeasured, 100.0) is None


def test_the_full_budget_is_run_and_recorded_apart_from_the_quick_one(tmp_path, copies, monkeypatch):
    times, readme = copies
    before = json.loads(times.read_text())
    nb = _notebook(tmp_path / "03_tiny.ipynb", "import os\nassert os.environ['FTLIB_BUDGET'] == 'full'")
    monkeypatch.setattr(lesson_times, "train_speed", lambda: 50.0)
    args = ["--write", "--budget", "full", "--json", str(times), "--readme", str(readme), str(nb)]
    assert lesson_times.main(args) == 0
    written = json.loads(times.read_text())
    assert {k: v for k, v in written.items() if k != "full"} == {k: v for k, v in before.items() if k != "full"}
    assert written["full"]["train_img_s"] == 50.0 and 0 < written["full"]["lessons"]["03"] < 300
    block = readme.read_text()
    assert "Full budget, offline" in block and f"03 {written['full']['lessons']['03']:.0f} s" in block
    nb_quick = _notebook(tmp_path / "00_tiny.ipynb", "x = 1")                 # a quick run keeps the full part
    assert lesson_times.main(["--write", "--json", str(times), "--readme", str(readme), str(nb_quick)]) == 0
    assert json.loads(times.read_text())["full"] == written["full"]


def test_estimates_for_the_full_budget_use_the_full_reference(monkeypatch):
    lesson = course.Lesson("04", "t", "s", quick_s=100.0, full_s=600.0)
    monkeypatch.setitem(course.REFERENCE_FULL, "train_img_s", 60.0)
    assert course.estimate_seconds(lesson, 30.0, budget="full") == pytest.approx(1200.0)
    assert course.estimate_seconds(course.Lesson("05", "t", "s", quick_s=10.0), 30.0, budget="full") is None
    with pytest.raises(ValueError, match="quick"):
        course.estimate_seconds(lesson, 30.0, budget="fast")
