"""Tests of minissd.boxes: formats, IoU, encode/decode, NMS (hand-worked examples and properties).

Arrays are created on the selected backend (``MINISSD_BACKEND=cupy`` reruns these on a GPU) and
compared on the host.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minissd import backend
from minissd.boxes import (
    batched_nms,
    center_to_corners,
    corners_to_center,
    decode,
    encode,
    iou,
    multiclass_nms,
    nms,
    pairwise_iou,
)

FAST = settings(max_examples=40, deadline=None)


def A(x, dtype=np.float64):
    """An array on the current backend."""
    return backend.asarray(np.asarray(x, dtype=dtype))


def H(x):
    """Back to a NumPy array on the host."""
    return backend.to_numpy(x)


def random_boxes(rng: np.random.Generator, n: int, min_size: float = 0.01, max_size: float = 0.5):
    """n corner boxes with positive width and height, top-left corner in [0, 1)."""
    xy = rng.random((n, 2))
    wh = rng.uniform(min_size, max_size, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


# --------------------------------------------------------------------------- formats
def test_corner_center_conversion_by_hand():
    # (xmin, ymin, xmax, ymax) = (0.1, 0.2, 0.5, 0.8): centre ((0.1+0.5)/2, (0.2+0.8)/2) = (0.3, 0.5),
    # size (0.5-0.1, 0.8-0.2) = (0.4, 0.6)
    c = corners_to_center(A([[0.1, 0.2, 0.5, 0.8]]))
    np.testing.assert_allclose(H(c), [[0.3, 0.5, 0.4, 0.6]], atol=1e-12)
    np.testing.assert_allclose(H(center_to_corners(c)), [[0.1, 0.2, 0.5, 0.8]], atol=1e-12)


def test_conversion_keeps_kind_dtype_and_leading_axes():
    x = A(np.ones((2, 3, 4)), dtype=np.float32)
    out = corners_to_center(x)
    assert type(out) is type(x) and out.dtype == np.float32 and out.shape == (2, 3, 4)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20))
def test_conversion_round_trip(seed, n):
    b = random_boxes(np.random.default_rng(seed), n)
    np.testing.assert_allclose(H(center_to_corners(corners_to_center(A(b)))), b, atol=1e-12)


# --------------------------------------------------------------------------- IoU
@pytest.mark.box_coding
def test_iou_of_two_boxes_by_hand():
    # a = (0,0)-(2,2) and b = (1,1)-(3,3) overlap in the unit square (1,1)-(2,2):
    # IoU = 1 / (4 + 4 - 1) = 1/7
    assert H(iou(A([[0, 0, 2, 2]]), A([[1, 1, 3, 3]])))[0, 0] == pytest.approx(1 / 7)
    # a box inside another: (1,1)-(3,3) in (0,0)-(4,4): 4 / 16 = 0.25
    assert H(iou(A([[0, 0, 4, 4]]), A([[1, 1, 3, 3]])))[0, 0] == pytest.approx(0.25)
    # half overlap along x: (0,0)-(2,1) and (1,0)-(3,1): 1 / 3
    assert H(iou(A([[0, 0, 2, 1]]), A([[1, 0, 3, 1]])))[0, 0] == pytest.approx(1 / 3)


@pytest.mark.box_coding
def test_iou_pairwise_shape_and_values():
    a = A([[0, 0, 2, 2], [0, 0, 1, 1]])
    b = A([[0, 0, 2, 2], [5, 5, 6, 6], [1, 1, 3, 3]])
    out = H(iou(a, b))
    assert out.shape == (2, 3)
    # row 0: itself 1, far box 0, shifted box 1/7; row 1: (0,0)-(1,1) is a quarter of (0,0)-(2,2): 1/4,
    # it only touches (1,1)-(3,3) at a corner: 0
    np.testing.assert_allclose(out, [[1, 0, 1 / 7], [0.25, 0, 0]], atol=1e-12)


@pytest.mark.box_coding
def test_iou_touching_and_zero_area_boxes_give_zero_not_nan():
    touching = H(iou(A([[0, 0, 1, 1]]), A([[1, 0, 2, 1]])))
    assert touching[0, 0] == 0
    point = A([[0.5, 0.5, 0.5, 0.5]])  # zero area
    line = A([[0.2, 0.2, 0.8, 0.2]])  # zero height
    for x in (point, line):
        out = H(iou(x, x))  # union 0: 0, not 0/0
        assert np.isfinite(out).all() and out[0, 0] == 0
        assert H(iou(x, A([[0, 0, 1, 1]])))[0, 0] == 0


@pytest.mark.box_coding
def test_iou_of_empty_sets():
    assert H(iou(A(np.zeros((0, 4))), A([[0, 0, 1, 1]]))).shape == (0, 1)


def test_iou_rejects_wrong_shapes_with_a_clear_message():
    with pytest.raises(ValueError, match=r"iou\(b\).*\(N, 4\).*\(3, 5\)"):
        iou(A([[0, 0, 1, 1]]), A(np.zeros((3, 5))))
    with pytest.raises(ValueError, match=r"iou\(a\).*got shape \(4,\)"):
        iou(A([0, 0, 1, 1]), A([[0, 0, 1, 1]]))


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), m=st.integers(1, 12))
@pytest.mark.box_coding
def test_iou_symmetric_bounded_and_one_on_itself(seed, n, m):
    rng = np.random.default_rng(seed)
    a, b = random_boxes(rng, n), random_boxes(rng, m)
    ab, ba = H(iou(A(a), A(b))), H(iou(A(b), A(a)))
    np.testing.assert_allclose(ab, ba.T, atol=1e-12)
    assert ((ab >= 0) & (ab <= 1)).all()
    np.testing.assert_allclose(np.diag(H(iou(A(a), A(a)))), 1.0, atol=1e-12)


@FAST
@given(
    st.lists(st.tuples(*[st.floats(-2, 2, allow_nan=False)] * 4), min_size=1, max_size=6),
    st.lists(st.tuples(*[st.floats(-2, 2, allow_nan=False)] * 4), min_size=1, max_size=6),
)
@pytest.mark.box_coding
def test_iou_bounded_for_arbitrary_even_inverted_boxes(a, b):
    out = H(iou(A(a), A(b)))
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1 + 1e-12).all()


@pytest.mark.box_coding
def test_pairwise_iou_batches_over_leading_axes():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 6).reshape(2, 3, 4), random_boxes(rng, 8).reshape(2, 4, 4)
    out = H(pairwise_iou(A(a), A(b)))
    assert out.shape == (2, 3, 4)
    for k in range(2):
        np.testing.assert_allclose(out[k], H(iou(A(a[k]), A(b[k]))), atol=1e-12)


# --------------------------------------------------------------------------- encode / decode
@pytest.mark.box_coding
def test_encode_decode_one_box_by_hand():
    # default box: centre (0.5, 0.5), size 0.2 x 0.4.
    # ground truth: centre (0.52, 0.46), size 0.4 x 0.4 -> corners (0.32, 0.26, 0.72, 0.66).
    # l_cx = (0.52 - 0.5) / (0.1 * 0.2) = 0.02 / 0.02 = 1
    # l_cy = (0.46 - 0.5) / (0.1 * 0.4) = -0.04 / 0.04 = -1
    # l_w  = log(0.4 / 0.2) / 0.2 = log(2) / 0.2 = 3.4657...
    # l_h  = log(0.4 / 0.4) / 0.2 = 0
    prior = A([[0.5, 0.5, 0.2, 0.4]])
    gt = A([[0.32, 0.26, 0.72, 0.66]])
    loc = encode(gt, prior)
    np.testing.assert_allclose(H(loc), [[1.0, -1.0, math.log(2) / 0.2, 0.0]], atol=1e-9)
    np.testing.assert_allclose(H(decode(loc, prior)), H(gt), atol=1e-12)


@pytest.mark.box_coding
def test_variances_scale_the_offsets():
    # with variances (1, 1) the same box gives the raw offsets: 0.1 and log(2)
    loc = H(encode(A([[0.32, 0.26, 0.72, 0.66]]), A([[0.5, 0.5, 0.2, 0.4]]), variances=(1.0, 1.0)))
    np.testing.assert_allclose(loc, [[0.1, -0.1, math.log(2), 0.0]], atol=1e-9)


@pytest.mark.box_coding
def test_decode_of_zero_offsets_is_the_default_box():
    priors = A([[0.5, 0.5, 0.2, 0.4], [0.1, 0.2, 0.1, 0.1]])
    out = H(decode(A(np.zeros((2, 4))), priors))
    np.testing.assert_allclose(out, H(center_to_corners(priors)), atol=1e-12)


@pytest.mark.box_coding
def test_decode_batches_and_stays_finite_for_huge_outputs():
    priors = A([[0.5, 0.5, 0.2, 0.4]], dtype=np.float32)
    loc = A(np.full((3, 1, 4), 1e4), dtype=np.float32)  # an untrained network can output anything
    out = H(decode(loc, priors))
    assert out.shape == (3, 1, 4) and out.dtype == np.float32 and np.isfinite(out).all()


def test_encode_decode_reject_bad_variances():
    with pytest.raises(ValueError, match=r"encode\(variances\)"):
        encode(A([[0, 0, 1, 1]]), A([[0.5, 0.5, 1, 1]]), variances=(0.1,))
    with pytest.raises(ValueError, match=r"decode\(variances\)"):
        decode(A([[0, 0, 0, 0]]), A([[0.5, 0.5, 1, 1]]), variances=(0.1, -0.2))


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30),
       var=st.sampled_from([(0.1, 0.2), (1.0, 1.0), (0.5, 0.3)]))
@pytest.mark.box_coding
def test_decode_inverts_encode(seed, n, var):
    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, n, min_size=0.01, max_size=1.0)
    priors = corners_to_center(A(random_boxes(rng, n, min_size=0.01, max_size=1.0)))
    back = H(decode(encode(A(gt), priors, var), priors, var))
    np.testing.assert_allclose(back, gt, atol=1e-10)


# --------------------------------------------------------------------------- NMS
# Four boxes, worked on paper (IoU threshold 0.45):
#   A (0,0)-(10,10)  score 0.9
#   B (1,1)-(11,11)  score 0.8   IoU(A,B) = 81 / (100 + 100 - 81) = 0.68 -> suppressed by A
#   C (20,20)-(30,30) score 0.7  far from everything -> kept
#   D (5,0)-(15,10)  score 0.6   IoU(A,D) = 50 / 150 = 0.33 -> kept (B, which overlaps it, is gone)
# They are given in the order D, A, C, B, so the answer in input indices is A, C, D = 1, 2, 0.
NMS_BOXES = [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [1, 1, 11, 11]]
NMS_SCORES = [0.6, 0.9, 0.7, 0.8]


@pytest.mark.nms_ap
def test_nms_of_four_boxes_by_hand():
    keep = nms(A(NMS_BOXES), A(NMS_SCORES), 0.45)
    assert H(keep).tolist() == [1, 2, 0]
    assert H(keep).dtype == np.int64
    # a stricter threshold 0.3 < 0.33 also removes D
    assert H(nms(A(NMS_BOXES), A(NMS_SCORES), 0.3)).tolist() == [1, 2]
    # top_k stops after the best k kept boxes
    assert H(nms(A(NMS_BOXES), A(NMS_SCORES), 0.45, top_k=2)).tolist() == [1, 2]


@pytest.mark.nms_ap
def test_nms_keeps_a_box_whose_iou_equals_the_threshold():
    # (0,0)-(2,1) and (0,0)-(1,1): IoU = 1 / 2 = 0.5 exactly (binary fractions, no rounding);
    # "above the threshold" suppresses, equal does not
    boxes, scores = A([[0, 0, 2, 1], [0, 0, 1, 1]]), A([0.9, 0.8])
    assert H(nms(boxes, scores, 0.5)).tolist() == [0, 1]
    assert H(nms(boxes, scores, 0.49)).tolist() == [0]


@pytest.mark.nms_ap
def test_nms_edge_cases():
    assert H(nms(A(np.zeros((0, 4))), A(np.zeros(0)), 0.5)).tolist() == []
    # equal scores: the lower index comes first; identical boxes: only one survives
    assert H(nms(A([[0, 0, 1, 1]] * 3), A([0.5, 0.5, 0.5]), 0.5)).tolist() == [0]
    with pytest.raises(ValueError, match=r"nms\(scores\).*\(4,\)"):
        nms(A(NMS_BOXES), A([0.1, 0.2]), 0.5)
    with pytest.raises(ValueError, match=r"nms\(iou_threshold\)"):
        nms(A(NMS_BOXES), A(NMS_SCORES), 1.5)


def _check_nms_invariants(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray, thr: float) -> None:
    assert len(set(keep.tolist())) == len(keep)
    assert (np.diff(scores[keep]) <= 0).all(), "kept boxes must come in descending score order"
    assert keep[0] == int(np.argmax(scores)), "the top-scoring box is always kept"
    ov = H(iou(A(boxes[keep]), A(boxes[keep])))
    np.fill_diagonal(ov, 0)
    assert (ov <= thr + 1e-9).all(), "no two kept boxes may overlap above the threshold"
    # greedy: every dropped box overlaps a kept box of higher (or equal, earlier) score above the threshold
    dropped = np.setdiff1d(np.arange(len(boxes)), keep)
    if len(dropped):
        ov_d = H(iou(A(boxes[dropped]), A(boxes[keep])))
        better = scores[keep][None, :] >= scores[dropped][:, None]
        assert ((ov_d > thr - 1e-9) & better).any(axis=1).all()


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), thr=st.floats(0.05, 0.95))
@pytest.mark.nms_ap
def test_nms_properties(seed, n, thr):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, 0.05, 0.4)
    scores = rng.random(n)
    keep = H(nms(A(boxes), A(scores), thr))
    _check_nms_invariants(boxes, scores, keep, thr)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), classes=st.integers(1, 4))
@pytest.mark.nms_ap
def test_batched_nms_is_nms_within_each_class(seed, n, classes):
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, n, 0.05, 0.4), rng.random(n)
    labels = rng.integers(0, classes, n)
    keep = H(batched_nms(A(boxes), A(scores), A(labels, dtype=np.int64), 0.45))
    assert (np.diff(scores[keep]) <= 0).all()
    for c in range(classes):
        members = np.nonzero(labels == c)[0]
        if len(members) == 0:
            continue
        expected = members[H(nms(A(boxes[members]), A(scores[members]), 0.45))]
        assert keep[labels[keep] == c].tolist() == expected.tolist()


@pytest.mark.nms_ap
def test_batched_nms_classes_do_not_suppress_each_other():
    boxes = A([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    keep = batched_nms(boxes, A([0.9, 0.8, 0.7]), A([1, 2, 1], dtype=np.int64), 0.5)
    assert H(keep).tolist() == [0, 1]  # box 2 is class 1 like box 0 and identical to it


@FAST
@given(seed=st.integers(0, 2**32 - 1), p=st.integers(1, 80), c=st.integers(1, 4),
       top=st.sampled_from([None, 1, 5, 30]), score_thr=st.sampled_from([0.0, 0.3, 0.9]))
@pytest.mark.nms_ap
def test_multiclass_nms_equals_nms_per_class(seed, p, c, top, score_thr):
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, p, 0.05, 0.4), rng.random((p, c))
    box_index, cls, score = (H(x) for x in multiclass_nms(A(boxes), A(scores), 0.45, score_thr, top))
    assert (np.diff(score) <= 0).all()
    np.testing.assert_allclose(score, scores[box_index, cls])
    for k in range(c):
        # reference: threshold, keep the `top` best, then plain greedy NMS
        cand = np.nonzero(scores[:, k] > score_thr)[0]
        cand = cand[np.argsort(-scores[cand, k], kind="stable")][:top]
        expected = cand[H(nms(A(boxes[cand]), A(scores[cand, k]), 0.45))] if len(cand) else cand
        assert sorted(box_index[cls == k].tolist()) == sorted(expected.tolist())


@pytest.mark.needs("box_coding")
def test_multiclass_nms_with_nothing_above_the_threshold_is_empty():
    out = multiclass_nms(A([[0, 0, 1, 1]]), A([[0.1, 0.2]]), 0.45, score_threshold=0.5)
    assert all(H(x).shape == (0,) for x in out)
    # "above" is strict: a score equal to the threshold is not a candidate
    out = multiclass_nms(A([[0, 0, 1, 1]]), A([[0.5, 0.25]]), 0.45, score_threshold=0.5)
    assert H(out[0]).shape == (0,)
    out = multiclass_nms(A([[0, 0, 1, 1]]), A([[0.5, 0.25]]), 0.45, score_threshold=0.25)
    assert H(out[1]).tolist() == [0] and H(out[2]).tolist() == [0.5]
