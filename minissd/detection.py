"""Detection output: from the network's raw (loc, conf) to a short list of boxes per image.

The steps, as in the released SSD (Caffe's DetectionOutput layer):

1. **decode** every default box's offsets into a corner box (one box per default box, shared by all
   classes: SSD's localization is class-agnostic);
2. **softmax** the class logits into probabilities;
3. per object class, keep the boxes whose probability is above ``conf_threshold`` (0.01), at most the
   ``pre_nms_top_k`` (400) best of them;
4. per class, **non-maximum suppression** at IoU ``nms_threshold`` (0.45): of overlapping boxes of the
   same class only the best survives;
5. per image, the ``top_k`` (200) highest-scoring survivors of all classes.

Steps 3-4 run for all classes at once (:func:`minissd.boxes.multiclass_nms`), so SSD300's 8732 x 21
scores of a batch of 8 post-process in a fraction of a second on a CPU (``benchmarks/bench_postprocess.py``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

from . import backend
from .boxes import decode, multiclass_nms


class Detections(NamedTuple):
    """The detections of one image, sorted by descending score.

    Attributes:
        boxes: (K, 4) corner boxes ``(xmin, ymin, xmax, ymax)``, normalized to the image (not clipped).
        labels: (K,) int64 object classes in 1 .. C-1 (0, background, never appears).
        scores: (K,) class probabilities in (conf_threshold, 1].
    """

    boxes: Any
    labels: Any
    scores: Any


def _array(name: str, a: Any) -> Any:
    """Accept an array or anything holding one in ``.data`` (a Tensor), without importing autograd."""
    if backend.is_array(a):
        return a
    data = getattr(a, "data", None)
    if backend.is_array(data):
        return data
    raise TypeError(f"detect({name}): expected a NumPy/CuPy array or a Tensor, got {type(a).__name__}")


def softmax(logits: Any, axis: int = -1) -> Any:
    """Probabilities from logits along ``axis`` (max subtracted first, so large logits do not overflow)."""
    xp = backend.get_array_module(logits)
    e = xp.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def detect(
    loc: Any,
    conf: Any,
    priors: Any,
    variances: Sequence[float] = (0.1, 0.2),
    conf_threshold: float = 0.01,
    nms_threshold: float = 0.45,
    top_k: int = 200,
    pre_nms_top_k: int | None = 400,
) -> list[Detections]:
    """Post-process a batch of SSD outputs into detections.

    Args:
        loc: (N, P, 4) predicted offsets (array or Tensor).
        conf: (N, P, C) class logits, class 0 = background (array or Tensor).
        priors: (P, 4) default boxes in centre form.
        variances: the encoding's variances (``config.variances``).
        conf_threshold: a class probability must be strictly above this to be a candidate.
        nms_threshold: within a class, a box whose IoU with a better kept box is above this is dropped.
        top_k: at most this many detections per image, the best over all classes.
        pre_nms_top_k: at most this many candidates per class enter NMS (None: all), as in Caffe's SSD.

    Returns:
        N :class:`Detections`, arrays on the backend of ``loc``.
    """
    loc, conf = _array("loc", loc), _array("conf", conf)
    if not backend.is_array(priors) or priors.ndim != 2 or priors.shape[1] != 4:
        got = tuple(priors.shape) if backend.is_array(priors) else type(priors).__name__
        raise ValueError(f"detect(priors): expected default boxes of shape (P, 4), got {got}")
    p = priors.shape[0]
    if loc.ndim != 3 or loc.shape[1:] != (p, 4):
        raise ValueError(f"detect(loc): expected shape (N, {p}, 4) for {p} default boxes, "
                         f"got {tuple(loc.shape)}")
    if conf.ndim != 3 or conf.shape[:2] != loc.shape[:2] or conf.shape[2] < 2:
        raise ValueError(f"detect(conf): expected shape ({loc.shape[0]}, {p}, C) with C >= 2 classes "
                         f"including background, got {tuple(conf.shape)}")
    if not 0.0 <= float(conf_threshold) < 1.0:
        raise ValueError(f"detect(conf_threshold): expected a number in [0, 1), got {conf_threshold!r}")
    if not 0.0 <= float(nms_threshold) <= 1.0:
        raise ValueError(f"detect(nms_threshold): expected a number in [0, 1], got {nms_threshold!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"detect(top_k): expected a positive integer, got {top_k!r}")

    xp = backend.get_array_module(loc, conf)
    # the default boxes go where the network output is (a host copy when loc is on the host)
    priors = backend.to_numpy(priors) if xp.__name__ == "numpy" else xp.asarray(priors)
    boxes = decode(loc, priors, variances)  # (N, P, 4)
    scores = softmax(conf)  # (N, P, C)
    out = []
    for n in range(loc.shape[0]):
        box_index, cls, score = multiclass_nms(
            boxes[n], scores[n, :, 1:], nms_threshold, score_threshold=conf_threshold,
            top_k_per_class=pre_nms_top_k,
        )
        # multiclass_nms sorts by score, so the best top_k are the first ones
        box_index, cls, score = box_index[: int(top_k)], cls[: int(top_k)], score[: int(top_k)]
        out.append(Detections(boxes=boxes[n][box_index], labels=cls + 1, scores=score))
    return out
