"""max_pool2d: output sizes (ceil_mode), padding as -inf, where the gradient goes, by hand and by properties.

No second implementation of max pooling: the forward pass is checked against hand-worked examples and
against itself (non-overlapping windows are block maxima, padding is -inf padding, ceil mode is floor
mode on an input extended by -inf), the backward pass by finite differences.
"""

from __future__ import annotations

import numpy
import pytest

import minissd.nn.functional as F
from minissd import Tensor, backend, to_numpy
from minissd.autograd import GradcheckError, gradcheck
from minissd.nn import MaxPool2d, pool

# (shape, kernel, stride, padding, ceil_mode)
CONFIGS = {
    "2x2/s2 (pool1)": ((2, 3, 6, 6), 2, 2, 0, False),
    "2x2/s2 ceil, odd size (pool3)": ((2, 2, 5, 7), 2, 2, 0, True),
    "2x2/s2 floor, odd size": ((1, 2, 5, 7), 2, 2, 0, False),
    "3x3/s1/p1 (pool5)": ((2, 3, 5, 5), 3, 1, 1, False),
    "3x3/s2/p1 ceil": ((1, 2, 6, 6), 3, 2, 1, True),
    "non-square kernel and stride": ((1, 2, 6, 7), (2, 3), (1, 2), (1, 1), False),
}


def _distinct(shape, rng):
    """Values with no ties (a permutation), so finite differences never straddle a switch of the max."""
    return (rng.permutation(int(numpy.prod(shape))).reshape(shape) * 0.1).astype(numpy.float64)


def _pool(x, *args):
    return to_numpy(F.max_pool2d(Tensor(backend.asarray(x)), *args).data)


def _extend(x, top, bottom, left, right, value=-numpy.inf):
    return numpy.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


@pytest.mark.max_pool
@pytest.mark.parametrize(("shape", "k"), [((2, 3, 6, 6), (2, 2)), ((1, 2, 6, 9), (2, 3)), ((1, 1, 4, 4), (4, 4))])
def test_non_overlapping_windows_are_block_maxima(shape, k, rng):
    x = rng.standard_normal(shape)
    n, c, h, w = shape
    blocks = x.reshape(n, c, h // k[0], k[0], w // k[1], k[1]).max(axis=(3, 5))
    numpy.testing.assert_array_equal(_pool(x, k), blocks)


@pytest.mark.max_pool
@pytest.mark.parametrize("name", [n for n in CONFIGS if CONFIGS[n][3] != 0])
def test_padding_is_the_same_as_minus_infinity_around_the_image(name, rng):
    shape, k, s, p, _ = CONFIGS[name]
    ph, pw = (p, p) if isinstance(p, int) else p
    x = rng.standard_normal(shape)
    numpy.testing.assert_array_equal(_pool(x, k, s, p), _pool(_extend(x, ph, ph, pw, pw), k, s, 0))


@pytest.mark.max_pool
@pytest.mark.parametrize("name", [n for n in CONFIGS if CONFIGS[n][4]])
def test_ceil_mode_is_floor_mode_on_an_input_extended_by_minus_infinity(name, rng):
    # rounding up adds the windows that run over the bottom/right edge: extend by stride - 1 and round down
    shape, k, s, p, _ = CONFIGS[name]
    (sh, sw) = (s, s) if isinstance(s, int) else s
    x = rng.standard_normal(shape)
    ceil = _pool(x, k, s, p, True)
    floor_extended = _pool(_extend(x, 0, sh - 1, 0, sw - 1), k, s, p, False)
    numpy.testing.assert_array_equal(ceil, floor_extended[:, :, :ceil.shape[2], :ceil.shape[3]])
    assert ceil.shape[2:] > _pool(x, k, s, p, False).shape[2:]  # these cases gain a row or column


@pytest.mark.max_pool
@pytest.mark.parametrize("name", list(CONFIGS))
def test_outputs_are_inputs_and_pooling_commutes_with_increasing_maps(name, rng):
    shape, k, s, p, ceil = CONFIGS[name]
    x = rng.standard_normal(shape)
    y = _pool(x, k, s, p, ceil)
    assert numpy.isin(y, x).all()  # every maximum is one of the window's inputs, never a padding value
    numpy.testing.assert_allclose(_pool(3 * x + 1, k, s, p, ceil), 3 * y + 1, rtol=1e-12)
    numpy.testing.assert_array_equal(_pool(numpy.exp(x), k, s, p, ceil), numpy.exp(y))


@pytest.mark.max_pool
def test_hand_worked_strided_padded_ceil_windows():
    # 4x4 image 0..15 (row-major), 3x3 windows, stride 2, padding 1: windows start at rows and columns
    # -1 and 1; ceil mode adds the windows starting at 3, which see only the last row or column
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    assert _pool(x, 3, 2, 1).reshape(2, 2).tolist() == [[5, 7], [13, 15]]
    assert _pool(x, 3, 2, 1, True).reshape(3, 3).tolist() == [[5, 7, 7], [13, 15, 15], [13, 15, 15]]
    # non-square 2x3 windows with stride (2, 1) on the same image: rows {0,1} and {2,3}, columns j..j+2
    assert _pool(x, (2, 3), (2, 1)).reshape(2, 2).tolist() == [[6, 7], [14, 15]]


@pytest.mark.max_pool
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_output_gradient_reaches_exactly_one_input(name, rng):
    shape, k, s, p, ceil = CONFIGS[name]
    x = Tensor(_distinct(shape, rng), requires_grad=True)
    y = F.max_pool2d(x, k, s, p, ceil)
    dy = rng.uniform(1, 2, y.shape)
    y.backward(backend.asarray(dy))
    dx = to_numpy(x.grad)
    numpy.testing.assert_allclose(dx.sum(), dy.sum(), rtol=1e-12)
    # the inputs that receive a gradient are exactly the outputs' values (all values are distinct)
    assert set(to_numpy(x.data)[dx != 0].tolist()) == set(to_numpy(y.data).ravel().tolist())


@pytest.mark.max_pool
@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_match_finite_differences(name, rng):
    shape, k, s, p, ceil = CONFIGS[name]
    x = Tensor(_distinct(shape, rng), requires_grad=True)
    assert gradcheck(lambda x: F.max_pool2d(x, k, s, p, ceil), [x], eps=1e-4, max_samples=60)


@pytest.mark.parametrize(
    ("size", "k", "s", "p", "ceil", "out"),
    [
        (300, 2, 2, 0, False, 150),  # pool1
        (75, 2, 2, 0, True, 38),  # pool3 in ceil mode: 75 -> 38
        (75, 2, 2, 0, False, 37),  # ... floor mode would lose the last row
        (38, 2, 2, 0, False, 19),  # pool4
        (19, 3, 1, 1, False, 19),  # pool5 keeps 19x19
        (5, 2, 2, 1, True, 3),  # ceil would give 4, but the 4th window would start in the padding
    ],
)
@pytest.mark.max_pool
def test_output_size(size, k, s, p, ceil, out):
    assert F.max_pool2d_output_shape((size, size), k, s, p, ceil) == (out, out)
    x = Tensor(backend.xp().zeros((1, 1, size, size), dtype=numpy.float32))
    assert MaxPool2d(k, s, p, ceil)(x).shape == (1, 1, out, out)


@pytest.mark.max_pool
def test_gradient_goes_to_the_max_and_ceil_windows_are_partial():
    # 3x3 input, 2x2/s2 ceil mode: windows {0,1,3,4}, {2,5}, {6,7}, {8}
    x = Tensor(numpy.array([[1.0, 5.0, 2.0], [4.0, 3.0, 9.0], [7.0, 6.0, 8.0]]).reshape(1, 1, 3, 3),
               requires_grad=True)
    y = F.max_pool2d(x, 2, 2, ceil_mode=True)
    assert to_numpy(y.data).reshape(2, 2).tolist() == [[5.0, 9.0], [7.0, 8.0]]
    y.backward(numpy.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 1, 2, 2))
    assert to_numpy(x.grad).reshape(3, 3).tolist() == [[0, 10, 0], [0, 0, 20], [30, 0, 40]]


@pytest.mark.max_pool
def test_ties_send_the_whole_gradient_to_the_first_maximum():
    x = Tensor(numpy.full((1, 1, 2, 2), 3.0), requires_grad=True)
    F.max_pool2d(x, 2).backward(numpy.full((1, 1, 1, 1), 1.0))
    assert to_numpy(x.grad).reshape(2, 2).tolist() == [[1.0, 0.0], [0.0, 0.0]]


@pytest.mark.max_pool
def test_overlapping_windows_add_their_gradients():
    # pool5 (3x3/s1/p1) on a 3x3 map whose maximum is the centre: all 9 windows pick it
    x = numpy.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    xt = Tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, 3, 1, 1)
    assert to_numpy(y.data).min() == 1.0
    y.backward(numpy.ones(y.shape))
    assert to_numpy(xt.grad).reshape(3, 3).tolist() == [[0, 0, 0], [0, 9, 0], [0, 0, 0]]


@pytest.mark.max_pool
def test_padding_counts_as_minus_infinity():
    x = -numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    y = to_numpy(F.max_pool2d(Tensor(x), 3, 1, 1).data).reshape(3, 3)
    assert y.tolist() == [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]]


@pytest.mark.max_pool
def test_nan_propagates():
    x = numpy.zeros((1, 1, 2, 4))
    x[0, 0, 1, 1] = numpy.nan
    y = to_numpy(F.max_pool2d(Tensor(x), 2).data).reshape(-1)
    assert numpy.isnan(y[0]) and y[1] == 0


@pytest.mark.max_pool
def test_float32_and_shape_preserving(rng):
    x = rng.standard_normal((2, 4, 9, 9)).astype(numpy.float32)
    y = F.max_pool2d(Tensor(x), 2, 2, 0, True)
    assert y.dtype == numpy.float32 and y.shape == (2, 4, 5, 5)


@pytest.mark.max_pool
def test_gradcheck_catches_a_broken_backward(rng, monkeypatch):
    x = Tensor(_distinct((1, 2, 4, 4), rng), requires_grad=True)
    original = pool.MaxPool2dFunction.backward

    def spread_evenly(self, grad):  # a plausible mistake: treat max pooling like average pooling
        dx = original(self, grad)
        return dx * 0 + (dx.sum() / dx.size)

    monkeypatch.setattr(pool.MaxPool2dFunction, "backward", spread_evenly)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: F.max_pool2d(x, 2), [x], eps=1e-4)


def test_bad_arguments_name_the_problem():
    x = Tensor(backend.xp().zeros((1, 1, 4, 4), dtype=numpy.float32))
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(x, 2, 2, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="4-D"):
        F.max_pool2d(Tensor(backend.xp().zeros((4, 4))), 2)


def test_valid_range_is_exactly_the_outputs_inside_the_image():
    for in_size in (1, 4, 7):
        for stride in (1, 2, 3):
            for offset in range(-7, 8):
                out = 10
                lo, hi = pool.valid_range(0, out, in_size, offset, stride)
                inside = [o for o in range(out) if 0 <= o * stride + offset < in_size]
                assert list(range(lo, hi)) == inside
