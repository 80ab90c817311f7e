"""What the projects (09 to 11) share: the depth decision, read from the project's own depth sweep.

Each project measures, with `ftlib.strategies.depth_sweep`, how fine-tuning does with the first
`depth` stages frozen, over seeds; the student then chooses a depth. `check_depth_choice` accepts
any measured depth whose mean validation accuracy lies within one seed spread of the best
(`ftlib.strategies.within_spread`), and `depth_exercise(project)` is that project's exercise 1.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..strategies import within_spread
from .checks import require_answer, whole_number
from .core import Exercise, Incorrect, call_student

__all__ = ["STAGE_DEPTH", "check_depth_choice", "depth_exercise", "pairs_on_matrices"]

STAGE_DEPTH = {"stem": 1, "layer1": 2, "layer2": 3, "layer3": 4, "layer4": 5}
"""Freezing up to (and with) a ResNet stage, as a frozen depth: the number of stages frozen, stem first."""


def pairs_on_matrices(fn: Any, name: str, question: str, probes: list[torch.Tensor],
                      as_pair: Callable[[Any, str], tuple[int, int]], one_pair_hint: str) -> list[tuple]:
    """[(call, cm, pair)]: the student's `name(cm)` run on a copy of each probe matrix, its answer
    read by `as_pair`. Fails first when `fn` is not a function (`question`, e.g. "q3", names the
    check to call), and when it gives one pair for every matrix (`one_pair_hint`: what to find)."""
    require_answer(fn, f"a function {name}(cm)")
    if not callable(fn):
        raise Incorrect(f"pass the function itself, ex.{question}.check({name}), not a {type(fn).__name__}.")
    calls = [f"{name}(cm) on a {len(cm)}-class matrix" for cm in probes]
    pairs = [as_pair(call_student(call, fn, cm.clone()), call) for call, cm in zip(calls, probes)]
    if len(set(pairs)) == 1:
        raise Incorrect(f"you return {pairs[0]} for every matrix: {one_pair_hint}")
    return list(zip(calls, probes, pairs))


# --- q1: how many stages to freeze ------------------------------------------------------------

def _sweep_rows(rows: Any) -> dict[int, dict]:
    """{depth: row} from the rows of `strategies.summarize` over a depth sweep; `Incorrect` otherwise."""
    ok = isinstance(rows, (list, tuple)) and rows and all(
        isinstance(r, dict) and {"depth", "accuracy", "accuracy_std"} <= set(r) for r in rows)
    if not ok:
        raise Incorrect("pass the sweep's validation rows as the second argument: "
                        "ex.q1.check(depth, strategies.summarize(sweep, split='val')).")
    return {int(r["depth"]): r for r in rows}


def check_depth_choice(depth: Any, rows: Any) -> str:
    """`depth`: how many stages to freeze (stem first), given `rows`, the validation rows of the
    project's depth sweep (`strategies.summarize(sweep, split="val")`). Right: any measured depth
    whose mean validation accuracy lies within one seed spread of the best (`within_spread`).
    Typical wrong answers it names: a stage name instead of a count, an accuracy instead of a
    depth, a depth that was not measured (or the count of stages that train), the cheapest depth
    although it is clearly worse. Projects 09 to 11."""
    require_answer(depth, "depth = 3")
    by_depth = _sweep_rows(rows)
    if isinstance(depth, str):
        hint = f" freezing up to {depth} is depth {STAGE_DEPTH[depth]}," if depth in STAGE_DEPTH else ""
        raise Incorrect(f"give the number of frozen stages, not a name such as {depth!r}:{hint} counted from "
                        f"the stem (stem = 1, layer1 = 2, ...).")
    if isinstance(depth, float) and not depth.is_integer():
        raise Incorrect(f"{depth} is not a number of stages: is it an accuracy? Give the depth that scored it.")
    depth = whole_number(depth, "the frozen depth")
    good = sorted(within_spread(list(by_depth.values())))
    best = max(by_depth.values(), key=lambda r: r["accuracy"])
    if depth not in by_depth:
        trainable = (f" (if {depth} is the number of stages that train below the head, that is depth {5 - depth})"
                     if 5 - depth in by_depth else "")
        raise Incorrect(f"depth {depth} was not measured{trainable}: the depth counts the *frozen* stages; "
                        f"choose among {sorted(by_depth)}.")
    row = by_depth[depth]
    if depth in good:
        return (f"freezing {depth} stages: validation accuracy {row['accuracy']:.3f} ± {row['accuracy_std']:.3f}, "
                f"within one seed spread of the best ({best['accuracy']:.3f} at depth {best['depth']}); "
                f"defensible depths here: {good}.")
    spread = max(best["accuracy_std"], row["accuracy_std"])
    cheapest = "it is the cheapest to train, but " if depth == max(by_depth) else ""
    raise Incorrect(f"depth {depth}: {cheapest}its validation accuracy {row['accuracy']:.3f} is "
                    f"{best['accuracy'] - row['accuracy']:.3f} below the best ({best['accuracy']:.3f} at depth "
                    f"{best['depth']}), more than one seed spread ({spread:.3f}). Choose among {good}.")


def depth_exercise(project: str) -> Exercise:
    """Exercise 1 of project `project` ("09", "10" or "11"): which stages to tune."""
    return Exercise(
        title=f"Project {project}, exercise 1: which stages to tune",
        task="From the depth sweep's validation rows (`val_rows`: mean and seed spread of the validation "
             "accuracy per frozen depth), choose how many stages to freeze (stem = 1, layer1 = 2, ...). Any "
             "depth whose mean lies within one seed spread of the best is accepted.",
        usage="ex.q1.check(depth, val_rows)",
        checker=check_depth_choice,
        hints=("Find the best mean validation accuracy and its standard deviation over the seeds.",
               "A depth whose mean is below the best by no more than the larger of the two spreads is as good "
               "as the best, as far as this measurement can tell; the deeper of those is the cheaper to train."),
        solution_code="""
best = max(val_rows, key=lambda r: r["accuracy"])
depth = max(r["depth"] for r in val_rows
            if best["accuracy"] - r["accuracy"] <= max(best["accuracy_std"], r["accuracy_std"]))
""",
    )
