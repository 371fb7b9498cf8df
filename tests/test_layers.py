"""L2Norm, ReLU, softmax, BatchNorm2d and initialisation; a small conv net that learns.

(The losses are tested in test_loss.py.)
"""

from __future__ import annotations

import math

import numpy
import pytest

import minissd.nn.functional as F
from minissd import Tensor, backend, to_numpy
from minissd.autograd import GradcheckError, gradcheck
from minissd.nn import BatchNorm2d, Conv2d, L2Norm, MaxPool2d, Parameter, ReLU, Sequential, init, norm, workspace
from minissd.optim import Adam


def _t(a, grad=False):
    return Tensor(numpy.asarray(a, dtype=numpy.float64), requires_grad=grad)


# =========================================================================== L2Norm
def test_l2norm_gives_each_pixel_the_length_of_its_scale(rng):
    layer = L2Norm(4, scale=20.0)
    x = Tensor(rng.standard_normal((2, 4, 3, 5)).astype(numpy.float32) * 50)
    y = to_numpy(layer(x).data)
    numpy.testing.assert_allclose(numpy.sqrt((y**2).sum(axis=1)), 20.0, rtol=1e-5)
    assert to_numpy(layer.weight).tolist() == [20.0] * 4
    # direction is kept: y is a positive multiple of x at every pixel
    ratio = y / to_numpy(x.data)
    assert ratio.min() > 0
    numpy.testing.assert_allclose(ratio, numpy.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-4)


def test_l2norm_hand_example_and_zero_pixel():
    x = _t(numpy.array([3.0, 0.0, 4.0, 0.0]).reshape(1, 2, 1, 2))  # pixel 0: (3, 4); pixel 1: (0, 0)
    y = to_numpy(F.l2_norm(x, _t([1.0, 10.0])).data).reshape(2, 2)
    numpy.testing.assert_allclose(y[:, 0], [0.6, 8.0])
    assert y[:, 1].tolist() == [0.0, 0.0]  # no NaN for an all-zero pixel


def test_l2norm_gradients(rng):
    x = _t(rng.standard_normal((2, 3, 2, 3)), grad=True)
    w = _t(rng.uniform(1, 3, 3), grad=True)
    assert gradcheck(lambda x, w: F.l2_norm(x, w), [x, w])


def test_l2norm_broken_backward_is_caught(rng, monkeypatch):
    x = _t(rng.standard_normal((1, 3, 2, 2)), grad=True)
    w = _t([1.0, 2.0, 3.0], grad=True)
    monkeypatch.setattr(norm.L2NormFunction, "backward", lambda self, g: (g * self.w.reshape(1, -1, 1, 1) / self.r,
                                                               (g * self.xhat).sum(axis=(0, 2, 3))))
    with pytest.raises(GradcheckError):  # forgot that the norm depends on x too
        gradcheck(lambda x, w: F.l2_norm(x, w), [x, w])


# =========================================================================== ReLU, softmax
def test_relu_values_and_gradient(rng):
    y = F.relu(_t([-2.0, 0.0, 3.0]))
    assert to_numpy(y.data).tolist() == [0.0, 0.0, 3.0]
    x = _t(rng.uniform(0.1, 1, (3, 4)) * rng.choice([-1, 1], (3, 4)), grad=True)  # away from the kink
    assert gradcheck(F.relu, [x])
    assert type(ReLU()(x)) is Tensor


@pytest.mark.needs("conv2d")
def test_inplace_relu_keeps_values_and_gradients_right(rng):
    x = _t(rng.standard_normal((2, 3, 5, 5)), grad=True)
    w1, w2 = _t(rng.standard_normal((4, 3, 3, 3)), grad=True), _t(rng.standard_normal((2, 4, 3, 3)), grad=True)
    y = F.conv2d(x, w1, padding=1)
    before = to_numpy(y.data).copy()
    numpy.testing.assert_array_equal(to_numpy(F.relu(y, inplace=True).data), numpy.maximum(before, 0))
    assert ReLU(inplace=True).inplace and "inplace=True" in repr(ReLU(inplace=True))
    assert gradcheck(lambda x, w1, w2: F.conv2d(F.relu(F.conv2d(x, w1, padding=1), inplace=True), w2),
                     [x, w1, w2], max_samples=30)


@pytest.mark.needs("conv2d")
def test_inplace_relu_never_corrupts_a_gradient(rng):
    """F.relu(inplace=True) always overwrites; where that would be wrong, it raises instead of computing
    a wrong gradient: on a parameter or input (a leaf that requires grad) at once, and in backward when
    another op saved the overwritten array."""
    x = _t(rng.standard_normal((1, 2, 4, 4)), grad=True)
    w = _t(rng.standard_normal((2, 2, 3, 3)), grad=True)
    before_x = to_numpy(x.data).copy()
    with pytest.raises(RuntimeError):
        F.relu(x, inplace=True)
    numpy.testing.assert_array_equal(to_numpy(x.data), before_x)  # left alone

    y = F.conv2d(x, w, padding=1)
    square = y * y  # Mul keeps y's array for its backward
    out = F.relu(y, inplace=True) + square
    with pytest.raises(RuntimeError, match="Mul"):
        out.sum().backward()

    def conv_relu_conv(x, w):  # nothing else needs the conv's output: in place is exact
        return F.conv2d(F.relu(F.conv2d(x, w, padding=1), inplace=True), w, padding=1)

    assert gradcheck(conv_relu_conv, [x, w], max_samples=30)


def test_log_softmax_gradient_and_values(rng):
    x = _t(rng.standard_normal((3, 5)), grad=True)
    assert gradcheck(lambda x: F.log_softmax(x, axis=-1), [x])
    y = to_numpy(F.log_softmax(_t([[0.0, math.log(3.0)]])).data)
    numpy.testing.assert_allclose(y, [[math.log(0.25), math.log(0.75)]])


# =========================================================================== BatchNorm2d
def test_batchnorm_training_normalizes_and_updates_running_stats(rng):
    bn = BatchNorm2d(3, momentum=0.1)
    x = rng.standard_normal((4, 3, 2, 2)) * numpy.array([1.0, 2.0, 5.0]).reshape(1, 3, 1, 1) + 7
    y = to_numpy(bn(Tensor(x.astype(numpy.float32))).data)
    numpy.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    numpy.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-3)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)  # running var is unbiased
    numpy.testing.assert_allclose(to_numpy(bn.running_mean), 0.1 * mean, rtol=1e-5)
    numpy.testing.assert_allclose(to_numpy(bn.running_var), 0.9 + 0.1 * var, rtol=1e-5)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


def test_batchnorm_eval_uses_running_stats():
    bn = BatchNorm2d(2).eval()
    bn.running_mean[...] = backend.asarray([1.0, -1.0])
    bn.running_var[...] = backend.asarray([4.0, 0.25])
    x = numpy.ones((1, 2, 1, 1), numpy.float32)
    y = to_numpy(bn(Tensor(x)).data).reshape(2)
    numpy.testing.assert_allclose(y, [0.0, 2.0 / math.sqrt(0.25 + 1e-5)], rtol=1e-5)
    assert to_numpy(bn.running_mean).tolist() == [1.0, -1.0]  # unchanged in eval


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(training, rng):
    x = _t(rng.standard_normal((3, 2, 2, 3)), grad=True)
    g, b = _t([1.5, 0.5], grad=True), _t([0.1, -0.2], grad=True)
    rm, rv = numpy.array([0.3, -0.1]), numpy.array([2.0, 0.5])
    fn = lambda x, g, b: F.batch_norm(x, g, b, rm if not training else None,  # noqa: E731
                                      rv if not training else None, training=training)
    assert gradcheck(fn, [x, g, b])


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_on_image_threads_matches_one_thread(training, rng, monkeypatch):
    # 5 images in pieces of 2, 2 and 1 over 3 threads: the batch sums are added from the pieces
    monkeypatch.setattr(workspace, "_PIECE_BYTES", 2 * 3 * 4 * 4 * 8)
    x = rng.standard_normal((5, 3, 4, 4)) * 3 + 1
    dy = rng.standard_normal(x.shape)
    g, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5

    def run(threads):
        monkeypatch.setattr(backend, "_num_threads", threads)
        xt, gt, bt = _t(x, grad=True), _t(g, grad=True), _t(b, grad=True)
        stats = (backend.asarray(rm), backend.asarray(rv))
        y = F.batch_norm(xt, gt, bt, *stats, training=training)
        y.backward(backend.asarray(dy))
        return [to_numpy(a) for a in (y.data, xt.grad, gt.grad, bt.grad, *stats)]

    for a, b_ in zip(run(1), run(3)):
        numpy.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


# =========================================================================== modules and init
@pytest.mark.needs("conv2d", "max_pool")
def test_layer_modules_shapes():
    x = Tensor(backend.xp().zeros((2, 3, 12, 12), dtype=numpy.float32))
    net = Sequential(Conv2d(3, 8, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(8, 4, 3, stride=2, dilation=1),
                     MaxPool2d(3, 1, 1))
    assert net(x).shape == (2, 4, 2, 2)
    assert net[0].weight.shape == (8, 3, 3, 3) and net[0].bias.shape == (8,)
    assert Conv2d(3, 8, (1, 3), bias=False).bias is None


def test_init_statistics_and_seeding():
    w = Parameter(numpy.zeros((256, 128, 3, 3), numpy.float32))
    init.kaiming_normal(w, rng=numpy.random.default_rng(0))
    numpy.testing.assert_allclose(to_numpy(w).std(), math.sqrt(2 / (128 * 9)), rtol=0.02)
    init.xavier_uniform(w, rng=numpy.random.default_rng(0))
    bound = math.sqrt(6 / (128 * 9 + 256 * 9))
    a = to_numpy(w)
    assert a.max() <= bound and a.min() >= -bound and a.max() > 0.95 * bound
    init.zeros(w)
    assert not to_numpy(w).any()
    c1 = Conv2d(3, 4, 3, rng=numpy.random.default_rng(7))
    c2 = Conv2d(3, 4, 3, rng=numpy.random.default_rng(7))
    numpy.testing.assert_array_equal(to_numpy(c1.weight), to_numpy(c2.weight))
    assert to_numpy(c1.weight).dtype == numpy.float32 and not to_numpy(c1.bias).any()


@pytest.mark.needs("conv2d", "max_pool")
def test_small_conv_net_fits_a_tiny_problem():
    """Vertical vs horizontal bars, 8x8 images: the loss must fall by at least 90%."""
    rng = numpy.random.default_rng(0)
    n = 16
    x = rng.normal(0, 0.1, (n, 1, 8, 8)).astype(numpy.float32)
    y = numpy.arange(n) % 2
    for i in range(n):
        pos = rng.integers(1, 7)
        if y[i]:
            x[i, 0, :, pos] += 1.0
        else:
            x[i, 0, pos, :] += 1.0
    net = Sequential(Conv2d(1, 6, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2, ceil_mode=True),
                     Conv2d(6, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(3, 1, 1), Conv2d(8, 2, 4, rng=rng))
    opt = Adam(net.parameters(), lr=0.02)
    xt = Tensor(x)
    losses = []
    for _ in range(60):
        logits = net(xt).reshape(n, 2)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]
