"""L2Norm, ReLU, BatchNorm2d, the losses and initialisation; a small conv net that learns."""

from __future__ import annotations

import math

import numpy
import pytest

import minissd.nn.functional as F
from minissd import Tensor, backend, to_numpy
from minissd.autograd import GradcheckError, gradcheck
from minissd.nn import BatchNorm2d, Conv2d, L2Norm, MaxPool2d, Parameter, ReLU, Sequential, init
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
    monkeypatch.setattr(F.L2Norm, "backward", lambda self, g: (g * self.w.reshape(1, -1, 1, 1) / self.r,
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
def test_inplace_relu_reuses_the_conv_output_and_keeps_gradients_right(rng):
    x = _t(rng.standard_normal((2, 3, 5, 5)), grad=True)
    w1, w2 = _t(rng.standard_normal((4, 3, 3, 3)), grad=True), _t(rng.standard_normal((2, 4, 3, 3)), grad=True)
    y = F.conv2d(x, w1, padding=1)
    address = id(y.data)
    r = F.relu(y, inplace=True)
    assert id(r.data) == address  # no second activation-sized array
    assert gradcheck(lambda x, w1, w2: F.conv2d(F.relu(F.conv2d(x, w1, padding=1), inplace=True), w2),
                     [x, w1, w2], max_samples=30)


@pytest.mark.needs("conv2d")
def test_inplace_relu_copies_when_overwriting_would_be_wrong(rng):
    x = _t(rng.standard_normal((1, 2, 4, 4)), grad=True)
    w = _t(rng.standard_normal((2, 2, 3, 3)), grad=True)
    leaf = F.relu(x, inplace=True)  # never overwrite an input or a parameter
    assert (to_numpy(x.data) < 0).any() and leaf.data is not x.data

    def saved_elsewhere(x, w):
        y = F.conv2d(x, w, padding=1)
        square = y * y  # Mul keeps y's array for its backward: overwriting it would break that
        return F.relu(y, inplace=True) + square

    before = to_numpy(F.conv2d(x, w, padding=1).data)
    out = saved_elsewhere(x, w)
    numpy.testing.assert_allclose(to_numpy(out.data), numpy.maximum(before, 0) + before**2)
    assert gradcheck(saved_elsewhere, [x, w], max_samples=30)


def test_log_softmax_gradient_and_values(rng):
    x = _t(rng.standard_normal((3, 5)), grad=True)
    assert gradcheck(lambda x: F.log_softmax(x, axis=-1), [x])
    y = to_numpy(F.log_softmax(_t([[0.0, math.log(3.0)]])).data)
    numpy.testing.assert_allclose(y, [[math.log(0.25), math.log(0.75)]])


# =========================================================================== cross-entropy
def test_cross_entropy_hand_values():
    logits = _t([[0.0, 0.0], [0.0, math.log(3.0)]])
    target = numpy.array([0, 1])
    loss = F.cross_entropy(logits, target, reduction="none")
    numpy.testing.assert_allclose(to_numpy(loss.data), [math.log(2), -math.log(0.75)])
    numpy.testing.assert_allclose(F.cross_entropy(logits, target, reduction="sum").item(),
                                  math.log(2) - math.log(0.75))
    numpy.testing.assert_allclose(F.cross_entropy(logits, target).item(), (math.log(2) - math.log(0.75)) / 2)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = F.cross_entropy(_t([[1e4, -1e4, 0.0]]), numpy.array([1]))
    numpy.testing.assert_allclose(loss.item(), 2e4)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_gradients(reduction, rng):
    logits = _t(rng.standard_normal((2, 4, 3)), grad=True)  # (N, P, C) as in SSD's conf output
    target = rng.integers(0, 3, (2, 4))
    assert gradcheck(lambda z: F.cross_entropy(z, target, reduction=reduction), [logits])


def test_cross_entropy_ignore_index(rng):
    logits = _t(rng.standard_normal((4, 3)), grad=True)
    target = numpy.array([0, -100, 2, -100])
    loss = F.cross_entropy(logits, target)
    kept = F.cross_entropy(_t(to_numpy(logits.data)[[0, 2]]), numpy.array([0, 2]))
    numpy.testing.assert_allclose(loss.item(), kept.item())
    loss.backward()
    assert numpy.all(to_numpy(logits.grad)[[1, 3]] == 0)
    assert gradcheck(lambda z: F.cross_entropy(z, target), [logits])


def test_cross_entropy_rejects_bad_targets():
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(_t(numpy.zeros((2, 3))), numpy.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(_t(numpy.zeros((2, 3))), numpy.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(_t(numpy.zeros((2, 3))), numpy.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(_t(numpy.zeros((2, 3))), numpy.array([0, 1]), reduction="avg")


# =========================================================================== smooth L1
def test_smooth_l1_hand_values():
    x, t = _t([0.5, -2.0, 0.0]), _t([0.0, 0.0, 0.0])
    # |d| < 1: 0.5 d^2;  else |d| - 0.5
    numpy.testing.assert_allclose(to_numpy(F.smooth_l1_loss(x, t, reduction="none").data), [0.125, 1.5, 0.0])
    numpy.testing.assert_allclose(F.smooth_l1_loss(x, t, reduction="sum").item(), 1.625)
    numpy.testing.assert_allclose(F.smooth_l1_loss(x, t).item(), 1.625 / 3)
    # beta = 2: |d| < 2 -> 0.5 d^2 / 2;  else |d| - 1
    numpy.testing.assert_allclose(to_numpy(F.smooth_l1_loss(_t([1.0, 3.0]), _t([0.0, 0.0]), beta=2.0,
                                                            reduction="none").data), [0.25, 2.0])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_smooth_l1_gradients(reduction, beta, rng):
    # differences kept away from +-beta and 0, where the loss has kinks
    d = rng.uniform(0.1, 0.4, (3, 4)) * rng.choice([-1, 1], (3, 4))
    d[0] *= 8
    t = rng.standard_normal((3, 4))
    x, tt = _t(t + d, grad=True), _t(t, grad=True)
    assert gradcheck(lambda x, t: F.smooth_l1_loss(x, t, beta=beta, reduction=reduction), [x, tt])


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
