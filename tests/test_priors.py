"""Tests of minissd.priors: box counts, order, and values computed by hand from sizes and steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minissd import backend
from minissd.boxes import center_to_corners
from minissd.config import SSDConfig
from minissd.priors import best_overlaps, default_boxes, default_boxes_per_map, feature_map_boxes, map_slices


def H(x):
    return backend.to_numpy(x)


@pytest.fixture(scope="module")
def ssd300_boxes():
    return H(default_boxes(SSDConfig.ssd300()))


@pytest.mark.default_boxes
def test_ssd300_box_count_per_map_and_in_total(ssd300_boxes):
    cfg = SSDConfig.ssd300()
    assert ssd300_boxes.shape == (8732, 4)
    # 38*38*4, 19*19*6, 10*10*6, 5*5*6, 3*3*4, 1*1*4
    assert [H(b).shape[0] for b in default_boxes_per_map(cfg)] == [5776, 2166, 600, 150, 36, 4]
    assert [s.stop - s.start for s in map_slices(cfg)] == [5776, 2166, 600, 150, 36, 4]


@pytest.mark.default_boxes
def test_ssd512_and_mini_box_counts():
    assert default_boxes(SSDConfig.ssd512()).shape == (24564, 4)
    assert default_boxes(SSDConfig.mini()).shape == (2390, 4)


@pytest.mark.default_boxes
def test_first_boxes_of_ssd300_by_hand(ssd300_boxes):
    # conv4_3, row 0, column 0: centre (0 + 0.5) * 8 / 300 = 1/75 = 0.013333
    c = 0.5 * 8 / 300
    s1 = 30 / 300  # min size 30 px -> 0.1
    s2 = math.sqrt(30 * 60) / 300  # sqrt(1800) = 42.43 px -> 0.141421
    r = math.sqrt(2)
    expected = [
        [c, c, s1, s1],  # aspect 1
        [c, c, s2, s2],  # aspect 1, scale sqrt(s_k s_k+1)
        [c, c, s1 * r, s1 / r],  # ratio 2: 0.141421 wide, 0.070711 high
        [c, c, s1 / r, s1 * r],  # ratio 1/2
    ]
    np.testing.assert_allclose(ssd300_boxes[:4], expected, rtol=1e-6)
    # next location is column 1 of row 0: cx = 1.5 * 8 / 300 = 0.04, same cy
    np.testing.assert_allclose(ssd300_boxes[4, :2], [0.04, c], rtol=1e-6)
    # row 1, column 0 comes after the 38 locations of row 0: index 38 * 4 = 152
    np.testing.assert_allclose(ssd300_boxes[152, :2], [c, 0.04], rtol=1e-6)


@pytest.mark.default_boxes
def test_fc7_boxes_of_ssd300_by_hand(ssd300_boxes):
    # fc7 starts at 5776; centre 0.5 * 16 / 300 = 0.026667; min 60 px = 0.2; ratio 3 boxes are
    # 60 * sqrt(3) / 300 = 0.34641 wide and 60 / sqrt(3) / 300 = 0.11547 high, then transposed
    box = ssd300_boxes[5776:5782]
    c = 8 / 300
    np.testing.assert_allclose(box[0], [c, c, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(box[1], [c, c, 0.272029, 0.272029], rtol=1e-5)  # sqrt(60 * 111) = 81.61 px
    np.testing.assert_allclose(box[4], [c, c, 0.34641016, 0.11547005], rtol=1e-6)
    np.testing.assert_allclose(box[5], [c, c, 0.11547005, 0.34641016], rtol=1e-6)


@pytest.mark.default_boxes
def test_last_boxes_of_ssd300_by_hand(ssd300_boxes):
    # conv11_2 is 1x1 with step 300: centre (0.5, 0.5); min 264 px -> 0.88; sqrt(264 * 315) = 288.375 px
    # -> 0.961249; ratio 2: 264 * sqrt(2) / 300 = 1.244508 and 264 / sqrt(2) / 300 = 0.622254
    expected = [
        [0.5, 0.5, 0.88, 0.88],
        [0.5, 0.5, 0.961249, 0.961249],
        [0.5, 0.5, 1.244508, 0.622254],
        [0.5, 0.5, 0.622254, 1.244508],
    ]
    np.testing.assert_allclose(ssd300_boxes[-4:], expected, rtol=1e-6)


@pytest.mark.default_boxes
def test_no_clipping_by_default_and_clipping_when_asked(ssd300_boxes):
    corners = H(center_to_corners(backend.asarray(ssd300_boxes)))
    assert corners.min() < 0 and corners.max() > 1  # released SSD300: boxes may stick out
    clipped = H(default_boxes(SSDConfig.ssd300().replace(clip=True)))
    cc = H(center_to_corners(backend.asarray(clipped)))
    assert cc.min() >= -1e-7 and cc.max() <= 1 + 1e-7
    # the first box (0.013333 +- 0.05) is clipped to [0, 0.063333]: centre 0.031667, size 0.063333
    np.testing.assert_allclose(clipped[0], [0.95 / 30, 0.95 / 30, 1.9 / 30, 1.9 / 30], rtol=1e-5)


@pytest.mark.default_boxes
def test_dtype_and_backend():
    b = default_boxes(SSDConfig.mini())
    assert b.dtype == np.float32 and type(b) is type(backend.xp().zeros(1))
    assert default_boxes(SSDConfig.mini(), dtype=np.float64).dtype == np.float64


@pytest.mark.default_boxes
def test_scale_rule_boxes():
    # paper rule on 6 maps: the first box is 0.2 of the image; its extra square sqrt(0.2 * 0.34)
    b = H(default_boxes(SSDConfig.ssd300().replace(min_sizes=None, max_sizes=None)))
    np.testing.assert_allclose(b[0, 2:], [0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(b[1, 2:], [math.sqrt(0.2 * 0.34)] * 2, rtol=1e-6)
    # steps=None puts centres at (j + 0.5) / f: 0.5 / 38
    b2 = H(default_boxes(SSDConfig.ssd300().replace(steps=None)))
    np.testing.assert_allclose(b2[0, :2], [0.5 / 38, 0.5 / 38], rtol=1e-6)


@pytest.mark.default_boxes
def test_feature_map_boxes_shape_and_grid():
    # the paper's 4x4 map on a 300 px image: centres at (j + 0.5) * 75 / 300 = 0.125, 0.375, 0.625, 0.875
    b = H(feature_map_boxes(4, 75, 90, 150, (2,), 300))
    assert b.shape == (4, 4, 4, 4)
    np.testing.assert_allclose(b[0, :, 0, 0], [0.125, 0.375, 0.625, 0.875], rtol=1e-6)
    np.testing.assert_allclose(b[:, 0, 0, 1], [0.125, 0.375, 0.625, 0.875], rtol=1e-6)


@pytest.mark.needs("default_boxes", "box_coding")
def test_best_overlaps():
    priors = default_boxes(SSDConfig.mini(), dtype=np.float64)
    # a ground truth equal to a default box has IoU 1 with it
    gt = center_to_corners(priors[123:124])
    assert H(best_overlaps(gt, priors))[0] == pytest.approx(1.0)
    assert H(best_overlaps(backend.asarray(np.zeros((0, 4))), priors)).shape == (0,)
