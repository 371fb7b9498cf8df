"""Non-maximum suppression (NMS): of overlapping detections of one class, keep only the best.

A detector finds an object many times over: every default box near it predicts a box and a score. Greedy
NMS, as in the SSD paper and its released code, turns that cluster into one detection::

    sort the candidates by score, best first
    walk down the list: keep a candidate unless a candidate kept before it overlaps it
    with IoU above the threshold (then it is suppressed)

Two functions use that one walk (:func:`_greedy_keep`):

* :func:`nms`: one class, boxes and their scores;
* :func:`multiclass_nms`: SSD's case, one shared set of boxes (one per default box) with a score for every
  class; boxes of different classes never suppress each other. It selects each class's candidates and walks
  all the classes' lists together, one rank at a time, which is what makes SSD300's 8732 x 20 scores
  post-process quickly.

Both take NumPy or CuPy arrays; IoU is :func:`minissd.boxes.iou`. The walk itself runs on the host: it is
sequential by nature (on a GPU every step would wait for the device), and the boolean overlap matrices it
reads are small, so they are copied to the host once.
"""

from __future__ import annotations

from typing import Any

import numpy

from . import backend
from .boxes import _check_boxes, iou


def _check_threshold(fn: str, iou_threshold: float) -> None:
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"{fn}(iou_threshold): expected a number in [0, 1], got {iou_threshold!r}")


def _greedy_keep(overlaps: Any, valid: Any = None) -> numpy.ndarray:
    """The greedy walk of NMS over candidate lists sorted best first, several independent lists at once.

    Args:
        overlaps: (C, K, K) booleans (NumPy or CuPy): ``overlaps[c, i, j]`` says whether candidates i and j
            of list c overlap above the IoU threshold. Row order is rank order (best first).
        valid: (C, K) booleans, the candidates that take part (None: all). An invalid candidate is never
            kept and suppresses nothing (lists shorter than K are padded with invalid ones).

    Returns:
        (C, K) NumPy booleans on the host: ``keep[c, r]`` says whether candidate r of list c survives.
    """
    # BEGIN SOLUTION nms_ap
    overlaps = backend.to_numpy(overlaps)
    c, k = overlaps.shape[:2]
    removed = numpy.zeros((c, k), bool) if valid is None else ~backend.to_numpy(valid)
    keep = numpy.zeros((c, k), bool)
    for rank in range(k):  # best first: everything that could suppress this candidate is decided
        alive = ~removed[:, rank]  # (C,): the lists whose candidate at this rank survived
        keep[:, rank] = alive
        removed |= overlaps[:, rank, :] & alive[:, None]  # a kept candidate suppresses all it overlaps
    return keep
    # END SOLUTION


def nms(boxes: Any, scores: Any, iou_threshold: float, top_k: int | None = None) -> Any:
    """Greedy non-maximum suppression of one class.

    Repeat: keep the highest-scoring box that is left, and drop every remaining box whose IoU with it is
    above ``iou_threshold``. Ties in score are broken by the lower index.

    Args:
        boxes: (K, 4) corner boxes.
        scores: (K,) scores.
        iou_threshold: boxes overlapping a kept box with IoU > this are suppressed (IoU == threshold stays).
        top_k: return only the first this many kept boxes (None: all). Greedy NMS decides in score order,
            so these are exactly the boxes a run stopped after ``top_k`` keeps would return.

    Returns:
        (M,) int64 indices into ``boxes`` of the kept boxes, in descending score order. No two kept boxes
        have IoU above the threshold, and the top-scoring box is always kept.

    The K x K IoU matrix is computed at once, so memory grows with K^2: cap the candidates first (as
    :func:`minissd.detection.detect` does with ``pre_nms_top_k``).
    """
    _check_boxes("boxes", "nms", boxes)
    if not backend.is_array(scores) or scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if backend.is_array(scores) else type(scores).__name__
        raise ValueError(f"nms(scores): expected shape ({boxes.shape[0]},), one score per box, got {got}")
    _check_threshold("nms", iou_threshold)
    xp = backend.get_array_module(boxes, scores)
    if top_k is not None and top_k <= 0:
        return xp.zeros((0,), dtype=xp.int64)
    # BEGIN SOLUTION nms_ap
    order = xp.argsort(-scores, kind="stable")  # best first; stable keeps tied boxes in index order
    ranked = boxes[order]
    keep = _greedy_keep((iou(ranked, ranked) > iou_threshold)[None])[0]  # (K,) host booleans
    kept = order[xp.asarray(numpy.flatnonzero(keep))]
    return (kept if top_k is None else kept[: int(top_k)]).astype(xp.int64)
    # END SOLUTION


def multiclass_nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float,
    score_threshold: float = 0.0,
    top_k_per_class: int | None = None,
) -> tuple[Any, Any, Any]:
    """Per-class NMS over one shared set of boxes (SSD's case: one box per default box, a score per class).

    For each class c: take the boxes whose score for c is above ``score_threshold``, keep at most the
    ``top_k_per_class`` best of them, and run greedy NMS; boxes never suppress boxes of another class. The
    result equals running :func:`nms` on each class separately; the classes' candidate lists are walked
    together, rank by rank (:func:`_greedy_keep`), instead of one class after the other.

    Args:
        boxes: (P, 4) corner boxes.
        scores: (P, C) score of each box for each class (background excluded by the caller).
        iou_threshold: suppress a box whose IoU with a kept box of the same class is above this.
        score_threshold: only scores strictly above this enter NMS.
        top_k_per_class: at most this many highest-scoring candidates per class enter NMS (None: all; memory
            then grows with the square of the number of candidates).

    Returns:
        ``(box_index, class_index, score)``, each (M,): which box, which column of ``scores``, and its score,
        all kept detections sorted by descending score (ties by class, then box index).
    """
    _check_boxes("boxes", "multiclass_nms", boxes)
    if not backend.is_array(scores) or scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if backend.is_array(scores) else type(scores).__name__
        raise ValueError(f"multiclass_nms(scores): expected shape ({boxes.shape[0]}, C), got {got}")
    _check_threshold("multiclass_nms", iou_threshold)
    xp = backend.get_array_module(boxes, scores)
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
        order = xp.argsort(-xp.take_along_axis(s, cand, axis=1), axis=1, kind="stable")
        cand = xp.take_along_axis(cand, order, axis=1)
    else:
        cand = xp.argsort(-s, axis=1, kind="stable")
    cand_scores = xp.take_along_axis(s, cand, axis=1)  # (C, K), descending along each row
    valid = cand_scores > score_threshold  # a prefix of each row, since rows are sorted
    k_used = int(backend.to_numpy(valid.sum(axis=1)).max())
    if k_used == 0:
        return empty
    cand, cand_scores, valid = cand[:, :k_used], cand_scores[:, :k_used], valid[:, :k_used]

    # 2. which candidate overlaps which, within each class: (C, K, K) booleans, one class at a time (a
    # K x K problem stays in the CPU cache, one (C, K, K) problem does not: 2x slower)
    overlaps = xp.stack([iou(b, b) > iou_threshold for b in boxes[cand]])
    # 3. the greedy walk, all classes at once
    keep = _greedy_keep(overlaps, valid)  # (C, K) host booleans

    cls, rank = (xp.asarray(i) for i in numpy.nonzero(keep))  # row-major: class, then rank
    box_index = cand[cls, rank]
    score = cand_scores[cls, rank]
    order = xp.argsort(-score, kind="stable")
    return box_index[order].astype(xp.int64), cls[order].astype(xp.int64), score[order]
