"""Boxes: the two box formats, IoU, and the SSD offset encoding (non-maximum suppression: :mod:`minissd.nms`).

Formats (used everywhere in minissd):

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

``from minissd.boxes import nms`` still works: it is :func:`minissd.nms.nms`, re-exported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
    # the intersection is never larger than the union, so where the union is 0 it is 0 too: dividing by 1
    # there gives 0 instead of 0/0 = NaN
    return inter / xp.where(union > 0, union, 1)
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


def __getattr__(name: str) -> Any:
    # ``boxes.nms`` is minissd.nms.nms, loaded on first use: nms.py imports this module (for iou), so a
    # plain import here would be circular
    if name == "nms":
        from .nms import nms  # noqa: PLC0415

        return nms
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
