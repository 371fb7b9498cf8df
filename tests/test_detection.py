"""Tests of minissd.detection: decode, clip, softmax, per-class threshold and NMS, top-k (by hand, properties);
predict.

detect decodes (box_coding) and runs NMS (nms_ap): its tests need both assignments and grade neither.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minissd import Tensor, backend
from minissd.boxes import center_to_corners, decode, iou, nms
from minissd.detection import Detections, detect, input_size_of, predict

FAST = settings(max_examples=25, deadline=None)


def A(x, dtype=np.float64):
    return backend.asarray(np.asarray(x, dtype=dtype))


def H(x):
    return backend.to_numpy(x)


# Three default boxes and C = 3 (background, class 1, class 2), worked on paper:
#   d0 corners (0, 0, 0.5, 0.5); d1 = d0 shifted right by 0.05, IoU(d0, d1) = 0.225 / 0.275 = 0.82;
#   d2 corners (0.5, 0.5, 1, 1), overlapping neither.
# Logits chosen so that softmax gives round probabilities (background, class 1, class 2):
#   d0 (0, log 8, 0)     -> (0.1, 0.8, 0.1)
#   d1 (0, log 6, log 3) -> (0.1, 0.6, 0.3)
#   d2 (log 4, 0, log 5) -> (0.4, 0.1, 0.5)
# Class 1, candidates by score d0 0.8, d1 0.6, d2 0.1: d0 kept, d1 suppressed (0.82 > 0.45), d2 kept.
# Class 2, candidates d2 0.5, d1 0.3, d0 0.1: d2 kept, d1 kept (no overlap with d2), d0 suppressed by d1.
# All detections by score: (d0, 1, 0.8), (d2, 2, 0.5), (d1, 2, 0.3), (d2, 1, 0.1).
PRIORS = [[0.25, 0.25, 0.5, 0.5], [0.30, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]]
CONF = [[[0, math.log(8), 0], [0, math.log(6), math.log(3)], [math.log(4), 0, math.log(5)]]]
D0, D1, D2 = [0, 0, 0.5, 0.5], [0.05, 0, 0.55, 0.5], [0.5, 0.5, 1, 1]


@pytest.mark.needs("box_coding", "nms_ap")
def test_detection_output_by_hand():
    (det,) = detect(A(np.zeros((1, 3, 4))), A(CONF), A(PRIORS))
    assert isinstance(det, Detections)
    np.testing.assert_allclose(H(det.scores), [0.8, 0.5, 0.3, 0.1], atol=1e-12)
    assert H(det.labels).tolist() == [1, 2, 2, 1] and H(det.labels).dtype == np.int64
    np.testing.assert_allclose(H(det.boxes), [D0, D2, D1, D2], atol=1e-12)


@pytest.mark.needs("box_coding", "nms_ap")
def test_threshold_and_top_k():
    (det,) = detect(A(np.zeros((1, 3, 4))), A(CONF), A(PRIORS), conf_threshold=0.2)
    np.testing.assert_allclose(H(det.scores), [0.8, 0.5, 0.3], atol=1e-12)  # (d2, class 1, 0.1) is gone
    (det,) = detect(A(np.zeros((1, 3, 4))), A(CONF), A(PRIORS), top_k=2)
    assert H(det.labels).tolist() == [1, 2]
    # a looser NMS (0.9 > 0.82) keeps d1 for class 1 (0.6) and d0 for class 2 (0.1)
    (det,) = detect(A(np.zeros((1, 3, 4))), A(CONF), A(PRIORS), nms_threshold=0.9)
    np.testing.assert_allclose(H(det.scores), [0.8, 0.6, 0.5, 0.3, 0.1, 0.1], atol=1e-12)


@pytest.mark.needs("box_coding", "nms_ap")
def test_boxes_are_decoded_from_the_offsets_and_clipped_to_the_image():
    # offset l_cx = -1 on d2 moves its centre by -1 * 0.1 * 0.5 = -0.05: corners (0.45, 0.5, 0.95, 1.0)
    loc = np.zeros((1, 3, 4))
    loc[0, 2, 0] = -1.0
    (det,) = detect(A(loc), A(CONF), A(PRIORS), conf_threshold=0.45)
    np.testing.assert_allclose(H(det.boxes), [D0, [0.45, 0.5, 0.95, 1.0]], atol=1e-12)
    # +1 moves it right to (0.55, 0.5, 1.05, 1.0): the part outside the image is cut, xmax = 1
    loc[0, 2, 0] = 1.0
    (det,) = detect(A(loc), A(CONF), A(PRIORS), conf_threshold=0.45)
    np.testing.assert_allclose(H(det.boxes), [D0, [0.55, 0.5, 1.0, 1.0]], atol=1e-12)
    # d0 grown 4x around its centre (l_w = l_h = log(4) / 0.2): (-0.75, -0.75, 1.25, 1.25) -> the image;
    # d1 (area 0.25, inside it) now has IoU 0.25 < 0.45 with it, so class 1 keeps d1 (0.6) too
    loc[0, 0, 2:] = math.log(4.0) / 0.2
    (det,) = detect(A(loc), A(CONF), A(PRIORS), conf_threshold=0.45)
    np.testing.assert_allclose(H(det.boxes), [[0, 0, 1, 1], D1, [0.55, 0.5, 1.0, 1.0]], atol=1e-12)
    np.testing.assert_allclose(H(det.scores), [0.8, 0.6, 0.5], atol=1e-12)


@pytest.mark.needs("box_coding", "nms_ap")
def test_clipping_happens_before_nms():
    # d0 and d1 widened 3x (l_w = log(3) / 0.2): unclipped corners (-0.5, 0, 1, 0.5) and (-0.45, 0, 1.05, 0.5),
    # IoU 0.725 / 0.775 = 0.935; clipped both are (0, 0, 1, 0.5): identical, IoU 1.
    # With nms_threshold 0.95 only the clipped boxes suppress each other (class 1: d1 goes).
    loc = np.zeros((1, 3, 4))
    loc[0, :2, 2] = math.log(3.0) / 0.2
    (det,) = detect(A(loc), A(CONF), A(PRIORS), conf_threshold=0.2, nms_threshold=0.95)
    assert (H(det.labels).tolist(), H(det.scores).round(6).tolist()) == ([1, 2, 2], [0.8, 0.5, 0.3])


@pytest.mark.needs("box_coding", "nms_ap")
def test_batch_and_empty_images():
    conf = np.array(CONF * 2)
    conf[1] = [[10.0, 0.0, 0.0]] * 3  # image 1: background everywhere, p(object) = 1/(e^10 + 2) < 0.01
    dets = detect(A(np.zeros((2, 3, 4))), A(conf), A(PRIORS))
    assert len(dets) == 2 and len(dets[0].scores) == 4
    assert dets[1].boxes.shape == (0, 4) and dets[1].labels.shape == (0,) and dets[1].scores.shape == (0,)


@pytest.mark.needs("box_coding", "nms_ap")
def test_accepts_tensors_and_float32():
    loc = Tensor(A(np.zeros((1, 3, 4)), np.float32))
    conf = Tensor(A(CONF, np.float32))
    (det,) = detect(loc, conf, A(PRIORS, np.float32))
    assert det.scores.dtype == np.float32 and det.boxes.dtype == np.float32
    np.testing.assert_allclose(H(det.scores), [0.8, 0.5, 0.3, 0.1], rtol=1e-6)


@pytest.mark.needs("box_coding", "nms_ap")
def test_class_probabilities_are_stable_for_huge_logits():
    # logits (1000, 1000, -1000) on every box: exp(1000) overflows, but the softmax is (0.5, 0.5, 0)
    conf = np.tile([1000.0, 1000.0, -1000.0], (1, 3, 1))
    (det,) = detect(A(np.zeros((1, 3, 4))), A(conf), A(PRIORS), nms_threshold=1.0)
    np.testing.assert_allclose(H(det.scores), [0.5, 0.5, 0.5])
    assert H(det.labels).tolist() == [1, 1, 1]


def _reference_detect(loc, conf, priors, thr, nms_thr, top_k):
    """A slow, obvious version: decode and clip, per class threshold, nms(), collect, sort, cut."""
    boxes = np.clip(H(decode(A(loc), A(priors))), 0.0, 1.0)
    e = np.exp(conf - conf.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    out = []
    for c in range(1, conf.shape[-1]):
        cand = np.nonzero(probs[:, c] > thr)[0]
        if len(cand) == 0:
            continue
        kept = cand[H(nms(A(boxes[cand]), A(probs[cand, c]), nms_thr))]
        out += [(probs[k, c], c, k) for k in kept]
    out.sort(key=lambda t: -t[0])
    return out[:top_k]


@FAST
@given(seed=st.integers(0, 2**32 - 1), p=st.integers(1, 60), c=st.integers(2, 5), top_k=st.integers(1, 30))
@pytest.mark.needs("box_coding", "nms_ap")
def test_detect_equals_a_slow_reference_and_keeps_its_invariants(seed, p, c, top_k):
    rng = np.random.default_rng(seed)
    xy = rng.random((p, 2))
    priors = np.concatenate([xy, rng.uniform(0.05, 0.4, (p, 2))], 1)
    loc = rng.normal(size=(1, p, 4)) * 0.5
    conf = rng.normal(size=(1, p, c)) * 2
    (det,) = detect(A(loc), A(conf), A(priors), conf_threshold=0.05, top_k=top_k, pre_nms_top_k=None)
    boxes, labels, scores = H(det.boxes), H(det.labels), H(det.scores)
    ref = _reference_detect(loc[0], conf[0], priors, 0.05, 0.45, top_k)
    np.testing.assert_allclose(scores, [r[0] for r in ref], rtol=1e-9)
    assert labels.tolist() == [r[1] for r in ref]  # same classes in the same (score) order
    assert len(scores) <= top_k and (np.diff(scores) <= 0).all() and (scores > 0.05).all()
    assert ((labels >= 1) & (labels < c)).all()
    for k in np.unique(labels):
        same = boxes[labels == k]
        ov = H(iou(A(same), A(same)))
        np.fill_diagonal(ov, 0)
        assert (ov <= 0.45 + 1e-9).all()


@pytest.mark.needs("default_boxes", "box_coding", "nms_ap")
def test_ssd300_sized_output_runs_and_respects_top_k():
    from minissd.config import SSDConfig
    from minissd.priors import default_boxes

    priors = default_boxes(SSDConfig.ssd300())
    rng = np.random.default_rng(0)
    loc, conf = rng.normal(size=(1, 8732, 4)), rng.normal(size=(1, 8732, 21))
    dets = detect(A(loc, np.float32), A(conf, np.float32), priors)
    assert len(dets[0].scores) == 200
    assert H(center_to_corners(priors)).shape == (8732, 4)


@pytest.mark.parametrize(
    "loc_shape, conf_shape, kwargs, pattern",
    [
        ((1, 4, 4), (1, 3, 3), {}, r"detect\(loc\).*\(N, 3, 4\).*\(1, 4, 4\)"),
        ((1, 3, 4), (1, 3, 1), {}, r"detect\(conf\).*C >= 2"),
        ((1, 3, 4), (2, 3, 3), {}, r"detect\(conf\).*\(1, 3, C\)"),
        ((1, 3, 4), (1, 3, 3), {"top_k": 0}, r"detect\(top_k\)"),
        ((1, 3, 4), (1, 3, 3), {"conf_threshold": 1.0}, r"detect\(conf_threshold\)"),
        ((1, 3, 4), (1, 3, 3), {"nms_threshold": -0.1}, r"detect\(nms_threshold\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(loc_shape, conf_shape, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        detect(A(np.zeros(loc_shape)), A(np.zeros(conf_shape)), A(PRIORS), **kwargs)


class _RecordingModel:
    """Stands in for a detector: records the batches it is given, detects one box per image."""

    input_size = 8

    def __init__(self):
        self.batches = []
        self.kwargs = []

    def detect(self, images, **kwargs):
        self.batches.append(H(images))
        self.kwargs.append(kwargs)
        # the image's mean value as its score, so the order of the outputs can be checked
        return [Detections(A([[0, 0, 1, 1]]), A([1], np.int64), A([float(x.mean())])) for x in H(images)]


def test_predict_resizes_normalizes_and_batches_images_of_any_size():
    model = _RecordingModel()
    # five constant images of different sizes and values 0, 50, ..., 200
    images = [np.full((h, w, 3), 50 * k, np.uint8) for k, (h, w) in enumerate([(4, 6), (8, 8), (20, 10),
                                                                                  (8, 9), (3, 3)])]
    dets = predict(model, images, conf_threshold=0.2, top_k=7, batch_size=2)
    assert [b.shape for b in model.batches] == [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
    assert all(kw == {"conf_threshold": 0.2, "nms_threshold": 0.45, "top_k": 7} for kw in model.kwargs)
    # normalized as in evaluation: (value - mean) / std per channel, so the five means increase with the value
    means = [float(H(d.scores)[0]) for d in dets]
    assert len(dets) == 5 and np.all(np.diff(means) > 0)
    from minissd.data.transforms import MEAN, STD

    first = model.batches[0][0]
    np.testing.assert_allclose(first[:, 0, 0], (0 - np.asarray(MEAN)) / np.asarray(STD), rtol=1e-5)


def test_predict_and_input_size_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"predict\(batch_size\)"):
        predict(_RecordingModel(), [np.zeros((4, 4, 3), np.uint8)], batch_size=0)
    with pytest.raises(TypeError, match=r"input_size_of\(model\).*object"):
        input_size_of(object())
