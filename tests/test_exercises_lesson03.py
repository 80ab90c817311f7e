"""Tests of lesson 03's exercises (ftlib.exercises.lesson03): right answers written several
ways pass; the typical mistakes fail with their message.

q1 (a frozen resnet18 with a new linear head), q2 (accuracy over a loader: a seeded small
network with BatchNorm and dropout, handed over in train mode, on three loaders with a short
last batch), q3 (preprocessing that matches the weights, on four images of different shapes)."""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.transforms import v2

from ftlib.exercises import Incorrect, lesson03
from ftlib.models import stages


def fails(exercise, answer, match: str) -> str:
    with pytest.raises(Incorrect, match=match) as info:
        exercise.verify(answer)
    return str(info.value)


# --- q1: a feature extractor with a new head ------------------------------------------------

def frozen_resnet():
    torch.manual_seed(0)
    model = resnet18()
    for p in model.parameters():
        p.requires_grad = False
    return model


def head_solution():
    model = frozen_resnet()
    model.fc = nn.Linear(model.fc.in_features, 2)
    return model


def head_requires_grad_():
    model = resnet18().requires_grad_(False)  # nn.Module.requires_grad_ on the whole model
    model.fc = nn.Linear(512, 2)
    return model


def head_by_stages():
    model = resnet18()
    model.fc = nn.Linear(512, 2)
    for name, stage in stages(model).items():
        for p in stage.parameters():
            p.requires_grad = name == "head"
    return model


def head_with_dropout():
    model = frozen_resnet()
    model.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 2))  # dropout has no weights
    return model


@pytest.mark.parametrize("make", [head_solution, head_requires_grad_, head_by_stages, head_with_dropout])
def test_q1_right_answers_pass(make):
    assert "1,026 trainable parameters" in lesson03.q1.verify(make())


def with_head(head):
    def make():
        model = frozen_resnet()
        model.fc = head
        return model
    return make


def replaced_then_frozen():
    model = resnet18()
    model.fc = nn.Linear(512, 2)
    for p in model.parameters():
        p.requires_grad = False
    return model


def nothing_frozen():
    model = resnet18()
    model.fc = nn.Linear(512, 2)
    return model


def batchnorm_left_trainable():
    model = head_solution()
    model.layer2[0].bn1.weight.requires_grad = True
    return model


def output_detached():
    model = head_solution()
    model.fc.register_forward_hook(lambda module, args, out: out.detach())
    return model


@pytest.mark.parametrize("make, message", [
    (frozen_resnet, "outputs 1000 classes but the data set has 2.*ImageNet's classifier, still in place"),
    (with_head(nn.Linear(512, 3)), "outputs 3 classes but the data set has 2"),
    (with_head(nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 2))),
     r"your head is an MLP of 2 linear layers \(512 -> 256 -> 2\): the task asks for one linear layer"),
    (with_head(nn.Sequential(nn.Linear(512, 2), nn.Softmax(dim=1))), "outputs are probabilities.*ends in a softmax"),
    (with_head(nn.Sequential(nn.Linear(512, 2), nn.LogSoftmax(dim=1))), "log-probabilities"),
    (with_head(nn.Sequential(nn.BatchNorm1d(512), nn.Linear(512, 2))), "holds BatchNorm1d besides its linear layer"),
    (with_head(nn.Linear(256, 2)), "takes 256 features, but the backbone gives 512"),
    (replaced_then_frozen, "your head has requires_grad=False"),
    (nothing_frozen, "nothing is frozen"),
    (batchnorm_left_trainable, r"layer2 is only partly frozen \(layer2.0.bn1.weight"),
    (output_detached, "output carries no gradient"),
])
def test_q1_typical_mistakes(make, message):
    fails(lesson03.q1, make(), message)


def test_q1_wrong_family_and_placeholder():
    fails(lesson03.q1, nn.Sequential(nn.Linear(512, 2)), "uses a torchvision resnet model")
    fails(lesson03.q1, None, "no answer yet")


def test_q1_leaves_gradients_and_modes_alone():
    model = head_solution().train()
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    lesson03.q1.verify(model)
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight))
    assert all(m.training for m in model.modules())


# --- q2: accuracy over samples ----------------------------------------------------------------

def acc_loop(model, loader):
    model.eval()
    hits = seen = 0
    for x, y in loader:
        for p, t in zip(model(x).argmax(1).tolist(), y.tolist()):  # sample by sample
            hits += p == t
            seen += 1
    return hits / seen


def acc_eval_no_grad(model, loader):
    model.eval()
    with torch.no_grad():
        hits = torch.cat([model(x).argmax(1) == y for x, y in loader])
    return hits.float().mean()  # a 0-d tensor


def acc_numpy(model, loader):
    model.train(False)  # the same as model.eval()
    with torch.no_grad():
        pairs = [(model(x).argmax(1).numpy(), y.numpy()) for x, y in loader]
    preds, labels = np.concatenate([p for p, _ in pairs]), np.concatenate([y for _, y in pairs])
    return np.mean(preds == labels)  # a numpy float


def acc_sklearn(model, loader):
    metrics = pytest.importorskip("sklearn.metrics")
    model.eval()
    with torch.inference_mode():
        preds = torch.cat([model(x).argmax(1) for x, _ in loader])
    return metrics.accuracy_score(torch.cat([y for _, y in loader]).numpy(), preds.numpy())


def acc_dataset_len(model, loader):
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    model.train()  # giving train mode back afterwards is fine
    return correct / len(loader.dataset)


@pytest.mark.parametrize("fn", [acc_loop, acc_eval_no_grad, acc_numpy, acc_sklearn, acc_dataset_len])
def test_q2_right_answers_pass(fn):
    assert "0.600" in lesson03.q2.verify(fn)


def test_q2_solution_passes():
    scope = {}
    exec(lesson03.q2.solution_code, scope)
    assert "right on loaders of 23 and 37" in lesson03.q2.verify(scope["accuracy"])


def acc_without_eval(model, loader):
    with torch.no_grad():  # no_grad alone does not switch off dropout or batch statistics
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / len(loader.dataset)


def acc_per_batch(model, loader):
    model.eval()
    accs = [(model(x).argmax(1) == y).float().mean().item() for x, y in loader]
    return sum(accs) / len(accs)


def acc_full_batches(model, loader):
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / (loader.batch_size * len(loader))


def right_once():
    seen = []

    def accuracy(model, loader):
        seen.append(acc_loop(model, loader))
        return seen[0]  # the first loader's answer, every time
    return accuracy


def acc_raises(model, loader):
    return sum(model(x).argmax(1) == y for x, y in loader).item()  # sums per-position tensors: shapes differ


@pytest.mark.parametrize("fn,message", [
    (acc_without_eval, r"ran the model in train mode: it never calls model.eval\(\).*Call model.eval\(\)"),
    (acc_per_batch, "the mean of the per-batch accuracies"),
    (lambda m, dl: 0.6, "without calling the model"),  # the check set's answer, hard-coded
    (lambda m, dl: 0.3, "never called the model"),
    (right_once(), r"on a check set of 23 samples in batches of 5, 5, 5, 5 and 3, expected 0.609"),
    (lambda m, dl: 100 * acc_loop(m, dl), "a percentage"),
    (acc_full_batches, "batch size x number of batches"),
    (lambda m, dl: 1 - acc_loop(m, dl), "the error rate"),
    (lambda m, dl: acc_loop(m, dl) * len(dl.dataset) / len(dl), "not by the number of batches"),
    (lambda m, dl: "high", "should be a number"),
])
def test_q2_typical_mistakes(fn, message):
    fails(lesson03.q2, fn, message)


def test_q2_code_that_raises_names_the_call():
    with pytest.raises(Incorrect, match=r"your code raised RuntimeError.*accuracy\(model, loader\)"):
        lesson03.q2.verify(acc_raises)


def test_q2_forgetting_eval_fails_even_when_the_number_comes_out_right():
    def eval_mode_numbers_train_mode_calls(model, loader):
        answer = acc_loop(model, loader)
        model.train()
        with torch.no_grad():
            for x, _ in loader:
                model(x)  # one more pass in train mode, result unused
        return answer
    fails(lesson03.q2, eval_mode_numbers_train_mode_calls, "ran the model in train mode")


def test_q2_probes_are_fixed_and_separate_the_mistakes():
    probes = lesson03.q2.checker.__globals__["_accuracy_probes"]
    state = torch.random.get_rng_state()
    a, b = probes(), probes()
    assert torch.equal(state, torch.random.get_rng_state())  # the student's seed is left alone
    for (m, dl, r), (_, dl2, r2) in zip(a, b):
        assert m.training  # handed over in train mode
        assert torch.equal(r, r2) and torch.equal(dl.dataset.tensors[0], dl2.dataset.tensors[0])
        assert len(dl.dataset) % dl.batch_size > 1  # a short last batch, which BatchNorm can take
        assert abs(acc_loop(m, dl) - acc_per_batch(m, dl)) > 1e-3
        right = acc_loop(m, dl)
        torch.manual_seed(0)
        assert abs(acc_without_eval(m.train(), dl) - right) > 1e-3  # train mode changes the answer


def test_q2_check_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with pytest.raises(Incorrect):
        lesson03.q2.verify(acc_without_eval)  # dropout in train mode draws random numbers
    assert torch.equal(torch.rand(2), expected)


# --- q3: preprocessing that matches the weights ---------------------------------------------

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
F = v2.functional


def by_functions(image):
    image = F.center_crop(F.resize(image, [256]), [224])
    return F.normalize(F.to_dtype(image, torch.float32, scale=True), MEAN, STD)


@pytest.mark.parametrize("pipeline", [
    v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]),
    v2.Compose([v2.ToImage(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]),
    T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)]),  # v1, PIL images only
    ResNet18_Weights.IMAGENET1K_V1.transforms(),
    by_functions,
])
def test_q3_right_answers_written_differently_pass(pipeline):
    assert "on 4 images of different shapes" in lesson03.q3.verify(pipeline)


def steps(*parts):
    return v2.Compose([*parts, v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


@pytest.mark.parametrize("pipeline, message", [
    (steps(v2.RandomResizedCrop(224)), r"different outputs for the same image \(RandomResizedCrop\)"),
    (steps(v2.Resize(256), v2.CenterCrop(224), v2.RandomHorizontalFlip()), "random transforms belong in the training"),
    (steps(v2.Resize(224), v2.CenterCrop(224)), "short side to 224 px, the weights' to 256 px"),
    (steps(v2.Resize(256, interpolation=v2.InterpolationMode.NEAREST), v2.CenterCrop(224)), "NEAREST interpolation"),
    (steps(v2.Resize((224, 224))), r"Resize\(\[224, 224\]\) squashes the image"),
    (steps(v2.CenterCrop(224)), r"for a \(3, 300, 400\) image: the size and normalisation agree but the pixels differ"),
])
def test_q3_typical_mistakes(pipeline, message):
    fails(lesson03.q3, pipeline, message)


def test_q3_test_images_differ_in_shape_and_are_fixed():
    images = lesson03.q3.checker.__globals__["_test_images"]
    a, b = images(), images()
    assert len({tuple(i.shape) for i in a}) == 4 and all(i.dtype == torch.uint8 for i in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
