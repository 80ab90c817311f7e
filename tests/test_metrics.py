"""Metrics against hand-worked examples (the arithmetic is in the comments)."""

import math

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from ftlib.metrics import (Evaluation, accuracy, binary_metrics, classification_report, confusion_matrix,
                           evaluate, per_class_metrics, predict, top_k_accuracy)

# 3-class example used below.
#   targets: 0 0 0 0 | 1 1 1 | 2 2 2        (support 4, 3, 3)
#   preds:   0 0 1 2 | 1 1 0 | 2 2 1
# Confusion matrix (row = true, column = predicted):
#   true 0: [2, 1, 1]
#   true 1: [1, 2, 0]
#   true 2: [0, 1, 2]
# class 0: TP 2, predicted 3 -> P 2/3; support 4 -> R 1/2; F1 = 2PR/(P+R) = (2/3)/(7/6) = 4/7
# class 1: TP 2, predicted 4 -> P 1/2; support 3 -> R 2/3; F1 = 4/7
# class 2: TP 2, predicted 3 -> P 2/3; support 3 -> R 2/3; F1 = 2/3
# macro:    P = (2/3 + 1/2 + 2/3)/3 = 11/18, R = 11/18, F1 = (4/7 + 4/7 + 2/3)/3 = 38/63
# weighted: P = (4*2/3 + 3*1/2 + 3*2/3)/10 = 37/60, R = (2 + 2 + 2)/10 = 3/5,
#           F1 = (4*4/7 + 3*4/7 + 3*2/3)/10 = 3/5
TARGETS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
PREDS = torch.tensor([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
CM = [[2, 1, 1], [1, 2, 0], [0, 1, 2]]


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(PREDS, TARGETS, 3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == CM


def test_confusion_matrix_accepts_logits_and_rejects_bad_classes():
    logits = torch.nn.functional.one_hot(PREDS, 3).float()
    assert confusion_matrix(logits, TARGETS, 3).tolist() == CM
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(PREDS, TARGETS, 2)


def test_per_class_metrics_hand_worked():
    rows = per_class_metrics(torch.tensor(CM), ["a", "b", "c"])
    expected = [("a", 2 / 3, 1 / 2, 4 / 7, 4), ("b", 1 / 2, 2 / 3, 4 / 7, 3), ("c", 2 / 3, 2 / 3, 2 / 3, 3),
                ("macro avg", 11 / 18, 11 / 18, 38 / 63, 10), ("weighted avg", 37 / 60, 3 / 5, 3 / 5, 10)]
    assert len(rows) == len(expected)
    for row, (name, p, r, f1, support) in zip(rows, expected):
        assert row["name"] == name
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(r)
        assert row["f1"] == pytest.approx(f1)
        assert row["support"] == support


def test_per_class_metrics_zero_division_is_zero():
    # class 0: TP 3 of 3 predicted (P 1), of 4 samples (R 3/4), F1 = 2(3/4)/(7/4) = 6/7
    # class 2: never predicted and no samples -> P = R = F1 = 0 (0/0 is 0 by definition here)
    # class 1: predicted once, wrongly, and has no samples -> P = 0/1 = 0, R = 0/0 = 0
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    rows = per_class_metrics(cm)
    assert [(r["precision"], r["recall"], r["f1"], r["support"]) for r in rows[:3]] == [
        (1.0, 0.75, pytest.approx(6 / 7), 4), (0.0, 0.0, 0.0, 0), (0.0, 0.0, 0.0, 0)]
    # macro averages every class, the empty ones included: P = 1/3, R = 0.25
    assert rows[3]["precision"] == pytest.approx(1 / 3)
    assert rows[3]["recall"] == pytest.approx(0.25)
    # weighted: only class 0 has support
    assert rows[4]["recall"] == pytest.approx(0.75)


def test_per_class_metrics_agree_with_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    g = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 5, (200,), generator=g)
    preds = torch.where(torch.rand(200, generator=g) < 0.6, targets, torch.randint(0, 5, (200,), generator=g))
    rows = per_class_metrics(confusion_matrix(preds, targets, 5))
    p, r, f, s = precision_recall_fscore_support(targets.numpy(), preds.numpy(), labels=range(5), zero_division=0)
    for i in range(5):
        assert rows[i]["precision"] == pytest.approx(p[i])
        assert rows[i]["recall"] == pytest.approx(r[i])
        assert rows[i]["f1"] == pytest.approx(f[i])
        assert rows[i]["support"] == s[i]
    for row, average in ((rows[5], "macro"), (rows[6], "weighted")):
        p, r, f, _ = precision_recall_fscore_support(targets.numpy(), preds.numpy(), average=average, zero_division=0)
        assert (row["precision"], row["recall"], row["f1"]) == (pytest.approx(p), pytest.approx(r), pytest.approx(f))


def test_classification_report_lists_each_class_and_accuracy():
    text = classification_report(torch.tensor(CM), ["cat", "dog", "bird"])
    lines = text.splitlines()
    cat = next(line for line in lines if line.strip().startswith("cat")).split()
    assert cat == ["cat", "0.667", "0.500", "0.571", "4"]
    acc = next(line for line in lines if line.strip().startswith("accuracy")).split()
    assert acc == ["accuracy", "0.600", "10"]
    assert any(line.strip().startswith("macro avg") for line in lines)


def test_accuracy_from_logits_and_from_preds():
    assert accuracy(PREDS, TARGETS) == pytest.approx(0.6)  # 2 + 2 + 2 right out of 10
    logits = torch.nn.functional.one_hot(PREDS, 3).float()
    assert accuracy(logits, TARGETS) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="targets"):
        accuracy(PREDS, TARGETS[:5])


def test_top_k_accuracy_hand_worked():
    logits = torch.tensor([[0.1, 0.5, 0.3, 0.1],   # target 2: rank 2
                           [0.7, 0.1, 0.1, 0.1],   # target 0: rank 1
                           [0.1, 0.2, 0.3, 0.4],   # target 0: rank 4
                           [0.3, 0.4, 0.2, 0.1]])  # target 0: rank 2
    targets = torch.tensor([2, 0, 0, 0])
    # top-1: 1 of 4; top-2: 3 of 4; top-3: still 3 of 4; top-4: all
    assert [top_k_accuracy(logits, targets, k) for k in (1, 2, 3, 4)] == [0.25, 0.75, 0.75, 1.0]
    with pytest.raises(ValueError, match="k=5"):
        top_k_accuracy(logits, targets, 5)


# Binary example, positive class = 1, threshold 0.5:
#   positives' scores: 0.9 0.6 0.4   -> predicted 1 1 0: TP 2, FN 1 -> sensitivity 2/3
#   negatives' scores: 0.7 0.3 0.2 0.1 -> predicted 1 0 0 0: FP 1, TN 3 -> specificity 3/4
#   accuracy (2 + 3)/7 = 5/7, precision 2/3
#   AUC by counting (positive, negative) pairs where the positive scores higher: 3 x 4 = 12 pairs;
#   0.9 beats 4, 0.6 beats 3 (not 0.7), 0.4 beats 3 -> 10/12 = 5/6
def test_binary_metrics_hand_worked():
    scores = torch.tensor([0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1])
    targets = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    m = binary_metrics(scores, targets)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (2, 1, 3, 1)
    # threshold 0.65: only 0.9 and 0.7 are predicted positive -> sensitivity 1/3, specificity 3/4
    m = binary_metrics(scores, targets, threshold=0.65)
    assert (m["sensitivity"], m["specificity"], m["threshold"]) == (pytest.approx(1 / 3), 0.75, 0.65)
    assert m["roc_auc"] == pytest.approx(5 / 6)  # AUC does not depend on the threshold


def test_binary_auc_counts_ties_as_half_and_matches_pair_counting():
    # one positive and one negative with the same score: one pair, a tie -> AUC 1/2
    assert binary_metrics(torch.tensor([0.5, 0.5]), torch.tensor([1, 0]))["roc_auc"] == pytest.approx(0.5)
    g = torch.Generator().manual_seed(0)
    scores = (torch.rand(40, generator=g) * 10).round() / 10  # many ties
    targets = (torch.rand(40, generator=g) < 0.4).long()
    pos, neg = scores[targets == 1].tolist(), scores[targets == 0].tolist()
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert binary_metrics(scores, targets)["roc_auc"] == pytest.approx(pairs / (len(pos) * len(neg)))


def test_binary_metrics_errors_and_single_class():
    with pytest.raises(ValueError, match="softmax"):
        binary_metrics(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics(torch.zeros(3), torch.tensor([0, 1, 2]))
    assert math.isnan(binary_metrics(torch.tensor([0.2, 0.8]), torch.tensor([1, 1]))["roc_auc"])


class Echo(nn.Module):
    """Predicts the class stored in the input's first feature; records the mode it ran in."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes, self.bn = num_classes, nn.BatchNorm1d(1)
        self.modes_seen = []

    def forward(self, x):
        self.modes_seen.append((self.training, self.bn.training))
        return nn.functional.one_hot(x[:, 0].long(), self.num_classes).float()


def test_evaluate_counts_over_samples_with_a_short_last_batch():
    # batches of 4, 4, 2: right 4/4, 0/4, 2/2 -> over samples 6/10 = 0.6 (a per-batch mean would say 2/3)
    preds = torch.tensor([0, 1, 2, 0, 1, 1, 1, 1, 2, 0])
    targets = torch.tensor([0, 1, 2, 0, 0, 0, 0, 0, 2, 0])
    loader = DataLoader(TensorDataset(preds[:, None].float(), targets), batch_size=4)
    model = Echo(3)
    model.train()
    model.bn.eval()  # e.g. a frozen BatchNorm: must stay in eval mode afterwards
    result = evaluate(model, loader, class_names=["a", "b", "c"])
    assert result.accuracy == pytest.approx(0.6)
    assert result.logits.shape == (10, 3) and result.targets.dtype == torch.int64
    assert result.preds.tolist() == preds.tolist()
    assert result.mistakes.tolist() == [4, 5, 6, 7]
    assert result.confusion_matrix.tolist() == confusion_matrix(preds, targets, 3).tolist()
    assert "a" in result.report()
    assert set(model.modes_seen) == {(False, False)}          # ran in eval mode
    assert (model.training, model.bn.training) == (True, False)  # each module's mode restored


def test_evaluate_moves_the_model_to_the_device_it_is_given(monkeypatch):
    model, moved_to = Echo(2), []
    real_to = nn.Module.to
    monkeypatch.setattr(Echo, "to", lambda self, *a, **k: moved_to.append(a) or real_to(self, *a, **k), raising=False)
    loader = DataLoader(TensorDataset(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)), batch_size=2)
    evaluate(model, loader, device="cpu")
    assert moved_to == [(torch.device("cpu"),)]


def test_evaluation_binary_uses_class_one_as_positive():
    # logits give P(class 1) = sigmoid(l1 - l0): 0.73, 0.27, 0.88, 0.5 (tie at the threshold counts positive)
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    result = Evaluation(logits, torch.tensor([1, 1, 0, 0]))
    m = result.binary()
    # predicted positive: samples 0, 2, 3 -> TP 1 (sample 0), FN 1 (sample 1), FP 2, TN 0
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (1, 1, 2, 0)
    assert m["sensitivity"] == 0.5 and m["specificity"] == 0.0
    with pytest.raises(ValueError, match="2 classes"):
        Evaluation(torch.zeros(2, 3), torch.tensor([0, 1])).binary()


class MeanColour(nn.Module):
    """Logits = 10 x the mean of each of the 3 channels: a red image is class 0, green 1, blue 2."""

    def forward(self, x):
        return 10 * x.mean(dim=(2, 3))


def _p_top() -> float:
    # a pure colour at full intensity: logits (10, 0, 0) -> softmax e^10 / (e^10 + 2)
    return math.exp(10) / (math.exp(10) + 2)


def test_predict_on_tensor_pil_and_path(tmp_path):
    path = tmp_path / "green.png"
    Image.new("RGB", (6, 5), (0, 255, 0)).save(path)
    red = Image.new("RGB", (6, 5), (255, 0, 0))
    blue = torch.zeros(3, 5, 6, dtype=torch.uint8)
    blue[2] = 255
    names = ["red", "green", "blue"]
    out = predict(MeanColour(), [red, str(path), blue], class_names=names)
    assert [o[0][0] for o in out] == ["red", "green", "blue"]
    assert all(o[0][1] == pytest.approx(_p_top()) for o in out)
    # a single path and k=2: the two other classes tie at 1 / (e^10 + 2)
    (top, second), = predict(MeanColour(), path, k=2)
    assert top == (1, pytest.approx(_p_top()))
    assert second[1] == pytest.approx(1 / (math.exp(10) + 2))


def test_predict_on_a_float_batch_and_with_a_transform(tmp_path):
    batch = torch.zeros(2, 3, 4, 4)
    batch[0, 2] = 1.0   # blue
    batch[1, 0] = 1.0   # red
    assert [o[0][0] for o in predict(MeanColour(), batch)] == [2, 0]
    # images of different sizes need a resizing transform
    small, big = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (9, 7), (0, 0, 255))
    with pytest.raises(ValueError, match="transform"):
        predict(MeanColour(), [small, big])
    tf = v2.Compose([v2.Resize((4, 4)), v2.ToDtype(torch.float32, scale=True)])
    assert [o[0][0] for o in predict(MeanColour(), [small, big], transform=tf)] == [0, 2]


def test_predict_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        predict(MeanColour(), tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="bad.png"):
        predict(MeanColour(), bad)
    with pytest.raises(TypeError, match="file paths"):
        predict(MeanColour(), 42)
    with pytest.raises(ValueError, match="k=4"):
        predict(MeanColour(), torch.zeros(3, 2, 2), k=4)
    with pytest.raises(ValueError, match="class names"):
        predict(MeanColour(), torch.zeros(3, 2, 2), class_names=["a", "b"])


# ------------------------------------------------------------------ labels that are not class indices

def test_metric_functions_refuse_labels_that_are_not_class_indices():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    for bad, shown in ((torch.tensor([0, 1, 12, 2]), "label 12"), (torch.tensor([0, -1, 2, 2]), "label -1")):
        with pytest.raises(ValueError, match=rf"class indices 0\.\.2 for this model's 3 outputs.*{shown}: "
                                             r"is num_classes right\?"):
            accuracy(logits, bad)
        with pytest.raises(ValueError, match=shown):
            top_k_accuracy(logits, bad, k=2)
    with pytest.raises(ValueError, match="label -1"):
        accuracy(torch.tensor([0, 1, 2, 1]), torch.tensor([0, 1, -1, 2]))  # preds: C unknown, still >= 0
    for fn in (lambda t: accuracy(logits, t), lambda t: top_k_accuracy(logits, t, k=2),
               lambda t: confusion_matrix(logits, t, 3)):
        with pytest.raises(ValueError, match=r"torch\.float32: convert them with \.long\(\)"):
            fn(torch.tensor([0.0, 1.0, 2.7, 1.0]))  # 2.7 would be truncated to 2 silently
    with pytest.raises(ValueError, match="binary targets must be 0 or 1"):
        binary_metrics(torch.tensor([0.2, 0.8]), torch.tensor([0.0, 0.7]))
    as_float = binary_metrics(torch.tensor([0.2, 0.8]), torch.tensor([0.0, 1.0]))  # BCE-style targets work
    assert as_float["accuracy"] == 1.0 and as_float["tp"] == 1


def test_evaluate_names_the_batch_with_a_bad_label():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(10, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 5, 1, 2])  # sample 7: in batch 1 of 4-sample batches
    with pytest.raises(ValueError, match=r"0\.\.2 for this model's 3 outputs; batch 1 has label 5"):
        evaluate(model, DataLoader(TensorDataset(x, y), batch_size=4), device="cpu")
    with pytest.raises(ValueError, match=r"batch 0 are torch\.float32"):
        evaluate(model, DataLoader(TensorDataset(x, y.float()), batch_size=4), device="cpu")
    with pytest.raises(ValueError, match=r"empty batch \(batch 0\)"):
        evaluate(model, [(x[:0], y[:0])], device="cpu")


# ---------------------------------------------------------------- ROC curve and thresholds

def test_threshold_for_sensitivity_is_the_highest_that_reaches_the_target():
    from ftlib.metrics import threshold_for_sensitivity

    gen = torch.Generator().manual_seed(9)
    for n, target in ((50, 0.95), (37, 0.8), (200, 0.9), (11, 1.0)):
        targets = (torch.rand(n, generator=gen) < 0.4).long()
        targets[:2] = torch.tensor([0, 1])
        scores = torch.rand(n, generator=gen) + 0.3 * targets
        t = threshold_for_sensitivity(scores, targets, target)
        assert binary_metrics(scores, targets, t)["sensitivity"] >= target
        higher = scores[scores > t]
        if len(higher):       # the next score up flags fewer positives and misses the target
            assert binary_metrics(scores, targets, float(higher.min()))["sensitivity"] < target


def test_threshold_for_sensitivity_refuses_one_class_and_a_bad_target():
    from ftlib.metrics import threshold_for_sensitivity

    with pytest.raises(ValueError, match="both 0 and 1"):
        threshold_for_sensitivity(torch.rand(5), torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="target sensitivity"):
        threshold_for_sensitivity(torch.rand(4), torch.tensor([0, 1, 0, 1]), 1.5)
    with pytest.raises(ValueError, match=r"softmax\(1\)\[:, 1\]"):
        threshold_for_sensitivity(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]))


def test_roc_curve_matches_binary_metrics_at_each_threshold():
    from ftlib.metrics import roc_curve

    gen = torch.Generator().manual_seed(3)
    targets = torch.tensor([0, 1] * 15)
    scores = torch.rand(30, generator=gen) + 0.5 * targets
    curve = roc_curve(scores, targets)
    assert torch.isinf(curve["thresholds"][0]) and curve["tpr"][0] == 0 and curve["fpr"][0] == 0
    assert curve["tpr"][-1] == 1 and curve["fpr"][-1] == 1
    for t, tpr, fpr in zip(curve["thresholds"][1:], curve["tpr"][1:], curve["fpr"][1:]):
        m = binary_metrics(scores, targets, float(t))
        assert m["sensitivity"] == pytest.approx(float(tpr)) and 1 - m["specificity"] == pytest.approx(float(fpr))
