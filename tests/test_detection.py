"""ftlib.detection: IoU and AP against hand-worked cases and maintained code, the box predictor,
the frozen stages, and a tiny detector that trains and predicts (seconds, small images)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from sklearn.metrics import average_precision_score
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from ftlib import detection as D


def test_box_iou_matches_torchvision_on_random_disjoint_and_touching_boxes():
    g = torch.Generator().manual_seed(0)
    xy, wh = torch.rand(20, 2, generator=g) * 50, 1 + torch.rand(20, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + wh], 1)
    assert torch.allclose(D.box_iou(boxes[:12], boxes[8:]), torchvision.ops.box_iou(boxes[:12], boxes[8:]), atol=1e-6)
    a, b = torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[10.0, 0, 20, 10], [20, 20, 30, 30], [5, 0, 15, 10]])
    assert D.box_iou(a, b).tolist() == [[0.0, 0.0, pytest.approx(1 / 3)]]
    assert D.box_iou(torch.zeros(0, 4), b).shape == (0, 3)


def test_xywh_to_xyxy():
    assert D.xywh_to_xyxy(torch.tensor([[1.0, 2, 3, 4]])).tolist() == [[1, 2, 4, 6]]


def test_matching_takes_the_best_score_first_and_counts_duplicates_as_false_positives():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    preds = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 10, 10], [50, 50, 60, 60]])
    hits = D.match_detections(preds, torch.tensor([0.5, 0.9, 0.8]), gt)
    assert hits.tolist() == [False, True, False]    # the higher score claims the object
    assert not D.match_detections(preds, torch.ones(3), gt, iou_threshold=0.99)[1]


def test_average_precision_worked_example_and_scikit_learn():
    hits = torch.tensor([1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)
    scores = torch.linspace(0.9, 0.3, 7)
    raw = D.average_precision(hits, scores, 5, envelope=False)
    assert raw == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 7) / 5, abs=1e-6)
    assert D.average_precision(hits, scores, 5) == pytest.approx((1 + 3 / 4 + 3 / 4 + 4 / 7) / 5, abs=1e-6)
    assert raw == pytest.approx(average_precision_score(hits.numpy(), scores.numpy()) * 4 / 5, abs=1e-6)
    assert D.average_precision(torch.ones(3, dtype=torch.bool), torch.rand(3), 3) == pytest.approx(1.0)
    assert D.average_precision(torch.zeros(0, dtype=torch.bool), torch.zeros(0), 4) == 0.0


def test_map_is_one_for_perfect_predictions_and_mean_over_classes():
    t = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]]), "labels": torch.tensor([1, 2])}]
    perfect = [{"boxes": t[0]["boxes"], "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 2])}]
    assert D.mean_average_precision(perfect, t, 2) == pytest.approx(1.0)
    wrong_label = [{"boxes": t[0]["boxes"], "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 1])}]
    assert D.mean_average_precision(wrong_label, t, 2) == pytest.approx(0.5)
    shifted = [{"boxes": t[0]["boxes"] + 3, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 2])}]
    coco = D.mean_average_precision(shifted, t, 2, torch.arange(0.5, 0.96, 0.05))
    assert 0 < coco < D.mean_average_precision(shifted, t, 2) <= 1
    assert D.precision_recall(wrong_label, t, score_threshold=0.5) == (0.5, 0.5)


@pytest.mark.parametrize("k", [0, 3, 5])
def test_trainable_layers_count_as_torchvision_counts(k):
    ours = D.resnet18_fpn(None, trainable_layers=k)
    theirs = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=k, returned_layers=[2, 3, 4])
    assert ({n for n, p in ours.body.named_parameters() if p.requires_grad}
            == {n for n, p in theirs.body.named_parameters() if p.requires_grad})
    assert D.trainable_layer_names(k) == ["conv1", "layer1", "layer2", "layer3", "layer4"][5 - k:]
    with pytest.raises(ValueError):
        D.trainable_layer_names(6)


def test_frozen_bn_is_the_default_and_scratch_gets_batchnorm():
    frozen = D.resnet18_fpn(None)
    assert any(isinstance(m, torchvision.ops.FrozenBatchNorm2d) for m in frozen.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.resnet18_fpn(None, 5, frozen_bn=False).modules())


def test_pretrained_state_dict_loads_into_the_body():
    state = torchvision.models.resnet18().state_dict()
    bb = D.resnet18_fpn(state, 3)
    assert torch.equal(bb.body.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(bb.body.bn1.running_mean, state["bn1.running_mean"])


def test_replace_box_predictor_adds_the_background():
    model = D.fasterrcnn_resnet18_fpn(D.resnet18_fpn(None, out_channels=16), 2, representation=32)
    new = D.replace_box_predictor(model, 4)
    assert model.roi_heads.box_predictor is new
    assert (new.cls_score.in_features, new.cls_score.out_features, new.bbox_pred.out_features) == (32, 5, 20)
    with pytest.raises(ValueError):
        D.replace_box_predictor(model, 0)


def test_a_tiny_detector_trains_and_predicts():
    from ftlib.course.detection_standin import make_detection_standin
    data = make_detection_standin(4, 2, size=64, seed=3)
    torch.manual_seed(0)
    model = D.fasterrcnn_resnet18_fpn(D.resnet18_fpn(None, 5, frozen_bn=False, out_channels=16), 3,
                                      image_size=64, representation=32)
    history = D.train_detector(model, data.train.images, data.train.targets, epochs=2, lr=1e-3, batch_size=2,
                               adam=True)
    assert len(history["loss"]) == len(history["seconds"]) == 2 and all(l == l for l in history["loss"])
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(history)
    assert all(p.grad is None for p in model.parameters()), "a trained detector keeps no gradients"
    preds = D.predict_detections(model, data.test.images)
    assert len(preds) == 2 and set(preds[0]) == {"boxes", "scores", "labels"} and model.training
    assert 0.0 <= D.mean_average_precision(preds, data.test.targets, 3) <= 1.0
