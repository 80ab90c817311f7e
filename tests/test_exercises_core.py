"""`Exercise.check` shows its feedback and never stops the notebook; `Exercise.verify` raises.

Each outcome of `check` is run once on a real lesson exercise: a right answer, a wrong one,
the placeholder, a call with the wrong arguments, an answer of the wrong type, and the
student's own code raising (inside a function the checker calls, and inside a model's forward).
"""

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from ftlib.exercises import CodeRaised, Incorrect, NotAnswered, lesson01, lesson02, lesson03, lesson04, lesson06

LABELS = [5, 10, 25, 50]
PRETRAINED = {5: 0.40, 10: 0.50, 25: 0.70, 50: 0.80}
NEVER = {5: 0.10, 10: 0.20, 25: 0.30, 50: 0.40}  # scratch never reaches pretrained's 0.50: the answer is None


def divides_by_zero(model, loader):
    return 1 / 0


def test_a_right_answer_shows_correct(capsys):
    assert lesson01.q1.check("layer3") is None
    assert capsys.readouterr().out.startswith("**Correct.** layer3 outputs 256 channels")


def test_a_wrong_answer_shows_why_and_does_not_raise(capsys):
    assert lesson01.q1.check("layer4") is None
    out = capsys.readouterr().out
    assert out.startswith("**Not yet.**") and "512 channels" in out


def test_verify_raises_what_check_shows(capsys):
    assert "256 channels" in lesson01.q1.verify("layer3")
    with pytest.raises(Incorrect, match="512 channels"):
        lesson01.q1.verify("layer4")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("placeholder", [None, ...])
def test_a_placeholder_is_not_answered_yet(placeholder, capsys):
    assert lesson01.q2.check(placeholder) is None
    out = capsys.readouterr().out
    assert out.startswith("**Not answered yet.**") and "ex.q2.check(9999)" in out
    assert lesson04.q3.check(placeholder, resnet18(num_classes=2)) is None
    assert "Not answered yet" in capsys.readouterr().out
    with pytest.raises(NotAnswered, match="no answer yet"):
        lesson01.q2.verify(placeholder)


def test_none_is_an_answer_where_the_question_allows_it(capsys):
    assert lesson02.q2.check(None, LABELS, NEVER, PRETRAINED) is None
    assert "Correct" in capsys.readouterr().out
    assert lesson02.q2.check(..., LABELS, NEVER, PRETRAINED) is None
    assert "Not answered yet" in capsys.readouterr().out


def test_a_call_with_the_wrong_arguments_shows_the_usage(capsys):
    assert lesson04.q3.check(42) is None
    out = capsys.readouterr().out
    assert out.startswith("**Not yet.**") and "ex.q3.check(n_trainable, model)" in out


def test_an_answer_of_the_wrong_type_shows_the_checkers_message(capsys):
    assert lesson06.q1.check(3) is None
    out = capsys.readouterr().out
    assert out.startswith("**Not yet.**") and "expected a transform" in out


def test_the_students_code_raising_names_the_error_and_the_call(capsys):
    assert lesson03.q2.check(divides_by_zero) is None
    out = capsys.readouterr().out
    assert out.startswith("**Your code raised** `ZeroDivisionError: division by zero`")
    assert "`accuracy(model, loader)`" in out and "Traceback" not in out
    with pytest.raises(CodeRaised, match="ZeroDivisionError") as info:
        lesson03.q2.verify(divides_by_zero)
    assert isinstance(info.value, Incorrect) and isinstance(info.value.error, ZeroDivisionError)


class FailingHead(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("my head is broken")


def test_the_students_model_raising_in_forward_is_shown_too(capsys):
    model = resnet18(num_classes=2)
    for p in model.parameters():
        p.requires_grad = False
    model.fc = FailingHead(512, 2)
    assert lesson03.q1.check(model) is None
    out = capsys.readouterr().out
    assert out.startswith("**Your code raised** `ValueError: my head is broken`") and "ex.q1.check(model)" in out


def test_keyboard_interrupt_still_stops_the_cell():
    def interrupted(model, loader):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        lesson03.q2.check(interrupted)


def test_each_lesson_name_is_its_set_and_the_module_stays_importable():
    import importlib

    from ftlib import exercises as E
    module = importlib.import_module("ftlib.exercises.lesson04")
    assert module.lesson04 is E.lesson04 and module.check_parameter_count is E.check_parameter_count
    assert repr(E.lesson04) == "ExerciseSet(lesson 04: q1, q2, q3)"


def test_solutions_off_hides_the_solution_and_says_so_in_the_last_hint(monkeypatch):
    from ftlib.exercises import lesson04 as ex

    monkeypatch.delenv("FTLIB_SOLUTIONS", raising=False)
    assert "```python" in ex.q1.solution_text()
    last = len(ex.q1.hints)
    assert "solution()" in ex.q1.hint_text(last)
    monkeypatch.setenv("FTLIB_SOLUTIONS", "off")
    assert "```python" not in ex.q1.solution_text()
    assert "Solutions are off in this class" in ex.q1.solution_text()
    assert "Solutions are off in this class" in ex.q1.hint_text(last)
    assert "Solutions are off" not in ex.q1.hint_text(1) or last == 1
