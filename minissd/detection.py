"""Detection output: from the network's raw (loc, conf) to a short list of boxes per image; and inference.

The steps of :func:`detect`, as in the released SSD (Caffe's DetectionOutput layer):

1. **decode** every default box's offsets into a corner box (one box per default box, shared by all
   classes: SSD's localization is class-agnostic), **clipped to the image** [0, 1];
2. **softmax** the class logits into probabilities;
3. per object class, keep the boxes whose probability is above ``conf_threshold`` (0.01), at most the
   ``pre_nms_top_k`` (400) best of them;
4. per class, **non-maximum suppression** at IoU ``nms_threshold`` (0.45): of overlapping boxes of the
   same class only the best survives;
5. per image, the ``top_k`` (200) highest-scoring survivors of all classes.

Steps 3-4 run for all classes at once (:func:`minissd.nms.multiclass_nms`), so SSD300's 8732 x 21
scores of a batch of 8 post-process in a fraction of a second on a CPU (``benchmarks/bench_postprocess.py``).

Clipping happens before NMS: a detection is a region of the image, so the boxes NMS compares, the boxes
reported and the boxes evaluated are the same. A box that lies wholly outside the image clips to zero area;
it then overlaps nothing, and costs a false positive as it did before clipping.

:func:`predict` runs a model on raw images of any size (resize and normalize as in evaluation, batches,
eval mode, no graph) and returns the same :class:`Detections`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy

from . import backend
from .autograd import Tensor, no_grad
from .boxes import decode
from .data.transforms import eval_transform
from .nms import multiclass_nms


class Detections(NamedTuple):
    """The detections of one image, sorted by descending score.

    Attributes:
        boxes: (K, 4) corner boxes ``(xmin, ymin, xmax, ymax)``, normalized to the image, in [0, 1].
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
        N :class:`Detections`, arrays on the selected backend (inputs from the other one are moved there).
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

    xp = backend.xp()
    loc, conf, priors = backend.asarray(loc), backend.asarray(conf), backend.asarray(priors)
    boxes = xp.clip(decode(loc, priors, variances), 0.0, 1.0)  # (N, P, 4) corners inside the image
    with no_grad():  # probabilities for ranking only: no graph to build
        scores = Tensor(conf).softmax(axis=-1).data  # (N, P, C)
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


def input_size_of(model: Any) -> int:
    """The square input side (pixels) that ``model`` expects: ``model.input_size``, else
    ``model.config.input_size`` (an SSD carries it in its config)."""
    size = getattr(model, "input_size", None)
    if size is None:
        size = getattr(getattr(model, "config", None), "input_size", None)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise TypeError(f"input_size_of(model): expected a model with input_size or config.input_size "
                        f"(a positive integer), got {type(model).__name__}")
    return int(size)


def eval_transform_for(model: Any) -> Any:
    """The evaluation transform (resize to the model's input size, normalize) that ``model``'s weights want.

    Weights converted from elsewhere record their own normalisation as ``model.input_convention`` (mean and
    std per RGB channel on the 0..255 scale); other models use minissd's default.
    """
    convention = getattr(model, "input_convention", None)
    if convention is None:
        return eval_transform(input_size_of(model))
    return eval_transform(input_size_of(model), convention.mean, convention.std)


def predict(
    model: Any,
    images: Iterable[numpy.ndarray],
    conf_threshold: float = 0.3,
    nms_threshold: float = 0.45,
    top_k: int = 200,
    batch_size: int = 32,
) -> list[Detections]:
    """Detections for raw images of any size, resized and normalized as in evaluation.

    Args:
        model: a detector with ``detect(batch, conf_threshold, nms_threshold, top_k)`` (SSD, YOLOv1) and
            an input size (:func:`input_size_of`).
        images: (H, W, 3) uint8 images, each of any size (a list, tuple or any iterable).
        conf_threshold, nms_threshold, top_k: passed to ``model.detect`` (see :func:`detect`).
        batch_size: images per forward pass (memory grows with it).

    Returns:
        One :class:`Detections` per image, in order. Boxes are normalized corners, so they apply to the
        original image whatever its size; arrays on the selected backend.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"predict(batch_size): expected a positive integer, got {batch_size!r}")
    transform = eval_transform_for(model)
    images = list(images)
    empty_boxes = numpy.zeros((0, 4), numpy.float32)
    empty_labels = numpy.zeros((0,), numpy.int64)
    out: list[Detections] = []
    for start in range(0, len(images), int(batch_size)):
        chunk = images[start : start + int(batch_size)]
        batch = numpy.stack([transform(im, empty_boxes, empty_labels, None)[0] for im in chunk])
        out.extend(model.detect(backend.asarray(batch.astype(numpy.float32)), conf_threshold=conf_threshold,
                                nms_threshold=nms_threshold, top_k=top_k))
    return out
