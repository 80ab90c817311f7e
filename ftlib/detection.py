"""Object detection: a ResNet-18 FPN Faster R-CNN, its box predictor, training, IoU and AP.

Lesson 12 carries the classification recipe (a new head, frozen early stages, a low learning
rate, a race against scratch) over to detection with torchvision's own parts:

- `resnet18_fpn(weights, trainable_layers)`: a ResNet-18 body with a feature pyramid, built
  with torchvision's `BackboneWithFPN`, frozen the way `resnet_fpn_backbone` freezes it;
- `fasterrcnn_resnet18_fpn(...)`: a Faster R-CNN on it, sized for small images on a CPU;
- `replace_box_predictor(model, num_classes)`: the new head (num_classes + 1 outputs: the
  background is class 0);
- `train_detector`, `predict_detections`: the loop and inference, on lists of images;
- `box_iou`, `average_precision`, `mean_average_precision`, `precision_recall`: the metrics,
  written out so that a student can read them.

Targets follow torchvision: one dict per image with `boxes` (K, 4) float in (x1, y1, x2, y2)
pixels and `labels` (K,) int64 in 1..C (0 is the background). Used in lesson 12.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .config import data_dir
from .device import seed_everything

__all__ = ["DetectionSet", "DetectionSplits", "BODY_LAYERS", "resnet18_fpn", "fasterrcnn_resnet18_fpn", "replace_box_predictor",
           "trainable_layer_names", "train_detector", "predict_detections", "box_iou", "xywh_to_xyxy",
           "match_detections", "class_detections", "average_precision", "mean_average_precision", "precision_recall",
           "load_detection_data", "backbone_weights"]

BODY_LAYERS = ("conv1", "layer1", "layer2", "layer3", "layer4")
"""The five parts of a ResNet body that `trainable_layers` counts, input to output."""


def trainable_layer_names(trainable_layers: int) -> list[str]:
    """The body parts that train for `trainable_layers` in 0..5, counted from layer4 down, as
    torchvision's `resnet_fpn_backbone(trainable_layers=...)` counts them: 3 -> layer2-layer4."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5 (conv1, layer1..layer4), not {trainable_layers}.")
    return list(BODY_LAYERS[5 - trainable_layers:])


def resnet18_fpn(state_dict: dict[str, torch.Tensor] | None, trainable_layers: int = 3, *,
                 frozen_bn: bool = True, out_channels: int = 128) -> BackboneWithFPN:
    """A ResNet-18 body with a feature pyramid on layer2, layer3, layer4 (strides 8, 16, 32)
    plus a max-pooled level (stride 64), `out_channels` channels each.

    state_dict: ResNet-18 weights (e.g. `ftlib.load_model("resnet18", "offline").state_dict()`)
    or None for random ones. frozen_bn: BatchNorm as torchvision's pretrained detectors have it,
    `FrozenBatchNorm2d` (fixed statistics and affine); False gives ordinary, trainable
    `BatchNorm2d`, which a random backbone needs. The parts outside
    `trainable_layer_names(trainable_layers)` get requires_grad=False. Lesson 12.
    """
    body = resnet18(norm_layer=FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d)
    if state_dict is not None:
        body.load_state_dict(state_dict)
    train = trainable_layer_names(trainable_layers)
    for name, p in body.named_parameters():
        p.requires_grad_(any(name.startswith(part) for part in train) or
                         (name.startswith("bn1") and "conv1" in train))
    return BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512],
                           out_channels, extra_blocks=LastLevelMaxPool())


def fasterrcnn_resnet18_fpn(backbone: BackboneWithFPN, num_classes: int, *, image_size: int = 128,
                            mean: Sequence[float] = (0.485, 0.456, 0.406),
                            std: Sequence[float] = (0.229, 0.224, 0.225),
                            samples: int = 64, representation: int = 256) -> FasterRCNN:
    """A Faster R-CNN on `backbone` for `num_classes` object classes (the background is added).

    Sized for small images on a CPU: images are resized so the shorter side is `image_size`
    (torchvision's default is 800); anchors of 16-128 px, one size per pyramid level; the RPN
    and the box head each sample `samples` regions per image (torchvision: 256 and 512); at
    most 300 / 100 proposals per image in training / testing; a two-layer box head of width
    `representation` (torchvision: 1024). mean, std: the backbone's input normalisation. Lesson 12.
    """
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)
    roi_pool = MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=1)
    box_head = TwoMLPHead(backbone.out_channels * 7 * 7, representation)
    return FasterRCNN(
        backbone, num_classes=None, min_size=image_size, max_size=image_size * 2,
        image_mean=list(mean), image_std=list(std), rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, rpn_batch_size_per_image=samples,
        box_roi_pool=roi_pool, box_head=box_head, box_predictor=FastRCNNPredictor(representation, num_classes + 1),
        box_batch_size_per_image=samples, box_detections_per_img=50, box_score_thresh=0.01)


def replace_box_predictor(model: FasterRCNN, num_classes: int) -> FastRCNNPredictor:
    """Give a Faster R-CNN a fresh box predictor for `num_classes` object classes, plus the
    background: `FastRCNNPredictor(in_features, num_classes + 1)`. Returns the new predictor.

    The same two lines as torchvision's detection tutorial; the RPN stays, since it only
    tells object from background. Lesson 12.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes counts the object classes (without the background): {num_classes!r}.")
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes + 1)
    return model.roi_heads.box_predictor


# --- training and inference ---------------------------------------------------------------

def _to_float(images: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    return [im.to(device).float() / 255 for im in images]


def train_detector(model: nn.Module, images: torch.Tensor, targets: list[dict], *, epochs: int,
                   lr: float, batch_size: int = 8, seed: int = 0, device: torch.device | str = "cpu",
                   weight_decay: float = 1e-4, warmup_steps: int = 20, adam: bool = False) -> dict[str, list[float]]:
    """Train a torchvision detector on its trainable parameters: SGD with momentum 0.9, or
    AdamW with `adam=True`; weight decay `weight_decay`.

    images: uint8 (N, 3, H, W); targets: N dicts of boxes / labels (see the module). The
    batch order is seeded by `seed`. The LR warms up linearly from lr / 10 over the first
    `warmup_steps` steps (at most half of them; a random head's first gradients are large),
    and is lr / 10 for the last quarter of the steps; gradients are clipped to norm 10.
    Returns {"loss": per-epoch mean of the summed losses, "seconds": per-epoch wall time,
    "cpu_seconds": per-epoch CPU time of this process (the work done on a CPU, which other
    programs on the machine do not inflate), plus one list per loss term}. Lesson 12.
    """
    device = torch.device(device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = (torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if adam else
                 torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay))
    steps = epochs * -(-len(images) // batch_size)
    warmup = max(1, min(warmup_steps, steps // 2))
    g = seed_everything(seed)
    history: dict[str, list[float]] = {"loss": [], "seconds": [], "cpu_seconds": []}
    step = 0
    for _ in range(epochs):
        start, cpu_start, totals, n = time.perf_counter(), time.process_time(), {}, 0
        for idx in torch.randperm(len(images), generator=g).split(batch_size):
            for group in optimizer.param_groups:   # linear warm-up, then a step to lr / 10 for the last quarter
                group["lr"] = lr * (min(1.0, 0.1 + 0.9 * step / warmup) if step < warmup else
                                    0.1 if step >= 0.75 * steps else 1.0)
            batch = [{k: v.to(device) for k, v in targets[i].items()} for i in idx.tolist()]
            losses = model(_to_float(images[idx], device), batch)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            step += 1
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.item() * len(idx)
            n += len(idx)
        history["loss"].append(sum(totals.values()) / n)
        history["seconds"].append(time.perf_counter() - start)
        history["cpu_seconds"].append(time.process_time() - cpu_start)
        for k, v in totals.items():
            history.setdefault(k, []).append(v / n)
    model.zero_grad(set_to_none=True)     # the last step's gradients: memory that predictions never use
    return history


@torch.no_grad()
def predict_detections(model: nn.Module, images: torch.Tensor, *, batch_size: int = 16,
                       device: torch.device | str = "cpu") -> list[dict[str, torch.Tensor]]:
    """The model's detections on uint8 images (N, 3, H, W), in eval mode, on the CPU: one dict
    per image with boxes (D, 4), scores (D,) and labels (D,), sorted by score. Lesson 12."""
    was_training = model.training
    model.to(device).eval()
    out = []
    for chunk in images.split(batch_size):
        out += [{k: v.cpu() for k, v in d.items()} for d in model(_to_float(chunk, torch.device(device)))]
    model.train(was_training)
    return out


# --- IoU, matching, precision, recall and AP ----------------------------------------------

def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (K, 4) as (x, y, width, height) to (x1, y1, x2, y2)."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box in a (N, 4) with every box in b (M, 4), both
    (x1, y1, x2, y2); returns (N, M) float in [0, 1]. Boxes that do not overlap give 0.
    The same numbers as `torchvision.ops.box_iou`, written out. Lesson 12."""
    a, b = a.float(), b.float()
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def match_detections(pred_boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor,
                     iou_threshold: float = 0.5) -> torch.Tensor:
    """Which detections of one image and one class are true positives: (D,) bool, in the order
    given. Detections are taken from the highest score down; each claims the unclaimed
    ground-truth box it overlaps most, if that IoU is at least `iou_threshold`. A second
    detection of an already found object is a false positive (a duplicate). Lesson 12."""
    hit = torch.zeros(len(pred_boxes), dtype=torch.bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return hit
    iou = box_iou(pred_boxes, gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for d in torch.argsort(scores, descending=True, stable=True).tolist():
        overlaps = iou[d].masked_fill(taken, -1.0)
        best = int(overlaps.argmax())
        if overlaps[best] >= iou_threshold:
            hit[d], taken[best] = True, True
    return hit


def average_precision(hits: torch.Tensor, scores: torch.Tensor, n_objects: int, *, envelope: bool = True) -> float:
    """Area under the precision-recall curve of one class, with precision made monotone
    (at each recall, the best precision at that recall or beyond), as VOC 2010+ computes it;
    envelope=False sums the raw precision at each true positive instead (what
    `sklearn.metrics.average_precision_score` does, with recall over all objects).

    hits: (D,) bool, true positive or not, for all detections of the class over all images;
    scores: (D,); n_objects: ground-truth boxes of the class. Returns a fraction in [0, 1]
    (0 when the class has no objects). Lesson 12.
    """
    if n_objects == 0:
        return 0.0
    order = torch.argsort(scores, descending=True, stable=True)
    tp = hits[order].float().cumsum(0)
    precision = tp / torch.arange(1, len(tp) + 1)
    recall = tp / n_objects
    precision = torch.cat([torch.tensor([0.0]), precision, torch.tensor([0.0])])
    recall = torch.cat([torch.tensor([0.0]), recall, torch.tensor([recall[-1].item() if len(tp) else 0.0])])
    if envelope:
        precision = precision.flip(0).cummax(0).values.flip(0)   # the monotone envelope
    return float(((recall[1:] - recall[:-1]) * precision[1:]).sum())


def class_detections(preds: list[dict], targets: list[dict], label: int,
                     iou_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, int]:
    """All detections of class `label` over all images: (hits (D,) bool, scores (D,), number of
    ground-truth objects of the class), the input of `average_precision`. Lesson 12."""
    hits, scores, n = [], [], 0
    for p, t in zip(preds, targets):
        mine, gt = p["labels"] == label, t["boxes"][t["labels"] == label]
        hits.append(match_detections(p["boxes"][mine], p["scores"][mine], gt, iou_threshold))
        scores.append(p["scores"][mine])
        n += len(gt)
    return torch.cat(hits), torch.cat(scores), n


def mean_average_precision(preds: list[dict], targets: list[dict], num_classes: int,
                           iou_thresholds: Sequence[float] = (0.5,)) -> float:
    """The mean over classes 1..num_classes and over `iou_thresholds` of `average_precision`.

    (0.5,) gives mAP@0.5 (VOC); `torch.arange(0.5, 0.96, 0.05)` gives mAP@[.5:.95] as COCO
    averages it (COCO itself samples the curve at 101 recall points; the difference is small).
    Classes without ground truth are left out of the mean. Returns a fraction. Lesson 12.
    """
    aps = []
    for label in range(1, num_classes + 1):
        for t in iou_thresholds:
            hits, scores, n = class_detections(preds, targets, label, float(t))
            if n:
                aps.append(average_precision(hits, scores, n))
    return sum(aps) / len(aps) if aps else 0.0


def precision_recall(preds: list[dict], targets: list[dict], *, score_threshold: float = 0.5,
                     iou_threshold: float = 0.5) -> tuple[float, float]:
    """(precision, recall) over all classes of the detections scoring at least `score_threshold`;
    a detection counts only if its label is right and its IoU reaches `iou_threshold`. Lesson 12."""
    tp = fp = n = 0
    for p, t in zip(preds, targets):
        keep = p["scores"] >= score_threshold
        for label in t["labels"].unique().tolist() + [l for l in p["labels"][keep].unique().tolist()
                                                      if l not in t["labels"].tolist()]:
            mine = keep & (p["labels"] == label)
            hit = match_detections(p["boxes"][mine], p["scores"][mine], t["boxes"][t["labels"] == label],
                                   iou_threshold)
            tp, fp = tp + int(hit.sum()), fp + int((~hit).sum())
        n += len(t["boxes"])
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / n if n else 1.0)


# --- the data a detector trains on --------------------------------------------------------

@dataclass
class DetectionSet:
    """Images with their boxes: images uint8 (N, 3, H, W); targets: N dicts with boxes (K, 4)
    float (x1, y1, x2, y2) in pixels and labels (K,) int64 in 1..len(class_names).
    class_names: the object classes, without the background. Lesson 12."""
    images: torch.Tensor
    targets: list[dict[str, torch.Tensor]]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def take(self, n: int) -> "DetectionSet":
        """The first n images (the data is shuffled when it is made)."""
        return DetectionSet(self.images[:n], self.targets[:n], self.class_names)

    def count_objects(self) -> int:
        return sum(len(t["boxes"]) for t in self.targets)


@dataclass
class DetectionSplits:
    """A train and a test `DetectionSet`, and where they came from (`source`, one line)."""
    train: DetectionSet
    test: DetectionSet
    source: str

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    def summary(self) -> str:
        return (f"{self.source}: train {len(self.train)} images ({self.train.count_objects()} objects), "
                f"test {len(self.test)} images ({self.test.count_objects()} objects); "
                f"classes {self.class_names}")


def load_detection_data(n_train: int, n_test: int, *, size: int = 128, seed: int = 0) -> DetectionSplits:
    """Lesson 12's data in either world: Penn-Fudan pedestrians (real) as squares of 2 x size px
    (street photos need more pixels than the stand-in) when the course is not offline and the
    zip is in the data cache (`python -m data_scripts.fetch pedestrians`), else the procedural
    stand-in of shapes on clutter, size px. Seeds pass through the sweep offset.
    Prints which one it uses. Lesson 12."""
    from .config import is_offline, shift_seed
    from .course import pennfudan
    from .course.detection_standin import make_detection_standin

    zip_path = pennfudan.pennfudan_source().path
    if not is_offline() and (data_dir() / zip_path).is_file():
        splits = pennfudan.load_pennfudan(n_train, n_test, size=2 * size, seed=seed)
    else:
        splits = make_detection_standin(n_train, n_test, size=size, seed=shift_seed(seed))
    print(splits.summary())
    return splits


def backbone_weights(weights: str = "auto") -> tuple[dict[str, torch.Tensor], dict]:
    """(ResNet-18 state dict, {"mean", "std"}) from `ftlib.load_model("resnet18", weights)`:
    under "auto", ImageNet's weights in the real world and the course's offline weights
    offline. Prints which weights it loaded. Lesson 12."""
    from .pretrained import load_model

    model = load_model("resnet18", weights)
    prep = model.weights_info.preprocessing or {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    return model.state_dict(), {"mean": list(prep["mean"]), "std": list(prep["std"])}
