"""Scoring a detector: PASCAL VOC AP / mAP (by the rules of the VOC devkit) and the COCO metrics.

VOC (:func:`evaluate_detections`), for each class separately:

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

Boxes are normalised corners and IoU (:func:`minissd.boxes.iou`) is computed on continuous coordinates
(the devkit's ``+ 1`` belongs to its inclusive integer pixel boxes and has no counterpart here). The
threshold test is ``>=`` as in the MATLAB devkit (the Python port in py-faster-rcnn uses ``>``; they differ
only at an IoU of exactly 0.5).

COCO (:func:`coco_metrics`) asks more of the boxes: AP is averaged over ten IoU thresholds 0.50..0.95, so
a box must be placed tightly to score; it is also split by object size, and recall is measured with at
most 1, 10 and 100 detections per image. Its rules (crowd regions, ignored boxes, 101-point sampling) are
in that function's docstring; they follow pycocotools' ``COCOeval``, against which the tests check every
number.

The matching loops over detections in score order, which is sequential by nature: everything here works
on host arrays; NumPy or CuPy inputs are accepted (moved to the host with ``backend.to_numpy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import to_numpy
from .boxes import area, iou, pairwise_iou


def voc_ap(
    recall: Any,
    precision: Any,
    use_07_metric: bool = False,
    recall_thresholds: Any = None,
) -> float:
    """Average precision from a precision/recall curve (points in detection order).

    The precision "at recall r" is interpolated: the highest precision at any recall >= r (a detector
    that is more precise further down its list gets that better precision here too). Then either

    * the area under that interpolated curve (VOC2010 and later; the default), summed exactly over
      the recall steps, or
    * sampled: the mean over thresholds t of the interpolated precision at t (0 where the recall never
      reaches t). ``use_07_metric`` samples the 11 points 0, 0.1, ..., 1 of VOC2007; COCO samples 101
      points (``recall_thresholds=numpy.linspace(0, 1, 101)``, see :func:`coco_metrics`).

    The VOC2007 thresholds are ``numpy.arange(0, 1.1, 0.1)``, exactly as py-faster-rcnn's ``voc_eval``,
    ssd.pytorch, ChainerCV and mmdetection compute them, so that VOC07 numbers here are comparable with the
    published ones. That range holds 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001, so a
    recall of exactly 3/10, 6/10 or 7/10 does not reach that point (with exact tenths it would).

    Args:
        recall: (K,) non-decreasing recall after each detection, in [0, 1].
        precision: (K,) precision after each detection.
        use_07_metric: the VOC2007 11-point metric (see above).
        recall_thresholds: (R,) increasing recall thresholds for the sampled metric (overrides
            ``use_07_metric``); None -> the area (or VOC2007 when ``use_07_metric``).

    Returns AP in [0, 1] (0.0 for an empty curve).
    """
    rec = np.asarray(to_numpy(recall), dtype=np.float64).reshape(-1)
    prec = np.asarray(to_numpy(precision), dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"voc_ap: recall {rec.shape} and precision {prec.shape} must have the same shape")
    if recall_thresholds is not None:
        recall_thresholds = np.asarray(to_numpy(recall_thresholds), dtype=np.float64).reshape(-1)
        if recall_thresholds.size == 0:
            raise ValueError("voc_ap(recall_thresholds): expected at least one threshold, got none")
    # BEGIN SOLUTION nms_ap
    if rec.size == 0:
        return 0.0
    if use_07_metric and recall_thresholds is None:
        recall_thresholds = np.arange(0.0, 1.1, 0.1)  # the published implementations' 11 points
    if recall_thresholds is not None:
        total = 0.0
        for t in recall_thresholds:
            above = prec[rec >= t]
            total += above.max() if above.size else 0.0
        return float(total / len(recall_thresholds))
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    # Interpolate: precision at each point = the highest precision to its right (a running max from the end).
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])  # where recall increases
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    # END SOLUTION nms_ap


def _as_list(name: str, seq: Any, n: int | None, fn: str = "evaluate_detections") -> list[np.ndarray]:
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
        raise TypeError(f"{fn}({name}): expected a list with one array per image, got {type(seq)}")
    out = [to_numpy(a) for a in seq]
    if n is not None and len(out) != n:
        raise ValueError(f"{fn}({name}): expected {n} images (one array each), got {len(out)}")
    return out


def _boxes(name: str, a: np.ndarray, i: int, fn: str = "evaluate_detections") -> np.ndarray:
    b = np.asarray(a, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{fn}({name}[{i}]): expected (K, 4) corner boxes, got shape {b.shape}")
    return b


def _vector(name: str, a: np.ndarray, i: int, k: int, dtype: Any, fn: str = "evaluate_detections") -> np.ndarray:
    v = np.asarray(a, dtype=dtype).reshape(-1)
    if v.shape[0] != k:
        raise ValueError(f"{fn}({name}[{i}]): expected {k} values (one per box), got {v.shape[0]}")
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
        ious = pairwise_iou(d_box[:, None, :], cand)[:, 0, :]  # batched boxes.iou: (Dc, 1, 4) x (Dc, Gmax, 4)
        ious = np.where(present[d_img], ious, -1.0)
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
        for j, overlap in zip(best_gt[order].tolist(), best_iou[order].tolist()):
            if overlap < iou_threshold:
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


# ============================================================================== COCO metrics
#: COCO's ten IoU thresholds 0.50, 0.55, ..., 0.95 (linspace, as COCOeval, so that 0.75 is exactly 0.75).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
#: COCO's 101 recall thresholds 0, 0.01, ..., 1 at which the interpolated precision is sampled.
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
#: Object sizes by area in pixels: small < 32^2 <= medium < 96^2 <= large (both ends inclusive, as COCOeval).
COCO_AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


def intersection_over_detection_area(det_boxes: Any, gt_boxes: Any) -> np.ndarray:
    """Pairwise ``|d & g| / |d|``: how much of each detection lies inside each box (COCO's crowd overlap).

    Built from :func:`minissd.boxes.iou` and :func:`minissd.boxes.area` (no second overlap formula): from
    ``IoU = I / (A_d + A_g - I)`` follows ``I = IoU (A_d + A_g) / (1 + IoU)``.

    Args:
        det_boxes: (D, 4) corner boxes.
        gt_boxes: (G, 4) corner boxes, same unit.

    Returns (D, G) float64 in [0, 1]; 0 for a zero-area detection.
    """
    d = np.asarray(to_numpy(det_boxes), dtype=np.float64).reshape(-1, 4)
    g = np.asarray(to_numpy(gt_boxes), dtype=np.float64).reshape(-1, 4)
    overlap = iou(d, g)  # (D, G)
    area_d, area_g = area(d), area(g)
    inter = overlap * (area_d[:, None] + area_g[None, :]) / (1.0 + overlap)
    return np.where(area_d[:, None] > 0, inter / np.where(area_d > 0, area_d, 1.0)[:, None], 0.0)


def _coco_match(
    overlaps: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, det_outside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image and one class at every IoU threshold, by COCOeval's rules.

    Args:
        overlaps: (D, G) IoU of each detection (sorted by descending score) with each ground-truth box
            (IoU over the detection's area for crowd boxes).
        gt_ignore: (G,) True for boxes that neither count as objects nor penalise a detection (crowds,
            and boxes outside the area range being evaluated).
        gt_crowd: (G,) True for crowd regions, which may absorb any number of detections.
        det_outside: (D,) True for detections whose area is outside the range being evaluated.

    Returns ``(matched, ignored)``, each (T, D) bool: detection d was matched at threshold t, and it is left
    out of the precision/recall curve at t (matched to an ignored box, or unmatched and outside the range).
    """
    # Ground truth that counts comes first: a detection prefers any counted box to an ignored one.
    order = np.argsort(gt_ignore, kind="mergesort")
    overlaps, gt_ignore, gt_crowd = overlaps[:, order], gt_ignore[order], gt_crowd[order]
    num_det, num_gt = overlaps.shape
    matched = np.zeros((len(COCO_IOU_THRESHOLDS), num_det), dtype=bool)
    ignored = np.zeros((len(COCO_IOU_THRESHOLDS), num_det), dtype=bool)
    for t, threshold in enumerate(COCO_IOU_THRESHOLDS):
        taken = np.zeros(num_gt, dtype=bool)
        for d in range(num_det):  # highest score first
            best = -1
            best_overlap = min(threshold, 1 - 1e-10)  # the overlap to beat (>=): at least the threshold
            for g in range(num_gt):
                if taken[g] and not gt_crowd[g]:
                    continue  # already found by a higher-scored detection
                if best > -1 and not gt_ignore[best] and gt_ignore[g]:
                    break  # a counted box is matched and only ignored ones are left
                if overlaps[d, g] < best_overlap:
                    continue
                best, best_overlap = g, overlaps[d, g]  # ties go to the later box, as in COCOeval
            if best > -1:
                matched[t, d] = True
                ignored[t, d] = gt_ignore[best]
                taken[best] = True
        # An unmatched detection of an object outside the size range is no error of that range.
        ignored[t] |= ~matched[t] & det_outside
    return matched, ignored


def coco_metrics(
    pred_boxes: Sequence[Any],
    pred_labels: Sequence[Any],
    pred_scores: Sequence[Any],
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Any],
    image_sizes: Sequence[Any],
    gt_crowd: Sequence[Any] | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    per_class: bool = False,
) -> dict[str, Any]:
    """The twelve COCO detection numbers, computed by the rules of pycocotools' ``COCOeval`` (bbox).

    For every class, image and IoU threshold t in 0.50:0.05:0.95 (:data:`COCO_IOU_THRESHOLDS`):

    1. the image's detections of the class are sorted by score (stable: equal scores keep their order) and
       only the ``max_dets[-1]`` best are kept;
    2. each detection in turn takes the unclaimed ground-truth box of highest IoU >= t; crowd boxes
       (``gt_crowd``) are never claimed, so they may absorb many detections, and their overlap is the
       intersection over the *detection's* area; a detection on a crowd, like the crowd itself, is ignored
       (neither true nor false positive, never an object to find);
    3. for an area range (small < 32^2 <= medium < 96^2 <= large, in pixels), ground truth outside the
       range is ignored too, and so is an unmatched detection outside it;
    4. all images' remaining detections of the class, sorted by score, give a precision/recall curve:
       AP at t is the interpolated precision sampled at the 101 recalls 0, 0.01, ..., 1
       (:func:`voc_ap` with ``recall_thresholds``), recall at t is the last recall reached.

    AP is the mean over thresholds and classes; AR the mean of the recalls, each with at most ``m``
    detections per image and class for ``AR<m>``. Classes without any counted ground-truth object (in
    the area range) are left out of the means, as COCOeval leaves out its -1 entries.

    Args (one entry per image, all lists of equal length):
        pred_boxes: (D_i, 4) detected corners, normalised to [0, 1].
        pred_labels: (D_i,) detected classes.
        pred_scores: (D_i,) confidences.
        gt_boxes: (G_i, 4) ground-truth corners, normalised, crowd regions included.
        gt_labels: (G_i,) ground-truth classes.
        image_sizes: (H, W) of each image in pixels. Areas (for the size ranges) and IoUs are computed on
            the boxes scaled to pixels. The area of a ground-truth box is its box area in pixels: COCO's
            ``area`` field (the segmentation mask's area, smaller than the box) has no counterpart here.
        gt_crowd: (G_i,) bool, True for a crowd region (COCO ``iscrowd``); None: no crowds.
        max_dets: three increasing detection limits per image and class (COCO: 1, 10, 100).
        per_class: also return ``"per_class"``: {class: {"AP": ..., "AP50": ..., "AP75": ...}}.

    Returns a dict with the twelve floats under COCO's names ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``,
    ``APl``, ``AR1``, ``AR10``, ``AR100``, ``ARs``, ``ARm``, ``ARl`` (the digits follow ``max_dets``); a
    number is nan where no class has ground truth for it (COCOeval prints -1).
    """
    fn = "coco_metrics"
    n = len(_as_list("pred_boxes", pred_boxes, None, fn))
    pb = [_boxes("pred_boxes", a, i, fn) for i, a in enumerate(_as_list("pred_boxes", pred_boxes, n, fn))]
    pl = [_vector("pred_labels", a, i, len(pb[i]), np.int64, fn)
          for i, a in enumerate(_as_list("pred_labels", pred_labels, n, fn))]
    ps = [_vector("pred_scores", a, i, len(pb[i]), np.float64, fn)
          for i, a in enumerate(_as_list("pred_scores", pred_scores, n, fn))]
    gb = [_boxes("gt_boxes", a, i, fn) for i, a in enumerate(_as_list("gt_boxes", gt_boxes, n, fn))]
    gl = [_vector("gt_labels", a, i, len(gb[i]), np.int64, fn)
          for i, a in enumerate(_as_list("gt_labels", gt_labels, n, fn))]
    if gt_crowd is None:
        gc = [np.zeros(len(g), dtype=bool) for g in gl]
    else:
        gc = [_vector("gt_crowd", a, i, len(gl[i]), bool, fn)
              for i, a in enumerate(_as_list("gt_crowd", gt_crowd, n, fn))]
    sizes = [np.asarray(s, dtype=np.float64).reshape(-1) for s in _as_list("image_sizes", image_sizes, n, fn)]
    for i, s in enumerate(sizes):
        if s.shape != (2,) or not (s > 0).all():
            raise ValueError(f"{fn}(image_sizes[{i}]): expected (H, W) in pixels, both > 0, got {s.tolist()}")
    max_dets = tuple(int(m) for m in max_dets)
    if len(max_dets) != 3 or not 0 < max_dets[0] < max_dets[1] < max_dets[2]:
        raise ValueError(f"{fn}(max_dets): expected three increasing positive limits, got {max_dets!r}")

    classes = sorted(set(np.concatenate(gl + pl + [np.zeros(0, np.int64)]).tolist()))
    areas = list(COCO_AREA_RANGES.values())
    # matches[(class, area range)]: per image that has boxes of the class, (scores, matched, ignored, npos)
    matches: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = {}
    for i in range(n):
        h, w = sizes[i]
        scale = np.array([w, h, w, h])
        for c in classes:
            g_sel, d_sel = gl[i] == c, pl[i] == c
            if not g_sel.any() and not d_sel.any():
                continue
            g_box, crowd = gb[i][g_sel] * scale, gc[i][g_sel]
            order = np.argsort(-ps[i][d_sel], kind="mergesort")[: max_dets[-1]]
            d_box, d_score = pb[i][d_sel][order] * scale, ps[i][d_sel][order]
            overlaps = np.where(crowd[None, :], intersection_over_detection_area(d_box, g_box),
                                iou(d_box, g_box))  # (D, G)
            g_area, d_area = area(g_box), area(d_box)
            for a, (lo, hi) in enumerate(areas):
                g_ignore = crowd | (g_area < lo) | (g_area > hi)
                matched, ignored = _coco_match(overlaps, g_ignore, crowd, (d_area < lo) | (d_area > hi))
                matches.setdefault((c, a), []).append((d_score, matched, ignored, int(np.sum(~g_ignore))))

    num_t = len(COCO_IOU_THRESHOLDS)
    # ap[t, class, area] at max_dets[-1]; recall[t, class, area, m]; nan where the class has no object
    ap = np.full((num_t, len(classes), len(areas)), np.nan)
    recall = np.full((num_t, len(classes), len(areas), len(max_dets)), np.nan)
    for k, c in enumerate(classes):
        for a in range(len(areas)):
            per_image = matches.get((c, a), [])
            npos = sum(r[3] for r in per_image)
            if npos == 0:
                continue
            for mi, m in enumerate(max_dets):
                # the m best detections of each image, then all images together by score
                scores = np.concatenate([r[0][:m] for r in per_image])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([r[1][:, :m] for r in per_image], axis=1)[:, order]
                ignored = np.concatenate([r[2][:, :m] for r in per_image], axis=1)[:, order]
                for t in range(num_t):
                    hit = matched[t][~ignored[t]]
                    tp, fp = np.cumsum(hit), np.cumsum(~hit)
                    rec = tp / npos
                    recall[t, k, a, mi] = rec[-1] if rec.size else 0.0
                    if mi == len(max_dets) - 1:
                        prec = tp / np.maximum(tp + fp, 1)
                        ap[t, k, a] = voc_ap(rec, prec, recall_thresholds=COCO_RECALL_THRESHOLDS)

    def mean(values: np.ndarray) -> float:
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")

    t50 = int(np.flatnonzero(COCO_IOU_THRESHOLDS == 0.5)[0])
    t75 = int(np.flatnonzero(COCO_IOU_THRESHOLDS == 0.75)[0])
    out: dict[str, Any] = {
        "AP": mean(ap[:, :, 0]),
        "AP50": mean(ap[t50, :, 0]),
        "AP75": mean(ap[t75, :, 0]),
        "APs": mean(ap[:, :, 1]),
        "APm": mean(ap[:, :, 2]),
        "APl": mean(ap[:, :, 3]),
    }
    for mi, m in enumerate(max_dets):
        out[f"AR{m}"] = mean(recall[:, :, 0, mi])
    out["ARs"] = mean(recall[:, :, 1, -1])
    out["ARm"] = mean(recall[:, :, 2, -1])
    out["ARl"] = mean(recall[:, :, 3, -1])
    if per_class:
        out["per_class"] = {
            c: {"AP": mean(ap[:, k, 0]), "AP50": mean(ap[t50, k, 0]), "AP75": mean(ap[t75, k, 0])}
            for k, c in enumerate(classes)
            if not np.isnan(ap[0, k, 0])
        }
    return out
