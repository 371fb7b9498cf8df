"""A YOLOv1-style grid detector on the same backbone as ``ssd_mini``: the design SSD is contrasted with.

YOLOv1 (Redmon et al., 2016) divides the image into an S x S grid (S = 7). The cell that contains an
object's centre is responsible for it. Each cell predicts B = 2 boxes, each with (x, y, w, h) and a
confidence, and ONE class distribution shared by its boxes: the output is (N, S, S, B*5 + C') with C'
object classes (no background class). 7 x 7 x 2 = 98 candidate boxes, from the last, coarsest feature
map only, against SSD's thousands of default boxes on several maps.

What this design cannot represent (measured in notebook 09):

- at most B objects per cell: a third object whose centre falls in an occupied cell is lost;
- one class per cell: two objects of different classes in one cell share one class distribution, so
  the cell is trained with the class of its largest object;
- only one, coarse map: every prediction comes from a stride-16 feature map squeezed to 7 x 7.

Parametrisation: (x, y) is the box centre's offset inside its cell, in [0, 1]; (w, h) are relative to
the whole image; all four and the confidence go through a sigmoid (the paper's raw linear outputs make
sqrt(w) undefined early in training). Class probabilities are a softmax over the C' classes.

Loss, as in the YOLOv1 paper (sums of squares, divided by the batch size)::

    l_coord * sum_resp [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
  + sum_resp (C - IoU)^2 + l_noobj * sum_not_resp C^2 + sum_cells_with_obj sum_c (p(c) - p^(c))^2

with l_coord = 5 and l_noobj = 0.5; "resp" are the predictors responsible for an object: in its cell,
the one of the B predictors whose box has the highest IoU with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy

from .. import backend
from ..autograd import Tensor, no_grad
from ..boxes import iou as box_iou
from ..detection import Detections
from ..nms import multiclass_nms
from ..nn import BatchNorm2d, Conv2d, Module
from ..nn import functional as F
from .vgg import VGGBase


class YOLOTargets(NamedTuple):
    """Per-predictor training targets for a batch (host or backend arrays).

    responsible: (N, S, S, B) bool, the predictor trained on an object's box.
    boxes: (N, S, S, B, 4) target (x offset in cell, y offset in cell, sqrt w, sqrt h) where responsible.
    confidence: (N, S, S, B) IoU of the responsible predictor's box with its object (the confidence target).
    has_object: (N, S, S) bool, cells that hold at least one object centre.
    classes: (N, S, S, C') one-hot class target of each cell with an object.
    dropped: number of objects that could not be represented (more than B in one cell).
    """

    responsible: Any
    boxes: Any
    confidence: Any
    has_object: Any
    classes: Any
    dropped: int


class YOLOv1(Module):
    """YOLOv1-style detector: VGG base (as in ``ssd_mini``) -> S x S x (B*5 + C') grid output.

    Args:
        num_classes: classes including background (as for SSD); the grid predicts ``num_classes - 1``.
        input_size: square input side in pixels (160 as ``ssd_mini``).
        grid: S; boxes_per_cell: B.
        width, batch_norm: the backbone settings (as ``ssd_mini``'s).
    """

    def __init__(self, num_classes: int = 8, input_size: int = 160, grid: int = 7, boxes_per_cell: int = 2,
                 width: float = 0.125, batch_norm: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"YOLOv1(num_classes): expected at least 2 (background + 1), got {num_classes}")
        self.num_classes, self.input_size = int(num_classes), int(input_size)
        self.grid, self.boxes_per_cell = int(grid), int(boxes_per_cell)
        self.class_names: tuple[str, ...] | None = None  # background first; recorded in checkpoints when set
        self.base = VGGBase(width=width, batch_norm=batch_norm)
        _, fc7_size = VGGBase.feature_sizes(input_size)
        if fc7_size < grid:
            raise ValueError(f"YOLOv1(input_size): fc7 is {fc7_size}x{fc7_size} for input {input_size}, smaller "
                             f"than the {grid}x{grid} grid")
        ch = self.base.fc7_channels
        self.batch_norm = batch_norm
        self.conv_a = Conv2d(ch, ch, 3, padding=1)
        # a valid convolution whose window spans the leftover turns the fc7 map into exactly S x S cells
        self.conv_grid = Conv2d(ch, ch, fc7_size - grid + 1)
        if batch_norm:
            self.bn_a, self.bn_grid = BatchNorm2d(ch), BatchNorm2d(ch)
        self.predict = Conv2d(ch, self.output_channels, 1)

    @property
    def output_channels(self) -> int:
        """Channels of the grid output per cell: B * 5 box values and C' class scores."""
        return self.boxes_per_cell * 5 + self.num_classes - 1

    # ------------------------------------------------------------------ checkpoints
    def describe(self) -> dict[str, Any]:
        """A JSON-able description from which :meth:`from_description` rebuilds an untrained copy."""
        out: dict[str, Any] = {"kind": "yolov1", "num_classes": self.num_classes, "input_size": self.input_size,
                               "grid": self.grid, "boxes_per_cell": self.boxes_per_cell, "width": self.base.width,
                               "batch_norm": self.base.batch_norm}
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        return out

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> YOLOv1:
        """The YOLOv1 that :meth:`describe` described (freshly initialised)."""
        args = {k: v for k, v in description.items() if k not in ("kind", "class_names")}
        try:
            model = cls(**args)
        except TypeError as exc:
            raise ValueError(f"YOLOv1 description: expected the keys of YOLOv1.describe(), got "
                             f"{sorted(description)} ({exc})") from None
        if description.get("class_names") is not None:
            model.class_names = tuple(description["class_names"])
        return model

    def forward(self, x: Any) -> Tensor:
        """x (N, 3, S_in, S_in) normalized -> raw output (N, S, S, B*5 + C') (before sigmoid/softmax)."""
        x = x if isinstance(x, Tensor) else Tensor(backend.asarray(x))
        s = self.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"YOLOv1 input x: expected shape (N, 3, {s}, {s}), got {x.shape}")
        _, h = self.base(x)
        h = self.conv_a(h)
        if self.batch_norm:
            h = self.bn_a(h)
        h = F.relu(h, inplace=True)
        h = self.conv_grid(h)
        if self.batch_norm:
            h = self.bn_grid(h)
        h = F.relu(h, inplace=True)
        return self.predict(h).transpose(0, 2, 3, 1)

    # ------------------------------------------------------------------ decoding
    def split(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Raw output -> (boxes (N,S,S,B,4) as (x, y, w, h) in [0,1], conf (N,S,S,B), probs (N,S,S,C'))."""
        n, s, b = out.shape[0], self.grid, self.boxes_per_cell
        pred = out[..., : b * 5].reshape(n, s, s, b, 5).sigmoid()
        probs = out[..., b * 5 :].softmax(axis=-1)
        return pred[..., :4], pred[..., 4], probs

    def cell_boxes_to_corners(self, boxes: Any) -> Any:
        """(…, S, S, B, 4) (x, y, w, h) grid form -> corners normalized to the image (same shape)."""
        xp = backend.get_array_module(boxes)
        s = self.grid
        j = xp.arange(s, dtype=boxes.dtype).reshape(1, s, 1)  # column index
        i = xp.arange(s, dtype=boxes.dtype).reshape(s, 1, 1)  # row index
        cx = (boxes[..., 0] + j) / s
        cy = (boxes[..., 1] + i) / s
        w, h = boxes[..., 2], boxes[..., 3]
        return xp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)

    # ------------------------------------------------------------------ targets and loss
    def build_targets(self, pred_corners: Any, gt_boxes: list[Any], gt_labels: list[Any]) -> YOLOTargets:
        """Assign each ground truth to its cell and to the better-IoU predictor of that cell.

        Args:
            pred_corners: (N, S, S, B, 4) the predicted boxes in corner form (used only to pick the
                responsible predictor and the confidence target; no gradient flows through them).
            gt_boxes: per image (G, 4) corners normalized; gt_labels: per image (G,) labels in 1..C-1.

        In a cell with several object centres, objects are taken largest first: each takes the
        best-IoU predictor still free; objects beyond B are dropped (counted in ``dropped``); the cell's
        class target is its largest object's class.
        """
        pred = backend.to_numpy(pred_corners).astype(numpy.float64)
        n, s, b = pred.shape[0], self.grid, self.boxes_per_cell
        c = self.num_classes - 1
        if len(gt_boxes) != n or len(gt_labels) != n:
            raise ValueError(f"build_targets: expected {n} gt_boxes and gt_labels lists, got "
                             f"{len(gt_boxes)} and {len(gt_labels)}")
        responsible = numpy.zeros((n, s, s, b), bool)
        boxes = numpy.zeros((n, s, s, b, 4), numpy.float32)
        conf = numpy.zeros((n, s, s, b), numpy.float32)
        has_obj = numpy.zeros((n, s, s), bool)
        classes = numpy.zeros((n, s, s, c), numpy.float32)
        dropped = 0
        for k in range(n):
            g = backend.to_numpy(gt_boxes[k]).reshape(-1, 4).astype(numpy.float64)
            lab = backend.to_numpy(gt_labels[k]).reshape(-1)
            areas = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
            for idx in numpy.argsort(-areas, kind="stable"):
                x0, y0, x1, y1 = g[idx]
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                col, row = min(int(cx * s), s - 1), min(int(cy * s), s - 1)
                free = ~responsible[k, row, col]
                if not free.any():
                    dropped += 1
                    continue
                ious = box_iou(pred[k, row, col], g[idx : idx + 1])[:, 0]
                ious = numpy.where(free, ious, -1.0)
                best = int(numpy.argmax(ious))
                responsible[k, row, col, best] = True
                boxes[k, row, col, best] = (cx * s - col, cy * s - row, numpy.sqrt(x1 - x0), numpy.sqrt(y1 - y0))
                conf[k, row, col, best] = max(float(ious[best]), 0.0)
                if not has_obj[k, row, col]:
                    has_obj[k, row, col] = True
                    classes[k, row, col, int(lab[idx]) - 1] = 1.0
        xp = backend.xp()
        return YOLOTargets(xp.asarray(responsible), xp.asarray(boxes), xp.asarray(conf), xp.asarray(has_obj),
                           xp.asarray(classes), dropped)

    def targets_for(self, out: Tensor, gt_boxes: list[Any], gt_labels: list[Any]) -> YOLOTargets:
        """:meth:`build_targets` for raw output ``out`` (N, S, S, B*5 + C'): what :meth:`loss` trains towards."""
        boxes, _, _ = self.split(out)
        return self.build_targets(self.cell_boxes_to_corners(boxes.data), gt_boxes, gt_labels)

    def loss(self, out: Tensor, gt_boxes: list[Any], gt_labels: list[Any], lambda_coord: float = 5.0,
             lambda_noobj: float = 0.5) -> tuple[Tensor, Tensor]:
        """YOLOv1's sum-of-squares loss for raw output ``out = model(images)`` (N, S, S, B*5 + C').

        gt_boxes: per image (G, 4) corners normalized; gt_labels: per image (G,) in 1..C-1.
        Returns (loss_coord, loss_conf_and_class), each divided by N (the training loop's
        (localisation, confidence) pair).
        """
        boxes, conf, probs = self.split(out)
        targets = self.build_targets(self.cell_boxes_to_corners(boxes.data), gt_boxes, gt_labels)
        dt = out.dtype
        resp = targets.responsible.astype(dt)
        n = out.shape[0]
        pred_xy = boxes[..., :2]
        pred_wh = (boxes[..., 2:] + 1e-9).sqrt()
        d_xy = (pred_xy - targets.boxes[..., :2].astype(dt)) ** 2
        d_wh = (pred_wh - targets.boxes[..., 2:].astype(dt)) ** 2
        loss_coord = ((d_xy + d_wh).sum(axis=-1) * resp).sum() * (lambda_coord / n)
        obj = ((conf - targets.confidence.astype(dt)) ** 2 * resp).sum()
        noobj = (conf**2 * (1 - resp)).sum() * lambda_noobj
        cls = ((probs - targets.classes.astype(dt)) ** 2).sum(axis=-1)
        cls = (cls * targets.has_object.astype(dt)).sum()
        return loss_coord, (obj + noobj + cls) * (1.0 / n)

    def detect(self, images: Any, conf_threshold: float = 0.01, nms_threshold: float = 0.45,
               top_k: int = 200) -> list[Detections]:
        """Detections like :meth:`SSD.detect`: class score = box confidence x cell class probability."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                out = self(images)
        finally:
            self.train(was_training)
        boxes, conf, probs = self.split(out)
        corners = self.cell_boxes_to_corners(boxes.data)  # (N, S, S, B, 4)
        n, s, b = out.shape[0], self.grid, self.boxes_per_cell
        scores = conf.data[..., None] * probs.data[:, :, :, None, :]  # (N, S, S, B, C')
        corners = corners.reshape(n, s * s * b, 4)
        scores = scores.reshape(n, s * s * b, -1)
        xp = backend.get_array_module(corners)
        corners = xp.clip(corners, 0.0, 1.0)
        out_list = []
        for k in range(n):
            idx, cls, score = multiclass_nms(corners[k], scores[k], nms_threshold, score_threshold=conf_threshold,
                                             top_k_per_class=top_k)
            idx, cls, score = idx[:top_k], cls[:top_k], score[:top_k]
            out_list.append(Detections(boxes=corners[k][idx], labels=cls + 1, scores=score))
        return out_list


def yolov1_mini(num_classes: int = 8) -> YOLOv1:
    """The YOLOv1-style detector with ``ssd_mini``'s backbone and input size."""
    return YOLOv1(num_classes=num_classes)
