"""max_pool2d: output sizes (ceil_mode), padding as -inf, where the gradient goes, against direct loops."""

from __future__ import annotations

import numpy
import pytest

import minissd.nn.functional as F
from minissd import Tensor, backend, to_numpy
from minissd.autograd import GradcheckError, gradcheck
from minissd.nn import MaxPool2d
from minissd.nn.reference import max_pool2d_reference

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


@pytest.mark.max_pool
@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_matches_direct_loops(name, rng):
    shape, k, s, p, ceil = CONFIGS[name]
    x = rng.standard_normal(shape)
    got = to_numpy(F.max_pool2d(Tensor(x), k, s, p, ceil).data)
    numpy.testing.assert_array_equal(got, max_pool2d_reference(x, k, s, p, ceil))


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
    original = F.MaxPool2d.backward

    def spread_evenly(self, grad):  # a plausible mistake: treat max pooling like average pooling
        dx = original(self, grad)
        return dx * 0 + (dx.sum() / dx.size)

    monkeypatch.setattr(F.MaxPool2d, "backward", spread_evenly)
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
