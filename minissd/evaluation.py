"""PASCAL VOC average precision (AP) and mean AP, by the rules of the VOC devkit.

For each class separately:

1. gather that class's detections from all images and sort them by score, highest first;
2. walk down the list; a detection is compared with the ground-truth boxes of its class in its image and
   goes to the one with the highest IoU:
   * IoU >= ``iou_threshold`` (0.5) and that object is difficult -> ignored (neither true nor false positive);
   * IoU >= threshold and the object is not yet claimed -> true positive, the object is now claimed;
   * IoU >= threshold but the object was already claimed by a higher-scored detection -> false positive
     (a duplicate), even if another object also overlaps it enough -- the devkit does not look further;
   * otherwise -> false positive;
3. after k detections, recall = TP / (number of non-difficult objects), precision = TP / (TP + FP);
4. AP summarises that precision/recall curve (:func:`voc_ap`).

Difficult objects therefore neither count as positives (a missed one costs no recall) nor penalise a
detection of them. Classes without any non-difficult object have no defined recall: they are left out of
the AP dictionary and of the mean.

Boxes are normalised corners and IoU is computed on continuous coordinates (the devkit's ``+ 1`` belongs to
its inclusive integer pixel boxes and has no counterpart here). The threshold test is ``>=`` as in the
MATLAB devkit (the Python port in py-faster-rcnn uses ``>``; they differ only at an IoU of exactly 0.5).

Works on host arrays; NumPy or CuPy inputs are accepted (moved to the host with ``backend.to_numpy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import to_numpy


def voc_ap(recall: Any, precision: Any, use_07_metric: bool = False) -> float:
    """Average precision from a precision/recall curve (points in detection order).

    Args:
        recall: (K,) non-decreasing recall after each detection, in [0, 1].
        precision: (K,) precision after each detection.
        use_07_metric: True -> the VOC2007 11-point metric: the mean over t in {0, 0.1, ..., 1} of the
            highest precision at any recall >= t (0 if there is none). False (VOC2010 and later) -> the
            area under the interpolated curve, where the precision at recall r is the highest precision at
            any recall >= r; summed exactly over the recall steps.

    Returns AP in [0, 1] (0.0 for an empty curve).
    """
    rec = np.asarray(to_numpy(recall), dtype=np.float64).reshape(-1)
    prec = np.asarray(to_numpy(precision), dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"voc_ap: recall {rec.shape} and precision {prec.shape} must have the same shape")
    # BEGIN SOLUTION nms_ap
    if rec.size == 0:
        return 0.0
    if use_07_metric:
        ap = 0.0
        # t = k / 10 exactly (the devkit's np.arange(0, 1.1, 0.1) makes 0.30000000000000004, which a
        # recall of exactly 3/10 would fail to reach).
        for k in range(11):
            above = prec[rec >= k / 10.0]
            ap += (above.max() if above.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    # Interpolate: precision at each point = the highest precision to its right (a running max from the end).
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])  # where recall increases
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    # END SOLUTION nms_ap


def _as_list(name: str, seq: Any, n: int | None) -> list[np.ndarray]:
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
        raise TypeError(
            f"evaluate_detections({name}): expected a list with one array per image, got {type(seq)}"
        )
    out = [to_numpy(a) for a in seq]
    if n is not None and len(out) != n:
        raise ValueError(f"evaluate_detections({name}): expected {n} images (one array each), got {len(out)}")
    return out


def _boxes(name: str, a: np.ndarray, i: int) -> np.ndarray:
    b = np.asarray(a, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(
            f"evaluate_detections({name}[{i}]): expected (K, 4) corner boxes, got shape {b.shape}"
        )
    return b


def _vector(name: str, a: np.ndarray, i: int, k: int, dtype: Any) -> np.ndarray:
    v = np.asarray(a, dtype=dtype).reshape(-1)
    if v.shape[0] != k:
        raise ValueError(
            f"evaluate_detections({name}[{i}]): expected {k} values (one per box), got {v.shape[0]}"
        )
    return v


def evaluate_detections(
    pred_boxes: Sequence[Any],
    pred_labels: Sequence[Any],
    pred_scores: Sequence[Any],
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Any],
    gt_difficult: Sequence[Any] | None = None,
    iou_threshold: float = 0.5,
    use_07_metric: bool = False,
) -> dict[str, Any]:
    """VOC AP per class and their mean, over a set of images.

    Args (one entry per image, all lists of equal length):
        pred_boxes: (D_i, 4) detected corners, normalised (or any common unit).
        pred_labels: (D_i,) detected classes, 1..C-1.
        pred_scores: (D_i,) confidences (only their order matters).
        gt_boxes: (G_i, 4) ground-truth corners, same unit as pred_boxes.
        gt_labels: (G_i,) ground-truth classes.
        gt_difficult: (G_i,) bool VOC difficult flags, or None for "no object is difficult".
        iou_threshold: minimum IoU of a true positive (VOC: 0.5).
        use_07_metric: the VOC2007 11-point AP instead of the area under the curve (see :func:`voc_ap`).

    Returns a dict:
        ``"ap"``: {class: AP} for every class with at least one non-difficult ground-truth object;
        ``"map"``: the mean of those APs (nan if there is none);
        ``"pr"``: {class: (recall (K,), precision (K,), scores (K,))} -- the curve for plotting, one point
        per detection of that class in score order (detections ignored because of a difficult object are
        left out, which leaves the AP unchanged);
        ``"num_positives"``: {class: number of non-difficult ground-truth objects}.
    """
    n = len(_as_list("pred_boxes", pred_boxes, None))
    pb = [_boxes("pred_boxes", a, i) for i, a in enumerate(_as_list("pred_boxes", pred_boxes, n))]
    pl = [
        _vector("pred_labels", a, i, len(pb[i]), np.int64)
        for i, a in enumerate(_as_list("pred_labels", pred_labels, n))
    ]
    ps = [
        _vector("pred_scores", a, i, len(pb[i]), np.float64)
        for i, a in enumerate(_as_list("pred_scores", pred_scores, n))
    ]
    gb = [_boxes("gt_boxes", a, i) for i, a in enumerate(_as_list("gt_boxes", gt_boxes, n))]
    gl = [
        _vector("gt_labels", a, i, len(gb[i]), np.int64)
        for i, a in enumerate(_as_list("gt_labels", gt_labels, n))
    ]
    if gt_difficult is None:
        gd = [np.zeros(len(g), dtype=bool) for g in gl]
    else:
        gd = [
            _vector("gt_difficult", a, i, len(gl[i]), bool)
            for i, a in enumerate(_as_list("gt_difficult", gt_difficult, n))
        ]
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(
            f"evaluate_detections(iou_threshold): expected a value in (0, 1], got {iou_threshold!r}"
        )

    # Flatten everything once: one row per detection / per ground-truth object, with its image index.
    det_img = np.repeat(np.arange(n), [len(b) for b in pb])
    det_box = np.concatenate(pb + [np.zeros((0, 4))])
    det_lab = np.concatenate(pl + [np.zeros(0, np.int64)])
    det_score = np.concatenate(ps + [np.zeros(0)])
    gt_img = np.repeat(np.arange(n), [len(g) for g in gl])
    gt_box = np.concatenate(gb + [np.zeros((0, 4))])
    gt_lab = np.concatenate(gl + [np.zeros(0, np.int64)])
    gt_diff = np.concatenate(gd + [np.zeros(0, bool)])

    ap: dict[int, float] = {}
    pr: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    num_pos: dict[int, int] = {}
    for c in np.unique(gt_lab).tolist():
        g_sel = gt_lab == c
        npos = int(np.sum(g_sel & ~gt_diff))
        if npos == 0:
            continue  # only difficult objects of this class: recall is undefined
        g_img, g_box, g_diff = gt_img[g_sel], gt_box[g_sel], gt_diff[g_sel]  # (Gc,) in image order
        # Slot of each object among its image's objects of class c, to lay them out as (n, Gmax, 4).
        first = np.searchsorted(g_img, g_img)  # index of the first object of the same image
        slot = np.arange(len(g_img)) - first
        gmax = int(slot.max()) + 1
        padded = np.zeros((n, gmax, 4))
        present = np.zeros((n, gmax), dtype=bool)
        padded[g_img, slot] = g_box
        present[g_img, slot] = True

        d_sel = det_lab == c
        d_img, d_box, scores = det_img[d_sel], det_box[d_sel], det_score[d_sel]
        # IoU of every detection with every object of class c in its own image: (Dc, Gmax), -1 where
        # the slot is empty. Each detection goes to its highest-IoU object; that choice does not depend
        # on the other detections, so it is computed for all at once.
        cand = padded[d_img]  # (Dc, Gmax, 4)
        lt = np.maximum(d_box[:, None, :2], cand[..., :2])
        rb = np.minimum(d_box[:, None, 2:], cand[..., 2:])
        inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
        union = (
            np.prod(d_box[:, 2:] - d_box[:, :2], axis=1)[:, None]
            + np.prod(cand[..., 2:] - cand[..., :2], axis=2)
            - inter
        )
        ious = np.where(present[d_img] & (union > 0), inter / np.where(union > 0, union, 1.0), -1.0)
        best = np.argmax(ious, axis=1)
        best_iou = ious[np.arange(len(d_img)), best]
        # Global index (within class c) of the chosen object: first object of the image + slot.
        image_start = np.full(n, -1)
        image_start[g_img] = first  # every object of an image has the same first index
        first_of_image = image_start[d_img]
        best_gt = np.where(first_of_image >= 0, first_of_image + best, -1)

        # Walk down the detections from the highest score; a stable sort, so equal scores keep image
        # order whatever the platform.
        order = np.argsort(-scores, kind="stable")
        claimed = np.zeros(len(g_img), dtype=bool)
        difficult_c = g_diff.tolist()
        outcome = []  # 1 true positive, -1 false positive, 0 ignored
        for j, iou in zip(best_gt[order].tolist(), best_iou[order].tolist()):
            if iou < iou_threshold:
                outcome.append(-1)
            elif difficult_c[j]:
                outcome.append(0)  # a difficult object: neither rewarded nor penalised
            elif not claimed[j]:
                outcome.append(1)
                claimed[j] = True
            else:
                outcome.append(-1)  # a duplicate of an object already found
        outcome = np.asarray(outcome, dtype=np.int8)
        counted = outcome != 0
        tp = np.cumsum(outcome[counted] == 1)
        fp = np.cumsum(outcome[counted] == -1)
        recall = tp / float(npos)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[c] = voc_ap(recall, precision, use_07_metric)
        pr[c] = (recall, precision, scores[order][counted])
        num_pos[c] = npos
    mean = float(np.mean(list(ap.values()))) if ap else float("nan")
    return {"ap": ap, "map": mean, "pr": pr, "num_positives": num_pos}
