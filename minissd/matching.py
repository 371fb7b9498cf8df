"""Matching: which default box is responsible for which ground-truth object (SSD paper, section 2.2).

Training needs, for every default box, a class target (0 = background) and, for the positives, the
offsets of its object (:func:`minissd.boxes.encode`). The paper's matching strategy has two steps:

1. **bipartite**: every ground truth takes the default box it overlaps most, even if that IoU is below
   the threshold. Otherwise an object that falls between default boxes would never be trained on.
2. **threshold**: every other default box whose best IoU with any ground truth is >= ``iou_threshold``
   (0.5) is matched to that ground truth. An object thus gets several positives, which "simplifies the
   learning problem": the network may predict high scores for all the boxes that overlap it well.

Everything is vectorized over the P default boxes: one (G, P) IoU matrix and a few reductions. The only
Python loop is over ground truths, and only when two of them compete for the same default box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import backend
from .boxes import center_to_corners, encode, iou


def _check_gt(fn: str, gt_boxes: Any, gt_labels: Any | None, priors: Any) -> None:
    if not backend.is_array(gt_boxes) or gt_boxes.ndim != 2 or gt_boxes.shape[1] != 4:
        got = tuple(gt_boxes.shape) if backend.is_array(gt_boxes) else type(gt_boxes).__name__
        raise ValueError(f"{fn}(gt_boxes): expected corner boxes of shape (G, 4), got {got}")
    if not backend.is_array(priors) or priors.ndim != 2 or priors.shape[1] != 4:
        got = tuple(priors.shape) if backend.is_array(priors) else type(priors).__name__
        raise ValueError(f"{fn}(priors): expected default boxes of shape (P, 4) in centre form, got {got}")
    if gt_labels is not None:
        g = gt_boxes.shape[0]
        if not backend.is_array(gt_labels) or tuple(gt_labels.shape) != (g,):
            got = tuple(gt_labels.shape) if backend.is_array(gt_labels) else type(gt_labels).__name__
            raise ValueError(f"{fn}(gt_labels): expected shape ({g},), one label per box, got {got}")
        if gt_labels.dtype.kind not in "iu":
            raise ValueError(f"{fn}(gt_labels): expected integer class labels, got dtype {gt_labels.dtype}")
        if g and int(gt_labels.min()) < 1:
            raise ValueError(f"{fn}(gt_labels): object labels must be >= 1 (0 is background), "
                             f"got {backend.to_numpy(gt_labels).tolist()}")
    if gt_boxes.shape[0]:
        w = gt_boxes[:, 2] - gt_boxes[:, 0]
        h = gt_boxes[:, 3] - gt_boxes[:, 1]
        bad = ~((w > 0) & (h > 0))  # also catches NaN
        if bool(bad.any()):
            i = int(backend.to_numpy(bad).argmax())
            raise ValueError(f"{fn}(gt_boxes): every box needs xmin < xmax and ymin < ymax (corners), "
                             f"box {i} is {backend.to_numpy(gt_boxes[i]).tolist()}")


def _bipartite(overlaps: Any) -> tuple[Any, Any]:
    """For each ground truth, a distinct default box: greedy bipartite matching on a (G, P) IoU matrix.

    Repeatedly take the highest IoU among the ground truths and default boxes not yet used, and pair them.
    When each ground truth's best default box is different (the usual case) this is simply the row-wise
    argmax, computed without the loop. Returns ``(gt_ids, prior_ids)``, int64 arrays of equal length
    min(G, P): ground truth ``gt_ids[n]`` is paired with default box ``prior_ids[n]``, all distinct.
    """
    # BEGIN SOLUTION matching
    xp = backend.get_array_module(overlaps)
    g, p = overlaps.shape
    best = overlaps.argmax(axis=1)  # (G,)
    if int(xp.unique(best).shape[0]) == g:
        return xp.arange(g, dtype=xp.int64), best.astype(xp.int64)
    ov = overlaps.copy()
    gt_ids, prior_ids = [], []
    for _ in range(min(g, p)):  # one iteration per ground truth, each a vectorized argmax over (G, P)
        gi, pi = divmod(int(ov.argmax()), p)
        gt_ids.append(gi)
        prior_ids.append(pi)
        ov[gi, :] = -1.0  # this ground truth is served ...
        ov[:, pi] = -1.0  # ... and this default box is no longer free
    return xp.asarray(gt_ids, dtype=xp.int64), xp.asarray(prior_ids, dtype=xp.int64)
    # END SOLUTION


def match_priors(gt_boxes: Any, priors: Any, iou_threshold: float = 0.5) -> tuple[Any, Any]:
    """Assign default boxes to ground truths (the index form of :func:`match`).

    Args:
        gt_boxes: (G, 4) ground-truth corner boxes, normalized, each with positive width and height.
        priors: (P, 4) default boxes in centre form.
        iou_threshold: a default box whose best IoU is >= this is a positive.

    Returns:
        ``(gt_index, overlap)``: (P,) int64 index of the ground truth each default box is matched to, or -1
        for background; and (P,) the IoU of each default box with its best ground truth (0 when G = 0).

    Two ground truths that share one best default box: the bipartite step is greedy on IoU, so the one
    with the higher IoU gets that default box and the other takes its best default box still free. Each
    ground truth therefore owns at least one default box of its own (when there are at least as many
    default boxes as ground truths). A default box taken in the bipartite step belongs to that ground
    truth even if another one overlaps it more; every other default box goes to the ground truth it
    overlaps most (ties: the lower index).
    """
    _check_gt("match_priors", gt_boxes, None, priors)
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"match_priors(iou_threshold): expected a number in [0, 1], got {iou_threshold!r}")
    xp = backend.get_array_module(gt_boxes, priors)
    num_priors = priors.shape[0]
    if gt_boxes.shape[0] == 0:
        return xp.full((num_priors,), -1, dtype=xp.int64), xp.zeros((num_priors,), dtype=priors.dtype)
    # BEGIN SOLUTION matching
    overlaps = iou(gt_boxes, center_to_corners(priors))  # (G, P)
    best_gt = overlaps.argmax(axis=0).astype(xp.int64)  # (P,) the ground truth each prior overlaps most
    best_overlap = overlaps.max(axis=0)  # (P,)
    # step 1: the forced matches override step 2 (IoU >= threshold) for their default boxes
    forced_gt, forced = _bipartite(overlaps)  # (G,) ground truths and their distinct default boxes
    best_gt[forced] = forced_gt
    positive = best_overlap >= iou_threshold
    positive[forced] = True
    gt_index = xp.where(positive, best_gt, -1)
    overlap = overlaps[best_gt, xp.arange(num_priors)]  # IoU with the assigned ground truth
    return gt_index, overlap.astype(priors.dtype)
    # END SOLUTION


def match(
    gt_boxes: Any,
    gt_labels: Any,
    priors: Any,
    iou_threshold: float = 0.5,
    variances: Sequence[float] = (0.1, 0.2),
) -> tuple[Any, Any]:
    """Training targets of one image: per default box, the offsets and the class of its object.

    Args:
        gt_boxes: (G, 4) ground-truth corner boxes, normalized to [0, 1] (G may be 0).
        gt_labels: (G,) integer labels in 1 .. num_classes - 1.
        priors: (P, 4) default boxes in centre form (``default_boxes(config)``).
        iou_threshold: IoU at or above which a default box is a positive (0.5 in the paper).
        variances: passed to :func:`minissd.boxes.encode`.

    Returns:
        ``(loc_t, conf_t)``: (P, 4) encoded offsets (dtype of ``priors``), zero for background boxes; and
        (P,) int64 class targets, 0 for background. An image without ground truth gives all zeros.

    See :func:`match_priors` for the rule, including what happens when two ground truths share their
    best default box.
    """
    _check_gt("match", gt_boxes, gt_labels, priors)
    xp = backend.get_array_module(gt_boxes, gt_labels, priors)
    num_priors = priors.shape[0]
    gt_index, _ = match_priors(gt_boxes, priors, iou_threshold)
    positive = gt_index >= 0
    if gt_boxes.shape[0] == 0:
        return xp.zeros((num_priors, 4), dtype=priors.dtype), xp.zeros((num_priors,), dtype=xp.int64)
    safe = xp.where(positive, gt_index, 0)  # background boxes borrow ground truth 0, then get zeroed
    conf_t = xp.where(positive, gt_labels.astype(xp.int64)[safe], 0)
    loc_t = encode(gt_boxes.astype(priors.dtype)[safe], priors, variances)
    loc_t = xp.where(positive[:, None], loc_t, 0).astype(priors.dtype)
    return loc_t, conf_t


def match_batch(
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Any],
    priors: Any,
    iou_threshold: float = 0.5,
    variances: Sequence[float] = (0.1, 0.2),
) -> tuple[Any, Any]:
    """:func:`match` for a batch: lists of N per-image arrays -> stacked (N, P, 4) and (N, P) targets.

    Args:
        gt_boxes: N arrays of shape (G_n, 4) (a DataLoader batch's list of boxes).
        gt_labels: N arrays of shape (G_n,).
        priors: (P, 4) default boxes in centre form.

    Returns:
        ``(loc_t, conf_t)`` of shapes (N, P, 4) and (N, P), on the selected backend (arrays from the other
        one, e.g. a NumPy dataset's boxes feeding a CuPy model, are moved there).
    """
    if isinstance(gt_boxes, (str, bytes)) or not isinstance(gt_boxes, Sequence):
        raise TypeError(f"match_batch(gt_boxes): expected a list of (G, 4) arrays, "
                        f"got {type(gt_boxes).__name__}")
    if not isinstance(gt_labels, Sequence) or len(gt_labels) != len(gt_boxes):
        got = len(gt_labels) if isinstance(gt_labels, Sequence) else type(gt_labels).__name__
        raise ValueError(f"match_batch(gt_labels): expected a list of {len(gt_boxes)} label arrays, "
                         f"got {got}")
    xp = backend.xp()
    priors = backend.asarray(priors)
    locs, confs = [], []
    for boxes, labels in zip(gt_boxes, gt_labels):
        boxes, labels = backend.asarray(boxes), backend.asarray(labels)
        loc_t, conf_t = match(boxes, labels, priors, iou_threshold, variances)
        locs.append(loc_t)
        confs.append(conf_t)
    if not locs:
        return xp.zeros((0, priors.shape[0], 4), dtype=priors.dtype), xp.zeros((0, priors.shape[0]), xp.int64)
    return xp.stack(locs), xp.stack(confs)
