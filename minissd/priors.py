"""Default boxes ("priors"): the fixed set of boxes every SSD prediction is relative to.

For feature map k of size f_k, step_k, sizes min_k / max_k (pixels) and ratios r, every location (i, j)
gets, in this order (the order the released code uses, and every part of minissd relies on):

1. a square of side ``min_k``                          (aspect 1 at scale s_k)
2. a square of side ``sqrt(min_k * max_k)``            (aspect 1 at scale sqrt(s_k s_(k+1)))
3. for each ratio r: ``min_k * sqrt(r)`` wide and ``min_k / sqrt(r)`` high, then the transpose (1/r)

all centred at ``((j + 0.5) * step_k, (i + 0.5) * step_k)`` and divided by the input size. Maps come
largest first and locations row by row (i is the row, j the column). For SSD300 this gives
38^2*4 + 19^2*6 + 10^2*6 + 5^2*6 + 3^2*4 + 1^2*4 = 8732 boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import backend
from .boxes import center_to_corners, corners_to_center, iou
from .config import SSDConfig


def _box_shapes(min_size: float, max_size: float, ratios: Sequence[float]) -> list[tuple[float, float]]:
    """(width, height) in pixels of the boxes at one location, in the fixed order."""
    # BEGIN SOLUTION default_boxes
    shapes = [(min_size, min_size)]
    extra = math.sqrt(min_size * max_size)
    shapes.append((extra, extra))
    for r in ratios:
        shapes.append((min_size * math.sqrt(r), min_size / math.sqrt(r)))
        shapes.append((min_size / math.sqrt(r), min_size * math.sqrt(r)))
    return shapes
    # END SOLUTION


def feature_map_boxes(
    size: int,
    step: float,
    min_size: float,
    max_size: float,
    aspect_ratios: Sequence[float],
    input_size: int,
    dtype: Any = None,
) -> Any:
    """Default boxes of one feature map, shape (size, size, A, 4) in centre form, normalized.

    ``result[i, j, a]`` is box a at row i, column j (A = 2 + 2 * len(aspect_ratios)). Useful on its own to
    draw the boxes of one map (e.g. the paper's 8x8 and 4x4 maps in Fig. 1).
    """
    xp = backend.xp()
    dtype = xp.float32 if dtype is None else dtype
    # BEGIN SOLUTION default_boxes
    centres = (xp.arange(size, dtype=xp.float64) + 0.5) * step / input_size  # (f,)
    shapes = xp.asarray(_box_shapes(min_size, max_size, aspect_ratios), dtype=xp.float64)  # (A, 2) pixels
    shapes /= input_size
    n = shapes.shape[0]
    out = xp.empty((size, size, n, 4), dtype=xp.float64)
    out[..., 0] = centres[None, :, None]  # cx varies with the column j
    out[..., 1] = centres[:, None, None]  # cy varies with the row i
    out[..., 2:] = shapes[None, None, :, :]
    return out.astype(dtype)
    # END SOLUTION


def _clip_center(boxes: Any) -> Any:
    """Clip centre-form boxes to the image: corners into [0, 1], then back to centre form."""
    xp = backend.get_array_module(boxes)
    return corners_to_center(xp.clip(center_to_corners(boxes), 0.0, 1.0))


def _clip_size(boxes: Any) -> Any:
    """Clamp the width and height of centre-form boxes to [0, 1]; centres stay (torchvision's clipping)."""
    xp = backend.get_array_module(boxes)
    return xp.concatenate([boxes[:, :2], xp.clip(boxes[:, 2:], 0.0, 1.0)], axis=1)


def default_boxes_per_map(config: SSDConfig, dtype: Any = None) -> list[Any]:
    """The default boxes of each feature map, a list of (f_k * f_k * A_k, 4) arrays in centre form.

    Concatenated they are :func:`default_boxes`; separately they let a notebook draw one map at a time.
    """
    if not isinstance(config, SSDConfig):
        raise TypeError(f"default_boxes(config): expected an SSDConfig, got {type(config).__name__}")
    mins, maxs = config.resolved_sizes()
    steps = config.resolved_steps()
    out = []
    for k, f in enumerate(config.feature_maps):
        boxes = feature_map_boxes(f, steps[k], mins[k], maxs[k], config.aspect_ratios[k], config.input_size,
                                  dtype=backend.xp().float64)
        boxes = boxes.reshape(-1, 4)
        if config.clip:
            boxes = _clip_center(boxes) if config.clip_mode == "corners" else _clip_size(boxes)
        out.append(boxes.astype(backend.xp().float32 if dtype is None else dtype))
    return out


def default_boxes(config: SSDConfig, dtype: Any = None) -> Any:
    """All default boxes of ``config``, shape (P, 4), centre form (cx, cy, w, h), normalized to [0, 1].

    P is ``config.num_priors`` (8732 for SSD300, 24564 for SSD512, 2390 for mini). Computed in float64 and
    returned as ``dtype`` (float32 by default) on the current backend. With ``config.clip`` the boxes are
    clipped to the image: corners into [0, 1] as Caffe's PriorBox does, or with ``config.clip_mode ==
    "size"`` only width and height clamped to [0, 1] (torchvision's and ssd.pytorch's default boxes).
    """
    return backend.xp().concatenate(default_boxes_per_map(config, dtype=dtype), axis=0)


def map_slices(config: SSDConfig) -> list[slice]:
    """For each feature map, the slice of :func:`default_boxes` (and of the network's P axis) it owns."""
    out, first = [], 0
    for f, n in zip(config.feature_maps, config.num_priors_per_location):
        out.append(slice(first, first + f * f * n))
        first += f * f * n
    return out


def best_overlaps(gt_boxes: Any, priors: Any) -> Any:
    """For each ground-truth box, the IoU of the default box that overlaps it most.

    Args:
        gt_boxes: (G, 4) corner boxes, normalized.
        priors: (P, 4) default boxes in centre form.

    Returns:
        (G,) best IoU per object. ``(best_overlaps(b, priors) >= 0.5).mean()`` is the share of objects
        that have a default box good enough to be matched by the threshold rule: a direct way to judge a
        config's box sizes for a dataset (it is how the mini preset's sizes were chosen).
    """
    if not backend.is_array(gt_boxes) or gt_boxes.ndim != 2 or gt_boxes.shape[1] != 4:
        got = tuple(gt_boxes.shape) if backend.is_array(gt_boxes) else type(gt_boxes).__name__
        raise ValueError(f"best_overlaps(gt_boxes): expected corner boxes of shape (G, 4), got {got}")
    xp = backend.get_array_module(gt_boxes, priors)
    if gt_boxes.shape[0] == 0:
        return xp.zeros((0,), dtype=priors.dtype)
    return iou(gt_boxes, center_to_corners(priors)).max(axis=1)
