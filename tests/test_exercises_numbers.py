"""Tests of `ftlib.exercises.checks.whole_number`, the reader of every count a lesson asks for
(lesson 01 q2, lesson 04 q3): any integer type is accepted, and nothing is truncated."""

import numpy as np
import pytest
import torch

from ftlib.exercises import Incorrect
from ftlib.exercises.checks import whole_number


@pytest.mark.parametrize("value", [9408, np.int64(9408), np.int32(9408), np.array(9408), torch.tensor(9408),
                                   torch.tensor(9408, dtype=torch.int32), torch.tensor([9408]), 9408.0,
                                   np.float64(9408.0), torch.tensor(9408.0)])
def test_every_integer_type_reads_as_a_python_int(value):
    got = whole_number(value)
    assert got == 9408 and type(got) is int


@pytest.mark.parametrize("value, fragment", [
    (9408.5, "whole number, got 9408.5"),
    (np.float32(9408.5), "whole number"),
    (torch.tensor(9408.5), "whole number"),
    (float("nan"), "whole number"),
    (True, "a bool"),
    (np.bool_(True), "a bool"),
    (torch.tensor(True), "dtype torch.bool"),
    ("9408", "str"),
    (torch.tensor([9408, 1]), "shape (2,)"),
    ([9408], "list"),
])
def test_non_counts_are_refused_with_the_reason(value, fragment):
    with pytest.raises(Incorrect) as info:
        whole_number(value)
    assert fragment in str(info.value), str(info.value)


def test_the_message_names_what_is_counted():
    with pytest.raises(Incorrect, match="a number of parameters is a whole number"):
        whole_number(0.5, "a number of parameters")
