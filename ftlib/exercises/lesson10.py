"""Project 10's exercises: satellite land cover (EuroSAT RGB, or its offline stand-in).

q1 decides how many stages to freeze from the project's depth sweep (the projects' shared
exercise, `projects.check_depth_choice`: any depth within one seed spread of the best), q2
reads per-class accuracy off a confusion matrix (against `ftlib.metrics.per_class_metrics`), q3
finds the pair of classes confused most often in either direction, and q4 writes a
label-preserving augmentation for overhead tiles (judged by what it returns on fresh images:
every one of the 8 flips and quarter turns, and nothing else).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..metrics import per_class_metrics
from .checks import require_answer, whole_number
from .core import Exercise, ExerciseSet, Incorrect, call_student
from .projects import depth_exercise, pairs_on_matrices

__all__ = ["dihedral_variants", "random_dihedral", "check_overhead_augment", "check_per_class_accuracy_fn",
           "most_confused_pair", "check_confused_pair_fn", "lesson10"]

DRAWS = 240
"""Calls of the student's augmentation per fresh image: a uniform choice among 8 misses one variant
with probability below 8 * (7/8)**240, about 1e-13."""


# --- q2: an augmentation for images without an "up" ------------------------------------------

def dihedral_variants(image: torch.Tensor) -> list[torch.Tensor]:
    """The 8 views of a square image (C, H, W) that keep an overhead label: the 4 quarter turns,
    each as it is and mirrored left to right (the dihedral group of the square). First: the image."""
    turns = [torch.rot90(image, k, dims=(-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


def random_dihedral(image: torch.Tensor) -> torch.Tensor:
    """One of the 8 `dihedral_variants` of a square image (C, H, W), uniformly at random (torch's
    global generator, so `seed_everything` makes it reproducible); same shape and dtype. The
    notebook's stand-in while exercise 2 is unanswered."""
    turned = torch.rot90(image, int(torch.randint(4, ())), dims=(-2, -1))
    return turned.flip(-1) if bool(torch.rand(()) < 0.5) else turned


VARIANT_NAMES = ("unchanged", "turned 90°", "turned 180°", "turned 270°", "mirrored", "mirrored and turned 90°",
                 "flipped upside down", "mirrored and turned 270°")


def _fresh_images() -> list[torch.Tensor]:
    """Seeded uint8 tiles (3, S, S) of 64 (the course's size), 16 and 40 px, values 1 to 255 (so a 0 is
    a fill), all 8 views distinct."""
    g = torch.Generator().manual_seed(1002)
    return [torch.randint(1, 256, (3, s, s), generator=g, dtype=torch.uint8) for s in (64, 16, 40)]


def _output_problem(out: Any, image: torch.Tensor) -> str | None:
    """What is wrong with one output's type, shape or dtype (None when it is a plausible image)."""
    if out is None:
        return "your augmentation returned None: end it with `return` and the image."
    if not isinstance(out, torch.Tensor):
        return f"your augmentation returned a {type(out).__name__}: return a tensor (3, H, W), as it was given."
    if tuple(out.shape) != tuple(image.shape):
        return (f"a {tuple(image.shape)} image came back as {tuple(out.shape)}: keep the shape (no resize, no crop, "
                f"no batch dimension; the model expects the input size).")
    if out.dtype != image.dtype:
        return (f"a uint8 image came back as {out.dtype}: keep uint8 in 0..255; converting and normalising is "
                f"the preprocessing's job, after the augmentation.")
    return None


def _unknown_view(out: torch.Tensor, views: list[torch.Tensor]) -> str:
    """Names the typical change behind an output that is none of the 8 views."""
    if bool((out == 0).all(0).any()):
        return ("some outputs have black (0) pixels that the input does not have: a rotation by an arbitrary angle "
                "leaves empty corners (so does the small tilt of a photo augmentation). Turn by multiples of 90° only (torch.rot90), which move every pixel.")
    close = max(torch.corrcoef(torch.stack([out.flatten().float(), v.flatten().float()]))[0, 1].item() for v in views)
    if close > 0.8:
        return ("some outputs have the geometry of a flip or quarter turn but other pixel values: colour, "
                "brightness or contrast changed (a photo augmentation such as ColorJitter). Move pixels, never "
                "change them.")
    return ("some outputs are none of the 8 flips and quarter turns of the input: a crop, a zoom or a shift "
            "(a photo augmentation such as RandomResizedCrop) changes what the tile covers. Only flip and turn.")


def _missing_problem(seen: set[int]) -> str:
    """The message for an augmentation that only ever gives some of the 8 views (indices into VARIANT_NAMES)."""
    names = ", ".join(VARIANT_NAMES[i] for i in sorted(seen))
    missing = ", ".join(VARIANT_NAMES[i] for i in range(8) if i not in seen)
    if len(seen) == 1:
        return (f"over {DRAWS} calls every output was the same view ({names}): an augmentation must be random, a "
                f"new view on each call.")
    if seen == {0, 4}:
        return ("you only ever mirror left to right (a horizontal flip, as for photos): a tile seen from above has "
                "no up, so add vertical flips and 90° turns; 6 of the 8 views never appear.")
    if seen == {0, 2, 4, 6}:
        return ("flips alone give 4 of the 8 views: add a 90° turn (torch.rot90), so that the tile can also lie "
                "on its side.")
    if seen == {0, 1, 2, 3}:
        return "quarter turns alone give 4 of the 8 views: add a mirror image (a flip) of each."
    return f"over {DRAWS} calls these views never appeared: {missing}. Every one of the 8 keeps the label."


def check_overhead_augment(augment: Callable[[torch.Tensor], Any]) -> str:
    """`augment(image)`: for a square uint8 tile (3, H, W) seen from above, return one of its 8 flips
    and quarter turns at random, the same shape and dtype, and nothing else.

    Judged on seeded fresh tiles of 16 to 64 px, called 240 times on each: every output must be one
    of `dihedral_variants(image)`, and all 8 must appear. Typical wrong answers it names: a photo
    augmentation (crops and zooms, colour jitter), horizontal flips only, flips without quarter turns,
    turns by arbitrary angles (black corners), a changed dtype or shape, None, the input changed in
    place, the same view every time. Project 10."""
    require_answer(augment, "a function overhead_augment(image)")
    if not callable(augment):
        raise Incorrect(f"pass the function itself, ex.q4.check(overhead_augment), not a {type(augment).__name__}.")
    for image in _fresh_images():
        views, seen = dihedral_variants(image), set()
        for _ in range(DRAWS):
            given = image.clone()
            out = call_student(f"overhead_augment(image) on a {tuple(image.shape)} uint8 tile", augment, given)
            if not torch.equal(given, image):
                raise Incorrect("your augmentation changed its input in place: flip or turn a copy "
                                "(torch.flip and torch.rot90 return new tensors).")
            problem = _output_problem(out, image)
            if problem:
                raise Incorrect(problem)
            match = [i for i, v in enumerate(views) if torch.equal(out, v)]
            if not match:
                raise Incorrect(_unknown_view(out, views))
            seen.add(match[0])
        if len(seen) < 8:
            raise Incorrect(_missing_problem(seen))
    return (f"on {len(_fresh_images())} fresh tiles every output was a flip or quarter turn of the input, and all "
            f"8 views appeared in {DRAWS} calls each.")


# --- q3: per-class accuracy from a confusion matrix -----------------------------------------------

def _matrices(seed: int) -> list[torch.Tensor]:
    """Seeded (C, C) int64 count matrices of 3 to 10 classes with a strong diagonal; the first has
    a class with no images (an empty row) and rows of very different sizes."""
    g = torch.Generator().manual_seed(seed)
    probes = [torch.tensor([[30, 2, 8, 0], [0, 0, 0, 0], [5, 1, 12, 2], [1, 0, 3, 60]])]
    for c in (3, 5, 10, 7):
        cm = torch.randint(0, 10, (c, c), generator=g) + torch.diag(torch.randint(10, 50, (c,), generator=g))
        cm[int(torch.randint(c, (1,), generator=g))] *= 3          # one class with many more images
        probes.append(cm)
    return probes


def _as_vector(answer: Any, c: int, call: str) -> torch.Tensor:
    """The student's per-class values as a float64 tensor (C,); `Incorrect` naming what is wrong."""
    if answer is None:
        raise Incorrect(f"{call} returned None: end your function with `return` and the C accuracies.")
    if isinstance(answer, dict):
        answer = list(answer.values())
    try:
        values = torch.as_tensor(answer.tolist() if hasattr(answer, "tolist") else answer, dtype=torch.float64)
    except (TypeError, ValueError):
        raise Incorrect(f"{call} returned a {type(answer).__name__}: return one number per class.") from None
    if values.ndim == 0:
        raise Incorrect(f"{call} returned one number ({float(values):.4f}): return one accuracy per class, "
                        f"{c} of them.")
    if values.shape != (c,):
        raise Incorrect(f"{call} returned shape {tuple(values.shape)}: return one accuracy per class, shape ({c},).")
    return values


def _per_class_mistake(got: torch.Tensor, cm: torch.Tensor, call: str) -> str:
    """The message for wrong per-class values on matrix `cm`."""
    want = torch.tensor([r["recall"] for r in per_class_metrics(cm)[:len(cm)]], dtype=torch.float64)
    cmd = cm.double()
    precision = torch.tensor([r["precision"] for r in per_class_metrics(cm)[:len(cm)]], dtype=torch.float64)
    close = lambda a, b: bool(torch.allclose(a, b, atol=1e-6))  # noqa: E731
    empty = cmd.sum(1) == 0
    if got.isnan().any() and close(got[~empty], want[~empty]):
        return (f"{call}: a class with no images gives nan (0 / 0): return 0.0 for it, as "
                f"ftlib.metrics.per_class_metrics does.")
    if close(got, 100 * want):
        return f"{call}: those are percentages; return fractions in [0, 1]."
    if close(got, precision):
        return (f"{call}: you divide by the column sums (how often each class was *predicted*): that is "
                f"precision. Rows are the true classes: divide the diagonal by each row's sum.")
    if close(got, torch.full_like(got, cmd.trace().item() / cmd.sum().item())):
        return f"{call}: every class got the overall accuracy: divide each diagonal count by its own row's sum."
    if close(got, cmd.diagonal() / cmd.sum()):
        return f"{call}: you divide by the number of all images: divide by the images of that class (its row)."
    if close(got, torch.div(cmd.diagonal(), cmd.sum(1).clamp(min=1), rounding_mode="floor")):
        return f"{call}: integer division rounds every fraction down to 0 or 1: divide as floats."
    return f"{call} returned {[round(v, 4) for v in got.tolist()]}, expected {[round(v, 4) for v in want.tolist()]}."


def check_per_class_accuracy_fn(per_class_accuracy: Callable[[torch.Tensor], Any]) -> str:
    """`per_class_accuracy(cm)`: for a confusion matrix (C, C) of counts, rows = true class, return
    the C fractions of each class's images predicted right (its recall): cm[i, i] / row i's sum, and
    0.0 for a class with no images. Judged against `ftlib.metrics.per_class_metrics` on seeded fresh
    matrices. Typical wrong answers it names: column sums (precision), the overall accuracy for every
    class, the total as denominator, integer division, percentages, nan for an empty class, one
    number instead of C. Project 10."""
    require_answer(per_class_accuracy, "a function per_class_accuracy(cm)")
    if not callable(per_class_accuracy):
        raise Incorrect(f"pass the function itself, ex.q2.check(per_class_accuracy), not a "
                        f"{type(per_class_accuracy).__name__}.")
    probes = _matrices(1003)
    for cm in probes:
        call = f"per_class_accuracy(cm) on a {len(cm)}-class matrix"
        got = _as_vector(call_student(call, per_class_accuracy, cm.clone()), len(cm), call)
        want = torch.tensor([r["recall"] for r in per_class_metrics(cm)[:len(cm)]], dtype=torch.float64)
        if not torch.allclose(got, want, atol=1e-6):
            raise Incorrect(_per_class_mistake(got, cm, call))
    return (f"the recall of every class, as ftlib.metrics.per_class_metrics, on {len(probes)} fresh matrices "
            f"(an empty class included).")


# --- q4: the pair confused most often, in either direction -----------------------------------------

def most_confused_pair(cm: torch.Tensor) -> tuple[int, int]:
    """(i, j), i < j: the two classes whose confusions cm[i, j] + cm[j, i] (both directions, rows =
    true class) are the most; ties go to the first in row order. cm: (C, C) counts."""
    both = torch.as_tensor(cm).long()
    both = (both + both.T).triu(diagonal=1)
    flat = int(both.flatten().argmax())
    return flat // both.shape[1], flat % both.shape[1]


def _pair_probes() -> list[torch.Tensor]:
    """Seeded count matrices (C, C) of 3 to 10 classes, each with one unique most-confused pair; in
    the first, the largest single cell is not in that pair."""
    g = torch.Generator().manual_seed(1004)
    probes = [torch.tensor([[40, 9, 0, 1], [0, 35, 6, 0], [1, 7, 30, 2], [0, 0, 3, 50]])]  # (1, 2): 13 > (0, 1): 9
    for c in (3, 6, 10, 5):
        while True:
            cm = torch.randint(0, 12, (c, c), generator=g) + torch.diag(torch.randint(30, 60, (c,), generator=g))
            both = (cm + cm.T).triu(diagonal=1).flatten()
            off = cm.clone().fill_diagonal_(-1)
            single = divmod(int(off.argmax()), c)
            if int((both == both.max()).sum()) == 1 and tuple(sorted(single)) != most_confused_pair(cm):
                break
        probes.append(cm)
    return probes


def _as_pair(answer: Any, call: str) -> tuple[int, int]:
    if isinstance(answer, torch.Tensor) and answer.numel() == 2:
        answer = answer.flatten().tolist()
    if isinstance(answer, (set, frozenset)):
        answer = sorted(answer)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Incorrect(f"{call} returned {answer!r}, not a pair: return the two class indices (i, j). "
                        f"Is it a flat index, a count, or class names?")
    return tuple(whole_number(v, "a class index") for v in answer)


def check_confused_pair_fn(confused_pair: Callable[[torch.Tensor], Any]) -> str:
    """`confused_pair(cm)`: the two classes (i, j), in either order, whose confusions in both
    directions, cm[i, j] + cm[j, i], are the most; cm is a confusion matrix (C, C) of counts. Run on
    seeded fresh matrices of 3 to 10 classes. Typical wrong answers it names: the single largest
    cell only (one direction), the diagonal included, a class paired with itself, a flat index or a
    count instead of the pair, the same pair for every matrix. Project 10."""
    answers = pairs_on_matrices(confused_pair, "confused_pair", "q3", _pair_probes(), _as_pair,
                                "find the pair in the matrix you are given.")
    for call, cm, got in answers:
        want = most_confused_pair(cm)
        if tuple(sorted(got)) == want:
            continue
        if got[0] == got[1]:
            raise Incorrect(f"{call} returned ({got[0]}, {got[1]}), a class with itself: the diagonal counts correct "
                            f"predictions. Leave it out.")
        off = cm.clone().fill_diagonal_(-1)
        if int(off[got]) == int(off.max()):
            raise Incorrect(f"{call} returned {got}, the largest single cell: that counts one direction only. Add "
                            f"both directions (cm + cm.T) before looking for the largest.")
        raise Incorrect(f"{call} returned {got} ({int(cm[got] + cm[got[::-1]])} confusions in both directions); "
                        f"the most are between classes {want}: {int(cm[want] + cm[want[::-1]])}.")
    return f"the most confused pair, both directions added, on {len(answers)} fresh matrices of 3 to 10 classes."


# --- the exercises ----------------------------------------------------------------------------------

lesson10 = ExerciseSet(
    "10",
    q1=depth_exercise("10"),
    q2=Exercise(
        title="Project 10, exercise 2: per-class accuracy from a confusion matrix",
        task="Write `per_class_accuracy(cm)`: for a confusion matrix (C, C) of counts, rows = true class, "
             "columns = prediction, return the C fractions of each class's images that were predicted right, "
             "as a tensor or list of floats (0.0 for a class with no images).",
        usage="ex.q2.check(per_class_accuracy)",
        checker=check_per_class_accuracy_fn,
        hints=("The right predictions of class i are on the diagonal, cm[i, i]; all images of class i are "
               "in row i.",
               "`cm.diagonal() / cm.sum(dim=1)` in floats; `.clamp(min=1)` on the denominator turns 0 / 0 into 0."),
        solution_code="""
def per_class_accuracy(cm):
    cm = cm.double()
    return cm.diagonal() / cm.sum(dim=1).clamp(min=1)
""",
    ),
    q3=Exercise(
        title="Project 10, exercise 3: the pair of classes confused most",
        task="Write `confused_pair(cm)`: the two classes (i, j), in either order, that are mistaken for each "
             "other most often, counting both directions: cm[i, j] + cm[j, i]. cm is a confusion matrix "
             "(C, C) of counts, rows = true class.",
        usage="ex.q3.check(confused_pair)",
        checker=check_confused_pair_fn,
        hints=("`both = cm + cm.T` counts each pair in both directions, twice (once above and once below "
               "the diagonal); keep one half with `both.triu(diagonal=1)`.",
               "`int(half.argmax())` is a flat index f into the C x C matrix: the pair is (f // C, f % C)."),
        solution_code="""
def confused_pair(cm):
    half = (cm + cm.T).triu(diagonal=1)
    flat = int(half.argmax())
    return flat // len(cm), flat % len(cm)
""",
    ),
    q4=Exercise(
        title="Project 10, exercise 4: an augmentation for tiles seen from above",
        task="Write `overhead_augment(image)`: for a square uint8 tile (3, H, W), return one of its 8 flips and "
             "quarter turns, chosen at random on each call, with the same shape and dtype. Nothing else: no "
             "crop, no colour change, no turn by another angle. The checker calls it many times on fresh tiles.",
        usage="ex.q4.check(overhead_augment)",
        checker=check_overhead_augment,
        hints=("`torch.rot90(image, k, dims=(1, 2))` turns by k quarter turns and moves every pixel; "
               "`image.flip(2)` mirrors left to right.",
               "Draw k from 0 to 3 with `torch.randint(4, ()).item()`, turn, then mirror when "
               "`torch.rand(()) < 0.5`: 4 turns x 2 = all 8 views."),
        solution_code="""
import torch

def overhead_augment(image):
    k = int(torch.randint(4, ()))                 # 0, 1, 2 or 3 quarter turns
    image = torch.rot90(image, k, dims=(1, 2))
    return image.flip(2) if torch.rand(()) < 0.5 else image
""",
    ),
)
