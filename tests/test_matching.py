"""Tests of minissd.matching: the two-step matching rule, worked by hand, and its guarantees."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minissd import backend
from minissd.boxes import center_to_corners, decode, iou
from minissd.config import SSDConfig
from minissd.matching import match, match_batch, match_priors
from minissd.priors import default_boxes

FAST = settings(max_examples=30, deadline=None)
U = 1 / 16  # a unit that floats represent exactly, so that IoU 0.5 is exactly 0.5


def A(x, dtype=np.float64):
    return backend.asarray(np.asarray(x, dtype=dtype))


def H(x):
    return backend.to_numpy(x)


def strips(intervals):
    """Corner boxes spanning the full height, x from a to b (in units U): IoU is then 1-D, easy on paper."""
    return np.array([[a * U, 0.0, b * U, 1.0] for a, b in intervals])


def centre(corners):
    c = np.asarray(corners)
    cx, cy = (c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2
    return np.stack([cx, cy, c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]], 1)


# Two ground truths against five default boxes (x intervals in units of 1/16, every box spans y 0..1,
# so IoU = overlap length / union length):
#   default boxes  p0 [0, 2]  p1 [1, 3]  p2 [2, 4]  p3 [8, 10]  p4 [12, 16]
#   gt A [1, 3.5], label 3:  p0: 1 / 3.5 = 0.29   p1: 2 / 2.5 = 0.8   p2: 1.5 / 3 = 0.5   p3, p4: 0
#   gt B [9, 13],  label 5:  p3: 1 / 5 = 0.2      p4: 1 / 7 = 0.14    others: 0
# Step 1 (bipartite): A takes p1 (0.8); B takes p3 (0.2, below 0.5, matched anyway).
# Step 2 (threshold 0.5): p2 has IoU 0.5 >= 0.5 with A -> A. p0 (0.29) and p4 (0.14) stay background.
PRIORS_5 = centre(strips([(0, 2), (1, 3), (2, 4), (8, 10), (12, 16)]))
GT_2 = strips([(1, 3.5), (9, 13)])
LABELS_2 = np.array([3, 5])


@pytest.mark.matching
def test_matching_two_ground_truths_against_five_default_boxes_by_hand():
    gt_index, overlap = match_priors(A(GT_2), A(PRIORS_5))
    assert H(gt_index).tolist() == [-1, 0, 0, 1, -1]
    np.testing.assert_allclose(H(overlap), [2 / 7, 0.8, 0.5, 0.2, 1 / 7], atol=1e-12)

    loc_t, conf_t = match(A(GT_2), A(LABELS_2, np.int64), A(PRIORS_5))
    assert H(conf_t).tolist() == [0, 3, 3, 5, 0]
    # A: centre 2.25 U, width 2.5 U. p1: centre 2 U, width 2 U -> l_cx = 0.25 / (0.1 * 2) = 1.25,
    #    l_w = log(2.5 / 2) / 0.2 = 1.1157. p2: centre 3 U -> l_cx = -0.75 / 0.2 = -3.75.
    # B: centre 11 U, width 4 U. p3: centre 9 U, width 2 U -> l_cx = 2 / 0.2 = 10, l_w = log 2 / 0.2 = 3.4657.
    # All boxes span y 0..1: l_cy = 0 and l_h = log(1) / 0.2 = 0. Background rows are all zero.
    lw = math.log(1.25) / 0.2
    expected = [[0, 0, 0, 0], [1.25, 0, lw, 0], [-3.75, 0, lw, 0], [10, 0, math.log(2) / 0.2, 0],
                [0, 0, 0, 0]]
    np.testing.assert_allclose(H(loc_t), expected, atol=1e-9)


@pytest.mark.matching
def test_threshold_is_inclusive_and_adjustable():
    # with threshold 0.6, p2 (IoU 0.5 with A) becomes background; p1 and p3 stay (bipartite)
    _, conf_t = match(A(GT_2), A(LABELS_2, np.int64), A(PRIORS_5), iou_threshold=0.6)
    assert H(conf_t).tolist() == [0, 3, 0, 5, 0]
    # with threshold 0.25, p0 (0.29 with A) joins A
    _, conf_t = match(A(GT_2), A(LABELS_2, np.int64), A(PRIORS_5), iou_threshold=0.25)
    assert H(conf_t).tolist() == [3, 3, 3, 5, 0]


@pytest.mark.matching
def test_two_ground_truths_sharing_one_best_default_box():
    # default boxes q0 [0, 4], q1 [2, 6];
    # gt C [0, 4]: q0 1.0, q1 2/6 = 0.33; gt D [1, 4]: q0 3/4, q1 2/5 = 0.4.
    # Both have q0 as best. Greedy bipartite: the highest pair (C, q0) = 1.0 goes first, so D takes its best
    # free box q1 (0.4, forced). A naive "each gt takes its argmax" would give q0 to one of them only and
    # leave the other without any default box.
    priors = centre(strips([(0, 4), (2, 6)]))
    gt = strips([(0, 4), (1, 4)])
    gt_index, _ = match_priors(A(gt), A(priors))
    assert H(gt_index).tolist() == [0, 1]
    # in the other order the answer follows the boxes, not their position
    gt_index, _ = match_priors(A(gt[::-1].copy()), A(priors))
    assert H(gt_index).tolist() == [1, 0]


@pytest.mark.matching
def test_a_default_box_above_threshold_for_two_ground_truths_goes_to_the_better_one():
    # gt F [4, 7] and gt G [5, 10]; default boxes r0 [4, 8], r1 [5, 9], r2 [4.5, 8]:
    #   F: r0 3/4 = 0.75 (best)   r1 2/5 = 0.4    r2 2.5/4 = 0.625
    #   G: r0 3/6 = 0.5           r1 4/5 = 0.8 (best)   r2 3/5.5 = 0.545
    # r0 and r1 are the bipartite matches; r2 passes 0.5 for both and goes to F, its higher IoU.
    priors = centre(strips([(4, 8), (5, 9), (4.5, 8)]))
    gt = strips([(4, 7), (5, 10)])
    gt_index, overlap = match_priors(A(gt), A(priors))
    assert H(gt_index).tolist() == [0, 1, 0]
    np.testing.assert_allclose(H(overlap), [0.75, 0.8, 0.625], atol=1e-12)


@pytest.mark.needs("default_boxes")
def test_no_ground_truth_gives_all_background():
    priors = default_boxes(SSDConfig.mini())
    loc_t, conf_t = match(A(np.zeros((0, 4)), np.float32), A(np.zeros(0), np.int64), priors)
    assert H(conf_t).shape == (2390,) and (H(conf_t) == 0).all()
    assert H(loc_t).shape == (2390, 4) and (H(loc_t) == 0).all()
    assert loc_t.dtype == np.float32 and conf_t.dtype == np.int64


@pytest.mark.matching
def test_match_batch_stacks_images():
    priors = A(PRIORS_5)
    boxes = [GT_2, np.zeros((0, 4)), GT_2[:1]]
    labels = [LABELS_2, np.zeros(0, np.int64), LABELS_2[:1]]
    loc_t, conf_t = match_batch(boxes, labels, priors)
    assert loc_t.shape == (3, 5, 4) and conf_t.shape == (3, 5)
    assert H(conf_t).tolist() == [[0, 3, 3, 5, 0], [0, 0, 0, 0, 0], [0, 3, 3, 0, 0]]
    with pytest.raises(ValueError, match=r"match_batch\(gt_labels\).*3 label arrays.*got 2"):
        match_batch([GT_2] * 3, [LABELS_2] * 2, priors)


@pytest.mark.parametrize(
    "boxes, labels, pattern",
    [
        ([[0.5, 0.1, 0.4, 0.3]], [1], r"match\(gt_boxes\).*xmin < xmax.*box 0"),
        ([[0.1, 0.1, 0.1, 0.3]], [1], r"match\(gt_boxes\).*xmin < xmax"),  # zero width: log(0) otherwise
        ([[0.1, 0.1, 0.4, 0.3]], [0], r"match\(gt_labels\).*>= 1 \(0 is background\)"),
        ([[0.1, 0.1, 0.4, 0.3]], [1, 2], r"match\(gt_labels\).*\(1,\).*\(2,\)"),
        ([[0.1, 0.1, 0.4]], [1], r"match\(gt_boxes\).*\(G, 4\).*\(1, 3\)"),
    ],
)
def test_bad_ground_truth_raises_a_clear_error(boxes, labels, pattern):
    with pytest.raises(ValueError, match=pattern):
        match(A(boxes), A(labels, np.int64), A(PRIORS_5))


@pytest.fixture(scope="module")
def mini_priors():
    return default_boxes(SSDConfig.mini(), dtype=np.float64)


@FAST
@given(seed=st.integers(0, 2**32 - 1), g=st.integers(1, 40), clustered=st.booleans())
@pytest.mark.matching
def test_every_ground_truth_gets_a_default_box_and_targets_decode_back(mini_priors, seed, g, clustered):
    rng = np.random.default_rng(seed)
    if clustered:  # a flock: many small boxes close together, competing for the same default boxes
        size = rng.uniform(0.03, 0.08, (g, 2))
        xy = rng.uniform(0.4, 0.5, (g, 2))
    else:
        size = rng.uniform(0.03, 0.8, (g, 2))
        xy = rng.random((g, 2)) * (1 - size)
    gt = np.concatenate([xy, xy + size], 1)
    labels = rng.integers(1, 6, g)
    loc_t, conf_t = match(A(gt), A(labels, np.int64), mini_priors)
    gt_index, overlap = (H(x) for x in match_priors(A(gt), mini_priors))
    # every ground truth owns at least one default box
    assert set(gt_index[gt_index >= 0].tolist()) == set(range(g))
    # the class target is the label of the assigned ground truth, 0 elsewhere
    conf_t = H(conf_t)
    np.testing.assert_array_equal(conf_t, np.where(gt_index >= 0, labels[np.maximum(gt_index, 0)], 0))
    # a positive either passes the threshold or is one of the g bipartite matches
    pos = gt_index >= 0
    assert (pos & (overlap < 0.5)).sum() <= g
    # a background box overlaps no ground truth by 0.5 or more
    ious = H(iou(A(gt), center_to_corners(mini_priors)))
    assert (ious[:, ~pos] < 0.5).all()
    # decoding the targets of the positives gives their ground truth back
    decoded = H(decode(loc_t, mini_priors))
    np.testing.assert_allclose(decoded[pos], gt[gt_index[pos]], atol=1e-9)
    assert (H(loc_t)[~pos] == 0).all()
