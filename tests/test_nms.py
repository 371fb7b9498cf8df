"""Tests of minissd.nms: greedy NMS of one class and per class (hand-worked examples and properties).

Arrays are created on the selected backend (``MINISSD_BACKEND=cupy`` reruns these on a GPU) and
compared on the host.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minissd.boxes
import minissd.nms
from minissd import backend
from minissd.boxes import iou
from minissd.nms import _greedy_keep, multiclass_nms, nms

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


def test_boxes_nms_is_the_one_nms():
    # the public path of the API contract, minissd.boxes.nms, is this module's function, not a copy
    from minissd.boxes import nms as boxes_nms

    assert boxes_nms is minissd.nms.nms and minissd.boxes.nms is nms
    with pytest.raises(AttributeError, match="no_such_name"):
        minissd.boxes.no_such_name  # noqa: B018


# --------------------------------------------------------------------------- nms, one class
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


# --------------------------------------------------------------------------- the greedy walk
@pytest.mark.nms_ap
def test_greedy_walk_by_hand_a_suppressed_box_suppresses_nothing():
    # list 0, ranks 0-1-2 form a chain: 0 overlaps 1, 1 overlaps 2, 0 and 2 do not overlap.
    # 0 is kept and removes 1; 1 is gone, so it cannot remove 2: keep 0 and 2.
    chain = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool)
    # list 1: the same overlaps, but rank 0 is not a candidate (padding): it must neither be kept nor
    # suppress, so 1 is kept and removes 2.
    keep = _greedy_keep(A(np.stack([chain, chain]), bool), A([[1, 1, 1], [0, 1, 1]], bool))
    assert isinstance(keep, np.ndarray)
    assert keep.tolist() == [[True, False, True], [False, True, False]]


@pytest.mark.nms_ap
def test_greedy_walk_of_no_candidates():
    assert _greedy_keep(np.zeros((2, 0, 0), bool)).shape == (2, 0)


# --------------------------------------------------------------------------- per class
@pytest.mark.nms_ap
def test_multiclass_nms_classes_do_not_suppress_each_other():
    # three identical boxes; box 1 is class 1, boxes 0 and 2 class 0 (a score of 0 is not above 0)
    boxes = A([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    scores = A([[0.9, 0.0], [0.0, 0.8], [0.7, 0.0]])
    box_index, cls, score = (H(x) for x in multiclass_nms(boxes, scores, 0.5))
    assert box_index.tolist() == [0, 1] and cls.tolist() == [0, 1]  # box 2 is suppressed by box 0 only
    np.testing.assert_allclose(score, [0.9, 0.8])


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


@pytest.mark.nms_ap
def test_multiclass_nms_with_nothing_above_the_threshold_is_empty():
    out = multiclass_nms(A([[0, 0, 1, 1]]), A([[0.1, 0.2]]), 0.45, score_threshold=0.5)
    assert all(H(x).shape == (0,) for x in out)
    # "above" is strict: a score equal to the threshold is not a candidate
    out = multiclass_nms(A([[0, 0, 1, 1]]), A([[0.5, 0.25]]), 0.45, score_threshold=0.5)
    assert H(out[0]).shape == (0,)
    out = multiclass_nms(A([[0, 0, 1, 1]]), A([[0.5, 0.25]]), 0.45, score_threshold=0.25)
    assert H(out[1]).tolist() == [0] and H(out[2]).tolist() == [0.5]
