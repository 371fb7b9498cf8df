"""Boxes: the two box formats, IoU, the SSD offset encoding, and non-maximum suppression.

Formats (DESIGN.md):

* **corners** ``(xmin, ymin, xmax, ymax)``: ground truth and detections, normalized to [0, 1];
* **centre** ``(cx, cy, w, h)``: default boxes ("priors"), normalized to [0, 1].

The network never predicts coordinates directly. For each default box d it predicts offsets
``l = (l_cx, l_cy, l_w, l_h)`` relative to d (paper, eq. 2), scaled by the "variances" (0.1, 0.2) of the
authors' released code::

    l_cx = (g_cx - d_cx) / (0.1 * d_w)        l_w = log(g_w / d_w) / 0.2
    l_cy = (g_cy - d_cy) / (0.1 * d_h)        l_h = log(g_h / d_h) / 0.2

:func:`encode` computes these targets from ground truth; :func:`decode` inverts them. Dividing by 0.1 and
0.2 makes the targets of well-matched boxes about unit-sized, which suits the smooth L1 loss.

Every function takes NumPy or CuPy arrays and returns arrays of the same kind (``xp`` pattern). Float
inputs keep their dtype; integer inputs are computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy

from . import backend

# decode() clamps log size ratios here: a box 1000x larger than its default box is meaningless, and
# without a bound an untrained network's large outputs overflow exp() to inf, and inf boxes give NaN IoUs.
_MAX_LOG_RATIO = math.log(1000.0)


# --------------------------------------------------------------------------- checks and helpers
def _check_boxes(name: str, fn: str, a: Any, ndim: int | None = 2) -> None:
    """Raise a clear error unless ``a`` is an array of boxes (last axis 4, ``ndim`` axes if given)."""
    if not backend.is_array(a):
        raise TypeError(f"{fn}({name}): expected a NumPy or CuPy array, got {type(a).__name__}")
    if a.ndim == 0 or a.shape[-1] != 4 or (ndim is not None and a.ndim != ndim):
        form = "(N, 4)" if ndim == 2 else "(..., 4)"
        raise ValueError(f"{fn}({name}): expected boxes of shape {form}, got shape {tuple(a.shape)}")


def _float(a: Any) -> Any:
    """``a`` as a floating array: float32/float64 stay, integers become float64."""
    return a if a.dtype.kind == "f" else a.astype("float64")


def _check_variances(fn: str, variances: Sequence[float]) -> tuple[float, float]:
    try:
        v0, v1 = (float(v) for v in variances)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}(variances): expected two positive numbers, got {variances!r}") from None
    if not (v0 > 0 and v1 > 0):
        raise ValueError(f"{fn}(variances): expected two positive numbers, got {variances!r}")
    return v0, v1


# --------------------------------------------------------------------------- formats
def corners_to_center(boxes: Any) -> Any:
    """(xmin, ymin, xmax, ymax) -> (cx, cy, w, h). Shape (..., 4) -> (..., 4)."""
    _check_boxes("boxes", "corners_to_center", boxes, ndim=None)
    xp = backend.get_array_module(boxes)
    boxes = _float(boxes)
    return xp.concatenate(
        [(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], axis=-1
    )


def center_to_corners(boxes: Any) -> Any:
    """(cx, cy, w, h) -> (xmin, ymin, xmax, ymax). Shape (..., 4) -> (..., 4)."""
    _check_boxes("boxes", "center_to_corners", boxes, ndim=None)
    xp = backend.get_array_module(boxes)
    boxes = _float(boxes)
    return xp.concatenate(
        [boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], axis=-1
    )


def area(boxes: Any) -> Any:
    """Area of corner boxes, shape (..., 4) -> (...). A box with xmax <= xmin or ymax <= ymin has area 0."""
    _check_boxes("boxes", "area", boxes, ndim=None)
    xp = backend.get_array_module(boxes)
    boxes = _float(boxes)
    w = xp.maximum(boxes[..., 2] - boxes[..., 0], 0)
    h = xp.maximum(boxes[..., 3] - boxes[..., 1], 0)
    return w * h


# --------------------------------------------------------------------------- IoU
def pairwise_iou(a: Any, b: Any) -> Any:
    """IoU of every box in ``a`` with every box in ``b``, batched over leading axes.

    Args:
        a: corner boxes, shape (..., N, 4).
        b: corner boxes, shape (..., M, 4); the leading axes broadcast against ``a``'s.

    Returns:
        (..., N, M) array of intersection over union, in [0, 1]. Pairs whose union is empty (two
        zero-area boxes) get 0, never NaN.
    """
    _check_boxes("a", "pairwise_iou", a, ndim=None)
    _check_boxes("b", "pairwise_iou", b, ndim=None)
    # BEGIN SOLUTION box_coding
    inter, area_a, area_b = _intersection(a, b)
    xp = backend.get_array_module(inter)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    # where the union is 0 the intersection is 0 too; dividing by 1 there gives 0 instead of 0/0 = NaN
    positive = union > 0
    return xp.where(positive, inter / xp.where(positive, union, 1), 0)
    # END SOLUTION


def _intersection(a: Any, b: Any) -> tuple[Any, Any, Any]:
    """Pairwise intersection areas (..., N, M) and the areas (..., N), (..., M) of corner boxes."""
    # BEGIN SOLUTION box_coding
    xp = backend.get_array_module(a, b)
    a, b = _float(a), _float(b)
    # coordinates as contiguous columns: (..., N, 1) against (..., 1, M) broadcasts to (..., N, M)
    ax1, ay1, ax2, ay2 = (xp.ascontiguousarray(a[..., k])[..., :, None] for k in range(4))
    bx1, by1, bx2, by2 = (xp.ascontiguousarray(b[..., k])[..., None, :] for k in range(4))
    # overlap along x and along y; clipping at 0 makes disjoint boxes intersect in nothing
    # (in-place operations: these arrays are the largest ones in NMS, N x M per class)
    iw = xp.minimum(ax2, bx2)
    lo = xp.maximum(ax1, bx1)
    iw -= lo
    ih = xp.minimum(ay2, by2)
    xp.maximum(ay1, by1, out=lo)
    ih -= lo
    xp.maximum(iw, 0, out=iw)
    xp.maximum(ih, 0, out=ih)
    iw *= ih
    return iw, area(a), area(b)
    # END SOLUTION


def _iou_above(a: Any, b: Any, threshold: float) -> Any:
    """Pairwise ``IoU > threshold`` as booleans (..., N, M), without dividing.

    With I the intersection and A, B the areas, IoU = I / (A + B - I), so for t >= 0
    ``IoU > t  <=>  I > t (A + B - I)  <=>  (1 + t) I > t (A + B)``. Both NMS functions use this same
    inequality, so they agree exactly; it also skips a division and the 0/0 case (then I = 0: False).
    """
    inter, area_a, area_b = _intersection(a, b)
    inter *= 1.0 + threshold
    return inter > threshold * (area_a[..., :, None] + area_b[..., None, :])


def iou(a: Any, b: Any) -> Any:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Args:
        a: (N, 4) corner boxes.
        b: (M, 4) corner boxes.

    Returns:
        (N, M) array, ``result[i, j] = area(a_i & b_j) / area(a_i | b_j)`` in [0, 1]; 0 for zero-area
        boxes (never NaN).

    Example (work it on paper): a = (0, 0, 2, 2) and b = (1, 1, 3, 3) overlap in the unit square
    (1, 1, 2, 2), so IoU = 1 / (4 + 4 - 1) = 1/7.
    """
    _check_boxes("a", "iou", a)
    _check_boxes("b", "iou", b)
    return pairwise_iou(a, b)


# --------------------------------------------------------------------------- encode / decode
def encode(gt_corners: Any, priors_center: Any, variances: Sequence[float] = (0.1, 0.2)) -> Any:
    """Regression targets of ground-truth boxes relative to default boxes (SSD paper, eq. 2).

    Args:
        gt_corners: (..., P, 4) corner boxes, one per default box (the ground truth each prior is matched to).
            Every box must have positive width and height (the log of 0 is -inf).
        priors_center: (P, 4) default boxes in centre form (broadcasts against ``gt_corners``).
        variances: (v_centre, v_size); the centre offset is divided by v_centre * prior size and the log
            size ratio by v_size.

    Returns:
        (..., P, 4) offsets ``(l_cx, l_cy, l_w, l_h)``, dimensionless.
    """
    _check_boxes("gt_corners", "encode", gt_corners, ndim=None)
    _check_boxes("priors_center", "encode", priors_center, ndim=None)
    v0, v1 = _check_variances("encode", variances)
    xp = backend.get_array_module(gt_corners, priors_center)
    # BEGIN SOLUTION box_coding
    g = corners_to_center(gt_corners)
    d = _float(priors_center)
    offset = (g[..., :2] - d[..., :2]) / (v0 * d[..., 2:])
    scale = xp.log(g[..., 2:] / d[..., 2:]) / v1
    return xp.concatenate([offset, scale], axis=-1)
    # END SOLUTION


def decode(loc: Any, priors_center: Any, variances: Sequence[float] = (0.1, 0.2)) -> Any:
    """Boxes from predicted offsets: the inverse of :func:`encode`.

    Args:
        loc: (..., P, 4) offsets ``(l_cx, l_cy, l_w, l_h)`` (network output or encoded targets).
        priors_center: (P, 4) default boxes in centre form.
        variances: the same pair that was used to encode.

    Returns:
        (..., P, 4) corner boxes, normalized coordinates. Not clipped to [0, 1]: a box may stick out of the
        image. The log size ratio ``l_w * v_size`` is clamped at log(1000) so that large raw outputs of an
        untrained network give huge but finite boxes.
    """
    _check_boxes("loc", "decode", loc, ndim=None)
    _check_boxes("priors_center", "decode", priors_center, ndim=None)
    v0, v1 = _check_variances("decode", variances)
    xp = backend.get_array_module(loc, priors_center)
    # BEGIN SOLUTION box_coding
    loc, d = _float(loc), _float(priors_center)
    centre = d[..., :2] + loc[..., :2] * v0 * d[..., 2:]
    size = d[..., 2:] * xp.exp(xp.minimum(loc[..., 2:] * v1, _MAX_LOG_RATIO))
    return xp.concatenate([centre - size / 2, centre + size / 2], axis=-1)
    # END SOLUTION


# --------------------------------------------------------------------------- NMS
def _check_nms_args(fn: str, boxes: Any, scores: Any, iou_threshold: float) -> None:
    _check_boxes("boxes", fn, boxes)
    if not backend.is_array(scores) or scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if backend.is_array(scores) else type(scores).__name__
        raise ValueError(f"{fn}(scores): expected shape ({boxes.shape[0]},), one score per box, got {got}")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"{fn}(iou_threshold): expected a number in [0, 1], got {iou_threshold!r}")


def nms(boxes: Any, scores: Any, iou_threshold: float, top_k: int | None = None) -> Any:
    """Greedy non-maximum suppression of one class.

    Repeat: keep the highest-scoring box that is left, and drop every remaining box whose IoU with it is
    above ``iou_threshold``. Ties in score are broken by the lower index.

    Args:
        boxes: (K, 4) corner boxes.
        scores: (K,) scores.
        iou_threshold: boxes overlapping a kept box with IoU > this are suppressed (IoU == threshold stays).
        top_k: stop after keeping this many boxes (None: no limit).

    Returns:
        (M,) int64 indices into ``boxes`` of the kept boxes, in descending score order. No two kept boxes
        have IoU above the threshold, and the top-scoring box is always kept.
    """
    _check_nms_args("nms", boxes, scores, iou_threshold)
    xp = backend.get_array_module(boxes, scores)
    if top_k is not None and top_k <= 0:
        return xp.zeros((0,), dtype=xp.int64)
    # BEGIN SOLUTION nms_ap
    order = xp.argsort(-scores, kind="stable")  # descending; stable keeps ties in index order
    sorted_boxes = _float(boxes)[order]
    remaining = xp.arange(order.shape[0])  # positions in `order` still in play
    keep: list[Any] = []
    # one iteration per KEPT box: each compares the new winner with all remaining boxes at once
    while remaining.shape[0] > 0:
        best = remaining[:1]  # (1,): the highest score left, since `remaining` stays sorted
        keep.append(best)
        if top_k is not None and len(keep) >= top_k:
            break
        rest = remaining[1:]
        suppressed = _iou_above(sorted_boxes[best], sorted_boxes[rest], iou_threshold)[0]  # (len(rest),)
        remaining = rest[~suppressed]
    if not keep:
        return xp.zeros((0,), dtype=xp.int64)
    return order[xp.concatenate(keep)].astype(xp.int64)
    # END SOLUTION


def batched_nms(boxes: Any, scores: Any, labels: Any, iou_threshold: float) -> Any:
    """Per-class NMS: boxes of different labels never suppress each other.

    Args:
        boxes: (K, 4) corner boxes.
        scores: (K,) scores.
        labels: (K,) integer class of each box.
        iou_threshold: as in :func:`nms`, applied within each class.

    Returns:
        (M,) int64 indices of the kept boxes, all classes together, in descending score order.
    """
    _check_nms_args("batched_nms", boxes, scores, iou_threshold)
    xp = backend.get_array_module(boxes, scores, labels)
    if not backend.is_array(labels) or tuple(labels.shape) != tuple(scores.shape):
        got = tuple(labels.shape) if backend.is_array(labels) else type(labels).__name__
        raise ValueError(f"batched_nms(labels): expected shape {tuple(scores.shape)}, got {got}")
    kept = []
    for c in backend.to_numpy(xp.unique(labels)).tolist():  # a loop over classes, not boxes
        members = xp.nonzero(labels == c)[0]
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    if not kept:
        return xp.zeros((0,), dtype=xp.int64)
    kept_all = xp.concatenate(kept)
    return kept_all[xp.argsort(-scores[kept_all], kind="stable")].astype(xp.int64)


def multiclass_nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float,
    score_threshold: float = 0.0,
    top_k_per_class: int | None = None,
) -> tuple[Any, Any, Any]:
    """NMS for every class at once over one shared set of boxes (SSD's case: one box per default box).

    For each class c: take the boxes whose score for c is above ``score_threshold``, keep at most the
    ``top_k_per_class`` best of them, and run greedy NMS. The classes are processed together: their
    candidate IoU matrices form one (C, K, K) array and the greedy loop runs once over the K candidate
    ranks, deciding rank k for all classes in one vectorized step. The result equals running :func:`nms`
    on each class separately.

    Args:
        boxes: (P, 4) corner boxes.
        scores: (P, C) score of each box for each class (background excluded by the caller).
        iou_threshold: suppress a box whose IoU with a kept box of the same class is above this.
        score_threshold: only scores strictly above this enter NMS.
        top_k_per_class: at most this many highest-scoring candidates per class enter NMS (None: all).

    Returns:
        ``(box_index, class_index, score)``, each (M,): which box, which column of ``scores``, and its score,
        all kept detections sorted by descending score (ties by class, then box index).
    """
    _check_boxes("boxes", "multiclass_nms", boxes)
    xp = backend.get_array_module(boxes, scores)
    if not backend.is_array(scores) or scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if backend.is_array(scores) else type(scores).__name__
        raise ValueError(f"multiclass_nms(scores): expected shape ({boxes.shape[0]}, C), got {got}")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"multiclass_nms(iou_threshold): expected a number in [0, 1], got {iou_threshold!r}")
    num_boxes, num_classes = scores.shape
    k = num_boxes if top_k_per_class is None else min(int(top_k_per_class), num_boxes)
    empty = (xp.zeros((0,), xp.int64), xp.zeros((0,), xp.int64), xp.zeros((0,), scores.dtype))
    if k <= 0 or num_classes == 0:
        return empty

    # 1. candidates per class, best first: (C, K) box indices and scores
    s = scores.T  # (C, P)
    if k < num_boxes:
        # argpartition finds the k best in O(P); only those k are then sorted
        cand = xp.argpartition(-s, k - 1, axis=1)[:, :k]
        cand_scores = xp.take_along_axis(s, cand, axis=1)
        order = xp.argsort(-cand_scores, axis=1, kind="stable")
        cand = xp.take_along_axis(cand, order, axis=1)
    else:
        cand = xp.argsort(-s, axis=1, kind="stable")
    cand_scores = xp.take_along_axis(s, cand, axis=1)  # (C, K), descending along each row
    valid = cand_scores > score_threshold  # a prefix of each row, since rows are sorted
    k_used = int(backend.to_numpy(valid.sum(axis=1)).max())
    if k_used == 0:
        return empty
    cand, cand_scores, valid = cand[:, :k_used], cand_scores[:, :k_used], valid[:, :k_used]

    # 2. which candidate would suppress which, within each class: (C, K, K) booleans. One class at a
    # time: a K x K problem stays in the CPU cache, one (C, K, K) problem does not (2x slower here).
    cand_boxes = _float(boxes)[cand]  # (C, K, 4)
    # 3. the greedy loop runs on the host: it is sequential by nature, and on a GPU each step would wait
    # for the device; the boolean matrices are small, so they are copied once and looped over in NumPy.
    sup = numpy.stack([backend.to_numpy(_iou_above(b, b, iou_threshold)) for b in cand_boxes])
    removed = ~backend.to_numpy(valid)  # (C, K): invalid candidates can neither be kept nor suppress
    keep = numpy.zeros_like(removed)
    for rank in range(k_used):
        alive = ~removed[:, rank]  # (C,): classes whose candidate at this rank survives
        if not alive.any():
            continue
        keep[:, rank] = alive
        removed |= sup[:, rank, :] & alive[:, None]  # it suppresses every later candidate it overlaps

    cls, rank = (xp.asarray(i) for i in numpy.nonzero(keep))  # row-major: class, then rank
    box_index = cand[cls, rank]
    score = cand_scores[cls, rank]
    order = xp.argsort(-score, kind="stable")
    return box_index[order].astype(xp.int64), cls[order].astype(xp.int64), score[order]
