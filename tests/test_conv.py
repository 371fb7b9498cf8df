"""conv2d: the fast im2col convolution against the direct-loop definition, its gradients, its shapes.

Every test runs on the selected backend (``MINISSD_BACKEND``); the reference is computed on the host.
"""

from __future__ import annotations

import numpy
import pytest

import minissd.nn.functional as F
from minissd import Tensor, backend, to_numpy
from minissd.autograd import GradcheckError, gradcheck
from minissd.nn import im2col
from minissd.nn.reference import conv2d_reference

# (N, C, H, W, O, kernel, stride, padding, dilation): every configuration the issue lists
CONFIGS = {
    "1x1": (2, 3, 5, 5, 4, 1, 1, 0, 1),
    "3x3 pad 1": (2, 3, 6, 6, 4, 3, 1, 1, 1),
    "stride 2": (2, 3, 7, 7, 4, 3, 2, 1, 1),
    "dilation 2 pad 2": (1, 2, 7, 7, 3, 3, 1, 2, 2),
    "dilation 6 pad 6 (fc6)": (1, 2, 8, 8, 2, 3, 1, 6, 6),
    "non-square input and kernel": (2, 2, 5, 8, 3, (2, 3), (1, 2), (1, 0), 1),
    "C=1 O=1": (2, 1, 5, 5, 1, 3, 1, 1, 1),
    "batch 1": (1, 3, 5, 5, 2, 3, 1, 1, 1),
    "batch 3": (3, 2, 5, 5, 2, 3, 1, 1, 1),
    "stride 2 no pad, odd": (2, 2, 6, 6, 2, 3, 2, 0, 1),
    "1x1 stride 2": (2, 3, 5, 5, 2, 1, 2, 0, 1),
    # few output channels (SSD's loc/conf heads) take the output-side path; see test_narrow_path_is_used
    "narrow 3x3 pad 1": (2, 6, 5, 5, 2, 3, 1, 1, 1),
    "narrow dilation 2": (1, 8, 7, 7, 2, 3, 1, 2, 2),
    "narrow non-square": (2, 6, 5, 8, 1, (2, 3), 1, (1, 0), 1),
}
NARROW = [name for name in CONFIGS if name.startswith("narrow")]
# 1x1/stride-1 and narrow layers never call im2col/col2im: only the others need assignment 2's code
NO_IM2COL = ["1x1", *NARROW]
CASES = [pytest.param(name, marks=() if name in NO_IM2COL else pytest.mark.conv2d) for name in CONFIGS]


def _arrays(cfg, rng, dtype=numpy.float64):
    n, c, h, w, o, k, s, p, d = cfg
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b


@pytest.mark.parametrize("name", CASES)
def test_forward_matches_direct_loops(name, rng):
    cfg = CONFIGS[name]
    x, w, b = _arrays(cfg, rng)
    s, p, d = cfg[6:]
    got = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride=s, padding=p, dilation=d)
    want = conv2d_reference(x, w, b, stride=s, padding=p, dilation=d)
    assert got.shape == want.shape
    numpy.testing.assert_allclose(to_numpy(got.data), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_gradients_match_finite_differences(name, rng):
    cfg = CONFIGS[name]
    x, w, b = (Tensor(a, requires_grad=True) for a in _arrays(cfg, rng))
    s, p, d = cfg[6:]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d), [x, w, b], max_samples=25)


@pytest.mark.conv2d
def test_narrow_path_is_used_exactly_for_narrow_layers(rng, monkeypatch):
    used = []
    original = F.Conv2d._forward_narrow
    monkeypatch.setattr(F.Conv2d, "_forward_narrow", lambda self, y: used.append(1) or original(self, y))
    for name, cfg in CONFIGS.items():
        used.clear()
        x, w, b = _arrays(cfg, rng)
        F.conv2d(Tensor(x), Tensor(w), Tensor(b), *cfg[6:])
        assert bool(used) == (name in NARROW), name


@pytest.mark.conv2d
def test_float32_forward_is_accurate(rng):
    x, w, b = _arrays(CONFIGS["stride 2"], rng, numpy.float32)
    got = F.conv2d(Tensor(x), Tensor(w), Tensor(b), 2, 1)
    assert got.dtype == numpy.float32
    want = conv2d_reference(x.astype(numpy.float64), w.astype(numpy.float64), b.astype(numpy.float64), 2, 1)
    numpy.testing.assert_allclose(to_numpy(got.data), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("in_hw", "k", "s", "p", "d", "out_hw"),
    [
        ((300, 300), 3, 1, 1, 1, (300, 300)),  # VGG's 3x3 "same" convolutions
        ((19, 19), 3, 1, 6, 6, (19, 19)),  # fc6: dilation 6 with padding 6 keeps 19x19
        ((19, 19), 3, 2, 1, 1, (10, 10)),  # conv8_2
        ((5, 5), 3, 1, 0, 1, (3, 3)),  # conv10_2
        ((3, 3), 3, 1, 0, 1, (1, 1)),  # conv11_2
        ((7, 10), (3, 5), (2, 1), (0, 2), 1, (3, 10)),  # non-square: (7-3)//2+1, (10+4-5)//1+1
    ],
)
@pytest.mark.conv2d
def test_output_shape_formula(in_hw, k, s, p, d, out_hw):
    assert F.conv2d_output_shape(in_hw, k, s, p, d) == out_hw
    kh, kw = (k, k) if isinstance(k, int) else k
    x = Tensor(backend.xp().zeros((1, 1, *in_hw), dtype=numpy.float32))
    w = Tensor(backend.xp().zeros((2, 1, kh, kw), dtype=numpy.float32))
    assert F.conv2d(x, w, stride=s, padding=p, dilation=d).shape == (1, 2, *out_hw)


@pytest.mark.conv2d
def test_hand_worked_example():
    # a 3x3 image 1..9, a 2x2 kernel of ones: each output is the sum of a 2x2 block
    x = Tensor(numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3))
    w = Tensor(numpy.ones((1, 1, 2, 2)))
    y = to_numpy(F.conv2d(x, w, Tensor(numpy.array([0.5]))).data)
    assert y.reshape(2, 2).tolist() == [[12.5, 16.5], [24.5, 28.5]]


@pytest.mark.conv2d
def test_chunks_and_row_bands_give_the_same_result(rng, monkeypatch):
    x, w, b = _arrays((3, 2, 9, 7, 3, 3, 1, 2, 2), rng)

    def run():
        xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        y = F.conv2d(xt, wt, bt, 1, 2, 2)
        y.backward(numpy.cos(numpy.arange(y.size)).reshape(y.shape))
        return [to_numpy(a) for a in (y.data, xt.grad, wt.grad, bt.grad)]

    whole = run()
    per_image = x[0].size * 9 * 8  # column bytes of one image: C*kh*kw*Ho*Wo*8
    for limit in (per_image, per_image // 3, 1):  # one image per chunk, bands of rows, one row per band
        try:
            im2col.set_buffer_bytes(limit)
            chunked = run()
            cached = im2col._local.buffer
            assert cached is None or cached.nbytes <= max(limit, x.shape[1] * 9 * 7 * 8)
        finally:
            im2col.set_buffer_bytes(256 * 2**20)
        for a, b_ in zip(whole, chunked):
            numpy.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@pytest.mark.needs("conv2d", "max_pool")
def test_threaded_copies_match_single_thread(rng, monkeypatch):
    x, w, b = _arrays((4, 6, 9, 9, 3, 3, 2, 1, 1), rng)
    monkeypatch.setattr(im2col, "_MIN_PARALLEL_ELEMENTS", 0)  # thread even tiny copies

    def run(threads):
        im2col.set_num_threads(threads)
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, Tensor(b), 2, 1)
        y.backward(numpy.ones(y.shape))
        pooled = F.max_pool2d(xt, 3, 2, 1, True)
        return [to_numpy(a) for a in (y.data, xt.grad, wt.grad, pooled.data)]

    before = im2col.get_num_threads()
    try:
        one, three = run(1), run(3)
    finally:
        im2col.set_num_threads(before)
    for a, b_ in zip(one, three):
        numpy.testing.assert_array_equal(a, b_)


@pytest.mark.conv2d
def test_frozen_weight_and_constant_input_get_no_gradient(rng):
    x, w, b = _arrays(CONFIGS["3x3 pad 1"], rng)
    xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=False), Tensor(b, requires_grad=True)
    F.conv2d(xt, wt, bt, 1, 1).sum().backward()
    assert wt.grad is None
    full_x = Tensor(x, requires_grad=True)
    F.conv2d(full_x, Tensor(w, requires_grad=True), Tensor(b), 1, 1).sum().backward()
    numpy.testing.assert_allclose(to_numpy(xt.grad), to_numpy(full_x.grad))
    # the image itself needs no gradient: only the weights get one
    img, w2 = Tensor(x), Tensor(w, requires_grad=True)
    F.conv2d(img, w2, None, 1, 1).sum().backward()
    assert img.grad is None and w2.grad is not None


@pytest.mark.conv2d
def test_gradcheck_catches_a_broken_backward(rng, monkeypatch):
    x, w, b = (Tensor(a, requires_grad=True) for a in _arrays(CONFIGS["stride 2"], rng))
    original = F.Conv2d.backward

    def flipped_kernel(self, grad):  # a classic mistake: dW with the kernel flipped
        dx, dw, db = original(self, grad)
        return dx, dw[:, :, ::-1, ::-1], db

    monkeypatch.setattr(F.Conv2d, "backward", flipped_kernel)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, 2, 1), [x, w, b], max_samples=25)

    def forgot_bias(self, grad):
        dx, dw, db = original(self, grad)
        return dx, dw, db * 0

    monkeypatch.setattr(F.Conv2d, "backward", forgot_bias)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, 2, 1), [x, w, b], max_samples=25)


def test_bad_arguments_name_the_problem():
    xp = backend.xp()
    x = Tensor(xp.zeros((1, 3, 5, 5), dtype=numpy.float32))
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x, Tensor(xp.zeros((2, 4, 3, 3), dtype=numpy.float32)))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(Tensor(xp.zeros((3, 5, 5), dtype=numpy.float32)), Tensor(xp.zeros((2, 3, 3, 3), numpy.float32)))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(x, Tensor(xp.zeros((2, 3, 7, 7), dtype=numpy.float32)))
    with pytest.raises(TypeError, match="float64"):
        F.conv2d(Tensor(xp.zeros((1, 3, 5, 5))), Tensor(xp.zeros((2, 3, 3, 3), dtype=numpy.float32)))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, Tensor(xp.zeros((2, 3, 3, 3), dtype=numpy.float32)), stride=0)
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(x, Tensor(xp.zeros((2, 3, 3, 3), dtype=numpy.float32)), Tensor(xp.zeros(3, numpy.float32)))


def test_valid_range_is_exactly_the_outputs_inside_the_image():
    for in_size in (1, 4, 7):
        for stride in (1, 2, 3):
            for offset in range(-7, 8):
                out = 10
                lo, hi = im2col.valid_range(0, out, in_size, offset, stride)
                inside = [o for o in range(out) if 0 <= o * stride + offset < in_size]
                assert list(range(lo, hi)) == inside
