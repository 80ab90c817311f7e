"""Tests of ftlib.exercises: every checker with a right answer and with the typical wrong ones.

Tiny models only: torchvision resnet18 with a 2-class head on 32x32 inputs, or small
nn.Sequential models. Expected numbers are computed here by hand or from the model's own
attributes (model.layer4, model.fc), never through the checker under test.
"""

import re

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.transforms import v2

from ftlib import exercises as E
from ftlib.exercises import Incorrect, core

STAGES = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture
def model() -> nn.Module:
    """A fresh seeded resnet18 with a 2-class head, fully trainable, in train mode."""
    torch.manual_seed(0)
    return resnet18(num_classes=2)


def freeze_all_but(model: nn.Module, keep: tuple[str, ...]) -> nn.Module:
    """Plain re-implementation of a stage freeze, by attribute name (not via ftlib.models)."""
    owners = {"stem": ("conv1", "bn1"), "head": ("fc",)}
    for name, p in model.named_parameters():
        top = name.split(".")[0]
        stage = next((s for s, attrs in owners.items() if top in attrs), top)
        p.requires_grad = stage in keep
    return model


def stay_in_eval(module: nn.Module, args: tuple) -> None:
    module.eval()  # a forward pre-hook must return None, or it replaces the input


def bn_hook(model: nn.Module, frozen: list[str]) -> None:
    """Keep the BatchNorm layers of the frozen stages in eval mode with a forward pre-hook."""
    mods = {"stem": [model.bn1]} | {s: list(getattr(model, s).modules()) for s in frozen if s != "stem"}
    for s in frozen:
        for m in mods[s]:
            if isinstance(m, nn.BatchNorm2d):
                m.register_forward_pre_hook(stay_in_eval)


# --------------------------------------------------------------------------------------
# Exercise, ExerciseSet and display
# --------------------------------------------------------------------------------------

SETS = {"03": E.lesson03, "04": E.lesson04, "05": E.lesson05, "06": E.lesson06, "07": E.lesson07, "08": E.lesson08}


@pytest.mark.parametrize("lesson", SETS)
def test_every_set_has_two_exercises_with_two_hints_and_a_solution(lesson):
    exercises = SETS[lesson].exercises
    assert len(exercises) >= 2
    for key, ex in exercises.items():
        assert len(ex.hints) >= 2 and ex.solution_code.strip(), key
        assert ex.usage.startswith(f"ex.{key}.check("), ex.usage


def test_hints_are_revealed_one_at_a_time(capsys):
    ex = E.lesson04.q1
    ex.hint()
    first = capsys.readouterr().out
    assert first.startswith("**Hint 1 of 2:**") and ex.hints[0] in first and "hint(2)" in first
    assert ex.hints[1] not in first
    ex.hint(2)
    second = capsys.readouterr().out
    assert ex.hints[1] in second and "solution()" in second
    with pytest.raises(ValueError, match="has 2 hints"):
        ex.hint(3)


def test_solution_shows_the_code(capsys):
    E.lesson05.q2.solution()
    out = capsys.readouterr().out
    assert "```python" in out and "OneCycleLR" in out and "max_lr=[g[\"lr\"]" in out


def test_check_prints_correct_and_verify_raises_on_a_wrong_answer(model, capsys):
    freeze_all_but(model, ("layer4", "head"))
    E.lesson04.q1.check(model)
    assert capsys.readouterr().out.startswith("**Correct.**")
    model.fc.weight.requires_grad = False
    with pytest.raises(Incorrect):
        E.lesson04.q1.verify(model)
    assert capsys.readouterr().out == ""


def test_incorrect_is_an_assertion_error():
    assert issubclass(Incorrect, AssertionError)


def test_check_with_the_wrong_arguments_says_how_to_call_it():
    with pytest.raises(TypeError, match=re.escape("ex.q3.check(n_trainable, model)")):
        E.lesson04.q3.verify(42)


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(AttributeError, match="q1, q2, q3; there is no 'q9'"):
        E.lesson04.q9  # noqa: B018
    assert "q1" in dir(E.lesson04)


def test_show_uses_markdown_display_in_a_notebook(monkeypatch):
    import IPython.display
    shown = []
    monkeypatch.setattr(core, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", shown.append)
    E.show("**bold**")
    assert isinstance(shown[0], IPython.display.Markdown) and shown[0].data == "**bold**"


def test_repr_markdown_shows_the_task():
    text = E.lesson07.q1._repr_markdown_()
    assert E.lesson07.q1.task in text and "ex.q1.check(unfreeze)" in text


# --------------------------------------------------------------------------------------
# Every solution passes its own check
# --------------------------------------------------------------------------------------

def _run_solution(ex: E.Exercise, ns: dict) -> dict:
    exec(ex.solution_code, ns)  # noqa: S102 - our own solution text
    return ns


def _answers(ex: E.Exercise, ns: dict) -> list:
    names = re.search(r"check\(([^)]*)\)", ex.usage).group(1).split(",")
    return [ns[n.strip()] for n in names]


SETUPS = {
    ("03", "q1"): lambda: {"model": resnet18()},
    ("04", "q1"): lambda: {"model": resnet18(num_classes=2)},
    ("04", "q2"): lambda: _run_solution(E.lesson04.q1, {"model": resnet18(num_classes=2)}),
    ("04", "q3"): lambda: _run_solution(E.lesson04.q1, {"model": resnet18(num_classes=2)}),
    ("05", "q1"): lambda: {"model": resnet18(num_classes=2)},
    ("05", "q2"): lambda: _run_solution(E.lesson05.q1, {"model": resnet18(num_classes=2)}),
    ("06", "q2"): lambda: {"model": resnet18(num_classes=10)},
    ("07", "q2"): lambda: {"model": freeze_all_but(resnet18(num_classes=2), ("layer3", "layer4", "head"))},
}


@pytest.mark.parametrize("lesson,key", [(lesson, key) for lesson, s in SETS.items() for key in s.exercises])
def test_solution_passes_its_check(lesson, key, capsys):
    ex = SETS[lesson].exercises[key]
    ns = _run_solution(ex, SETUPS.get((lesson, key), dict)())
    assert ex.check(*_answers(ex, ns)) is None
    assert capsys.readouterr().out.startswith("**Correct.**")


# --------------------------------------------------------------------------------------
# Heads and frozen stages
# --------------------------------------------------------------------------------------

def test_stage_status(model):
    freeze_all_but(model, ("layer4", "head"))
    model.layer3[0].bn1.weight.requires_grad = True
    assert E.stage_status(model) == {"stem": "frozen", "layer1": "frozen", "layer2": "frozen",
                                     "layer3": "partly", "layer4": "trainable", "head": "trainable"}


def test_stage_status_is_the_one_in_ftlib_freeze():
    from ftlib.freeze import stage_status
    assert E.stage_status is stage_status


def test_head_right(model):
    model.fc = nn.Linear(512, 2)
    assert "nn.Linear(512, 2)" in E.check_head(model, num_classes=2, in_features=512)


def test_head_still_imagenet():
    m = resnet18()
    m.classifier = nn.Linear(512, 2)  # the wrong attribute: a ResNet's head is model.fc
    with pytest.raises(Incorrect, match="outputs 1000 classes but the data set has 2.*model.fc"):
        E.check_head(m, num_classes=2)


def test_head_wrong_number_of_classes(model):
    model.fc = nn.Linear(512, 3)
    with pytest.raises(Incorrect, match="outputs 3 classes but the data set has 2"):
        E.check_head(model, num_classes=2)


def test_head_wrong_in_features(model):
    model.fc = nn.Linear(256, 2)
    with pytest.raises(Incorrect, match="takes 256 features, but the backbone gives 512"):
        E.check_head(model, num_classes=2, in_features=512)
    with pytest.raises(Incorrect, match="forward pass through your model fails"):
        E.check_head(model, num_classes=2)


def test_head_not_a_model():
    with pytest.raises(TypeError, match="pass the model itself"):
        E.check_head([1, 2], num_classes=2)


@pytest.mark.parametrize("placeholder", [None, ...])
def test_a_placeholder_model_is_an_unanswered_exercise_not_a_crash(placeholder):
    with pytest.raises(Incorrect, match="no answer yet"):
        E.check_head(placeholder, num_classes=2)
    with pytest.raises(Incorrect, match="no answer yet"):
        E.check_frozen_batchnorm(placeholder)


def test_exercise_sets_carry_the_error_class():
    assert E.lesson04.Incorrect is Incorrect and E.lesson01.Incorrect is Incorrect


def test_trainable_right(model):
    freeze_all_but(model, ("layer4", "head"))
    expected = sum(p.numel() for p in model.layer4.parameters()) + sum(p.numel() for p in model.fc.parameters())
    assert f"{expected:,} trainable parameters" in E.lesson04.q1.checker(model)


def test_trainable_forgot_to_freeze(model):
    with pytest.raises(Incorrect, match="nothing is frozen: all 11,177,538 parameters"):
        E.lesson04.q1.checker(model)


def test_trainable_classifier_frozen(model):
    # the typical mistake: replace the head, then freeze every parameter
    model.fc = nn.Linear(512, 2)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(Incorrect, match="your head has requires_grad=False: the new classifier must train"):
        E.lesson03.q1.checker(model)


def test_trainable_stage_left_trainable(model):
    freeze_all_but(model, ("layer3", "layer4", "head"))
    with pytest.raises(Incorrect, match="layer3 still trains"):
        E.lesson04.q1.checker(model)


def test_trainable_stage_frozen_that_should_train(model):
    freeze_all_but(model, ("head",))
    with pytest.raises(Incorrect, match="layer4 is frozen but should train"):
        E.lesson04.q1.checker(model)


def test_trainable_partly_frozen_stage(model):
    freeze_all_but(model, ("layer4", "head"))
    model.layer2[1].bn2.bias.requires_grad = True
    with pytest.raises(Incorrect, match=r"layer2 is only partly frozen \(layer2.1.bn2.bias"):
        E.lesson04.q1.checker(model)


def test_trainable_on_a_tiny_sequential():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    for p in m[0].parameters():
        p.requires_grad = False
    assert "18 trainable parameters of 58" in E.check_trainable(m, ["2"])
    with pytest.raises(ValueError, match="unknown stage names"):
        E.check_trainable(m, ["head"])


def test_wrong_model_family():
    m = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(Incorrect, match="uses a torchvision resnet model"):
        E.lesson04.q1.checker(m)


# --------------------------------------------------------------------------------------
# Counting parameters
# --------------------------------------------------------------------------------------

def test_count_right_and_wrong(model):
    freeze_all_but(model, ("layer4", "head"))
    layer4 = sum(p.numel() for p in model.layer4.parameters())
    head = 512 * 2 + 2
    assert "trainable parameters" in E.lesson04.q3.checker(layer4 + head, model)
    assert "trainable parameters" in E.lesson04.q3.checker(torch.tensor(layer4 + head), model)
    with pytest.raises(Incorrect, match="every parameter of the model"):
        E.lesson04.q3.checker(11_177_538, model)
    n_tensors = len(list(model.layer4.parameters())) + 2
    with pytest.raises(Incorrect, match="number of parameter tensors"):
        E.lesson04.q3.checker(n_tensors, model)
    with pytest.raises(Incorrect, match="count of layer4 alone: head train"):
        E.lesson04.q3.checker(layer4, model)
    with pytest.raises(Incorrect, match="is not the number of parameters in layer4, head"):
        E.lesson04.q3.checker(layer4 + head + 1, model)
    with pytest.raises(Incorrect, match="whole number"):
        E.lesson04.q3.checker(12.5, model)


# --------------------------------------------------------------------------------------
# BatchNorm in frozen stages
# --------------------------------------------------------------------------------------

def _buffers(model):
    return [b.clone() for b in model.buffers()]


def test_batchnorm_updating_is_caught(model):
    freeze_all_but(model, ("layer4", "head"))
    model.train()
    with pytest.raises(Incorrect, match="stem's BatchNorm running_mean changed in train mode"):
        E.lesson04.q2.checker(model)


def test_batchnorm_model_eval_is_not_enough(model):
    freeze_all_but(model, ("layer4", "head"))
    model.eval()
    with pytest.raises(Incorrect, match=r"model.eval\(\) alone does not last"):
        E.lesson04.q2.checker(model)
    assert not model.training  # restored


def test_batchnorm_hook_passes_and_state_is_restored(model):
    frozen = ["stem", "layer1", "layer2", "layer3"]
    freeze_all_but(model, ("layer4", "head"))
    bn_hook(model, frozen)
    model.train()
    before, rng = _buffers(model), torch.get_rng_state()
    assert "keep their statistics in train mode" in E.lesson04.q2.checker(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))
    assert torch.equal(rng, torch.get_rng_state())
    assert all(m.training for m in model.modules())  # the hook's eval() calls were undone


def test_batchnorm_state_restored_after_a_failure(model):
    freeze_all_but(model, ("layer4", "head"))
    before = _buffers(model)
    with pytest.raises(Incorrect):
        E.lesson04.q2.checker(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))


def test_batchnorm_needs_a_frozen_stage(model):
    with pytest.raises(Incorrect, match="no stage is frozen"):
        E.lesson04.q2.checker(model)


def test_batchnorm_tiny_sequential_with_custom_input():
    m = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    for p in list(m[0].parameters()) + list(m[1].parameters()):
        p.requires_grad = False
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    with pytest.raises(Incorrect, match="1's BatchNorm running_mean changed"):
        E.check_frozen_batchnorm(m, example=x)
    m[1].register_forward_pre_hook(stay_in_eval)
    assert "1 BatchNorm layers" in E.check_frozen_batchnorm(m, example=x)


# --------------------------------------------------------------------------------------
# Learning rates of optimizer groups
# --------------------------------------------------------------------------------------

# by hand: the head at 1e-3, divided by 2.6 per stage going down
ULMFIT = {"head": 1e-3, "layer4": 1e-3 / 2.6, "layer3": 1e-3 / 2.6**2, "layer2": 1e-3 / 2.6**3,
          "layer1": 1e-3 / 2.6**4, "stem": 1e-3 / 2.6**5}


def stage_params(model, name):
    if name == "stem":
        return list(model.conv1.parameters()) + list(model.bn1.parameters())
    return list((model.fc if name == "head" else getattr(model, name)).parameters())


def groups_for(model, lrs, names=STAGES):
    return [{"params": stage_params(model, n), "lr": lrs[n], "name": n} for n in names]


def test_lrs_right_as_list_and_as_optimizer(model):
    groups = groups_for(model, ULMFIT)
    assert "6 stages" in E.lesson05.q1.checker(groups, model)
    assert "6 stages" in E.lesson05.q1.checker(torch.optim.SGD(groups), model)


def test_lrs_one_lr_for_all_groups(model):
    with pytest.raises(Incorrect, match="all 6 groups have lr=0.001: that is one LR for the whole model"):
        E.lesson05.q1.checker(groups_for(model, dict.fromkeys(STAGES, 1e-3)), model)


def test_lrs_reversed(model):
    flipped = dict(zip(STAGES, reversed([ULMFIT[n] for n in STAGES])))
    with pytest.raises(Incorrect, match="grow toward the input"):
        E.lesson05.q1.checker(groups_for(model, flipped), model)


def test_lrs_wrong_factor(model):
    halves = {n: 1e-3 / 2 ** (5 - i) for i, n in enumerate(STAGES)}
    with pytest.raises(Incorrect, match="layer4's lr is 0.0005 and head's is 0.001: a ratio of 2"):
        E.lesson05.q1.checker(groups_for(model, halves), model)


def test_lrs_wrong_head_lr(model):
    scaled = {n: 10 * v for n, v in ULMFIT.items()}
    with pytest.raises(Incorrect, match="head's lr is 0.01; the task asks for 0.001"):
        E.lesson05.q1.checker(groups_for(model, scaled), model)


def test_lrs_group_without_name(model):
    groups = groups_for(model, ULMFIT)
    del groups[2]["name"]
    with pytest.raises(Incorrect, match="group '#2' holds the parameters of layer2: give every group a 'name'"):
        E.lesson05.q1.checker(groups, model)


def test_lrs_group_mixing_stages(model):
    groups = groups_for(model, ULMFIT)
    groups[1]["params"] = groups[1]["params"] + groups.pop(2)["params"]
    with pytest.raises(Incorrect, match="holds layer1 and layer2: give each stage its own group"):
        E.lesson05.q1.checker(groups, model)


def test_lrs_stage_missing(model):
    groups = groups_for(model, ULMFIT)
    del groups[0]
    with pytest.raises(Incorrect, match="trainable parameters of stem are in no group"):
        E.lesson05.q1.checker(groups, model)


def test_lrs_generator_params(model):
    groups = groups_for(model, ULMFIT)
    groups[3]["params"] = model.layer3.parameters()
    with pytest.raises(Incorrect, match="can be read only once; wrap it in list"):
        E.lesson05.q1.checker(groups, model)


def test_lrs_parameters_of_another_model(model):
    other = resnet18(num_classes=2)
    with pytest.raises(Incorrect, match="not in this model"):
        E.lesson05.q1.checker(groups_for(other, ULMFIT), model)


def test_lrs_not_an_optimizer(model):
    with pytest.raises(TypeError, match="optimizer or a list of param-group dicts"):
        E.lesson05.q1.checker(1e-3, model)


def test_onecycle_right_and_single_max_lr(model):
    opt = torch.optim.SGD(groups_for(model, ULMFIT), momentum=0.9)
    good = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[ULMFIT[n] for n in STAGES], total_steps=10)
    assert "max_lr" in E.lesson05.q2.checker(good, model)
    opt = torch.optim.SGD(groups_for(model, ULMFIT), momentum=0.9)
    bad = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10)
    with pytest.raises(Incorrect, match="OneCycleLR was given a single max_lr"):
        E.lesson05.q2.checker(bad, model)


def test_onecycle_wrong_scheduler(model):
    opt = torch.optim.SGD(groups_for(model, ULMFIT))
    with pytest.raises(Incorrect, match="expected a torch.optim.lr_scheduler.OneCycleLR, got StepLR"):
        E.lesson05.q2.checker(torch.optim.lr_scheduler.StepLR(opt, step_size=1), model)


def test_lesson07_groups_only_for_unfrozen_stages(model):
    freeze_all_but(model, ("layer3", "layer4", "head"))
    top = ["layer3", "layer4", "head"]
    assert "3 stages" in E.lesson07.q2.checker(groups_for(model, ULMFIT, top), model)
    with pytest.raises(Incorrect, match="group 'layer2' holds only frozen parameters"):
        E.lesson07.q2.checker(groups_for(model, ULMFIT, ["layer2"] + top), model)
    # layer4 given layer3's LR
    shifted = {"layer3": 1e-3 / 2.6**2, "layer4": 1e-3 / 2.6**2, "head": 1e-3}
    with pytest.raises(Incorrect, match="layer4's lr"):
        E.lesson07.q2.checker(groups_for(model, shifted, top), model)


# --------------------------------------------------------------------------------------
# Transforms matching the weights
# --------------------------------------------------------------------------------------

WEIGHTS = ResNet18_Weights.IMAGENET1K_V1


def pipeline(*steps):
    return v2.Compose(list(steps))


RIGHT = pipeline(v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD))


def test_transforms_right_v2_and_v1():
    import torchvision.transforms as T
    assert "(3, 224, 224)" in E.check_transforms(RIGHT, WEIGHTS)
    assert "(3, 224, 224)" in E.check_transforms(RIGHT, WEIGHTS.transforms())
    v1 = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])  # PIL only
    assert "(3, 224, 224)" in E.lesson03.q3.checker(v1)


@pytest.mark.parametrize("steps,message", [
    ((v2.Resize((224, 224)), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)),
     r"Resize\(\[224, 224\]\) squashes the image"),
    ((v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True)),
     "no Normalize: these weights expect inputs standardised with mean=.0.485"),
    ((v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True), v2.Normalize(STD, MEAN)),
     "mean and std swapped"),
    ((v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)),
     r"your Normalize uses mean=\[0.5, 0.5, 0.5\]"),
    ((v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32), v2.Normalize(MEAN, STD)),
     "never scaled to .0, 1.*scale=True"),
    ((v2.Resize(256), v2.CenterCrop(224)), "returns torch.uint8 values"),
    ((v2.Resize(256), v2.CenterCrop(256), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)),
     r"shape \(3, 256, 256\), the weights' own gives \(3, 224, 224\): resize the short side to 256"),
])
def test_transforms_typical_mistakes(steps, message):
    with pytest.raises(Incorrect, match=message):
        E.lesson03.q3.checker(pipeline(*steps))


def test_transforms_pipeline_that_fails():
    def broken(image):
        raise ValueError("boom")
    with pytest.raises(E.CodeRaised, match=r"raised ValueError: boom while the checker called my_transform\(image\)"):
        E.check_transforms(broken, WEIGHTS)
    with pytest.raises(TypeError, match="expected torchvision weights"):
        E.check_transforms(RIGHT, 3)


# --------------------------------------------------------------------------------------
# Metrics computed by hand
# --------------------------------------------------------------------------------------

def acc_per_sample(model, loader):
    model.eval()  # the check network has dropout and BatchNorm, and comes in train mode
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


def acc_per_batch(model, loader):
    model.eval()
    accs = [(model(x).argmax(1) == y).float().mean().item() for x, y in loader]
    return sum(accs) / len(accs)


def acc_without_eval(model, loader):
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


def test_accuracy_right():
    # the check set: 10 samples in batches of 4, 4, 2 with 2, 3, 1 right: 6 / 10
    assert "0.600" in E.check_accuracy_fn(acc_per_sample)
    assert "0.600" in E.check_accuracy_fn(lambda m, dl: torch.tensor(acc_per_sample(m, dl)))


@pytest.mark.parametrize("fn,message", [
    (acc_without_eval, r"ran the model in train mode: it never calls model.eval\(\)"),
    (acc_per_batch, "0.583, the mean of the per-batch accuracies"),  # (2/4 + 3/4 + 1/2) / 3
    (lambda m, dl: 100 * acc_per_sample(m, dl), "a percentage"),
    (lambda m, dl: acc_per_sample(m, dl) * 10 / 3, "not by the number of batches"),
    (lambda m, dl: 1 - acc_per_sample(m, dl), "the error rate"),
    (lambda m, dl: 0.3, "you returned 0.300 on a check set"),
    (lambda m, dl: "high", "should be a number"),
])
def test_accuracy_typical_mistakes(fn, message):
    with pytest.raises(Incorrect, match=message):
        E.check_accuracy_fn(fn)


def pr_right(preds, targets):
    tp = int(((preds == 1) & (targets == 1)).sum())
    return tp / int((preds == 1).sum()), tp / int((targets == 1).sum())


def test_precision_recall():
    # by hand on the check set: TP=2, FP=1, FN=3 -> precision 2/3, recall 2/5
    assert "precision 0.667, recall 0.400" in E.check_precision_recall_fn(pr_right)
    with pytest.raises(Incorrect, match="precision and recall are swapped"):
        E.check_precision_recall_fn(lambda p, t: pr_right(p, t)[::-1])
    with pytest.raises(Incorrect, match="precision and recall are swapped"):
        E.check_precision_recall_fn(lambda p, t: pr_right(t, p))  # arguments the other way round
    with pytest.raises(Incorrect, match="of class 0"):
        E.check_precision_recall_fn(lambda p, t: pr_right(1 - p, 1 - t))
    with pytest.raises(Incorrect, match="accuracy"):
        E.check_precision_recall_fn(lambda p, t: ((p == t).float().mean(), pr_right(p, t)[1]))
    with pytest.raises(Incorrect, match="return a pair"):
        E.check_precision_recall_fn(lambda p, t: 0.5)


def test_confusion_matrix():
    def right(preds, targets, c):
        m = torch.zeros(c, c, dtype=torch.int64)
        for t, p in zip(targets.tolist(), preds.tolist()):
            m[t, p] += 1
        return m
    assert "counts are right" in E.check_confusion_matrix_fn(right)
    assert "counts are right" in E.check_confusion_matrix_fn(lambda p, t, c: right(p, t, c).numpy())
    with pytest.raises(Incorrect, match="transposed"):
        E.check_confusion_matrix_fn(lambda p, t, c: right(t, p, c))
    with pytest.raises(Incorrect, match="normalised"):
        E.check_confusion_matrix_fn(lambda p, t, c: right(p, t, c) / right(p, t, c).sum(1, keepdim=True))
    with pytest.raises(Incorrect, match="shape"):
        E.check_confusion_matrix_fn(lambda p, t, c: torch.zeros(2, 2))


# --------------------------------------------------------------------------------------
# Gradual unfreezing
# --------------------------------------------------------------------------------------

def unfreeze_from(order):
    """An unfreeze(model, epoch) that keeps the first epoch + 1 stages of `order` trainable."""
    def unfreeze(model, epoch):
        freeze_all_but(model, tuple(order[:epoch + 1]))
    return unfreeze


def test_gradual_unfreezing_right():
    assert "by epoch 5 everything trains" in E.check_gradual_unfreezing(unfreeze_from(STAGES[::-1]))


def test_gradual_unfreezing_from_the_input_side():
    with pytest.raises(Incorrect, match="at epoch 0 your head has requires_grad=False"):
        E.check_gradual_unfreezing(unfreeze_from(STAGES))
    with pytest.raises(Incorrect, match=r"at epoch 1 you unfroze stem: unfreeze from the output down \(layer4"):
        E.check_gradual_unfreezing(unfreeze_from(["head", "stem", "layer1", "layer2", "layer3", "layer4"]))


def test_gradual_unfreezing_never_froze():
    def only_adds(model, epoch):  # forgets to freeze anything at epoch 0
        for p in model.parameters():
            p.requires_grad = True
    with pytest.raises(Incorrect, match="at epoch 0, 6 stages train"):
        E.check_gradual_unfreezing(only_adds)


def test_gradual_unfreezing_refreezes():
    def one_stage_at_a_time(model, epoch):
        freeze_all_but(model, ("head", STAGES[::-1][min(epoch, 5)]))
    with pytest.raises(Incorrect, match="layer4 trained at epoch 1 but is frozen again at epoch 2"):
        E.check_gradual_unfreezing(one_stage_at_a_time)


def test_gradual_unfreezing_two_at_a_time():
    def twice_as_fast(model, epoch):
        freeze_all_but(model, tuple(STAGES[::-1][:2 * epoch + 1]))
    with pytest.raises(Incorrect, match=r"at epoch 1, 3 stages train \(layer3, layer4, head\): unfreeze one more"):
        E.check_gradual_unfreezing(twice_as_fast)


# --------------------------------------------------------------------------------------
# Less common wrong answers
# --------------------------------------------------------------------------------------

def test_head_without_a_linear_layer(model):
    model.fc = nn.Identity()
    with pytest.raises(Incorrect, match=r"the head \(model.fc\) holds no nn.Linear layer"):
        E.check_head(model, num_classes=2)


def test_head_check_restores_train_mode(model):
    model.train()
    E.check_head(model, num_classes=2)
    assert all(m.training for m in model.modules())


def test_batchnorm_hook_that_returns_the_module(model):
    freeze_all_but(model, ("layer4", "head"))
    model.bn1.register_forward_pre_hook(lambda module, args: module.eval())  # returns the module
    with pytest.raises(Incorrect, match="a forward pre-hook must return None"):
        E.lesson04.q2.checker(model)


def test_batchnorm_frozen_stages_without_batchnorm():
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    m[0].weight.requires_grad = m[0].bias.requires_grad = False
    assert "hold no BatchNorm layer" in E.check_frozen_batchnorm(m, example=torch.zeros(1, 4))


def test_lrs_two_groups_for_one_stage(model):
    groups = groups_for(model, ULMFIT)
    weights = [p for p in groups[5]["params"] if p.ndim > 1]
    groups[5]["params"] = [p for p in groups[5]["params"] if p.ndim == 1]
    groups.append({"params": weights, "lr": 1e-3, "name": "head.no_decay", "weight_decay": 0.0})
    assert "6 stages" in E.lesson05.q1.checker(groups, model)  # a split stage with one LR is fine
    groups[-1]["lr"] = 5e-4
    with pytest.raises(Incorrect, match=r"two groups of head have different lrs \(0.001 and 0.0005\)"):
        E.lesson05.q1.checker(groups, model)


def test_lrs_frozen_groups_allowed_on_request(model):
    freeze_all_but(model, ("layer4", "head"))
    with pytest.raises(Incorrect, match="group 'stem' holds only frozen parameters"):
        E.check_lrs(groups_for(model, ULMFIT), model, lr=1e-3)
    assert "6 stages" in E.check_lrs(groups_for(model, ULMFIT), model, lr=1e-3, allow_frozen=True)


def test_lrs_accepts_ftlib_optim_param_groups(model):
    optim = pytest.importorskip("ftlib.optim")
    assert "6 stages" in E.lesson05.q1.checker(optim.param_groups(model, 1e-3), model)
    assert "6 stages" in E.lesson05.q1.checker(optim.param_groups(model, 1e-3, weight_decay=0.01), model)


def test_lrs_group_without_lr(model):
    groups = groups_for(model, ULMFIT)
    del groups[1]["lr"]
    with pytest.raises(Incorrect, match="group 'layer1' has no 'lr'"):
        E.lesson05.q1.checker(groups, model)


def test_lrs_head_left_out(model):
    freeze_all_but(model, ("layer3", "layer4"))
    with pytest.raises(Incorrect, match=r"no group holds the head \(head\)"):
        E.check_lrs(groups_for(model, ULMFIT, ["layer3", "layer4"]), model, lr=1e-3)


def test_transforms_reference_from_any_object_with_a_transforms_method():
    class Info:  # like ftlib.models.WeightsInfo
        def transforms(self):
            return WEIGHTS.transforms()
    assert "(3, 224, 224)" in E.check_transforms(RIGHT, Info())


# --------------------------------------------------------------------------------------
# INSTRUCTORS.md quotes what the tests assert
# --------------------------------------------------------------------------------------

def test_instructors_md_quotes_tested_messages():
    """Every phrase INSTRUCTORS.md quotes in its typical-mistakes tables is asserted by a test
    of the exercises, so the page cannot drift from what the checkers say."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    page = (root / "INSTRUCTORS.md").read_text(encoding="utf-8")
    section = page[page.index("## Typical mistakes"):]
    section = section[:section.index("\n## ", 3)]
    tests = "".join(p.read_text(encoding="utf-8") for p in sorted((root / "tests").glob("test_exercises*.py")))
    tests = tests.replace("\\", "")  # regex escapes in match= strings
    rows = [line.split("|")[3] for line in section.splitlines() if line.startswith("| q")]
    quoted = [a or b for row in rows for a, b in re.findall(r"``\s?(.+?)\s?``|`([^`]+)`", row)]
    assert len(rows) > 80 and len(quoted) >= len(rows)
    missing = [q for q in quoted if q not in tests]
    assert not missing, missing
    for lesson in ("01", "02", "03", "04", "05", "06", "07", "08"):
        assert f"**Lesson {lesson}**" in section
